//! The OSD (DESIGN.md §3): the op path's pieces, built up issue by issue. Today: the sharded op
//! work queue, its scheduler and the op tracker.

pub mod op_tracker;
pub mod op_wq;
pub mod pg_ops;
pub mod scheduler;
