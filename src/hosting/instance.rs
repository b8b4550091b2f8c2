//! `HostedDaemon`: one OSD or monitor hosted in this process, the way cohortfs' `libosd` did
//! it — made from an id, a conf file, a cluster name and option overrides; started (returning
//! before it is active), watched (`on_active`, `on_shutdown`, a state with the reason it
//! failed), stopped and joined by the embedding program. Each has its own `Context`: entity
//! name, conf sections, admin socket (`$run_dir/$cluster-$name.asok` by default, so
//! `ceph-osd.3.asok`), perf counters and log. A process hosts any number of them, but one
//! entity name only once per cluster name.

use crate::common::entity::EntityType;
use crate::common::error::{Error, Result};
use crate::mon::Monitor;
use crate::osd::local::LocalDone;
use crate::osd::Osd;
use crate::types::osd_op::{MOsdOpReply, OsdOp};
use crate::Context;
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Where a hosted daemon is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// Made, not started (or stopped and started again: see `Starting`).
    New,
    /// Reading the conf, making the store, binding messengers.
    Starting,
    /// An OSD that sent its boot and waits for a map that shows it up.
    Booting,
    /// Serving: an OSD the map shows up, a monitor answering.
    Active,
    /// `shutdown` was called (or it stops on its own); not yet stopped.
    Stopping,
    Stopped,
    /// It could not start, or stopped because of an error: why.
    Failed(String),
}

impl InstanceState {
    /// The number the C face reports (`OSDKIT_STATE_*`).
    pub fn code(&self) -> i32 {
        match self {
            InstanceState::New => 0,
            InstanceState::Starting => 1,
            InstanceState::Booting => 2,
            InstanceState::Active => 3,
            InstanceState::Stopping => 4,
            InstanceState::Stopped => 5,
            InstanceState::Failed(_) => 6,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            InstanceState::New => "new",
            InstanceState::Starting => "starting",
            InstanceState::Booting => "booting",
            InstanceState::Active => "active",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Failed(_) => "failed",
        }
    }
    fn is_running(&self) -> bool {
        matches!(
            self,
            InstanceState::Starting | InstanceState::Booting | InstanceState::Active | InstanceState::Stopping
        )
    }
}

/// What a hosted daemon is made from.
#[derive(Clone, Default)]
pub struct InstanceArgs {
    /// The id: an OSD's number ("3"), a monitor's name ("a").
    pub id: String,
    /// A Ceph-style conf file: `[global]`, `[osd]` / `[mon]` and `[osd.3]` / `[mon.a]` apply.
    pub conf: Option<PathBuf>,
    /// The cluster name (`$cluster` in paths); "ceph" when empty.
    pub cluster: String,
    /// Option overrides, applied over the conf file.
    pub options: Vec<(String, String)>,
    /// An OSD: the process's shared messengers to be hosted on (an OSD manager's, with
    /// `osd_manager_shared_messengers`), instead of messengers of its own.
    pub hosted_set: Option<Arc<crate::osd::hosted_set::HostedSet>>,
    /// An OSD: the store to serve from instead of one made from `osd_objectstore` and
    /// `osd_data` (a memory store kept across restarts, as the in-process cluster does).
    pub store: Option<Arc<dyn crate::os::ObjectStore>>,
}

impl InstanceArgs {
    /// Daemon `id` made from the conf file `conf`, everything else at its default.
    pub fn new(id: impl Into<String>, conf: &std::path::Path) -> InstanceArgs {
        InstanceArgs {
            id: id.into(),
            conf: Some(conf.to_path_buf()),
            ..Default::default()
        }
    }
}

impl std::fmt::Debug for InstanceArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceArgs")
            .field("id", &self.id)
            .field("conf", &self.conf)
            .field("cluster", &self.cluster)
            .field("options", &self.options)
            .field("hosted_set", &self.hosted_set)
            .field("store", &self.store.as_ref().map(|s| s.kind()))
            .finish()
    }
}

/// A callback of a hosted daemon; runs on its `osd_thread` / `mon_thread`, must not join it.
pub type InstanceCallback = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone, Default)]
pub struct InstanceCallbacks {
    /// The OSD is up in the map (a monitor: serving). The state shows Active once it returned.
    pub on_active: Option<InstanceCallback>,
    /// It stopped on its own, not through `shutdown` (runs before `join` returns).
    pub on_shutdown: Option<InstanceCallback>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Osd,
    Mon,
}

