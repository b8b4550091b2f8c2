//! The client: the objecter, which finds an object's OSD from the map and talks
//! to it.

pub mod objecter;
pub mod pg;
