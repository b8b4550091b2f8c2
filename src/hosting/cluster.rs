//! Hosting a whole cluster in this process, and a simple client for it.
//!
//! [`MiniCluster`] starts a monitor and N OSDs on loopback sockets (real messengers, real
//! threads), creates the pool `data` and waits until every OSD serves it. [`Client`] is a
//! messenger, a `MonClient` and an `Objecter`: blocking calls by pool name (`put`, `get`,
//! `stat`, ...), several ops as one atomic request (`operate`) and an async form
//! (`submit_async`). This is what the C (`osdkit_cluster_*`, `osdkit_client_*`) and Python
//! (`osdkit.Cluster`, `osdkit.Client`) faces wrap. Errors carry Ceph's errnos (`ENOENT` for a
//! missing object or pool, `EEXIST`, `ECANCELED`, `ETIMEDOUT`, ...).

use crate::client::objecter::Objecter;
use crate::common::error::{Error, Result};
use crate::mon::client::MonClient;
use crate::mon::Monitor;
use crate::msgr::addr::EntityAddr;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::os::{kv::KvStore, mem::MemStore, ObjectStore};
use crate::osd::Osd;
use crate::types::osd_op::{decode_omap_vals, MOsdOpReply, OsdOp};
use crate::Context;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long start-up steps (boot, pool creation, first map) may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-op timeout of a [`Client`].
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// The pool every mini cluster has.
pub const DEFAULT_POOL: &str = "data";
const DEFAULT_PG_NUM: u32 = 32;

/// A started context for an in-process daemon: no log file, an admin socket only under
/// `run_dir`.
fn daemon_ctx(name: &str, run_dir: Option<&Path>, opts: &[(String, String)]) -> Result<Context> {
    let c = Context::new(name, None)?;
    let asok = run_dir
        .map(|d| d.join(format!("{name}.asok")).to_string_lossy().into_owned())
        .unwrap_or_default();
    c.set_option("admin_socket", &asok)?;
    c.set_option("log_file", "")?;
    for (k, v) in opts {
        c.set_option(k, v)?;
    }
    c.start()?;
    Ok(c)
}

fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            return Err(Error::new(libc::ETIMEDOUT, format!("timed out waiting for {what}")));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The object store kinds a mini cluster's OSDs can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// In memory; kept across `stop_osd` / `start_osd` within this process.
    Mem,
    /// Durable, under `<dir>/osd.<id>`; a restarted OSD mounts the same directory.
    Kv,
}

impl std::str::FromStr for StoreKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mem" => Ok(StoreKind::Mem),
            "kv" => Ok(StoreKind::Kv),
            other => Err(Error::inval(format!("unknown store '{other}' (mem or kv)"))),
        }
    }
}

struct RunningOsd {
    ctx: Context,
    osd: Osd,
}

/// A monitor and N OSDs in this process. All methods may be called from any thread.
pub struct MiniCluster {
    dir: PathBuf,
    run_dir: Option<PathBuf>,
    kind: StoreKind,
    mon_ctx: Context,
    mon: Monitor,
    /// Indexed by OSD id; `None` while stopped.
    osds: Mutex<Vec<Option<RunningOsd>>>,
    /// Memory stores, kept so a restarted OSD finds its objects again.
    mem_stores: Vec<Arc<MemStore>>,
    pool: i64,
    stopped: std::sync::atomic::AtomicBool,
    /// Options given to every daemon's context (after the cluster's own defaults).
    opts: Vec<(String, String)>,
}

/// Options every mini cluster daemon gets, before the caller's: small op queues, and reporters
/// counted per OSD (all OSDs share this host), as Ceph's vstart sets.
const CLUSTER_DEFAULTS: &[(&str, &str)] = &[
    ("osd_op_num_shards", "2"),
    ("osd_op_num_threads_per_shard", "1"),
    ("mon_osd_reporter_subtree_level", "osd"),
];

impl MiniCluster {
    /// A monitor (data under `<dir>/mon`) and `osds` OSDs with `store` ("mem" or "kv"), then
    /// the pool `data` (32 PGs, `pool_size` replicas), served by every OSD before this returns.
    /// No admin sockets.
    pub fn start(dir: &Path, osds: usize, store: &str, pool_size: u32) -> Result<MiniCluster> {
        Self::start_with(dir, osds, store, pool_size, None)
    }