enum Daemon {
    Osd(Box<Osd>),
    Mon(Monitor),
}

struct St {
    state: InstanceState,
    stop_requested: bool,
    /// The stop is to look like a crash (`kill`): no mark-me-down.
    kill_requested: bool,
    ctx: Option<Context>,
    /// `pid_file` when the conf names one: the hosting process's pid, held while it runs.
    pidfile: Option<crate::daemon::PidFile>,
    daemon: Option<Arc<Daemon>>,
    since: Instant,
}

struct Shared {
    kind: Kind,
    name: String,
    cluster: String,
    args: InstanceArgs,
    cbs: InstanceCallbacks,
    st: Mutex<St>,
    cv: Condvar,
    /// The store an OSD is to serve from (`InstanceArgs::store`, or `set_store`).
    store: Mutex<Option<Arc<dyn crate::os::ObjectStore>>>,
}

/// Every hosted daemon of the process, by `cluster/name`: one name once, and `signal_all`.
static HOSTED: Mutex<BTreeMap<String, Weak<Shared>>> = Mutex::new(BTreeMap::new());

/// One OSD or monitor hosted in this process. Its methods may be called from any thread.
/// Dropping it stops it (as `shutdown` + `join`) and frees its name.
pub struct HostedDaemon {
    sh: Arc<Shared>,
}

