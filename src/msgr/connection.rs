//! `Connection`: one session with a peer, shared between the application (which sends on it)
//! and the worker thread that owns its socket.
//!
//! Sending only queues the message and wakes the owning worker; the worker assigns sequence
//! numbers, frames and writes. A lossless session keeps what it sent until the peer acks it and
//! puts it back at the front of the queue after a fault, with its sequence number, so the peer
//! (which drops what it has already seen) gets every message exactly once, in order.

use super::addr::EntityAddr;
use super::message::Message;
use super::policy::Policy;
use crate::common::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

pub type ConnectionRef = Arc<Connection>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStatus {
    /// Handshake in progress (or waiting to reconnect).
    Connecting,
    Open,
    /// Lossless session whose socket faulted: messages queue until the peer reconnects.
    Standby,
    Closed,
}

/// Session state, behind the connection's lock.
pub(crate) struct ConnState {
    pub status: ConnStatus,
    /// Messages to send; re-queued ones (seq != 0) first, in seq order.
    pub out_q: VecDeque<Message>,
    /// Lossless: sent and not yet acknowledged.
    pub sent: VecDeque<Message>,
    pub out_seq: u64,
    pub in_seq: u64,
    pub client_cookie: u64,
    pub server_cookie: u64,
    pub connect_seq: u64,
    pub peer_global_seq: u64,
    /// The worker has been woken for this connection and not yet drained it.
    pub kicked: bool,
    pub peer_addrs: Vec<EntityAddr>,
    pub peer_gid: i64,
    /// Consecutive failed attempts since the last time the session was open.
    pub failures: u32,
    pub last_keepalive_ack: Option<Instant>,
}

impl ConnState {
    /// A session not yet connected: nothing queued, no cookies, no peer known.
    pub(crate) fn new() -> ConnState {
        ConnState {
            status: ConnStatus::Connecting,
            out_q: VecDeque::new(),
            sent: VecDeque::new(),
            out_seq: 0,
            in_seq: 0,
            client_cookie: 0,
            server_cookie: 0,
            connect_seq: 0,
            peer_global_seq: 0,
            kicked: false,
            peer_addrs: Vec::new(),
            peer_gid: -1,
            failures: 0,
            last_keepalive_ack: None,
        }
    }
}

pub struct Connection {
    id: u64,
    pub(crate) worker: usize,
    /// The address we connect to (outgoing) or the peer's announced address (incoming).
    peer_addr: Mutex<EntityAddr>,
    peer_type: AtomicU8,
    pub(crate) policy: Policy,
    /// True if we opened the TCP connection (we reconnect after a fault).
    pub(crate) outgoing: bool,
    pub(crate) state: Mutex<ConnState>,
    pub(crate) msgr: Weak<dyn ConnOwner>,
    /// The nonce of the identity this end speaks as: the messenger's own, or one it hosts
    /// (`Messenger::host`), whose dispatchers get what arrives here.
    pub(crate) local_nonce: u32,
}

/// The messenger side of a connection: what `send_message` and friends call into.
pub(crate) trait ConnOwner: Send + Sync {
    fn kick(&self, c: &ConnectionRef);
    fn keepalive(&self, c: &ConnectionRef);
    fn mark_down_conn(&self, c: &ConnectionRef);
}

/// The owner of a local connection: what is sent on it goes to `deliver`, on the sending
/// thread, in order.
struct LocalSink {
    deliver: Box<dyn Fn(Message) + Send + Sync>,
}

impl ConnOwner for LocalSink {
    fn kick(&self, c: &ConnectionRef) {
        // Whoever set `kicked` delivers until the queue stays empty; other senders only queue.
        loop {
            let batch: Vec<Message> = {
                let mut st = c.state.lock();
                if st.out_q.is_empty() {
                    st.kicked = false;
                    return;
                }
                st.out_q.drain(..).collect()
            };
            for m in batch {
                (self.deliver)(m);
            }
        }
    }
    fn keepalive(&self, _: &ConnectionRef) {}
    fn mark_down_conn(&self, c: &ConnectionRef) {
        c.close_and_discard();
    }
}

/// A connection with no socket behind it (id 0, Ceph's loopback connection), alive as long as
/// this value: messages sent on it are handed to a function on the sending thread. A daemon
/// serves a request that arrives with it as any other and replies on it without a network hop.
pub struct LocalConnection {
    conn: ConnectionRef,
    _sink: Arc<LocalSink>,
}

