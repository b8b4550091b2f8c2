//! `Dispatcher`: what a daemon plugs into a messenger (Ceph's `Dispatcher`), and the chain of
//! them (`add_dispatcher_head` / `_tail`), tried in order.

use super::connection::ConnectionRef;
use super::message::Message;
use parking_lot::RwLock;
use std::sync::Arc;

/// Every method has Ceph's default: not interested.
pub trait Dispatcher: Send + Sync {
    /// May this message be handled inline on the worker thread (no queueing)?
    fn ms_can_fast_dispatch(&self, _m: &Message) -> bool {
        false
    }
    /// Seen by every fast dispatcher before dispatch, on the worker thread.
    fn ms_fast_preprocess(&self, _m: &Message) {}
    /// Called inline on the receiving worker (`msgr-worker-N`) for messages this dispatcher
    /// claimed with `ms_can_fast_dispatch`. Must not block.
    fn ms_fast_dispatch(&self, _m: Message) {}
    /// Called on the `ms_dispatch` thread. Return `None` when handled, or the message back to
    /// pass it to the next dispatcher of the chain.
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        Some(m)
    }
    /// An outgoing connection completed its handshake.
    fn ms_handle_connect(&self, _c: &ConnectionRef) {}
    /// An incoming connection completed its handshake.
    fn ms_handle_accept(&self, _c: &ConnectionRef) {}
    /// A connection faulted and was closed (lossy), or was marked down. Return true if handled.
    fn ms_handle_reset(&self, _c: &ConnectionRef) -> bool {
        false
    }
    /// The peer reset the session (it restarted): messages may have been lost.
    fn ms_handle_remote_reset(&self, _c: &ConnectionRef) {}
    /// The peer refused the connection.
    fn ms_handle_refused(&self, _c: &ConnectionRef) -> bool {
        false
    }
}

/// The ordered dispatcher list of a messenger; read on every message, changed rarely.
#[derive(Default)]
pub struct DispatcherChain {
    list: RwLock<Arc<Vec<Arc<dyn Dispatcher>>>>,
}

impl DispatcherChain {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add_head(&self, d: Arc<dyn Dispatcher>) {
        let mut l = self.list.write();
        let mut v = (**l).clone();
        v.insert(0, d);
        *l = Arc::new(v);
    }
    pub fn add_tail(&self, d: Arc<dyn Dispatcher>) {
        let mut l = self.list.write();
        let mut v = (**l).clone();
        v.push(d);
        *l = Arc::new(v);
    }
    /// Drops every dispatcher (after the messenger stopped: one that holds the messenger's
    /// owner would otherwise keep both alive).
    pub fn clear(&self) {
        *self.list.write() = Arc::new(Vec::new());
    }
    /// A snapshot: callbacks run on it without any lock held.
    pub fn snapshot(&self) -> Arc<Vec<Arc<dyn Dispatcher>>> {
        self.list.read().clone()
    }
    pub fn is_empty(&self) -> bool {
        self.list.read().is_empty()
    }

    /// Offers `m` to each dispatcher in turn; true if one handled it.
    pub fn dispatch(&self, m: Message) -> bool {
        let mut m = m;
        for d in self.snapshot().iter() {
            match d.ms_dispatch(m) {
                None => return true,
                Some(back) => m = back,
            }
        }
        log::warn!(target: "ms", "no dispatcher handled message type {} (tid {})", m.ty, m.tid);
        false
    }

    /// `ms_fast_preprocess` on all, then fast dispatch by the first that claims it. Gives the
    /// message back when no dispatcher claims it.
    pub fn try_fast_dispatch(&self, m: Message) -> Option<Message> {
        let list = self.snapshot();
        for d in list.iter() {
            d.ms_fast_preprocess(&m);
        }
        match list.iter().find(|d| d.ms_can_fast_dispatch(&m)) {
            Some(d) => {
                d.ms_fast_dispatch(m);
                None
            }
            None => Some(m),
        }
    }

    pub fn connect(&self, c: &ConnectionRef) {
        self.snapshot().iter().for_each(|d| d.ms_handle_connect(c));
    }
    pub fn accept(&self, c: &ConnectionRef) {
        self.snapshot().iter().for_each(|d| d.ms_handle_accept(c));
    }
    pub fn reset(&self, c: &ConnectionRef) {
        for d in self.snapshot().iter() {
            if d.ms_handle_reset(c) {
                return;
            }
        }
    }
    pub fn remote_reset(&self, c: &ConnectionRef) {
        self.snapshot().iter().for_each(|d| d.ms_handle_remote_reset(c));
    }
    pub fn refused(&self, c: &ConnectionRef) {
        for d in self.snapshot().iter() {
            if d.ms_handle_refused(c) {
                return;
            }
        }
    }
}
