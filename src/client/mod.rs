//! The client side: `Rados`, the object client (librados' shape), and the `Objecter` under
//! it, which finds an object's OSD from the map and talks to it.

pub mod objecter;
pub mod pg;
pub mod rados;

pub use rados::Rados;