    /// As [`MiniCluster::start`]; with `run_dir`, each daemon has its admin socket there
    /// (`mon.a.asok`, `osd.N.asok`).
    pub fn start_with(
        dir: &Path,
        osds: usize,
        store: &str,
        pool_size: u32,
        run_dir: Option<&Path>,
    ) -> Result<MiniCluster> {
        Self::start_opts(dir, osds, store, pool_size, run_dir, &[])
    }

    /// As [`MiniCluster::start_with`], with `opts` (name, value) set on every daemon, e.g.
    /// `osd_heartbeat_grace` for a test that kills OSDs.
    pub fn start_opts(
        dir: &Path,
        osds: usize,
        store: &str,
        pool_size: u32,
        run_dir: Option<&Path>,
        opts: &[(&str, &str)],
    ) -> Result<MiniCluster> {
        let kind: StoreKind = store.parse()?;
        if osds == 0 || osds > 64 {
            return Err(Error::inval(format!("osds must be in 1..=64, not {osds}")));
        }
        if pool_size == 0 || pool_size as usize > osds {
            return Err(Error::inval(format!(
                "pool size must be in 1..={osds}, not {pool_size}"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(e, format!("creating {}", dir.display())))?;
        let opts: Vec<(String, String)> = CLUSTER_DEFAULTS
            .iter()
            .chain(opts)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mon_ctx = daemon_ctx("mon.a", run_dir, &opts)?;
        let mon = Monitor::start(&mon_ctx, &dir.join("mon"), loopback())?;
        let mut c = MiniCluster {
            dir: dir.to_path_buf(),
            run_dir: run_dir.map(Path::to_path_buf),
            kind,
            mon_ctx,
            mon,
            osds: Mutex::new((0..osds).map(|_| None).collect()),
            mem_stores: (0..osds).map(|_| Arc::new(MemStore::new())).collect(),
            pool: -1,
            stopped: std::sync::atomic::AtomicBool::new(false),
            opts,
        };
        // On any error below, dropping `c` stops what was started.
        for id in 0..osds {
            c.start_osd(id as i32)?;
        }
        let cmd = format!(
            r#"{{"prefix": "osd pool create", "pool": "{DEFAULT_POOL}", "pg_num": {DEFAULT_PG_NUM}, "size": {pool_size}}}"#
        );
        let (r, status, _) = c.mon.command(&cmd);
        if r < 0 {
            return Err(Error::new(-r, format!("creating pool {DEFAULT_POOL}: {status}")));
        }
        let pool = c
            .mon
            .osdmap()
            .pool_by_name(DEFAULT_POOL)
            .map(|p| p.id)
            .ok_or_else(|| Error::noent(format!("pool {DEFAULT_POOL} missing after creation")))?;
        c.pool = pool;
        c.wait_pool_served()?;
        Ok(c)
    }

    /// Waits until every running OSD's map has the pool.
    fn wait_pool_served(&self) -> Result<()> {
        let pool = self.pool;
        wait_until("the OSDs to see the pool", STARTUP_TIMEOUT, || {
            self.osds
                .lock()
                .iter()
                .flatten()
                .all(|o| o.osd.osdmap().pool(pool).is_some())
        })
    }

    /// The monitor's address, e.g. `v2:127.0.0.1:40123/0`: what [`Client::connect`] takes.
    pub fn mon_addr(&self) -> String {
        self.mon.addr().to_string()
    }

    pub fn monitor(&self) -> &Monitor {
        &self.mon
    }

    /// The data directory given to `start`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The id of pool `data`.
    pub fn pool_id(&self) -> i64 {
        self.pool
    }

    /// Number of OSD slots (running or stopped).
    pub fn num_osds(&self) -> usize {
        self.osds.lock().len()
    }

    /// Each OSD's public address by id (`None` while stopped).
    pub fn osd_addrs(&self) -> Vec<Option<String>> {
        self.osds
            .lock()
            .iter()
            .map(|o| o.as_ref().map(|o| o.osd.addr().to_string()))
            .collect()
    }

    fn slot(&self, id: i32) -> Result<usize> {
        let n = self.osds.lock().len();
        usize::try_from(id)
            .ok()
            .filter(|i| *i < n)
            .ok_or_else(|| Error::inval(format!("no osd.{id} (this cluster has {n})")))
    }

    /// Stops `osd.<id>` cleanly: it sends mark-me-down and the monitor marks it down at once;
    /// its store is unmounted. `-EINVAL` for an unknown id, `-ENOENT` if it is already stopped.
    pub fn stop_osd(&self, id: i32) -> Result<()> {
        self.take_osd(id, true)
    }

    /// Stops `osd.<id>` as a crash would: no mark-me-down, its sockets just close, and the
    /// monitor learns of it only from the other OSDs' failure reports (after
    /// `osd_heartbeat_grace`). Errors as `stop_osd`.
    pub fn kill_osd(&self, id: i32) -> Result<()> {
        self.take_osd(id, false)
    }

    fn take_osd(&self, id: i32, clean: bool) -> Result<()> {
        let i = self.slot(id)?;
        let o = self.osds.lock()[i]
            .take()
            .ok_or_else(|| Error::noent(format!("osd.{id} is not running")))?;
        let r = if clean { o.osd.shutdown() } else { o.osd.kill() };
        o.ctx.shutdown();
        r
    }

    /// Waits until the cluster is clean: every running OSD has the monitor's map, every PG has
    /// `size` OSDs in its acting set and no PG is peering or recovering. `-ETIMEDOUT` after `timeout`.
    pub fn wait_for_clean(&self, timeout: Duration) -> Result<()> {
        // Twice in a row, a moment apart: an OSD may hold a new map a moment before it has
        // marked the PGs that map makes it peer.
        let clean = || {
            let map = self.mon.osdmap();
            let osds = self.osds.lock();
            let running: Vec<&RunningOsd> = osds.iter().flatten().collect();
            let current = running.iter().all(|o| o.osd.osdmap().epoch == map.epoch);
            let sized = map.pools.values().all(|p| {
                (0..p.pg_num)
                    .all(|s| map.pg_to_up_osds(crate::types::placement::PgId::new(p.id, s)).len() == p.size as usize)
            });
            current && sized && running.iter().all(|o| o.osd.unclean_pgs().is_empty())
        };
        wait_until("the cluster to be clean", timeout, || {
            clean() && {
                std::thread::sleep(Duration::from_millis(20));
                clean()
            }
        })
    }

    /// `f` of the running `osd.<id>`; `-ENOENT` if it is stopped.
    fn with_osd<T>(&self, id: i32, f: impl FnOnce(&Osd) -> T) -> Result<T> {
        let i = self.slot(id)?;
        let osds = self.osds.lock();
        let o = osds[i]
            .as_ref()
            .ok_or_else(|| Error::noent(format!("osd.{id} is not running")))?;
        Ok(f(&o.osd))
    }

    /// Scrubs `pg` (every PG of every pool: `None`) on its primary, comparing the copies of its
    /// acting set; `deep` compares data and omap digests too. A PG whose primary is moving or
    /// peering is tried again for up to `timeout`. Holds the cluster's OSD list meanwhile, so
    /// OSDs cannot be started or stopped during a scrub.
    pub fn scrub(
        &self,
        pg: Option<crate::types::placement::PgId>,
        deep: bool,
        timeout: Duration,
    ) -> Result<Vec<crate::osd::scrub::ScrubReport>> {
        let map = self.mon.osdmap();
        let pgs: Vec<crate::types::placement::PgId> = match pg {
            Some(p) => {
                if map.pool(p.pool).is_none_or(|pool| p.seed >= pool.pg_num) {
                    return Err(Error::noent(format!("pg {p} does not exist")));
                }
                vec![p]
            }
            None => map
                .pools
                .values()
                .flat_map(|p| (0..p.pg_num).map(move |s| crate::types::placement::PgId::new(p.id, s)))
                .collect(),
        };
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        for pgid in pgs {
            loop {
                let primary = self.mon.osdmap().pg_primary(pgid);
                let r = match primary {
                    Some(p) => self.with_osd(p, |o| o.scrub_pg(pgid, deep)).and_then(|r| r),
                    None => Err(Error::new(libc::EAGAIN, format!("pg {pgid} has no OSD up"))),
                };
                match r {
                    Ok(rep) => {
                        out.push(rep);
                        break;
                    }
                    Err(e) if e.errno == libc::EAGAIN && std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) if e.errno == libc::EAGAIN => {
                        return Err(Error::new(libc::ETIMEDOUT, format!("scrub of pg {pgid}: {}", e.msg)))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// The object store of the running `osd.<id>` (to look at replicas directly).
    pub fn osd_store(&self, id: i32) -> Result<Arc<dyn ObjectStore>> {
        self.with_osd(id, Osd::store)
    }

    /// The running `osd.<id>`'s heartbeat peers and whether each is reported failed.
    pub fn heartbeat_peers(&self, id: i32) -> Result<Vec<(i32, bool)>> {
        self.with_osd(id, Osd::heartbeat_peers)
    }

    /// (Re)starts `osd.<id>` on its store (the same directory for `kv`, the same memory store
    /// for `mem`) and waits until the monitor shows it up at its new address. `-EEXIST` if it
    /// is running.
    pub fn start_osd(&self, id: i32) -> Result<()> {
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::new(libc::ESHUTDOWN, "the cluster is shut down"));
        }
        let i = self.slot(id)?;
        if self.osds.lock()[i].is_some() {
            return Err(Error::exists(format!("osd.{id} is running")));
        }
        let store: Arc<dyn ObjectStore> = match self.kind {
            StoreKind::Mem => self.mem_stores[i].clone(),
            StoreKind::Kv => Arc::new(KvStore::new(self.dir.join(format!("osd.{id}")))),
        };
        let ctx = daemon_ctx(&format!("osd.{id}"), self.run_dir.as_deref(), &self.opts)?;
        let osd = match Osd::start_with_mon(&ctx, id, store, loopback(), self.mon.addr()) {
            Ok(o) => o,
            Err(e) => {
                ctx.shutdown();
                return Err(e);
            }
        };
        if let Err(e) = osd.wait_for_up(STARTUP_TIMEOUT) {
            let _ = osd.shutdown();
            ctx.shutdown();
            return Err(e);
        }
        {
            let mut osds = self.osds.lock();
            if osds[i].is_some() {
                drop(osds);
                let _ = osd.shutdown();
                ctx.shutdown();
                return Err(Error::exists(format!("osd.{id} was started concurrently")));
            }
            osds[i] = Some(RunningOsd { ctx, osd });
        }
        if self.pool >= 0 {
            self.wait_pool_served()?;
        }
        Ok(())
    }

    /// Stops the OSDs, then the monitor. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let running: Vec<RunningOsd> = self.osds.lock().iter_mut().filter_map(Option::take).collect();
        for o in running {
            if let Err(e) = o.osd.shutdown() {
                log::warn!(target: "minicluster", "osd.{}: {e}", o.osd.whoami());
            }
            o.ctx.shutdown();
        }
        self.mon.shutdown();
        self.mon_ctx.shutdown();
    }
}

impl Drop for MiniCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn loopback() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// What `stat` returns: the size and the modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectStat {
    pub size: u64,
    pub mtime: SystemTime,
}

/// A completion for [`Client::submit_async`].
pub type Completion = Box<dyn FnOnce(Result<MOsdOpReply>) + Send>;

/// A cluster client: a messenger (lossy client policy), a `MonClient` following the monitor's
/// maps and an `Objecter` sending ops to the primaries. Blocking calls may be made from any
/// thread, concurrently.
pub struct Client {
    ctx: Context,
    msgr: Messenger,
    monc: MonClient,
    objecter: Objecter,
    stopped: std::sync::atomic::AtomicBool,
}

fn check_reply(oid: &str, r: MOsdOpReply) -> Result<MOsdOpReply> {
    if r.result < 0 {
        return Err(Error::new(
            -r.result,
            format!("{oid}: {}", crate::common::error::strerror(-r.result)),
        ));
    }
    Ok(r)
}

impl Client {
    /// Connects as `name` (e.g. `client.admin`) to the monitor at `mon_addr` and waits for its
    /// first map.
    pub fn connect(mon_addr: &str, name: &str) -> Result<Client> {
        let mon: EntityAddr = mon_addr.parse()?;
        let entity: crate::EntityName = name.parse()?;
        if entity.ty != crate::common::entity::EntityType::Client {
            return Err(Error::inval(format!("'{name}' is not a client name (client.<id>)")));
        }
        let ctx = daemon_ctx(name, None, &[])?;
        let msgr = Messenger::new(&ctx, name, None)?;
        msgr.set_default_policy(Policy::lossy_client());
        let objecter = Objecter::new(&msgr, name, OP_TIMEOUT)?;
        let monc = MonClient::new(&msgr, mon)?;
        let c = Client {
            ctx,
            msgr,
            monc,
            objecter,
            stopped: std::sync::atomic::AtomicBool::new(false),
        };
        c.msgr.start()?;
        let o2 = c.objecter.clone();
        c.monc.set_map_callback(move |m| o2.set_osdmap(m.clone()));
        c.monc.subscribe_osdmap()?;
        let map = c.monc.wait_for_map(STARTUP_TIMEOUT, |m| m.epoch > 0)?;
        c.objecter.set_osdmap(map);
        Ok(c)
    }

    pub fn objecter(&self) -> &Objecter {
        &self.objecter
    }

    pub fn monc(&self) -> &MonClient {
        &self.monc
    }

    /// The id of pool `pool`; `-ENOENT` if no map seen so far has it.
    pub fn pool_id(&self, pool: &str) -> Result<i64> {
        if let Some(p) = self.objecter.osdmap().pool_by_name(pool) {
            return Ok(p.id);
        }
        // The callback may not have delivered the newest map yet.
        let map = self.monc.osdmap();
        let id = map.pool_by_name(pool).map(|p| p.id);
        if id.is_some() {
            self.objecter.set_osdmap(map);
        }
        id.ok_or_else(|| Error::noent(format!("no pool '{pool}'")))
    }

    /// Several ops on one object as one request: they apply atomically or not at all. The
    /// reply (each op's `rval` and `outdata`), or the first failed op's errno as the error.
    pub fn operate(&self, pool: &str, oid: &str, ops: Vec<OsdOp>) -> Result<MOsdOpReply> {
        if ops.is_empty() {
            return Err(Error::inval("no ops"));
        }
        let id = self.pool_id(pool)?;
        self.objecter.op(id, oid, ops)
    }

    /// As `operate`, without waiting: `done` gets the reply or the error (a failed op's errno,
    /// `ENOENT` for a missing pool, `ETIMEDOUT`, `ESHUTDOWN`). It runs on the messenger worker
    /// thread that received the reply (`msgr-worker-N`), or on the objecter's timer thread, or,
    /// for an error found before sending, on the calling thread before this returns; it must
    /// not block.
    pub fn submit_async(&self, pool: &str, oid: &str, ops: Vec<OsdOp>, done: Completion) {
        if ops.is_empty() {
            return done(Err(Error::inval("no ops")));
        }
        let id = match self.pool_id(pool) {
            Ok(id) => id,
            Err(e) => return done(Err(e)),
        };
        let name = oid.to_string();
        self.objecter.submit(
            id,
            oid,
            "",
            ops,
            Box::new(move |r| done(r.and_then(|r| check_reply(&name, r)))),
        );
    }

    /// Writes the whole object (creating it, replacing its data).
    pub fn put(&self, pool: &str, oid: &str, data: &[u8]) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::writefull(Bytes::copy_from_slice(data))])
            .map(drop)
    }