impl HostedDaemon {
    /// An OSD `osd.<args.id>` (not started). `-EINVAL` for an id that is not a number,
    /// `-EEXIST` when the process already hosts that OSD of that cluster.
    pub fn osd(args: InstanceArgs, cbs: InstanceCallbacks) -> Result<HostedDaemon> {
        let n: i32 = args
            .id
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::inval(format!("an OSD id is a non-negative number, not '{}'", args.id)))?;
        Self::new(Kind::Osd, format!("osd.{n}"), args, cbs)
    }

    /// A monitor `mon.<args.id>` (not started); `-EEXIST` as for an OSD.
    pub fn mon(args: InstanceArgs, cbs: InstanceCallbacks) -> Result<HostedDaemon> {
        if args.id.is_empty() || args.id.contains(['/', ' ', '.']) {
            return Err(Error::inval(format!("bad monitor id '{}'", args.id)));
        }
        let name = format!("mon.{}", args.id);
        Self::new(Kind::Mon, name, args, cbs)
    }

    fn new(kind: Kind, name: String, args: InstanceArgs, cbs: InstanceCallbacks) -> Result<HostedDaemon> {
        let cluster = if args.cluster.is_empty() {
            "ceph".to_string()
        } else {
            args.cluster.clone()
        };
        let key = format!("{cluster}/{name}");
        let mut hosted = HOSTED.lock();
        if hosted.get(&key).is_some_and(|w| w.strong_count() > 0) {
            return Err(Error::exists(format!(
                "{name} of cluster {cluster} is already hosted in this process"
            )));
        }
        let sh = Arc::new(Shared {
            kind,
            name,
            cluster,
            store: Mutex::new(args.store.clone()),
            args,
            cbs,
            st: Mutex::new(St {
                state: InstanceState::New,
                stop_requested: false,
                kill_requested: false,
                ctx: None,
                pidfile: None,
                daemon: None,
                since: Instant::now(),
            }),
            cv: Condvar::new(),
        });
        hosted.insert(key, Arc::downgrade(&sh));
        Ok(HostedDaemon { sh })
    }

    /// Its entity name (`osd.3`, `mon.a`).
    pub fn name(&self) -> &str {
        &self.sh.name
    }

    /// The state, and since when.
    pub fn state(&self) -> (InstanceState, Instant) {
        let st = self.sh.st.lock();
        (st.state.clone(), st.since)
    }

    /// Its context once started (conf, admin socket, perf counters, log).
    pub fn context(&self) -> Option<Context> {
        self.sh.st.lock().ctx.clone()
    }

    /// The admin socket's path once started (None when `admin_socket` is empty).
    pub fn asok_path(&self) -> Option<PathBuf> {
        self.context().and_then(|c| c.asok_path())
    }

    /// The daemon's public address once started (`v2:IP:PORT/NONCE`).
    pub fn addr(&self) -> Option<String> {
        match self.sh.st.lock().daemon.as_deref()? {
            Daemon::Osd(o) => Some(o.addr().to_string()),
            Daemon::Mon(m) => Some(m.addr().to_string()),
        }
    }

    /// The hosted OSD itself, for direct calls (None for a monitor or before start).
    /// An OSD: the store its next `start` serves from (instead of `InstanceArgs::store` or one
    /// made from its conf).
    pub fn set_store(&self, store: Arc<dyn crate::os::ObjectStore>) {
        *self.sh.store.lock() = Some(store);
    }

    /// `f` of the running monitor; None for an OSD or while not running.
    pub fn with_mon<T>(&self, f: impl FnOnce(&Monitor) -> T) -> Option<T> {
        let d = self.sh.st.lock().daemon.clone()?;
        match &*d {
            Daemon::Mon(m) => Some(f(m)),
            Daemon::Osd(_) => None,
        }
    }

    pub fn with_osd<T>(&self, f: impl FnOnce(&Osd) -> T) -> Option<T> {
        let d = self.sh.st.lock().daemon.clone()?;
        match &*d {
            Daemon::Osd(o) => Some(f(o)),
            Daemon::Mon(_) => None,
        }
    }

    /// Runs `ops` on object `oid` of pool `pool` on this hosted OSD without a network hop (its
    /// own op queue: tracked, ordered per PG, replicated): `done` gets the reply, on the thread
    /// that finished the op (see [`crate::osd::local::LocalDone`]). `-ENODEV` unless the OSD is
    /// active (and for ops it still held when it stopped), `-ENXIO` when it is not the object's
    /// primary, `-EINVAL` for a monitor.
    pub fn submit(&self, pool: &str, oid: &str, ops: Vec<OsdOp>, done: LocalDone) {
        let (state, daemon) = {
            let st = self.sh.st.lock();
            (st.state.clone(), st.daemon.clone())
        };
        match daemon.as_deref() {
            Some(Daemon::Osd(o)) if state == InstanceState::Active => o.submit_local(pool, oid, ops, done),
            Some(Daemon::Mon(_)) => done(Err(Error::inval(format!("{} is a monitor, not an OSD", self.sh.name)))),
            _ => done(Err(Error::new(
                libc::ENODEV,
                format!("{} is {}, not active", self.sh.name, state.name()),
            ))),
        }
    }

    /// `submit`, waiting for the reply.
    pub fn operate(&self, pool: &str, oid: &str, ops: Vec<OsdOp>) -> Result<MOsdOpReply> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(
            pool,
            oid,
            ops,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(Error::new(libc::ENODEV, "the OSD dropped the op")))
    }

    /// Up to `len` bytes from `off` (0: to the end) of an object this OSD is primary for,
    /// through its op queue (`libosd_read`).
    pub fn read(&self, pool: &str, oid: &str, off: u64, len: u64) -> Result<bytes::Bytes> {
        let mut r = self.operate(pool, oid, vec![OsdOp::read(off, len)])?;
        Ok(std::mem::take(&mut r.ops[0].outdata))
    }

    /// Writes `data` at `off` (`libosd_write`); returns once committed on every replica.
    pub fn write(&self, pool: &str, oid: &str, off: u64, data: &[u8]) -> Result<()> {
        let data = bytes::Bytes::copy_from_slice(data);
        self.operate(pool, oid, vec![OsdOp::write(off, data)]).map(drop)
    }

    /// Sets the object's size (`libosd_truncate`).
    pub fn truncate(&self, pool: &str, oid: &str, size: u64) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::truncate(size)]).map(drop)
    }

    /// Reads the conf, makes the store, binds the messengers and (an OSD) sends its boot to the
    /// monitor of `mon_host`; returns before the OSD is up (`on_active` says when). A monitor
    /// binds the first address of `mon_host` and keeps its store in `mon_data`. A stopped or
    /// failed instance may be started again. `-EEXIST` while it runs; the error that stopped
    /// it otherwise (the state is then `Failed` with the same text).
    pub fn start(&self) -> Result<()> {
        {
            let mut st = self.sh.st.lock();
            if st.state.is_running() {
                return Err(Error::exists(format!(
                    "{} is already {}",
                    self.sh.name,
                    st.state.name()
                )));
            }
            st.state = InstanceState::Starting;
            st.stop_requested = false;
            st.kill_requested = false;
            st.since = Instant::now();
        }
        match self.sh.bring_up() {
            Ok((ctx, daemon)) => {
                let daemon = Arc::new(daemon);
                {
                    let mut st = self.sh.st.lock();
                    st.ctx = Some(ctx);
                    st.daemon = Some(daemon.clone());
                    st.state = match self.sh.kind {
                        Kind::Osd => InstanceState::Booting,
                        // Active once its thread ran `on_active`.
                        Kind::Mon => InstanceState::Starting,
                    };
                    st.since = Instant::now();
                }
                let sh = self.sh.clone();
                let _log = crate::common::log::ThreadLogScope::enter(&ctx_log(&self.sh));
                let tname = match self.sh.kind {
                    Kind::Osd => "osd_thread",
                    Kind::Mon => "mon_thread",
                };
                let spawned = crate::common::log::ThreadBuilder::new()
                    .name(tname.into())
                    .spawn(move || sh.run(daemon));
                if let Err(e) = spawned {
                    let e = Error::new(libc::EAGAIN, format!("spawning {tname}: {e}"));
                    self.sh.teardown(&e.to_string());
                    return Err(e);
                }
                Ok(())
            }
            Err(e) => {
                self.sh.st.lock().pidfile = None;
                self.sh.set(InstanceState::Failed(e.to_string()));
                Err(e)
            }
        }
    }

    /// Begins stopping (an OSD marks itself down first); returns at once. A no-op unless it
    /// runs.
    pub fn shutdown(&self) {
        self.sh.request_stop();
    }

    /// Begins stopping it as a crash would look to the cluster (an OSD sends no
    /// mark-me-down: its peers must notice); `join` waits for the end.
    pub fn kill(&self) {
        self.sh.st.lock().kill_requested = true;
        self.sh.request_stop();
    }

    /// Waits until it is stopped or failed (at most `timeout`; None: for ever). Returns the
    /// final state, or `-ETIMEDOUT`.
    pub fn join(&self, timeout: Option<Duration>) -> Result<InstanceState> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.sh.st.lock();
        while st.state.is_running() {
            match deadline {
                None => self.sh.cv.wait(&mut st),
                Some(d) => {
                    if self.sh.cv.wait_until(&mut st, d).timed_out() && st.state.is_running() {
                        return Err(Error::new(
                            libc::ETIMEDOUT,
                            format!("{} still {} after {timeout:?}", self.sh.name, st.state.name()),
                        ));
                    }
                }
            }
        }
        Ok(st.state.clone())
    }

    /// Waits until it is active; `-ETIMEDOUT`, or the reason it stopped instead.
    pub fn wait_active(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut st = self.sh.st.lock();
        loop {
            match &st.state {
                InstanceState::Active => return Ok(()),
                InstanceState::Failed(why) => {
                    return Err(Error::new(libc::EIO, format!("{} failed: {why}", self.sh.name)))
                }
                InstanceState::Stopped | InstanceState::New => {
                    return Err(Error::new(
                        libc::ENODEV,
                        format!("{} is {}", self.sh.name, st.state.name()),
                    ))
                }
                _ => {}
            }
            if self.sh.cv.wait_until(&mut st, deadline).timed_out() && st.state != InstanceState::Active {
                return Err(Error::new(
                    libc::ETIMEDOUT,
                    format!("{} still {} after {timeout:?}", self.sh.name, st.state.name()),
                ));
            }
        }
    }
}

