//! The state a messenger and its workers share: identity and addresses, policies, the
//! dispatcher chain and `DispatchQueue`, the worker handles, the session registry, and the
//! connection-owner side (`ConnOwner`: kick, keepalive, mark down), and the identities it
//! hosts (`Identity`, routed to by `Router`). The session decisions it applies are in
//! `session`; the public face is `Messenger`.

use super::addr::EntityAddr;
use super::connection::{ConnOwner, Connection, ConnectionRef};
use super::dispatch_queue::{ConnEvent, DispatchQueue};
use super::dispatcher::DispatcherChain;
use super::policy::Policy;
use super::recv_pool::RecvBufPool;
use super::session::{self, Reconnect};
use super::session_map::{session_key, SessionMap};
use super::v2::control::{ClientIdent, SessionReconnect, FEATURES_PACIFIC};
use super::v2::frame::FrameLimits;
use super::v2::protocol::{LocalInfo, Protocol};
use super::worker::{Cmd, WorkerHandle};
use crate::common::entity::EntityName;
use crate::common::formatter::FVal;
use crate::common::throttle::Throttle;
use crate::Context;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub(crate) struct Inner {
    /// Our own Arc, for the connections accepted by workers.
    pub(super) me: std::sync::Weak<Inner>,
    pub(super) ctx: Context,
    pub(super) name: EntityName,
    pub(super) nonce: u32,
    pub(super) my_addrs: RwLock<Vec<EntityAddr>>,
    pub(super) default_policy: RwLock<Policy>,
    pub(super) policies: RwLock<HashMap<u8, Policy>>,
    pub(crate) chain: Arc<DispatcherChain>,
    pub(super) dq: Arc<DispatchQueue>,
    pub(crate) dispatch_throttle: Arc<Throttle>,
    pub(super) workers: OnceLock<Vec<WorkerHandle>>,
    /// The sessions and the counters they draw from.
    pub(crate) sessions: SessionMap,
    pub(super) rr: AtomicUsize,
    pub(super) listener: Mutex<Option<std::net::TcpListener>>,
    pub(super) started: AtomicBool,
    pub(super) stopped: AtomicBool,
    pub(super) limits: FrameLimits,
    /// `ms_prefault_bytes`; None when 0.
    pub(super) recv_pool: Option<Arc<RecvBufPool>>,
    /// `set_num_workers`; 0: `ms_async_op_threads`.
    pub(super) num_workers: AtomicUsize,
    /// `ms_async_worker_fill`, read at start.
    pub(super) worker_fill: AtomicUsize,
    /// Entities this messenger speaks for besides itself (`Messenger::host`), by nonce.
    pub(super) identities: RwLock<HashMap<u32, Arc<Identity>>>,
    /// Set by the first `host`: from then on sessions belong to hosted identities only.
    pub(super) hosting: AtomicBool,
}

/// An entity a messenger hosts: its name, its nonce (which tells its addresses from those of
/// the messenger's other identities: same IP and port), and its own dispatchers. Ceph's
/// CLIENT_IDENT names the address (with nonce) the client wants, so an accepted session knows
/// its identity before the server answers with SERVER_IDENT.
pub(crate) struct Identity {
    pub(crate) name: EntityName,
    pub(crate) nonce: u32,
    pub(crate) chain: Arc<DispatcherChain>,
}

/// The head dispatcher of a hosting messenger: each message and connection event goes to the
/// dispatchers of the identity its connection speaks as.
pub(super) struct Router {
    pub(super) msgr: std::sync::Weak<Inner>,
}

impl Router {
    fn chain(&self, c: Option<&ConnectionRef>) -> Option<Arc<DispatcherChain>> {
        let c = c?;
        let m = self.msgr.upgrade()?;
        let id = m.identities.read().get(&c.local_nonce).cloned();
        if id.is_none() {
            log::debug!(target: "ms", "{}: nothing hosted as nonce {} any more", m.name, c.local_nonce);
        }
        id.map(|i| i.chain.clone())
    }
}

