//! The OSD: `Osd` starts one (store, messengers, the sharded op queue, the recovery thread,
//! admin commands; with a monitor, boot, maps and heartbeats), holds its map and stops it.
//!
//! One client op, end to end (reference §8.3): the public messenger fast-dispatches
//! `CEPH_MSG_OSD_OP` on its worker thread (`dispatch`), the op is tracked (`OpTracker`) and
//! queued on the `ShardedOpWQ` by PG, a `tp_osd_tp` worker runs it on the primary
//! (`primary_log_pg`, against the `ObjectStore` through `pg_ops`), writes go to the replicas
//! (`replicated_backend`), and the reply goes back on the client's connection once every copy
//! has it. Peering and recovery (`recovery`), scrub (`scrub`), heartbeats (`heartbeat`) and
//! the admin face (`admin`) work on the same shared state.

mod admin;
pub mod diskmon;
mod dispatch;
pub mod heartbeat;
pub mod hosted_set;
pub mod local;
mod op_queue;
pub mod op_tracker;
pub mod op_wq;
mod peering;
pub mod pg;
pub mod pg_ops;
mod prefault;
mod primary_log_pg;
mod recovery;
mod replicated_backend;
pub mod scheduler;
pub mod scrub;

use dispatch::{owner_of, ClusterDispatch, FastDispatch, CLIENT_PRIORITY};
use op_queue::{OpQueue, OpQueueOwner};
use op_tracker::{OpRef, OpTracker};
use op_wq::{PgKey, ShardedOpWQ};
use prefault::Prefault;

use crate::common::error::{Error, Result};
use crate::common::perf::{PerfCounters, PerfCountersBuilder};
use crate::msgr::addr::EntityAddr;
use crate::msgr::connection::ConnectionRef;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::os::{CollId, ObjectStore, Transaction};
use crate::types::messages::FrontMessage;
use crate::types::osd_op::MOsdOp;
use crate::types::osdmap::OsdMap;
use crate::Context;
use parking_lot::{Mutex, RwLock};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

// Perf counter indices, in the order `osd_perf` adds them (Ceph's names).
const L_OP: usize = 0;
const L_OP_W: usize = 1;
const L_OP_R: usize = 2;
const L_OP_LAT: usize = 3;
const L_OP_W_LAT: usize = 4;
const L_OP_R_LAT: usize = 5;
const L_OP_IN_BYTES: usize = 6;
const L_OP_OUT_BYTES: usize = 7;
const L_OP_WIP: usize = 8;

fn osd_perf() -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new("osd");
    let idx = [
        b.add_u64_counter("op", "Client operations"),
        b.add_u64_counter("op_w", "Client write operations"),
        b.add_u64_counter("op_r", "Client read operations"),
        b.add_time_avg("op_latency", "Latency of client operations (including queue time)"),
        b.add_time_avg("op_w_latency", "Latency of write operation (including queue time)"),
        b.add_time_avg("op_r_latency", "Latency of read operation (including queue time)"),
        b.add_u64_counter("op_in_bytes", "Client operations total write size"),
        b.add_u64_counter("op_out_bytes", "Client operations total read size"),
        b.add_u64("op_wip", "Replication operations currently being processed (primary)"),
    ];
    debug_assert_eq!(
        idx,
        [
            L_OP,
            L_OP_W,
            L_OP_R,
            L_OP_LAT,
            L_OP_W_LAT,
            L_OP_R_LAT,
            L_OP_IN_BYTES,
            L_OP_OUT_BYTES,
            L_OP_WIP
        ]
    );
    b.build()
}

/// The IP of the cluster network: `cluster_addr` when set (an IP or an address), else the
/// public one.
pub(crate) fn cluster_ip(conf: &crate::common::config::Config, public: SocketAddr) -> Result<std::net::IpAddr> {
    match conf.get_str("cluster_addr") {
        s if s.is_empty() => Ok(public.ip()),
        s => s
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| s.parse::<EntityAddr>().ok().and_then(|a| crate::msgr::addr::ip_of(&a)))
            .ok_or_else(|| Error::inval(format!("cluster_addr '{s}' is not an address"))),
    }
}

