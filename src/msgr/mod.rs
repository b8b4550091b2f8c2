//! The messenger (DESIGN.md §2): msgr2 on the wire, Ceph's Messenger/Connection/Dispatcher model.

pub mod addr;
pub mod encoding;
pub mod v2;
