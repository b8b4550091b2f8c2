//! Hosting a whole cluster in this process: [`MiniCluster`] is a monitor and N OSDs, each a
//! [`HostedDaemon`] (the same instances a C or Python program hosts one by one) on loopback
//! sockets, with the pool `data` created and served by every OSD before `start` returns; OSDs
//! can be stopped, killed and started again (a `mem` OSD on the same memory store). Clients
//! connect with [`crate::client::Rados::connect`]. The C (`osdkit_cluster_*`) and Python
//! (`osdkit.Cluster`) faces wrap it.

use super::instance::{HostedDaemon, InstanceArgs, InstanceCallbacks, InstanceState};
use crate::common::error::{Error, Result};
use crate::os::{kv::KvStore, mem::MemStore, ObjectStore};
use crate::osd::Osd;
use crate::types::osdmap::OsdMap;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long start-up steps (boot, pool creation, first map) may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The pool every mini cluster has.
pub const DEFAULT_POOL: &str = "data";
const DEFAULT_PG_NUM: u32 = 32;

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

/// A monitor and N OSDs in this process. All methods may be called from any thread.
pub struct MiniCluster {
    dir: PathBuf,
    kind: StoreKind,
    mon: HostedDaemon,
    /// Indexed by OSD id; each started, stopped or failed.
    osds: Vec<HostedDaemon>,
    /// Serialises starts and stops of OSDs (and scrubs, which need their OSDs to stay).
    ops: Mutex<()>,
    /// Memory stores, kept so a restarted OSD finds its objects again.
    mem_stores: Vec<Arc<MemStore>>,
    pool: i64,
    stopped: AtomicBool,
}

/// Options every mini cluster daemon gets, before the caller's: small op queues, and reporters
/// counted per OSD (all OSDs share this host), as Ceph's vstart sets.
const CLUSTER_DEFAULTS: &[(&str, &str)] = &[
    ("osd_op_num_shards", "2"),
    ("osd_op_num_threads_per_shard", "1"),
    ("mon_osd_reporter_subtree_level", "osd"),
];

