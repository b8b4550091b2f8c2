//! osdkit: the plumbing of a Ceph-style storage daemon.
//!
//! Layers (see DESIGN.md §1): `common` (context, config, log, perf counters, throttle),
//! `timer` and `finisher`, `asok` (admin socket), `daemon` (process utilities), and the C face
//! in `capi`. Nothing here knows what an OSD is.

pub mod asok;
pub mod capi;
pub mod client;
pub mod cluster;
pub mod common;
pub mod daemon;
pub mod demo;
pub mod finisher;
pub mod minicluster;
pub mod mon;
pub mod msgr;
pub mod os;
pub mod osd;
pub mod timer;
pub mod types;

pub use common::context::Context;
pub use common::entity::EntityName;
pub use common::error::{Error, Result};

/// The crate version, as Cargo knows it; `osdkit_version()` and the header macros match it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