impl super::dispatcher::Dispatcher for Router {
    fn ms_can_fast_dispatch(&self, m: &super::message::Message) -> bool {
        self.chain(m.conn.as_ref())
            .is_some_and(|ch| ch.snapshot().iter().any(|d| d.ms_can_fast_dispatch(m)))
    }
    fn ms_fast_preprocess(&self, m: &super::message::Message) {
        if let Some(ch) = self.chain(m.conn.as_ref()) {
            ch.snapshot().iter().for_each(|d| d.ms_fast_preprocess(m));
        }
    }
    fn ms_fast_dispatch(&self, m: super::message::Message) {
        if let Some(ch) = self.chain(m.conn.as_ref()) {
            if let Some(d) = ch.snapshot().iter().find(|d| d.ms_can_fast_dispatch(&m)) {
                d.ms_fast_dispatch(m);
            }
        }
    }
    fn ms_dispatch(&self, m: super::message::Message) -> Option<super::message::Message> {
        match self.chain(m.conn.as_ref()) {
            Some(ch) => {
                ch.dispatch(m);
            }
            None => log::warn!(target: "ms", "dropping message type {} for no hosted identity", m.ty),
        }
        None
    }
    fn ms_handle_connect(&self, c: &ConnectionRef) {
        if let Some(ch) = self.chain(Some(c)) {
            ch.connect(c);
        }
    }
    fn ms_handle_accept(&self, c: &ConnectionRef) {
        if let Some(ch) = self.chain(Some(c)) {
            ch.accept(c);
        }
    }
    fn ms_handle_reset(&self, c: &ConnectionRef) -> bool {
        if let Some(ch) = self.chain(Some(c)) {
            ch.reset(c);
        }
        true
    }
    fn ms_handle_remote_reset(&self, c: &ConnectionRef) {
        if let Some(ch) = self.chain(Some(c)) {
            ch.remote_reset(c);
        }
    }
    fn ms_handle_refused(&self, c: &ConnectionRef) -> bool {
        if let Some(ch) = self.chain(Some(c)) {
            ch.refused(c);
        }
        true
    }
}

impl Inner {
    pub(crate) fn dump(&self) -> FVal {
        let conns = self
            .sessions
            .list()
            .iter()
            .map(|c| {
                let st = c.state.lock();
                FVal::obj()
                    .with("id", FVal::U64(c.id()))
                    .with("peer_addr", FVal::str(c.peer_addr().to_string()))
                    .with("peer_type", FVal::U64(u64::from(c.peer_type())))
                    .with("state", FVal::str(format!("{:?}", st.status).to_lowercase()))
                    .with("policy", FVal::str(c.policy.name()))
                    .with("outgoing", FVal::Bool(c.outgoing))
                    .with("queued", FVal::U64(st.out_q.len() as u64))
                    .with("unacked", FVal::U64(st.sent.len() as u64))
                    .with("out_seq", FVal::U64(st.out_seq))
                    .with("in_seq", FVal::U64(st.in_seq))
            })
            .collect();
        FVal::obj()
            .with("name", FVal::str(self.name.to_string()))
            .with(
                "addrs",
                FVal::Arr(self.my_addrs().iter().map(|a| FVal::str(a.to_string())).collect()),
            )
            .with("connections", FVal::Arr(conns))
    }

    pub(crate) fn workers(&self) -> &[WorkerHandle] {
        self.workers.get().map(Vec::as_slice).unwrap_or(&[])
    }
    pub(crate) fn worker(&self, i: usize) -> &WorkerHandle {
        &self.workers()[i]
    }
    /// The worker a new connection goes to. Ceph spreads connections over its workers; with
    /// a handful of connections that puts a client's session and the sessions its repops
    /// travel on on different threads, and every op pays two cross-thread wake-ups (channel,
    /// eventfd, epoll return, context switch) on top of its socket calls. So workers fill in
    /// order up to `ms_async_worker_fill` sockets each, and connections spread (to the worker
    /// with the fewest) only beyond that; 0 spreads them round-robin from the first.
    pub(crate) fn pick_worker(&self) -> usize {
        let ws = self.workers();
        let fill = self.worker_fill.load(Ordering::Relaxed) as u64;
        if ws.len() <= 1 {
            return 0;
        }
        if fill == 0 {
            return self.rr.fetch_add(1, Ordering::Relaxed) % ws.len();
        }
        let active = |i: usize| ws[i].perf.get(super::worker::L_ACTIVE);
        (0..ws.len())
            .find(|&i| active(i) < fill)
            .unwrap_or_else(|| (0..ws.len()).min_by_key(|&i| active(i)).unwrap_or(0))
    }
    pub(crate) fn dq(&self) -> &Arc<DispatchQueue> {
        &self.dq
    }
    pub(crate) fn my_addrs(&self) -> Vec<EntityAddr> {
        self.my_addrs.read().clone()
    }
    pub(crate) fn frame_limits(&self) -> FrameLimits {
        self.limits
    }
    pub(crate) fn recv_pool(&self) -> Option<Arc<RecvBufPool>> {
        self.recv_pool.clone()
    }
    pub(crate) fn policy_for(&self, peer_type: u8) -> Policy {
        self.policies
            .read()
            .get(&peer_type)
            .cloned()
            .unwrap_or_else(|| self.default_policy.read().clone())
    }
    /// What a session of identity `nonce` tells peers about us: the messenger's own name and
    /// addresses, or those of the identity it hosts with that nonce.
    pub(crate) fn local_info(&self, nonce: u32) -> LocalInfo {
        let name = match self.identity(nonce) {
            Some(i) => i.name.clone(),
            None => self.name.clone(),
        };
        LocalInfo {
            entity_type: name.ty.wire_value(),
            gid: name.id.parse::<i64>().unwrap_or(-1),
            entity_id: name.id,
            nonce,
            my_addrs: self.addrs_for(nonce),
            features: FEATURES_PACIFIC,
        }
    }