impl Drop for HostedDaemon {
    fn drop(&mut self) {
        self.shutdown();
        let _ = self.join(None);
        let key = format!("{}/{}", self.sh.cluster, self.sh.name);
        let mut hosted = HOSTED.lock();
        if hosted
            .get(&key)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.sh)))
        {
            hosted.remove(&key);
        }
    }
}

impl Shared {
    fn request_stop(&self) {
        let mut st = self.st.lock();
        st.stop_requested = true;
        if matches!(st.state, InstanceState::Booting | InstanceState::Active) {
            st.state = InstanceState::Stopping;
            st.since = Instant::now();
        }
        self.cv.notify_all();
    }

    fn set(&self, s: InstanceState) {
        let mut st = self.st.lock();
        st.state = s;
        st.since = Instant::now();
        self.cv.notify_all();
    }

    /// The context and the daemon, started; on error everything made so far is stopped.
    fn bring_up(&self) -> Result<(Context, Daemon)> {
        let ctx = Context::with_cluster(&self.name, &self.cluster, self.args.conf.as_deref())?;
        for (k, v) in &self.args.options {
            ctx.set_option(k, v)?;
        }
        let pid_path = ctx.conf().get_str("pid_file");
        if !pid_path.is_empty() {
            // Which process hosts this daemon, for `osdkit status` and `osdkit stop`.
            let p = crate::daemon::PidFile::create(std::path::Path::new(&pid_path))?;
            self.st.lock().pidfile = Some(p);
        }
        // What this thread logs while starting the daemon, and every thread the start makes,
        // goes to this daemon's log, not to another hosted daemon's.
        let _log = crate::common::log::ThreadLogScope::enter(ctx.log());
        ctx.start()?;
        let made = match self.kind {
            Kind::Osd => start_osd_on(
                &ctx,
                self.name.trim_start_matches("osd."),
                self.args.hosted_set.as_deref(),
                self.store.lock().clone(),
            )
            .map(|o| Daemon::Osd(Box::new(o))),
            Kind::Mon => start_mon(&ctx).map(Daemon::Mon),
        };
        match made {
            Ok(d) => Ok((ctx, d)),
            Err(e) => {
                ctx.shutdown();
                Err(e)
            }
        }
    }