/// Where an OSD's messengers come from.
pub enum OsdNet<'a> {
    /// Its own: the public one bound here; cluster and heartbeats on this IP (the back ones on
    /// `cluster_addr`'s when set), any port.
    Bind(SocketAddr),
    /// Its identities on the process's shared set (`osd_manager_shared_messengers`).
    Shared(&'a hosted_set::HostedSet),
}

/// A client op on its way through the queue.
pub struct OpItem {
    req: MOsdOp,
    conn: ConnectionRef,
    tracked: OpRef,
    received: Instant,
}

struct Shared {
    whoami: i32,
    store: Arc<dyn ObjectStore>,
    map: RwLock<Arc<OsdMap>>,
    /// PG collections known to exist in the store.
    colls: Mutex<HashSet<CollId>>,
    perf: Arc<PerfCounters>,
    /// Replication state of the PGs this OSD has seen.
    pgs: Mutex<crate::common::hash::FxHashMap<PgKey, Arc<Mutex<pg::Pg>>>>,
    /// The cluster messenger: repops to and from the other OSDs.
    cluster: Messenger,
    next_repop_tid: std::sync::atomic::AtomicU64,
    wq: std::sync::OnceLock<OpQueue>,
    /// Ops from clients whose map is newer than ours: run again when ours catches up.
    waiting_for_map: Mutex<Vec<(PgKey, OpItem)>>,
    /// Set first thing on the way down.
    stopping: std::sync::atomic::AtomicBool,
    /// Ops of this OSD running on a shared pool's workers (`op_queue`).
    pooled_running: std::sync::atomic::AtomicUsize,
    /// Ourselves, for completions that outlive the call that made them.
    me: std::sync::OnceLock<std::sync::Weak<Shared>>,
    /// The `osd_recovery` thread's queues and the peering steps waiting for answers.
    recovery: recovery::Recovery,
    /// One scrub at a time.
    scrub_lock: Mutex<()>,
    /// Scrub commands started and not yet answered.
    scrubs_waiting: std::sync::atomic::AtomicUsize,
    /// `osd_max_pg_log_entries` (read at start).
    max_log_entries: usize,
    /// `osd_pg_log_recovery` (read at start); off, writes keep no object log.
    log_recovery: bool,
    /// For options read where they apply (`osd_recovery_sleep`).
    conf: Arc<crate::common::config::Config>,
    /// The OSD's log, for threads started on demand from other threads (`osd_recovery`).
    log: Arc<crate::common::log::Log>,
    /// The disk under the store is full (`DiskMon`): writes get ENOSPC.
    full: Arc<std::sync::atomic::AtomicBool>,
}

pub struct Osd {
    ctx: Context,
    shared: Arc<Shared>,
    msgr: Messenger,
    monc: Option<Arc<crate::mon::client::MonClient>>,
    hb: Option<Arc<heartbeat::Heartbeat>>,
    /// The addresses this OSD booted with (`start_with_mon`).
    addrs: Option<crate::types::osdmap::OsdAddrs>,
    wq: OpQueueOwner,
    tracker: OpTracker,
    asok_ids: Vec<u64>,
    /// What was faulted in at start for a mem store.
    prefault: Prefault,
    /// The public messenger's client-op dispatcher, which local ops enter too.
    fast: Arc<dispatch::FastDispatch>,
    /// Direct I/O without a network hop (`submit_local`), made on first use.
    local: std::sync::OnceLock<local::LocalClient>,
    /// Watches the disk of a `kv` store: full, slow.
    diskmon: Option<diskmon::DiskMon>,
    /// The heartbeat messengers, when hosted on a shared set (else `start_with_mon` makes
    /// them).
    hb_msgrs: Option<(Messenger, Messenger, Arc<heartbeat::HbTimer>)>,
}

impl Shared {
    /// `m` decoded as `T`, or `None` after a warning naming `what` (the connection stays).
    pub(super) fn decode<T: FrontMessage>(&self, m: &Message, what: &str) -> Option<T> {
        T::from_message(m)
            .map_err(|e| log::warn!(target: "osd", "osd.{}: bad {what}: {e}", self.whoami))
            .ok()
    }

