//! The messenger (DESIGN.md §2): msgr2 on the wire, Ceph's Messenger/Connection/Dispatcher model.

pub mod addr;
pub mod bench;
pub mod connection;
pub mod dispatch_queue;
pub mod dispatcher;
pub mod encoding;
pub mod message;
pub mod messenger;
pub mod ping;
pub mod policy;
pub mod prioritized_queue;
pub mod recv_pool;
pub mod v2;
pub(crate) mod worker;