    /// The whole object's data.
    pub fn get(&self, pool: &str, oid: &str) -> Result<Bytes> {
        let mut r = self.operate(pool, oid, vec![OsdOp::read(0, 0)])?;
        Ok(std::mem::take(&mut r.ops[0].outdata))
    }

    /// Size and modification time.
    pub fn stat(&self, pool: &str, oid: &str) -> Result<ObjectStat> {
        let r = self.operate(pool, oid, vec![OsdOp::stat()])?;
        parse_stat(&r.ops[0].outdata)
    }

    pub fn remove(&self, pool: &str, oid: &str) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::delete()]).map(drop)
    }

    /// Every object name in `pool`, sorted.
    pub fn list(&self, pool: &str) -> Result<Vec<String>> {
        let id = self.pool_id(pool)?;
        self.objecter.list(id)
    }

    pub fn setxattr(&self, pool: &str, oid: &str, name: &str, value: &[u8]) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::setxattr(name, Bytes::copy_from_slice(value))])
            .map(drop)
    }

    /// `-ENODATA` if the object has no such xattr.
    pub fn getxattr(&self, pool: &str, oid: &str, name: &str) -> Result<Bytes> {
        let mut r = self.operate(pool, oid, vec![OsdOp::getxattr(name)])?;
        Ok(std::mem::take(&mut r.ops[0].outdata))
    }

    /// Sets omap keys (creating the object if needed).
    pub fn omap_set(&self, pool: &str, oid: &str, vals: &BTreeMap<String, Bytes>) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::omap_set_vals(vals)]).map(drop)
    }

    /// The values of `keys` that exist; with `keys` `None`, every key and value.
    pub fn omap_get(&self, pool: &str, oid: &str, keys: Option<&[String]>) -> Result<BTreeMap<String, Bytes>> {
        const PAGE: u64 = 1024;
        let bad = |e: crate::types::encoding::DecodeError| Error::new(libc::EIO, format!("bad omap reply: {e:?}"));
        if let Some(keys) = keys {
            let r = self.operate(pool, oid, vec![OsdOp::omap_get_vals_by_keys(keys.to_vec())])?;
            return decode_omap_vals(&r.ops[0].outdata).map_err(bad);
        }
        let mut all = BTreeMap::new();
        let mut after = String::new();
        loop {
            let r = self.operate(pool, oid, vec![OsdOp::omap_get_vals(after.clone(), PAGE)])?;
            let page = decode_omap_vals(&r.ops[0].outdata).map_err(bad)?;
            let n = page.len() as u64;
            if let Some(k) = page.keys().next_back() {
                after = k.clone();
            }
            all.extend(page);
            if n < PAGE {
                return Ok(all);
            }
        }
    }

    /// Fails ops in flight with `-ESHUTDOWN` and stops the client's threads. Idempotent; also
    /// done on drop.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        self.objecter.shutdown();
        self.monc.shutdown();
        self.msgr.shutdown();
        self.ctx.shutdown();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A `STAT` op's output: size (u64), then mtime seconds (u32) and nanoseconds (u32), little
