//! Shared runtime pieces: the `Context` (CephContext analog) and what it owns.

pub mod config;
pub mod context;
pub mod entity;
pub mod error;
pub mod formatter;
pub mod hash;
pub mod log;
pub mod mem;
pub mod net;
pub mod options;
pub mod perf;
pub mod subsys;
pub mod throttle;