    /// The instance's thread: waits to be up (an OSD), then for a stop, then cleans up.
    fn run(self: Arc<Self>, daemon: Arc<Daemon>) {
        if let Daemon::Osd(osd) = &*daemon {
            loop {
                if self.st.lock().stop_requested || osd.gave_up().is_some() {
                    break;
                }
                if osd.wait_for_up(Duration::from_millis(200)).is_ok() {
                    log::info!(target: "osd", "{}: active at {}", self.name, osd.addr());
                    self.activate();
                    break;
                }
            }
        } else {
            self.activate();
        }
        // Until asked to stop, or (an OSD) until it gives up on its own.
        let mut own: Option<String> = None;
        {
            let mut st = self.st.lock();
            while !st.stop_requested {
                if let Daemon::Osd(o) = &*daemon {
                    own = o.gave_up();
                    if own.is_some() {
                        st.state = InstanceState::Stopping;
                        st.since = Instant::now();
                        self.cv.notify_all();
                        break;
                    }
                }
                self.cv.wait_for(&mut st, Duration::from_millis(200));
            }
        }
        let kill = self.st.lock().kill_requested;
        let stopped = match &*daemon {
            Daemon::Osd(o) if kill => o.kill(),
            Daemon::Osd(o) => o.shutdown(),
            Daemon::Mon(m) => {
                m.shutdown();
                Ok(())
            }
        };
        drop(daemon);
        match (stopped, own) {
            (_, Some(why)) => {
                // Before the final state, so that a joiner sees the callback done.
                if let Some(cb) = &self.cbs.on_shutdown {
                    cb();
                }
                self.teardown(&why);
            }
            (Ok(()), None) => self.teardown(""),
            (Err(e), None) => self.teardown(&e.to_string()),
        }
    }

    /// Runs `on_active`, then shows the state Active (so a waiter sees the callback done),
    /// unless a stop came first.
    fn activate(&self) {
        if let Some(cb) = &self.cbs.on_active {
            cb();
        }
        let mut st = self.st.lock();
        if matches!(st.state, InstanceState::Starting | InstanceState::Booting) && !st.stop_requested {
            st.state = InstanceState::Active;
            st.since = Instant::now();
            self.cv.notify_all();
        }
    }

    /// Releases the daemon and the context; the state becomes Stopped, or Failed with `why`.
    fn teardown(&self, why: &str) {
        let (ctx, daemon, pidfile) = {
            let mut st = self.st.lock();
            (st.ctx.take(), st.daemon.take(), st.pidfile.take())
        };
        drop(daemon);
        if let Some(c) = ctx {
            c.shutdown();
        }
        drop(pidfile);
        self.set(if why.is_empty() {
            InstanceState::Stopped
        } else {
            InstanceState::Failed(why.to_string())
        });
    }
}

/// The running instance's log (its context was set just before this is called).
fn ctx_log(sh: &Shared) -> Arc<crate::common::log::Log> {
    sh.st.lock().ctx.as_ref().expect("started").log().clone()
}

/// An OSD of `ctx` from its conf: store (`osd_objectstore`, `osd_data`), `public_addr`
/// (default 127.0.0.1, any port), boot to `mon_host`; returns once the boot is sent. The
/// `osdkit osd` process uses this too.
pub fn start_osd(ctx: &Context, id: &str) -> Result<Osd> {
    start_osd_on(ctx, id, None, None)
}