    fn ensure_coll(&self, c: &CollId) -> Result<()> {
        if self.colls.lock().contains(c) {
            return Ok(());
        }
        if !self.store.collection_exists(c)? {
            let mut t = Transaction::new();
            t.create_collection();
            match self.store.apply_transaction(c, t) {
                Ok(()) => {}
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => return Err(e),
            }
        }
        self.colls.lock().insert(*c);
        Ok(())
    }

    fn pg(&self, key: PgKey) -> Arc<Mutex<pg::Pg>> {
        let pg = self.pgs.lock().entry(key).or_default().clone();
        {
            let mut g = pg.lock();
            if !g.loaded {
                g.loaded = true;
                let (lu, lc) = pg::load_info(&*self.store, &CollId::new(key.pool, key.seed));
                g.last_update = lu;
                g.last_complete = lc;
                g.objlog.reset(lu);
            }
        }
        pg
    }

    /// Queues `op` again (a map or the PG's acting set changed while it waited).
    fn requeue(&self, key: PgKey, op: OpItem) {
        if let Some(wq) = self.wq.get() {
            let owner = owner_of(&op.req);
            let _ = wq.enqueue(key, owner, CLIENT_PRIORITY, 1, op, false);
        }
    }

    /// A new map: PGs whose acting set changed start peering (see `recovery`), repops stop
    /// waiting for replicas that left, parked ops of PGs that can serve run again, and so do
    /// ops that waited for this epoch.
    fn on_map(&self, map: &OsdMap) {
        self.note_intervals(map);
        let pgs: Vec<(PgKey, Arc<Mutex<pg::Pg>>)> = self.pgs.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
        for (key, pg) in pgs {
            let parked = {
                let mut g = pg.lock();
                if g.peering || g.scrubbing.is_some() {
                    continue;
                }
                std::mem::take(&mut g.parked)
            };
            for op in parked {
                self.requeue(key, op);
            }
        }
        let ready: Vec<(PgKey, OpItem)> = {
            let mut w = self.waiting_for_map.lock();
            let (ready, wait) = std::mem::take(&mut *w)
                .into_iter()
                .partition(|(_, o)| o.req.epoch <= map.epoch);
            *w = wait;
            ready
        };
        for (key, op) in ready {
            self.requeue(key, op);
        }
    }
}

impl Osd {
    /// Starts `osd.<whoami>` of `ctx` on `store` (mounted here), its public messenger bound to
    /// `bind`, its op queue (`osd_op_num_shards` x `osd_op_num_threads_per_shard`) and its admin
    /// commands (`dump_ops_in_flight`, `dump_historic_ops`, `dump_blocked_ops`, `status`).
    pub fn start(ctx: &Context, whoami: i32, store: Arc<dyn ObjectStore>, bind: SocketAddr) -> Result<Osd> {
        Self::start_on(ctx, whoami, store, OsdNet::Bind(bind))
    }

    /// `start` with the messengers `net` says.
    pub fn start_on(ctx: &Context, whoami: i32, store: Arc<dyn ObjectStore>, net: OsdNet<'_>) -> Result<Osd> {
        let name = format!("osd.{whoami}");
        let mut pool = None;
        let (msgr, cluster, hb_msgrs, bind, separate) = match net {
            OsdNet::Bind(bind) => {
                let msgr = Messenger::new(ctx, &name, None)?;
                hosted_set::public_policies(&msgr);
                // Without a cluster network of its own, replication shares the public
                // messenger: a client op, its repops and their replies then meet on the same
                // workers, without a hand-off between messengers' threads for each.
                let separate = !ctx.conf().get_str("cluster_addr").is_empty();
                let cluster = if separate {
                    let c = Messenger::new(ctx, &name, None)?;
                    hosted_set::public_policies(&c);
                    c
                } else {
                    msgr.clone()
                };
                (msgr, cluster, None, Some(bind), separate)
            }
            OsdNet::Shared(set) => {
                let m = set.host(whoami)?;
                let separate = set.separate_cluster();
                pool = Some(set.op_pool().clone());
                let hb = (m.hb_front, m.hb_back, set.hb_timer().clone());
                (m.public, m.cluster, Some(hb), None, separate)
            }
        };
        let r = Self::start_with(ctx, whoami, store, (&msgr, &cluster, separate), bind, pool);
        match r {
            Ok(mut osd) => {
                osd.hb_msgrs = hb_msgrs;
                Ok(osd)
            }
            Err(e) => {
                // A hosted identity left behind would make the next start EEXIST.
                for m in [Some(&msgr), Some(&cluster)]
                    .into_iter()
                    .flatten()
                    .chain(hb_msgrs.iter().flat_map(|(f, b, _)| [f, b]))
                {
                    m.shutdown();
                }
                Err(e)
            }
        }
    }

