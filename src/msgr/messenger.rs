//! `Messenger`: Ceph's AsyncMessenger shape — bind, start, `connect_to`, `send_message`,
//! dispatchers, policies per peer type, `mark_down`, `shutdown`, `wait`.

use super::addr::{EntityAddr, ADDR_TYPE_MSGR2};
use super::connection::{ConnOwner, ConnStatus, Connection, ConnectionRef};
use super::dispatch_queue::{ConnEvent, DispatchQueue};
use super::dispatcher::{Dispatcher, DispatcherChain};
use super::message::Message;
use super::policy::Policy;
use super::recv_pool::RecvBufPool;
use super::v2::control::{ClientIdent, SessionReconnect, FEATURES_PACIFIC};
use super::v2::frame::FrameLimits;
use super::v2::protocol::{LocalInfo, Protocol};
use super::worker::{worker_perf, Cmd, Worker, WorkerConf, WorkerHandle};
use crate::common::entity::{EntityName, EntityType};
use crate::common::error::{Error, Result};
use crate::common::formatter::FVal;
use crate::common::throttle::Throttle;
use crate::Context;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

pub(crate) struct Inner {
    /// Our own Arc, for the connections accepted by workers.
    me: std::sync::Weak<Inner>,
    ctx: Context,
    name: EntityName,
    nonce: u32,
    my_addrs: RwLock<Vec<EntityAddr>>,
    default_policy: RwLock<Policy>,
    policies: RwLock<HashMap<u8, Policy>>,
    pub(crate) chain: Arc<DispatcherChain>,
    dq: Arc<DispatchQueue>,
    pub(crate) dispatch_throttle: Arc<Throttle>,
    workers: OnceLock<Vec<WorkerHandle>>,
    /// Outgoing sessions by target address.
    out_sessions: Mutex<HashMap<EntityAddr, ConnectionRef>>,
    /// Lossless incoming sessions by the peer's announced address.
    in_sessions: Mutex<HashMap<EntityAddr, ConnectionRef>>,
    /// Every connection that is not closed, for listing and mark_down_all.
    all: Mutex<HashMap<u64, ConnectionRef>>,
    next_id: AtomicU64,
    global_seq: AtomicU64,
    next_global_id: AtomicU64,
    rr: AtomicUsize,
    listener: Mutex<Option<std::net::TcpListener>>,
    started: AtomicBool,
    stopped: AtomicBool,
    limits: FrameLimits,
    /// `ms_prefault_bytes`; None when 0.
    recv_pool: Option<Arc<RecvBufPool>>,
    /// `set_num_workers`; 0: `ms_async_op_threads`.
    num_workers: AtomicUsize,
    /// `ms_async_worker_fill`, read at start.
    worker_fill: AtomicUsize,
}

/// Cheap to clone; all clones are the same messenger.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
}

fn session_key(a: &EntityAddr) -> EntityAddr {
    // The address type differs between what a peer announces (ANY) and what we dial (v2).
    EntityAddr {
        ty: ADDR_TYPE_MSGR2,
        ..*a
    }
}

impl Messenger {
    /// A messenger for entity `name` of `ctx`, with `nonce` (0 for monitors, as in Ceph; pass
    /// `None` for a random one).
    pub fn new(ctx: &Context, name: &str, nonce: Option<u32>) -> Result<Messenger> {
        let name: EntityName = name.parse()?;
        let conf = ctx.conf();
        let dispatch_throttle = ctx.new_throttle(
            &format!("msgr_dispatch_throttler-{}", name),
            conf.get_u64("ms_dispatch_throttle_bytes"),
        );
        let chain = Arc::new(DispatcherChain::new());
        let dq = DispatchQueue::new(
            &name.to_string(),
            chain.clone(),
            dispatch_throttle.clone(),
            Some(ctx.perf()),
            conf.get_u64("ms_pq_max_tokens_per_priority"),
            conf.get_u64("ms_pq_min_cost"),
        );
        let recv_pool = RecvBufPool::new(
            conf.get_u64("ms_prefault_bytes") as usize,
            conf.get_u64("ms_prefault_threads") as usize,
            &name.to_string(),
            Some(ctx.perf()),
        );
        let inner = Arc::new_cyclic(|me| Inner {
            me: me.clone(),
            ctx: ctx.clone(),
            name,
            nonce: nonce.unwrap_or_else(super::addr::random_nonce),
            my_addrs: RwLock::new(Vec::new()),
            default_policy: RwLock::new(Policy::lossless_peer()),
            policies: RwLock::new(HashMap::new()),
            chain,
            dq,
            dispatch_throttle,
            workers: OnceLock::new(),
            out_sessions: Mutex::new(HashMap::new()),
            in_sessions: Mutex::new(HashMap::new()),
            all: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            global_seq: AtomicU64::new(0),
            next_global_id: AtomicU64::new(4096),
            rr: AtomicUsize::new(0),
            worker_fill: AtomicUsize::new(0),
            listener: Mutex::new(None),
            started: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            limits: FrameLimits::default(),
            recv_pool,
            num_workers: AtomicUsize::new(0),
        });
        Ok(Messenger { inner })
    }

