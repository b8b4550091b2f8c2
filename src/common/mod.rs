//! The bottom layer: config, log, perf counters, throttle, entity names, errors, and the small
//! helpers everything else uses. Imports nothing above it; the `Context` that joins these with
//! the admin socket, timers and finishers is one layer up (`crate::context`).

pub mod config;
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