    /// `start_on`'s body, given the messengers; `bind`: bind and start them here (they are
    /// the OSD's own).
    fn start_with(
        ctx: &Context,
        whoami: i32,
        store: Arc<dyn ObjectStore>,
        (msgr, cluster, separate_cluster): (&Messenger, &Messenger, bool),
        bind: Option<SocketAddr>,
        pool: Option<Arc<op_queue::OpPool>>,
    ) -> Result<Osd> {
        let (msgr, cluster) = (msgr.clone(), cluster.clone());
        let conf = ctx.conf();
        store.mount()?;
        let perf = osd_perf();
        ctx.perf().add(&perf);
        let name = format!("osd.{whoami}");
        let prefault = Prefault::start(ctx, &name, store.kind(), &[&msgr, &cluster])?;
        let shared = Arc::new(Shared {
            whoami,
            store,
            map: RwLock::new(Arc::new(OsdMap::new([0; 16]))),
            colls: Mutex::new(HashSet::new()),
            perf,
            pgs: Mutex::new(crate::common::hash::FxHashMap::default()),
            cluster: cluster.clone(),
            next_repop_tid: std::sync::atomic::AtomicU64::new(1),
            wq: std::sync::OnceLock::new(),
            waiting_for_map: Mutex::new(Vec::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            pooled_running: std::sync::atomic::AtomicUsize::new(0),
            me: std::sync::OnceLock::new(),
            recovery: recovery::Recovery::default(),
            scrub_lock: Mutex::new(()),
            scrubs_waiting: std::sync::atomic::AtomicUsize::new(0),
            max_log_entries: conf.get_u64("osd_max_pg_log_entries").clamp(1, 1 << 20) as usize,
            log_recovery: conf.get_bool("osd_pg_log_recovery"),
            conf: conf.clone(),
            log: ctx.log().clone(),
            full: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        });
        let _ = shared.me.set(Arc::downgrade(&shared));
        cluster.add_dispatcher_tail(Arc::new(ClusterDispatch {
            shared: Arc::downgrade(&shared),
        }));
        if let (true, Some(bind)) = (separate_cluster, bind) {
            cluster.bind(SocketAddr::new(cluster_ip(conf, bind)?, 0))?;
            cluster.start()?;
        }
        let wq = match pool {
            Some(p) => OpQueueOwner::Pooled(p),
            None => {
                let s2 = shared.clone();
                let (shards, threads, cutoff) = op_queue::shape(conf);
                OpQueueOwner::Own(Arc::new(ShardedOpWQ::new(
                    shards,
                    threads,
                    cutoff,
                    Arc::new(move |pg, op| s2.handle(pg, op)),
                )?))
            }
        };
        let _ = shared.wq.set(wq.handle(&shared));
        let tracker = OpTracker::from_conf(conf);
        let fast = Arc::new(FastDispatch {
            shared: shared.clone(),
            wq: wq.handle(&shared),
            tracker: tracker.clone(),
            priority: conf.get_u64("osd_client_op_priority").min(255) as u16,
            inline: conf.get_bool("osd_op_inline_idle") && shared.store.commits_in_memory(),
        });
        msgr.add_dispatcher_head(fast.clone());
        if let Some(bind) = bind {
            msgr.bind(bind)?;
            msgr.start()?;
        }
        let diskmon = if shared.store.kind() == "kv" && conf.get_f64("osd_diskmon_interval") > 0.0 {
            let dir = std::path::PathBuf::from(conf.get_str("osd_data"));
            Some(diskmon::DiskMon::start(ctx, whoami, &dir, shared.full.clone())?)
        } else {
            None
        };
        let mut asok_ids = tracker.register_commands(ctx)?;
        asok_ids.extend(admin::register_commands(ctx, &shared, wq.handle(&shared))?);
        Ok(Osd {
            ctx: ctx.clone(),
            shared,
            msgr,
            monc: None,
            hb: None,
            addrs: None,
            prefault,
            wq,
            tracker,
            asok_ids,
            fast,
            local: std::sync::OnceLock::new(),
            diskmon,
            hb_msgrs: None,
        })
    }

    /// `start`, then boot to the monitor at `mon` (`MOSDBoot` with our addresses) and follow
    /// its maps from then on, with heartbeats to the other OSDs (`hb_front` on the public IP,
    /// `hb_back` on `cluster_addr`'s IP when set, else the public one).
    pub fn start_with_mon(
        ctx: &Context,
        whoami: i32,
        store: Arc<dyn ObjectStore>,
        bind: SocketAddr,
        mon: EntityAddr,
    ) -> Result<Osd> {
        Self::start_with_mon_on(ctx, whoami, store, OsdNet::Bind(bind), mon)
    }

    /// `start_with_mon` with the messengers `net` says.
    pub fn start_with_mon_on(
        ctx: &Context,
        whoami: i32,
        store: Arc<dyn ObjectStore>,
        net: OsdNet<'_>,
        mon: EntityAddr,
    ) -> Result<Osd> {
        let mut osd = Osd::start_on(ctx, whoami, store, net)?;
        match osd.boot(mon) {
            Ok(()) => Ok(osd),
            Err(e) => {
                let _ = osd.kill();
                Err(e)
            }
        }
    }

    /// Boots a started OSD to the monitor at `mon` and starts its heartbeats.
    fn boot(&mut self, mon: EntityAddr) -> Result<()> {
        use crate::types::messages::{FrontMessage, MOsdBoot};
        let (ctx, whoami) = (self.ctx.clone(), self.shared.whoami);
        let osd = self;
        let monc = Arc::new(crate::mon::client::MonClient::new(&osd.msgr, mon)?);
        let shared = osd.shared.clone();
        let map_src: heartbeat::MapSource = Arc::new(move || shared.map.read().clone());
        let hb_net = match osd.hb_msgrs.take() {
            Some((f, b, timer)) => heartbeat::HbNet::Hosted((f, b), timer),
            None => {
                let public = osd.addr().addr.ok_or_else(|| Error::inval("the OSD has no address"))?;
                let back_ip = cluster_ip(ctx.conf(), public)?;
                heartbeat::HbNet::Bind(SocketAddr::new(public.ip(), 0), SocketAddr::new(back_ip, 0))
            }
        };
        let (hb, hb_front, hb_back) =
            heartbeat::Heartbeat::new(&ctx, whoami, hb_net, map_src, monc.clone(), osd.shared.full.clone())?;
        let hb = Arc::new(hb);
        let (shared, weak_hb) = (osd.shared.clone(), Arc::downgrade(&hb));
        monc.set_map_callback(move |m| {
            *shared.map.write() = Arc::new(m.clone());
            shared.on_map(m);
            if let Some(h) = weak_hb.upgrade() {
                h.notify_map();
            }
        });
        monc.subscribe_osdmap()?;
        let a = osd.addr();
        let addrs = crate::types::osdmap::OsdAddrs {
            public: a,
            cluster: osd.shared.cluster.my_addrs()[0],
            hb_front,
            hb_back,
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let boot = MOsdBoot {
            fsid: monc.fsid().unwrap_or([0; 16]),
            osd: whoami,
            addrs,
            boot_epoch: monc.epoch(),
            features: 0,
            metadata: [
                ("osd_objectstore".to_string(), osd.shared.store.kind().to_string()),
                ("hostname".to_string(), hostname),
            ]
            .into(),
        };
        monc.send_message(boot.to_message())?;
        osd.monc = Some(monc);
        osd.hb = Some(hb.clone());
        osd.addrs = Some(addrs);
        hb.start(addrs, boot)
    }

    /// Waits for the monitor's first map (at most `timeout`): -ENOENT when it does not have
    /// this OSD (Ceph needs `osd create` before a boot; the OSD then gives up), -ETIMEDOUT
    /// when no map came.
    pub fn wait_for_map(&self, timeout: std::time::Duration) -> Result<Arc<OsdMap>> {
        let Some(monc) = &self.monc else {
            return Err(Error::inval("this OSD has no monitor"));
        };
        let m = monc.wait_for_map(timeout, |m| m.epoch > 0)?;
        let me = self.shared.whoami;
        if !m.exists(me) {
            return Err(Error::noent(format!(
                "osd.{me} does not exist in the osdmap (e{}): create it first (osd create {me})",
                m.epoch
            )));
        }
        Ok(Arc::new(m))
    }

    /// Waits until the monitor's map shows this OSD up at its address.
    pub fn wait_for_up(&self, timeout: std::time::Duration) -> Result<Arc<OsdMap>> {
        let Some(monc) = &self.monc else {
            return Err(Error::inval("this OSD has no monitor"));
        };
        let (me, addrs) = (self.shared.whoami, self.addrs);
        monc.wait_for_map(timeout, |m| m.osd(me).is_some_and(|i| i.up && Some(i.addrs) == addrs))?;
        // The callback may not have run yet: the map the wait saw is the one to serve.
        *self.shared.map.write() = Arc::new(monc.osdmap());
        Ok(self.osdmap())
    }

    /// Why this OSD gave up serving on its own (marked down more than
    /// `osd_max_markdown_count` times in `osd_max_markdown_period`), once it has: whoever
    /// hosts it should stop it.
    pub fn gave_up(&self) -> Option<String> {
        self.hb
            .as_ref()
            .and_then(|h| h.gave_up())
            .or_else(|| self.diskmon.as_ref().and_then(|d| d.gave_up()))
    }

    /// The disk under the store is full (writes get ENOSPC).
    pub fn is_full(&self) -> bool {
        self.shared.full.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn whoami(&self) -> i32 {
        self.shared.whoami
    }
    /// The object store this OSD serves from.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.shared.store.clone()
    }
    /// The address clients connect to.
    pub fn addr(&self) -> EntityAddr {
        self.msgr.my_addrs()[0]
    }
    pub fn messenger(&self) -> &Messenger {
        &self.msgr
    }
    pub fn tracker(&self) -> &OpTracker {
        &self.tracker
    }
    /// A new map: pools and their PG counts decide what the OSD serves.
    pub fn set_osdmap(&self, map: OsdMap) {
        *self.shared.map.write() = Arc::new(map.clone());
        self.shared.on_map(&map);
    }
    pub fn osdmap(&self) -> Arc<OsdMap> {
        self.shared.map.read().clone()
    }

    /// Scrubs `pgid`, which this OSD must lead, comparing every OSD of its acting set (deep:
    /// data and omap digests too). Blocks until done; the PG's client ops wait meanwhile.
    pub fn scrub_pg(&self, pgid: crate::types::placement::PgId, deep: bool) -> Result<scrub::ScrubReport> {
        self.shared.scrub_pg(pgid, deep)
    }

    /// What `dump_pgs` shows: one JSON object per PG this OSD knows.
    pub fn pg_states(&self) -> Vec<serde_json::Value> {
        self.shared.pg_states(true)
    }

    /// PGs this OSD leads that are not clean yet: peering (not serving) or recovering
    /// (serving, with copies still to make).
    pub fn unclean_pgs(&self) -> Vec<crate::types::placement::PgId> {
        let mut v: Vec<_> = self
            .shared
            .pgs
            .lock()
            .iter()
            .filter(|(_, p)| {
                let g = p.lock();
                g.peering || g.recovering
            })
            .map(|(k, _)| crate::types::placement::PgId::new(k.pool, k.seed))
            .collect();
        v.sort();
        v
    }

    /// The heartbeat peers and whether each is reported failed (empty without a monitor).
    pub fn heartbeat_peers(&self) -> Vec<(i32, bool)> {
        self.hb.as_ref().map_or_else(Vec::new, |h| h.peers())
    }

    /// A clean stop: mark-me-down to the monitor (waiting up to `osd_mon_shutdown_timeout` for
    /// the map that shows it), then stops taking ops, finishes the running ones, stops the
    /// queue and unmounts the store.
    pub fn shutdown(&self) -> Result<()> {
        self.stop(true)
    }

    /// Stops as a crash would look to the cluster: no mark-me-down, heartbeats just end, so
    /// the peers must notice. The store is still unmounted (a `kv` store's committed writes
    /// are on disk either way).
    pub fn kill(&self) -> Result<()> {
        self.stop(false)
    }

    fn mark_me_down(&self) {
        use crate::types::hb_messages::MOsdMarkMeDown;
        use crate::types::messages::FrontMessage;
        let (Some(monc), Some(addrs)) = (&self.monc, self.addrs) else {
            return;
        };
        let me = self.shared.whoami;
        let map = self.osdmap();
        if !map.osd(me).is_some_and(|o| o.up && o.addrs == addrs) {
            return;
        }
        let req = MOsdMarkMeDown {
            fsid: map.fsid,
            target: me,
            target_addrs: addrs,
            epoch: map.epoch,
            request_ack: true,
            down_and_dead: true,
        };
        let timeout =
            std::time::Duration::from_secs_f64(self.ctx.conf().get_f64("osd_mon_shutdown_timeout").clamp(0.0, 300.0));
        let t0 = Instant::now();
        if monc.send_message(req.to_message()).is_err() {
            return;
        }
        // The monitor acks once the epoch is committed; that epoch reaches us as a map too,
        // which is what the rest of the cluster acts on.
        match monc.wait_for_map(timeout, |m| !m.osd(me).is_some_and(|o| o.up && o.addrs == addrs)) {
            Ok(m) => log::info!(target: "osd", "osd.{me}: marked down in e{} after {:?}", m.epoch, t0.elapsed()),
            Err(_) => log::warn!(target: "osd", "osd.{me}: no mark-me-down ack within {timeout:?}; stopping anyway"),
        }
    }

    fn stop(&self, clean: bool) -> Result<()> {
        if let Some(h) = &self.hb {
            h.set_stopping();
        }
        if clean {
            self.mark_me_down();
        }
        if let Some(h) = &self.hb {
            h.shutdown();
        }
        if let Some(m) = &self.monc {
            m.shutdown();
        }
        self.shared.stopping.store(true, std::sync::atomic::Ordering::Release);
        if let Some(d) = &self.diskmon {
            d.stop();
        }
        if let Some(l) = self.local.get() {
            l.fail_all();
        }
        self.msgr.shutdown();
        self.shared.cluster.shutdown();
        // Repops still waited for end now; ops parked in PGs are dropped (their clients resend
        // to the PG's next primary).
        let pgs: Vec<_> = self.shared.pgs.lock().values().cloned().collect();
        for pg in pgs {
            let (done, parked, waiting) = {
                let mut g = pg.lock();
                let done = g.on_new_acting(&[], self.shared.whoami);
                g.abandon_recovery();
                (
                    done,
                    std::mem::take(&mut g.parked),
                    std::mem::take(&mut g.waiting_for_commit),
                )
            };
            for (f, o) in done {
                f(o);
            }
            drop((parked, waiting));
        }
        self.shared.waiting_for_map.lock().clear();
        self.shared.recovery.wake();
        self.shared.recovery.join();
        self.wq.shutdown(&self.shared);
        for id in &self.asok_ids {
            self.ctx.admin_socket().unregister_command(*id);
        }
        self.ctx.perf().remove(&self.shared.perf);
        self.prefault.stop(&self.ctx);
        self.shared
            .store
            .umount()
            .map_err(|e| Error::new(e.errno, format!("osd.{}: umount: {e}", self.shared.whoami)))
    }
}