/// Each mini cluster its own cluster name: the names of its daemons are taken once per cluster
/// in a process (`HostedDaemon`), and a process may run several mini clusters.
static NEXT_CLUSTER: AtomicU64 = AtomicU64::new(1);

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
        let cluster = format!("mini{}", NEXT_CLUSTER.fetch_add(1, Ordering::Relaxed));
        // No conf file: the defaults, no log file, no pid file, an admin socket only under
        // `run_dir`, then the caller's options.
        let asok = run_dir
            .map(|d| d.join("$name.asok").to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut common: Vec<(String, String)> = [("admin_socket", asok.as_str()), ("log_file", ""), ("pid_file", "")]
            .iter()
            .chain(CLUSTER_DEFAULTS)
            .chain(opts)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = |common: &[(String, String)], id: &str, extra: &[(String, String)]| InstanceArgs {
            id: id.into(),
            cluster: cluster.clone(),
            options: common.iter().chain(extra).cloned().collect(),
            ..Default::default()
        };
        let mon_dir = dir.join("mon").to_string_lossy().into_owned();
        let mon = HostedDaemon::mon(
            args(
                &common,
                "a",
                &[
                    ("mon_host".into(), "v2:127.0.0.1:0".into()),
                    ("mon_data".into(), mon_dir),
                ],
            ),
            InstanceCallbacks::default(),
        )?;
        mon.start()?;
        mon.wait_active(STARTUP_TIMEOUT)?;
        let mon_addr = mon
            .with_mon(|m| m.addr())
            .ok_or_else(|| Error::new(libc::ENODEV, "the monitor stopped"))?;
        common.push(("mon_host".into(), mon_addr.to_string()));
        let daemons = (0..osds)
            .map(|id| {
                let data = dir.join(format!("osd.{id}")).to_string_lossy().into_owned();
                HostedDaemon::osd(
                    args(
                        &common,
                        &id.to_string(),
                        &[("osd_objectstore".into(), store.into()), ("osd_data".into(), data)],
                    ),
                    InstanceCallbacks::default(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut c = MiniCluster {
            dir: dir.to_path_buf(),
            kind,
            mon,
            osds: daemons,
            ops: Mutex::new(()),
            mem_stores: (0..osds).map(|_| Arc::new(MemStore::new())).collect(),
            pool: -1,
            stopped: AtomicBool::new(false),
        };
        // On any error below, dropping `c` stops what was started.
        for id in 0..osds {
            let (r, status, _) = c.mon_command(&format!(r#"{{"prefix": "osd create", "id": {id}}}"#));
            if r < 0 {
                return Err(Error::new(-r, format!("osd create {id}: {status}")));
            }
        }
        for id in 0..osds {
            c.start_osd(id as i32)?;
        }
        let cmd = format!(
            r#"{{"prefix": "osd pool create", "pool": "{DEFAULT_POOL}", "pg_num": {DEFAULT_PG_NUM}, "size": {pool_size}}}"#
        );
        let (r, status, _) = c.mon_command(&cmd);
        if r < 0 {
            return Err(Error::new(-r, format!("creating pool {DEFAULT_POOL}: {status}")));
        }
        let pool = c
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
                .iter()
                .all(|d| d.with_osd(|o| o.osdmap().pool(pool).is_some()).unwrap_or(true))
        })
    }

    /// The monitor's address, e.g. `v2:127.0.0.1:40123/0`: what [`crate::client::Rados::connect`] takes.
    pub fn mon_addr(&self) -> String {
        self.mon.with_mon(|m| m.addr().to_string()).unwrap_or_default()
    }

    /// The monitor's current map (empty once the cluster is shut down).
    pub fn osdmap(&self) -> OsdMap {
        self.mon
            .with_mon(|m| m.osdmap())
            .unwrap_or_else(|| OsdMap::new([0; 16]))
    }

    /// A command to the monitor, as `ceph` sends one: (result, status text, output).
    pub fn mon_command(&self, cmd: &str) -> (i32, String, bytes::Bytes) {
        self.mon
            .with_mon(|m| m.command(cmd))
            .unwrap_or_else(|| (-libc::ENODEV, "the monitor is not running".into(), bytes::Bytes::new()))
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
        self.osds.len()
    }

    /// Each OSD's public address by id (`None` while stopped).
    pub fn osd_addrs(&self) -> Vec<Option<String>> {
        self.osds.iter().map(|d| d.with_osd(|o| o.addr().to_string())).collect()
    }

    fn slot(&self, id: i32) -> Result<&HostedDaemon> {
        let n = self.osds.len();
        usize::try_from(id)
            .ok()
            .and_then(|i| self.osds.get(i))
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
        let _one = self.ops.lock();
        let d = self.slot(id)?;
        if d.with_osd(|_| ()).is_none() {
            return Err(Error::noent(format!("osd.{id} is not running")));
        }
        if clean {
            d.shutdown();
        } else {
            d.kill();
        }
        match d.join(Some(STOP_TIMEOUT))? {
            InstanceState::Failed(why) => Err(Error::new(libc::EIO, format!("osd.{id}: {why}"))),
            _ => Ok(()),
        }
    }

    /// Waits until the cluster is clean: every running OSD has the monitor's map, every PG has
    /// `size` OSDs in its acting set and no PG is peering or recovering. `-ETIMEDOUT` after `timeout`.
    pub fn wait_for_clean(&self, timeout: Duration) -> Result<()> {
        // Twice in a row, a moment apart: an OSD may hold a new map a moment before it has
        // marked the PGs that map makes it peer.
        let clean = || {
            let map = self.osdmap();
            let running: Vec<(u32, bool)> = self
                .osds
                .iter()
                .filter_map(|d| d.with_osd(|o| (o.osdmap().epoch, o.unclean_pgs().is_empty())))
                .collect();
            let current = running.iter().all(|(e, _)| *e == map.epoch);
            let sized = map.pools.values().all(|p| {
                (0..p.pg_num)
                    .all(|s| map.pg_to_up_osds(crate::types::placement::PgId::new(p.id, s)).len() == p.size as usize)
            });
            current && sized && running.iter().all(|(_, c)| *c)
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
        self.slot(id)?
            .with_osd(f)
            .ok_or_else(|| Error::noent(format!("osd.{id} is not running")))
    }

    /// Scrubs `pg` (every PG of every pool: `None`) on its primary, comparing the copies of its
    /// acting set; `deep` compares data and omap digests too. A PG whose primary is moving or
    /// peering is tried again for up to `timeout`. OSDs cannot be started or stopped meanwhile.
    pub fn scrub(
        &self,
        pg: Option<crate::types::placement::PgId>,
        deep: bool,
        timeout: Duration,
    ) -> Result<Vec<crate::osd::scrub::ScrubReport>> {
        let _one = self.ops.lock();
        let map = self.osdmap();
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
                let primary = self.osdmap().pg_primary(pgid);
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
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::new(libc::ESHUTDOWN, "the cluster is shut down"));
        }
        let _one = self.ops.lock();
        let d = self.slot(id)?;
        let store: Arc<dyn ObjectStore> = match self.kind {
            StoreKind::Mem => self.mem_stores[id as usize].clone(),
            StoreKind::Kv => Arc::new(KvStore::new(self.dir.join(format!("osd.{id}")))),
        };
        d.set_store(store);
        d.start()?;
        if let Err(e) = d.wait_active(STARTUP_TIMEOUT) {
            d.shutdown();
            let _ = d.join(Some(STOP_TIMEOUT));
            return Err(e);
        }
        if self.pool >= 0 {
            self.wait_pool_served()?;
        }
        Ok(())
    }

    /// Stops the OSDs, then the monitor. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let _one = self.ops.lock();
        for d in &self.osds {
            d.shutdown();
        }
        for d in &self.osds {
            if let Err(e) = d.join(Some(STOP_TIMEOUT)) {
                log::warn!(target: "minicluster", "{e}");
            }
        }
        self.mon.shutdown();
        let _ = self.mon.join(Some(STOP_TIMEOUT));
    }
}

impl Drop for MiniCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
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