/// endian.
pub fn parse_stat(b: &[u8]) -> Result<ObjectStat> {
    if b.len() < 16 {
        return Err(Error::new(libc::EIO, format!("stat reply of {} bytes", b.len())));
    }
    let size = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
    let secs = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    let nsec = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
    Ok(ObjectStat {
        size,
        mtime: UNIX_EPOCH + Duration::new(u64::from(secs), nsec.min(999_999_999)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_cluster_round_trips_and_errnos() {
        let dir = tempfile::tempdir().unwrap();
        let c = MiniCluster::start(dir.path(), 2, "mem", 1).unwrap();
        let cl = Client::connect(&c.mon_addr(), "client.admin").unwrap();
        cl.put("data", "a", b"hello").unwrap();
        assert_eq!(&cl.get("data", "a").unwrap()[..], b"hello");
        assert_eq!(cl.stat("data", "a").unwrap().size, 5);
        assert_eq!(cl.list("data").unwrap(), vec!["a".to_string()]);
        cl.setxattr("data", "a", "k", b"v").unwrap();
        assert_eq!(&cl.getxattr("data", "a", "k").unwrap()[..], b"v");
        let vals: BTreeMap<String, Bytes> = [("x".to_string(), Bytes::from_static(b"1"))].into();
        cl.omap_set("data", "a", &vals).unwrap();
        assert_eq!(cl.omap_get("data", "a", None).unwrap(), vals);
        // A failing op in a multi-op request leaves nothing behind.
        let e = cl
            .operate(
                "data",
                "b",
                vec![OsdOp::writefull(Bytes::from_static(b"x")), OsdOp::create(true)],
            )
            .unwrap_err();
        assert_eq!(e.errno, libc::EEXIST);
        assert_eq!(cl.stat("data", "b").unwrap_err().errno, libc::ENOENT);
        cl.remove("data", "a").unwrap();
        assert_eq!(cl.get("data", "a").unwrap_err().errno, libc::ENOENT);
        assert_eq!(cl.get("nopool", "a").unwrap_err().errno, libc::ENOENT);
        let (tx, rx) = std::sync::mpsc::channel();
        cl.submit_async(
            "data",
            "c",
            vec![OsdOp::writefull(Bytes::from_static(b"async"))],
            Box::new(move |r| tx.send(r.map(|r| r.result)).unwrap()),
        );
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap(), 0);
        // An OSD restarted on its memory store still has its objects.
        for id in 0..2 {
            c.stop_osd(id).unwrap();
            c.start_osd(id).unwrap();
        }
        assert_eq!(&cl.get("data", "c").unwrap()[..], b"async");
        assert_eq!(c.stop_osd(5).unwrap_err().errno, libc::EINVAL);
        cl.shutdown();
        c.shutdown();
    }
}
