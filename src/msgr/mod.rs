//! The messenger: msgr2 on the wire, Ceph's Messenger/Connection/Dispatcher model.

pub mod addr;
pub mod connection;
pub mod dispatch_queue;
pub mod dispatcher;
pub mod encoding;
pub mod event_queue;
pub mod message;
pub mod messenger;
pub mod policy;
pub mod prioritized_queue;
pub mod recv_pool;
pub mod session;
mod session_map;
mod shared;
pub mod v2;
pub(crate) mod worker;

// The names a user of the messenger needs, one level down (`osdkit::msgr::Messenger`).
pub use addr::EntityAddr;
pub use connection::{Connection, ConnectionRef};
pub use dispatcher::Dispatcher;
pub use event_queue::{EventQueue, MsgrEvent};
pub use message::Message;
pub use messenger::Messenger;
pub use policy::Policy;