    /// Our addresses as identity `nonce` announces them.
    pub(crate) fn addrs_for(&self, nonce: u32) -> Vec<EntityAddr> {
        let mut v = self.my_addrs();
        for a in &mut v {
            a.nonce = nonce;
        }
        v
    }

    /// The hosted identity with `nonce`, if any.
    pub(crate) fn identity(&self, nonce: u32) -> Option<Arc<Identity>> {
        if nonce == self.nonce {
            return None;
        }
        self.identities.read().get(&nonce).cloned()
    }

    /// Whether a client targeting `nonce` gets a session: always until the messenger hosts
    /// identities, then only for those it hosts (a peer naming any other is refused).
    pub(crate) fn serves(&self, nonce: u32) -> bool {
        !self.hosting.load(Ordering::Acquire) || self.identities.read().contains_key(&nonce)
    }

    /// Drops a connection from the session maps (it closed).
    pub(crate) fn forget(&self, c: &ConnectionRef) {
        self.sessions.forget(c);
    }
}

impl ConnOwner for Inner {
    /// Wakes the worker owning `c` to send what it queued.
    fn kick(&self, c: &ConnectionRef) {
        if super::worker::defer_kick_if_local(self, c) {
            return;
        }
        if let Some(w) = self.workers().get(c.worker) {
            w.send(Cmd::Kick(c.clone()));
        }
    }
    fn keepalive(&self, c: &ConnectionRef) {
        if let Some(w) = self.workers().get(c.worker) {
            w.send(Cmd::Keepalive(c.clone()));
        }
    }
    fn mark_down_conn(&self, c: &ConnectionRef) {
        c.close_and_discard();
        self.forget(c);
        self.dq.discard_queue(c.id());
        if let Some(w) = self.workers().get(c.worker) {
            w.send(Cmd::MarkDown(c.clone()));
        }
    }
}

impl Inner {
    /// Server side, CLIENT_IDENT: a new session (replacing a lossless one of a restarted peer).
    /// `worker` holds the socket: a new session stays there (a resumed one goes to its owner).
    pub(crate) fn accept_session(&self, ident: &ClientIdent, peer_type: u8, worker: usize) -> ConnectionRef {
        let local = if self.hosting.load(Ordering::Acquire) {
            ident.target.nonce
        } else {
            self.nonce
        };
        let policy = self.policy_for(peer_type);
        let key = session_key(&ident.addrs[0]);
        let rec = session::accepted(ident, policy.lossy, super::addr::random_cookie());
        let weak: std::sync::Weak<dyn ConnOwner> = self.me.clone();
        let c = Connection::new(
            self.sessions.next_id(),
            worker,
            key,
            peer_type,
            policy.clone(),
            false,
            (weak, local),
        );
        session::open_accepted(&mut c.state.lock(), &rec, ident);
        if let Some(old) = self.sessions.accept(&c, !policy.lossy) {
            // Same peer, new session: it restarted. The old session is gone for good.
            log::info!(target: "ms", "{key} opened a new session: resetting the old one");
            old.close_and_discard();
            self.dq.queue_event(ConnEvent::BadRemoteReset, old.clone());
            if let Some(w) = self.workers().get(old.worker) {
                w.send(Cmd::MarkDown(old));
            }
        }
        c
    }

    /// The lossless incoming session a reconnect names, if we have it.
    pub(crate) fn in_session(&self, r: &SessionReconnect) -> Option<ConnectionRef> {
        self.sessions.incoming_from(r.addrs.first()?, r.server_cookie)
    }

    /// Server side, SESSION_RECONNECT: judged by `session::judge_reconnect` and answered on
    /// `proto`. Returns the resumed session, or None when the answer was a reset or a retry.
    pub(crate) fn resume_session(&self, r: &SessionReconnect, proto: &mut Protocol) -> Option<ConnectionRef> {
        let existing = self.in_session(r);
        let Some(c) = existing else {
            session::answer(proto, Reconnect::Reset { full: true });
            return None;
        };
        let mut st = c.state.lock();
        let verdict = session::judge_reconnect(Some(&session::record(&st)), c.policy.resetcheck, r);
        session::answer(proto, verdict);
        if !matches!(verdict, Reconnect::Resume { .. }) {
            return None;
        }
        let acked = session::resume(&mut st, r);
        drop(st);
        drop(acked);
        Some(c)
    }
}