    pub fn name(&self) -> &EntityName {
        &self.inner.name
    }
    /// The large-frame buffer pool (`ms_prefault_bytes`), if it has one.
    pub(crate) fn recv_pool(&self) -> Option<Arc<RecvBufPool>> {
        self.inner.recv_pool()
    }
    pub fn nonce(&self) -> u32 {
        self.inner.nonce
    }
    pub fn my_addrs(&self) -> Vec<EntityAddr> {
        self.inner.my_addrs()
    }

    /// Workers for this messenger instead of `ms_async_op_threads` (1..=24); before `start`.
    /// Ceph's messengers share one stack of workers per process; ours each have their own, so
    /// a messenger with little traffic (heartbeats) takes one.
    pub fn set_num_workers(&self, n: usize) {
        self.inner.num_workers.store(n.clamp(1, 24), Ordering::Relaxed);
    }

    pub fn set_default_policy(&self, p: Policy) {
        *self.inner.default_policy.write() = p;
    }
    pub fn set_policy(&self, peer_type: EntityType, p: Policy) {
        self.inner.policies.write().insert(peer_type.wire_value(), p);
    }
    pub fn add_dispatcher_head(&self, d: Arc<dyn Dispatcher>) {
        self.inner.chain.add_head(d);
    }
    pub fn add_dispatcher_tail(&self, d: Arc<dyn Dispatcher>) {
        self.inner.chain.add_tail(d);
    }

    /// Binds a listening socket (port 0: any free port). Returns the address peers use.
    pub fn bind(&self, addr: SocketAddr) -> Result<EntityAddr> {
        if self.inner.started.load(Ordering::Acquire) {
            return Err(Error::inval("bind must come before start"));
        }
        let l = std::net::TcpListener::bind(addr).map_err(|e| Error::io(e, format!("bind {addr}")))?;
        let local = l.local_addr()?;
        l.set_nonblocking(true)?;
        *self.inner.listener.lock() = Some(l);
        let a = EntityAddr::msgr2(local, self.inner.nonce);
        *self.inner.my_addrs.write() = vec![a];
        Ok(a)
    }

    /// Binds to the first free port of `ms_bind_port_min..=ms_bind_port_max` on `ip`.
    pub fn bind_port_range(&self, ip: std::net::IpAddr) -> Result<EntityAddr> {
        let conf = self.inner.ctx.conf();
        let (lo, hi) = (
            conf.get_u64("ms_bind_port_min") as u16,
            conf.get_u64("ms_bind_port_max") as u16,
        );
        for port in lo..=hi {
            if let Ok(a) = self.bind(SocketAddr::new(ip, port)) {
                return Ok(a);
            }
        }
        Err(Error::new(
            libc::EADDRINUSE,
            format!("no free port in {lo}..{hi} on {ip}"),
        ))
    }

