//! osdkit: the runtime of a Ceph-style storage daemon, and the daemons built on it.
//!
//! The plumbing of a Ceph OSD — config, log, perf counters, `SafeTimer`, `Finisher`,
//! `Throttle`, the admin socket, daemon process handling and the msgr2 `Messenger` — with a
//! monitor, OSDs (sharded op queue, `mem` and durable `kv` stores, replication, peering,
//! recovery, scrub, heartbeats), the `Objecter`, daemons hosted in-process, the `osdkit`
//! command, and the C ABI in `capi`. The layers and what each may use are in
//! `docs/architecture.md`; `tests/layers.rs` holds the code to them.

pub mod asok;
pub mod capi;
pub mod cli;
pub mod client;
pub mod common;
pub mod context;
pub mod daemon;
pub mod finisher;
pub mod hosting;
pub mod mon;
pub mod msgr;
pub mod os;
pub mod osd;
pub mod timer;
pub mod types;

pub use common::entity::EntityName;
pub use common::error::{Error, Result};
pub use context::Context;

/// The crate version, as Cargo knows it; `osdkit_version()` and the header macros match it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