/// Where an OSD of this conf binds its public messenger: `public_addr`, else 127.0.0.1, any
/// port.
pub fn public_bind(c: &crate::common::config::Config) -> Result<SocketAddr> {
    let public = c.get_str("public_addr");
    if public.is_empty() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    public
        .parse::<crate::msgr::addr::EntityAddr>()
        .ok()
        .and_then(|a| a.addr)
        .or_else(|| public.parse().ok())
        .ok_or_else(|| Error::inval(format!("public_addr '{public}' is not an address like 127.0.0.1:6800")))
}

/// `start_osd`, on `shared` messengers when given.
fn start_osd_on(
    ctx: &Context,
    id: &str,
    shared: Option<&crate::osd::hosted_set::HostedSet>,
    store: Option<Arc<dyn crate::os::ObjectStore>>,
) -> Result<Osd> {
    let whoami: i32 = id.parse().map_err(|_| Error::inval(format!("bad OSD id '{id}'")))?;
    let c = ctx.conf();
    let mon = crate::client::rados::parse_mon_host(&c.get_str("mon_host"))?;
    let bind = public_bind(c)?;
    let net = match shared {
        Some(set) => {
            // The instance's own public_addr cannot apply: its addresses are the set's.
            let at = set.messengers().public.my_addrs()[0].addr;
            if !c.get_str("public_addr").is_empty()
                && at.is_some_and(|a| a.ip() != bind.ip() || bind.port() != 0 && a.port() != bind.port())
            {
                return Err(Error::inval(format!(
                    "public_addr {bind}: this process's OSDs share messengers at {} (osd_manager_shared_messengers)",
                    at.map_or_else(String::new, |a| a.to_string())
                )));
            }
            crate::osd::OsdNet::Shared(set)
        }
        None => crate::osd::OsdNet::Bind(bind),
    };
    let store = match store {
        Some(s) => s,
        None => {
            if c.get_str("osd_objectstore") == "kv" {
                let data = PathBuf::from(c.get_str("osd_data"));
                std::fs::create_dir_all(&data)
                    .map_err(|e| Error::io(e, format!("creating osd_data {}", data.display())))?;
            }
            crate::os::create_store(ctx)?
        }
    };
    let osd = Osd::start_with_mon_on(ctx, whoami, store, net, mon)?;
    // The first map says whether the monitor knows this id; a monitor not reachable yet is
    // no error (the OSD boots when it is, and gives up then if the id is missing).
    match osd.wait_for_map(FIRST_MAP_WAIT) {
        Err(e) if e.errno == libc::ENOENT => {
            let _ = osd.kill();
            Err(e)
        }
        _ => Ok(osd),
    }
}

/// How long an OSD's start waits for the monitor's first map.
const FIRST_MAP_WAIT: Duration = Duration::from_secs(3);

/// A monitor of `ctx` from its conf: the first address of `mon_host`, its store in
/// `mon_data`. The `osdkit mon` process uses this too.
pub fn start_mon(ctx: &Context) -> Result<Monitor> {
    if ctx.name().ty != EntityType::Mon {
        return Err(Error::inval(format!("{} is not a monitor", ctx.name())));
    }
    let c = ctx.conf();
    let addr = crate::client::rados::parse_mon_host(&c.get_str("mon_host"))?;
    let bind = addr.addr.ok_or_else(|| Error::inval("mon_host has no IP and port"))?;
    let data = c.get_str("mon_data");
    if data.is_empty() {
        return Err(Error::inval("mon_data is not set: name the monitor's data directory"));
    }
    Monitor::start(ctx, std::path::Path::new(&data), bind)
}

/// Forwards a signal to every daemon hosted in the process, as `libosd_signal` did: SIGTERM
/// and SIGINT begin stopping each, SIGHUP reopens each one's log. Returns how many were
/// reached; `-EINVAL` for any other signal.
pub fn signal_all(signum: i32) -> Result<usize> {
    if ![libc::SIGTERM, libc::SIGINT, libc::SIGHUP].contains(&signum) {
        return Err(Error::inval(format!(
            "signal {signum} is not one hosted daemons take (SIGTERM, SIGINT, SIGHUP)"
        )));
    }
    let all: Vec<Arc<Shared>> = HOSTED.lock().values().filter_map(Weak::upgrade).collect();
    let mut n = 0;
    for sh in all {
        let ctx = {
            let st = sh.st.lock();
            if !st.state.is_running() {
                continue;
            }
            st.ctx.clone()
        };
        n += 1;
        if signum == libc::SIGHUP {
            if let Some(c) = ctx {
                c.reopen_logs();
            }
        } else {
            sh.request_stop();
        }
    }
    Ok(n)
}