impl LocalConnection {
    /// A local connection whose peer is `peer_addr` (an entity of type `peer_type`), sending
    /// to `deliver`.
    pub fn new(
        peer_addr: EntityAddr,
        peer_type: u8,
        deliver: impl Fn(Message) + Send + Sync + 'static,
    ) -> LocalConnection {
        let sink = Arc::new(LocalSink {
            deliver: Box::new(deliver),
        });
        let weak: Weak<dyn ConnOwner> = Arc::downgrade(&sink) as Weak<LocalSink>;
        let conn = Connection::new(0, 0, peer_addr, peer_type, Policy::lossy_client(), true, (weak, 0));
        conn.state.lock().status = ConnStatus::Open;
        LocalConnection { conn, _sink: sink }
    }
    pub fn conn(&self) -> &ConnectionRef {
        &self.conn
    }
}

/// The owner of detached connections: nobody.
#[cfg(test)]
struct NoOwner;

#[cfg(test)]
impl ConnOwner for NoOwner {
    fn kick(&self, _: &ConnectionRef) {}
    fn keepalive(&self, _: &ConnectionRef) {}
    fn mark_down_conn(&self, _: &ConnectionRef) {}
}

impl Connection {
    pub(crate) fn new(
        id: u64,
        worker: usize,
        peer_addr: EntityAddr,
        peer_type: u8,
        policy: Policy,
        outgoing: bool,
        (msgr, local_nonce): (Weak<dyn ConnOwner>, u32),
    ) -> ConnectionRef {
        Arc::new(Connection {
            id,
            worker,
            peer_addr: Mutex::new(peer_addr),
            peer_type: AtomicU8::new(peer_type),
            policy,
            outgoing,
            state: Mutex::new(ConnState::new()),
            msgr,
            local_nonce,
        })
    }

    /// A detached connection for unit tests of the layers above.
    #[cfg(test)]
    pub(crate) fn new_for_tests(id: u64) -> ConnectionRef {
        Self::new(
            id,
            0,
            EntityAddr::blank(),
            0,
            Policy::lossy_client(),
            true,
            (Weak::<NoOwner>::new(), 0),
        )
    }

    /// Unique within the process; 0 only for a [`LocalConnection`] (Ceph reserves it for local
    /// delivery).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// A [`LocalConnection`]: no socket, no peer process.
    pub fn is_local(&self) -> bool {
        self.id == 0
    }
    pub fn peer_addr(&self) -> EntityAddr {
        *self.peer_addr.lock()
    }
    /// `CEPH_ENTITY_TYPE_*` of the peer.
    pub fn peer_type(&self) -> u8 {
        self.peer_type.load(Ordering::Relaxed)
    }
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn status(&self) -> ConnStatus {
        self.state.lock().status
    }
    pub fn is_connected(&self) -> bool {
        self.status() == ConnStatus::Open
    }
    /// The peer's entity number (from its ident), -1 before the handshake.
    pub fn peer_gid(&self) -> i64 {
        self.state.lock().peer_gid
    }
    /// Messages queued and not yet written.
    pub fn queued(&self) -> usize {
        self.state.lock().out_q.len()
    }
    /// Lossless: messages written and not yet acknowledged by the peer.
    pub fn unacked(&self) -> usize {
        self.state.lock().sent.len()
    }

    /// Marks the session closed and drops what it still held. The messages are dropped after
    /// the lock is released: dropping one runs its buffer owner's destructor (a C `free_fn`, a
    /// Python object's release), which must never run under a library lock.
    pub(crate) fn close_and_discard(&self) {
        let held = {
            let mut st = self.state.lock();
            st.status = ConnStatus::Closed;
            (std::mem::take(&mut st.out_q), std::mem::take(&mut st.sent))
        };
        drop(held);
    }

    /// Queues `m` for the peer. Fails with -ENOTCONN once the connection is closed (marked down,
    /// or a lossy session that faulted).
    pub fn send_message(self: &Arc<Self>, m: Message) -> Result<()> {
        let kick = {
            let mut st = self.state.lock();
            if st.status == ConnStatus::Closed {
                return Err(Error::new(
                    libc::ENOTCONN,
                    format!("connection to {} is closed", self.peer_addr()),
                ));
            }
            st.out_q.push_back(m);
            !std::mem::replace(&mut st.kicked, true)
        };
        if kick {
            if let Some(m) = self.msgr.upgrade() {
                m.kick(self);
            }
        }
        Ok(())
    }

    /// Asks the worker to send a KEEPALIVE2 (the ack time shows in `last_keepalive_ack`).
    pub fn send_keepalive(self: &Arc<Self>) {
        if let Some(m) = self.msgr.upgrade() {
            m.keepalive(self);
        }
    }

    pub fn last_keepalive_ack(&self) -> Option<Instant> {
        self.state.lock().last_keepalive_ack
    }

    /// Closes the connection: queued messages are dropped, no reset event is delivered (Ceph's
    /// `mark_down`).
    pub fn mark_down(self: &Arc<Self>) {
        if let Some(m) = self.msgr.upgrade() {
            m.mark_down_conn(self);
        } else {
            self.state.lock().status = ConnStatus::Closed;
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peer", &self.peer_addr())
            .finish()
    }
}