    /// Starts the workers (`msgr-worker-N`) and the dispatch threads.
    pub fn start(&self) -> Result<()> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(Error::inval("a messenger that was shut down cannot start again"));
        }
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let conf = self.inner.ctx.conf();
        let n = match self.inner.num_workers.load(Ordering::Relaxed) {
            0 => conf.get_u64("ms_async_op_threads").clamp(1, 24) as usize,
            n => n,
        };
        let wconf = WorkerConf::from_conf(conf);
        let fill = conf.get_u64("ms_async_worker_fill");
        self.inner
            .worker_fill
            .store(usize::try_from(fill).unwrap_or(usize::MAX), Ordering::Relaxed);
        let mut listener = self.inner.listener.lock().take().map(mio::net::TcpListener::from_std);
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let poll = mio::Poll::new()?;
            let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0))?);
            let (tx, rx) = crossbeam_channel::unbounded();
            let perf = worker_perf(i);
            self.inner.ctx.perf().add(&perf);
            let w = Worker::new(
                i,
                poll,
                rx,
                if i == 0 { listener.take() } else { None },
                Arc::downgrade(&self.inner),
                wconf.clone(),
                perf.clone(),
            );
            let th = std::thread::Builder::new()
                .name(format!("msgr-worker-{i}"))
                .spawn(move || w.run())
                .map_err(|e| Error::io(e, "spawning msgr worker"))?;
            handles.push(WorkerHandle {
                tx,
                waker,
                thread: Mutex::new(Some(th)),
                perf,
            });
        }
        let _ = self.inner.workers.set(handles);
        self.inner
            .dq
            .start()
            .map_err(|e| Error::io(e, "starting dispatch threads"))?;
        asok_registry::add(&self.inner.ctx, &self.inner);
        Ok(())
    }

    /// The session to `addr` (a peer of `peer_type`), opened on first use and reused after.
    pub fn connect_to(&self, peer_type: EntityType, addr: &EntityAddr) -> Result<ConnectionRef> {
        let inner = &self.inner;
        if !inner.started.load(Ordering::Acquire) || inner.stopped.load(Ordering::Acquire) {
            return Err(Error::inval("messenger is not running"));
        }
        let key = session_key(addr);
        let mut map = inner.out_sessions.lock();
        if let Some(c) = map.get(&key) {
            if c.status() != ConnStatus::Closed {
                return Ok(c.clone());
            }
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let policy = inner.policy_for(peer_type.wire_value());
        let weak: std::sync::Weak<dyn ConnOwner> = Arc::downgrade(inner) as std::sync::Weak<Inner>;
        let c = Connection::new(id, inner.pick_worker(), key, peer_type.wire_value(), policy, true, weak);
        map.insert(key, c.clone());
        drop(map);
        inner.all.lock().insert(id, c.clone());
        inner.worker(c.worker).send(Cmd::Connect(c.clone()));
        Ok(c)
    }

    /// Sends `m` to ourselves through the `ms_local` thread (no socket).
    pub fn send_to_self(&self, m: Message) {
        let p = m.priority;
        self.inner.dq.local_delivery(m, p);
    }

    /// Closes every connection and forgets its session.
    pub fn mark_down_all(&self) {
        let all: Vec<ConnectionRef> = self.inner.all.lock().values().cloned().collect();
        for c in all {
            self.inner.mark_down_conn(&c);
        }
    }

    /// Closes the outgoing session to `addr`, if any.
    pub fn mark_down(&self, addr: &EntityAddr) {
        let c = self.inner.out_sessions.lock().get(&session_key(addr)).cloned();
        if let Some(c) = c {
            self.inner.mark_down_conn(&c);
        }
    }

    /// Every open connection: peer, state, policy, queued and unacked counts.
    pub fn connections(&self) -> Vec<ConnectionRef> {
        let mut v: Vec<ConnectionRef> = self.inner.all.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id());
        v
    }

    /// What the admin socket's `messenger dump` shows for this messenger.
    pub fn dump_connections(&self) -> FVal {
        self.inner.dump()
    }

    /// Stops workers and dispatch threads; queued messages are dropped. Idempotent.
    pub fn shutdown(&self) {
        if self.inner.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        asok_registry::remove(&self.inner.ctx, &self.inner);
        if let Some(ws) = self.inner.workers.get() {
            for w in ws {
                w.send(Cmd::Stop);
            }
        }
        self.inner.dq.shutdown();
        if let Some(p) = &self.inner.recv_pool {
            p.stop();
        }
        let all: Vec<ConnectionRef> = self.inner.all.lock().drain().map(|(_, c)| c).collect();
        for c in all {
            c.close_and_discard();
        }
        self.inner.out_sessions.lock().clear();
        self.inner.in_sessions.lock().clear();
        self.wait();
        // A dispatcher often holds what holds this messenger (an OSD's state): release them.
        self.inner.chain.clear();
    }

    /// Waits for the threads to exit (after `shutdown`).
    pub fn wait(&self) {
        if let Some(ws) = self.inner.workers.get() {
            for w in ws {
                if let Some(t) = w.thread.lock().take() {
                    if t.thread().id() != std::thread::current().id() {
                        let _ = t.join();
                    }
                }
                self.inner.ctx.perf().remove(&w.perf);
            }
        }
        self.inner.dq.wait();
    }
}

