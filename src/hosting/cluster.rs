//! Hosting a whole cluster in this process: [`MiniCluster`] starts a monitor and N OSDs on
//! loopback sockets (real messengers, real threads), creates the pool `data` and waits until
//! every OSD serves it; OSDs can be stopped and started again. Clients connect to it with
//! [`crate::client::Rados::connect`]. The C (`osdkit_cluster_*`) and Python (`osdkit.Cluster`)
//! faces wrap it.

use crate::common::error::{Error, Result};
use crate::mon::Monitor;
use crate::os::{kv::KvStore, mem::MemStore, ObjectStore};
use crate::osd::Osd;
use crate::Context;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long start-up steps (boot, pool creation, first map) may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
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

    /// The monitor's address, e.g. `v2:127.0.0.1:40123/0`: what [`crate::client::Rados::connect`] takes.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::osd_op::OsdOp;
    use bytes::Bytes;
    use std::collections::BTreeMap;

    #[test]
    fn mem_cluster_round_trips_and_errnos() {
        let dir = tempfile::tempdir().unwrap();
        let c = MiniCluster::start(dir.path(), 2, "mem", 1).unwrap();
        let cl = crate::client::Rados::connect(&c.mon_addr(), "client.admin").unwrap();
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
        // The librados-shaped pool handle.
        assert_eq!(cl.ioctx("nopool").err().map(|e| e.errno), Some(libc::ENOENT));
        let io = cl.ioctx("data").unwrap();
        io.write_full("w", b"hello").unwrap();
        io.append("w", b" world").unwrap();
        io.write("w", b"J", 0).unwrap();
        assert_eq!(&io.read("w", 5, 0).unwrap()[..], b"Jello");
        assert_eq!(&io.read("w", 0, 6).unwrap()[..], b"world");
        io.trunc("w", 4).unwrap();
        assert_eq!(io.stat("w").unwrap().size, 4);
        io.setxattr("w", "a", b"1").unwrap();
        io.setxattr("w", "b", b"2").unwrap();
        let x = io.getxattrs("w").unwrap();
        assert_eq!((x.len(), &x["a"][..], &x["b"][..]), (2, &b"1"[..], &b"2"[..]));
        io.rmxattr("w", "a").unwrap();
        assert_eq!(io.getxattr("w", "a").unwrap_err().errno, libc::ENODATA);
        let kv: BTreeMap<String, Bytes> = [
            ("k1".to_string(), Bytes::from_static(b"v1")),
            ("k2".to_string(), Bytes::from_static(b"v2")),
        ]
        .into();
        io.omap_set("w", &kv).unwrap();
        assert_eq!(io.omap_get_vals("w", "", 10).unwrap(), kv);
        assert_eq!(io.omap_get_vals("w", "k1", 10).unwrap().len(), 1);
        io.omap_rm_keys("w", &["k1".to_string()]).unwrap();
        let left = io
            .omap_get_vals_by_keys("w", &["k1".to_string(), "k2".to_string()])
            .unwrap();
        assert_eq!(left.keys().collect::<Vec<_>>(), ["k2"]);
        assert!(io.list_objects().unwrap().contains(&"w".to_string()));
        let (tx2, rx2) = std::sync::mpsc::channel();
        io.aio_operate(
            "w",
            vec![OsdOp::stat()],
            Box::new(move |r| tx2.send(r.map(|r| r.result)).unwrap()),
        );
        assert_eq!(rx2.recv_timeout(Duration::from_secs(10)).unwrap().unwrap(), 0);
        io.remove("w").unwrap();
        assert_eq!(io.stat("w").unwrap_err().errno, libc::ENOENT);
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
