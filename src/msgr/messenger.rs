//! `Messenger`: Ceph's AsyncMessenger shape — bind, start, `connect_to`, `send_message`,
//! dispatchers, policies per peer type, `mark_down`, `shutdown`, `wait` — and `host`, one
//! messenger (one socket, one set of threads) speaking for several entities.

use super::addr::EntityAddr;
use super::connection::{ConnOwner, Connection, ConnectionRef};
use super::dispatch_queue::DispatchQueue;
use super::dispatcher::{Dispatcher, DispatcherChain};
use super::message::Message;
use super::policy::Policy;
use super::recv_pool::RecvBufPool;
use super::session_map::SessionMap;
use super::shared::{Identity, Inner, Router};
use super::v2::frame::FrameLimits;
use super::worker::{worker_perf, Cmd, Worker, WorkerConf, WorkerHandle};
use crate::common::entity::{EntityName, EntityType};
use crate::common::error::{Error, Result};
use crate::common::formatter::FVal;
use crate::Context;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Cheap to clone; all clones are the same messenger. A messenger returned by `host` is a
/// hosted identity of another: its own name, nonce and dispatchers, the other's socket and
/// threads.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
    ident: Option<Arc<Identity>>,
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
            sessions: SessionMap::new(),
            rr: AtomicUsize::new(0),
            worker_fill: AtomicUsize::new(0),
            listener: Mutex::new(None),
            started: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            limits: FrameLimits::default(),
            recv_pool,
            num_workers: AtomicUsize::new(0),
            identities: RwLock::new(HashMap::new()),
            hosting: AtomicBool::new(false),
        });
        Ok(Messenger { inner, ident: None })
    }

    /// A messenger for entity `name` that shares this one's socket, workers and dispatch
    /// threads, as if it were a messenger of its own: its addresses are this messenger's with
    /// a nonce of its own, which is how peers (CLIENT_IDENT's target address) reach it rather
    /// than another identity; it has its own sessions and dispatchers; `shutdown` ends only
    /// its sessions. Once a messenger hosts an identity, a peer targeting any address it does
    /// not host is refused (and logged). For the OSD manager (`osd_manager_shared_messengers`):
    /// many OSDs, one set of messengers.
    pub fn host(&self, name: &str) -> Result<Messenger> {
        if self.ident.is_some() {
            return Err(Error::inval("a hosted identity cannot host another"));
        }
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(Error::new(libc::ESHUTDOWN, "messenger is shut down"));
        }
        let name: EntityName = name.parse()?;
        let mut ids = self.inner.identities.write();
        if ids.values().any(|i| i.name == name) {
            return Err(Error::new(libc::EEXIST, format!("{name} is already hosted here")));
        }
        let nonce = loop {
            let n = super::addr::random_nonce();
            if n != self.inner.nonce && !ids.contains_key(&n) {
                break n;
            }
        };
        let id = Arc::new(Identity {
            name,
            nonce,
            chain: Arc::new(DispatcherChain::new()),
        });
        ids.insert(nonce, id.clone());
        drop(ids);
        if !self.inner.hosting.swap(true, Ordering::AcqRel) {
            self.inner.chain.add_head(Arc::new(Router {
                msgr: Arc::downgrade(&self.inner),
            }));
        }
        Ok(Messenger {
            inner: self.inner.clone(),
            ident: Some(id),
        })
    }

    /// The entities hosted on this messenger (`host`), by name.
    pub fn hosted(&self) -> Vec<EntityName> {
        let mut v: Vec<EntityName> = self.inner.identities.read().values().map(|i| i.name.clone()).collect();
        v.sort();
        v
    }

    /// Whether the messenger this one shares (or this one) hosts an identity with `nonce` now.
    pub fn hosts_nonce(&self, nonce: u32) -> bool {
        self.inner.identities.read().contains_key(&nonce)
    }

    /// The nonce sessions of this messenger (or hosted identity) speak with.
    fn local_nonce(&self) -> u32 {
        self.ident.as_ref().map_or(self.inner.nonce, |i| i.nonce)
    }

    fn chain(&self) -> &Arc<DispatcherChain> {
        self.ident.as_ref().map_or(&self.inner.chain, |i| &i.chain)
    }

    pub fn name(&self) -> &EntityName {
        self.ident.as_ref().map_or(&self.inner.name, |i| &i.name)
    }
    /// The large-frame buffer pool (`ms_prefault_bytes`), if it has one.
    pub(crate) fn recv_pool(&self) -> Option<Arc<RecvBufPool>> {
        self.inner.recv_pool()
    }
    pub fn nonce(&self) -> u32 {
        self.local_nonce()
    }
    pub fn my_addrs(&self) -> Vec<EntityAddr> {
        self.inner.addrs_for(self.local_nonce())
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
        self.chain().add_head(d);
    }
    pub fn add_dispatcher_tail(&self, d: Arc<dyn Dispatcher>) {
        self.chain().add_tail(d);
    }

    /// Binds a listening socket (port 0: any free port). Returns the address peers use.
    pub fn bind(&self, addr: SocketAddr) -> Result<EntityAddr> {
        if self.ident.is_some() {
            return Err(Error::inval("a hosted identity has its host's addresses"));
        }
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
        if self.ident.is_some() {
            return Err(Error::inval("a hosted identity runs on its host's threads"));
        }
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
            let th = crate::common::log::ThreadBuilder::new()
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
        let local = self.local_nonce();
        if self
            .ident
            .as_ref()
            .is_some_and(|i| !inner.identities.read().contains_key(&i.nonce))
        {
            return Err(Error::inval(format!("{} is no longer hosted", self.name())));
        }
        let (c, new) = inner.sessions.outgoing(local, addr, |id, key| {
            let policy = inner.policy_for(peer_type.wire_value());
            let weak: std::sync::Weak<dyn ConnOwner> = Arc::downgrade(inner) as std::sync::Weak<Inner>;
            Connection::new(
                id,
                inner.pick_worker(),
                key,
                peer_type.wire_value(),
                policy,
                true,
                (weak, local),
            )
        });
        if new {
            inner.worker(c.worker).send(Cmd::Connect(c.clone()));
        }
        Ok(c)
    }

    /// Sends `m` to ourselves through the `ms_local` thread (no socket). Not for a hosted
    /// identity (a message with no connection names none): it is dropped with a warning.
    pub fn send_to_self(&self, m: Message) {
        if self.ident.is_some() {
            log::warn!(target: "ms", "{}: send_to_self on a hosted identity: dropped", self.name());
            return;
        }
        let p = m.priority;
        self.inner.dq.local_delivery(m, p);
    }

    /// Closes every connection (of this identity) and forgets its session.
    pub fn mark_down_all(&self) {
        for c in self.connections() {
            self.inner.mark_down_conn(&c);
        }
    }

    /// Closes the outgoing session to `addr`, if any.
    pub fn mark_down(&self, addr: &EntityAddr) {
        let c = self.inner.sessions.outgoing_to(self.local_nonce(), addr);
        if let Some(c) = c {
            self.inner.mark_down_conn(&c);
        }
    }

    /// Every open connection (of this identity): peer, state, policy, queued and unacked
    /// counts.
    pub fn connections(&self) -> Vec<ConnectionRef> {
        let mut v = self.inner.sessions.list();
        if let Some(i) = &self.ident {
            v.retain(|c| c.local_nonce == i.nonce);
        }
        v
    }

    /// What the admin socket's `messenger dump` shows for this messenger.
    pub fn dump_connections(&self) -> FVal {
        self.inner.dump()
    }

    /// Stops workers and dispatch threads; queued messages are dropped. Idempotent. For a
    /// hosted identity: ends its sessions and stops hosting it; the host runs on.
    pub fn shutdown(&self) {
        if let Some(i) = &self.ident {
            if self.inner.identities.write().remove(&i.nonce).is_none() {
                return;
            }
            self.mark_down_all();
            // As below: what its dispatchers hold may hold this identity.
            i.chain.clear();
            return;
        }
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
        for c in self.inner.sessions.drain() {
            c.close_and_discard();
        }
        self.wait();
        // A dispatcher often holds what holds this messenger (an OSD's state): release them.
        self.inner.chain.clear();
    }

    /// Waits for the threads to exit (after `shutdown`); at once for a hosted identity.
    pub fn wait(&self) {
        if self.ident.is_some() {
            return;
        }
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