impl Inner {
    pub(crate) fn dump(&self) -> FVal {
        let conns = self.all.lock().values().cloned().collect::<Vec<_>>();
        let mut list = conns;
        list.sort_by_key(|c| c.id());
        let conns = list
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
    pub(crate) fn next_global_seq(&self) -> u64 {
        self.global_seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }
    pub(crate) fn bump_global_seq(&self, seen: u64) {
        self.global_seq.fetch_max(seen, Ordering::Relaxed);
    }
    pub(crate) fn next_global_id(&self) -> u64 {
        self.next_global_id.fetch_add(1, Ordering::Relaxed)
    }
    pub(crate) fn policy_for(&self, peer_type: u8) -> Policy {
        self.policies
            .read()
            .get(&peer_type)
            .cloned()
            .unwrap_or_else(|| self.default_policy.read().clone())
    }
    pub(crate) fn local_info(&self) -> LocalInfo {
        LocalInfo {
            entity_type: self.name.ty.wire_value(),
            entity_id: self.name.id.clone(),
            gid: self.name.id.parse::<i64>().unwrap_or(-1),
            nonce: self.nonce,
            my_addrs: self.my_addrs(),
            features: FEATURES_PACIFIC,
        }
    }

    /// Drops a connection from the session maps (it closed).
    pub(crate) fn forget(&self, c: &ConnectionRef) {
        let key = session_key(&c.peer_addr());
        for map in [&self.out_sessions, &self.in_sessions] {
            let mut m = map.lock();
            if m.get(&key).is_some_and(|x| Arc::ptr_eq(x, c)) {
                m.remove(&key);
            }
        }
        self.all.lock().remove(&c.id());
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
        let policy = self.policy_for(peer_type);
        let key = session_key(&ident.addrs[0]);
        if !policy.lossy {
            let old = self.in_sessions.lock().remove(&key);
            if let Some(old) = old {
                // Same peer, new session: it restarted. The old session is gone for good.
                log::info!(target: "ms", "{key} opened a new session: resetting the old one");
                old.close_and_discard();
                self.all.lock().remove(&old.id());
                self.dq.queue_event(ConnEvent::BadRemoteReset, old.clone());
                if let Some(w) = self.workers().get(old.worker) {
                    w.send(Cmd::MarkDown(old));
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let weak: std::sync::Weak<dyn ConnOwner> = self.me.clone();
        let c = Connection::new(id, worker, key, peer_type, policy.clone(), false, weak);
        {
            let mut st = c.state.lock();
            st.status = ConnStatus::Open;
            st.client_cookie = ident.cookie;
            st.server_cookie = if policy.lossy { 0 } else { super::addr::random_cookie() };
            st.peer_global_seq = ident.global_seq;
            st.peer_gid = ident.gid;
            st.peer_addrs = ident.addrs.clone();
        }
        if !policy.lossy {
            self.in_sessions.lock().insert(key, c.clone());
        }
        self.all.lock().insert(id, c.clone());
        c
    }

    /// The lossless incoming session a reconnect names, if we have it.
    pub(crate) fn in_session(&self, r: &SessionReconnect) -> Option<ConnectionRef> {
        let key = session_key(r.addrs.first()?);
        self.in_sessions.lock().get(&key).cloned()
    }

    /// Server side, SESSION_RECONNECT: decide per reference §11 and answer on `proto`.
    /// Returns the resumed session, or None when the answer was a reset/retry/wait.
    pub(crate) fn resume_session(&self, r: &SessionReconnect, proto: &mut Protocol) -> Option<ConnectionRef> {
        let key = session_key(r.addrs.first()?);
        let existing = self.in_sessions.lock().get(&key).cloned();
        let Some(c) = existing else {
            proto.session_reset(true);
            return None;
        };
        let mut st = c.state.lock();
        if st.status == ConnStatus::Closed {
            proto.session_reset(true);
            return None;
        }
        if r.client_cookie != st.client_cookie {
            proto.session_reset(c.policy.resetcheck);
            return None;
        }
        if st.server_cookie == 0 {
            proto.session_reset(false);
            return None;
        }
        if st.peer_global_seq > r.global_seq {
            proto.session_retry_global(st.peer_global_seq);
            return None;
        }
        if st.connect_seq > r.connect_seq {
            proto.session_retry(st.connect_seq);
            return None;
        }
        st.connect_seq = r.connect_seq;
        st.peer_global_seq = r.global_seq;
        let sent = std::mem::take(&mut st.sent);
        for m in sent.into_iter().rev() {
            st.out_q.push_front(m);
        }
        let mut acked = Vec::new();
        while st.out_q.front().is_some_and(|m| m.seq != 0 && m.seq <= r.msg_seq) {
            acked.extend(st.out_q.pop_front());
        }
        proto.reconnect_ok(st.in_seq);
        st.status = ConnStatus::Open;
        drop(st);
        drop(acked);
        Some(c)
    }
}

/// `messenger dump [name]` on the context's admin socket: one command per context, listing
/// every running messenger of that context (an OSD has several: public, cluster, heartbeats).
mod asok_registry {
    use super::Inner;
    use crate::asok::Request;
    use crate::common::formatter::FVal;
    use crate::Context;
    use parking_lot::Mutex;
    use std::collections::HashMap;
    use std::sync::{Arc, Weak};

    const DESC: &str = "messenger dump name=msgr,type=CephString,req=false";

    type Entry = (u64, Vec<Weak<Inner>>);
    static REG: Mutex<Option<HashMap<usize, Entry>>> = Mutex::new(None);

    fn key(ctx: &Context) -> usize {
        Arc::as_ptr(ctx.admin_socket()) as usize
    }

    pub(super) fn add(ctx: &Context, m: &Arc<Inner>) {
        let k = key(ctx);
        let mut reg = REG.lock();
        let map = reg.get_or_insert_with(HashMap::new);
        if let Some((_, list)) = map.get_mut(&k) {
            list.push(Arc::downgrade(m));
            return;
        }
        let hook = Arc::new(move |r: &Request<'_>| -> crate::Result<String> {
            let want = r.arg_str("msgr");
            let list: Vec<Arc<Inner>> = REG
                .lock()
                .as_ref()
                .and_then(|m| m.get(&k))
                .map(|(_, l)| l.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default();
            let dumps: Vec<FVal> = list
                .iter()
                .filter(|m| {
                    want.as_deref()
                        .is_none_or(|w| m.name.to_string() == w || m.my_addrs().iter().any(|a| a.to_string() == w))
                })
                .map(|m| m.dump())
                .collect();
            if want.is_some() && dumps.is_empty() {
                return Err(crate::Error::new(
                    libc::ENOENT,
                    format!("no messenger {}", want.unwrap_or_default()),
                ));
            }
            Ok(r.render(&FVal::obj().with("messengers", FVal::Arr(dumps))))
        });
        match ctx.register_command(
            DESC,
            "list a messenger's connections: peer, state, policy, queued, unacked",
            hook,
        ) {
            Ok(id) => {
                map.insert(k, (id, vec![Arc::downgrade(m)]));
            }
            Err(e) => log::warn!(target: "ms", "cannot register 'messenger dump': {e}"),
        }
    }

    pub(super) fn remove(ctx: &Context, m: &Arc<Inner>) {
        let k = key(ctx);
        let id = {
            let mut reg = REG.lock();
            let Some(map) = reg.as_mut() else { return };
            let Some((id, list)) = map.get_mut(&k) else { return };
            list.retain(|w| w.upgrade().is_some_and(|x| !Arc::ptr_eq(&x, m)));
            if !list.is_empty() {
                return;
            }
            let id = *id;
            map.remove(&k);
            id
        };
        ctx.admin_socket().unregister_command(id);
    }
}
