//! The OSD (DESIGN.md §3): the op path's pieces, built up issue by issue. Today: the sharded op
//! work queue and its scheduler.

pub mod op_wq;
pub mod scheduler;
