//! `Context`: the CephContext analog. One entity's config, log, perf counters and admin socket,
//! started and stopped as one.

use crate::asok::{AdminSocket, AdminSocketHook, Request};
use crate::common::config::{ConfLevel, Config};
use crate::common::entity::EntityName;
use crate::common::error::{Error, Result};
use crate::common::formatter::FVal;
use crate::common::log::{self as clog, Log, LogTarget};
use crate::common::perf::PerfCountersCollection;
use crate::common::subsys::{self, SUBSYSTEMS};
use crate::common::throttle::Throttle;
use crate::finisher::Finisher;
use crate::timer::SafeTimer;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct State {
    started: bool,
    stopped: bool,
    /// This context's place on the process's `service` thread.
    service: Option<u64>,
}

/// The process's one `service` thread (Ceph's CephContextServiceThread, shared by every
/// context of the process: a process hosting many daemons has one, not one each). For each
/// context it flushes the log every `heartbeat_interval`, so a crash loses little, and reopens
/// it when asked (SIGHUP, `log reopen`). Started by the first context, it ends after the last.
mod service {
    use crate::common::log::Log;
    use parking_lot::{Condvar, Mutex};
    use std::sync::{Arc, Weak};
    use std::time::{Duration, Instant};

    struct Member {
        id: u64,
        log: Weak<Log>,
        interval: Duration,
        next: Instant,
        reopen: bool,
    }

    struct Service {
        members: Vec<Member>,
        running: bool,
        next_id: u64,
    }

    static SERVICE: Mutex<Service> = Mutex::new(Service {
        members: Vec::new(),
        running: false,
        next_id: 1,
    });
    static WAKE: Condvar = Condvar::new();

    pub(super) fn add(log: &Arc<Log>, interval: Duration) -> std::io::Result<u64> {
        let mut s = SERVICE.lock();
        if !s.running {
            crate::common::log::ThreadBuilder::new()
                .name("service".into())
                .spawn(run)?;
            s.running = true;
        }
        let id = s.next_id;
        s.next_id += 1;
        s.members.push(Member {
            id,
            log: Arc::downgrade(log),
            interval,
            next: Instant::now() + interval,
            reopen: false,
        });
        WAKE.notify_all();
        Ok(id)
    }

    pub(super) fn reopen(id: u64) {
        if let Some(m) = SERVICE.lock().members.iter_mut().find(|m| m.id == id) {
            m.reopen = true;
        }
        WAKE.notify_all();
    }

    /// Once this returns, nothing more is done for `id`.
    pub(super) fn remove(id: u64) {
        SERVICE.lock().members.retain(|m| m.id != id);
        WAKE.notify_all();
    }

    fn run() {
        let mut s = SERVICE.lock();
        loop {
            s.members.retain(|m| m.log.strong_count() > 0);
            if s.members.is_empty() {
                s.running = false;
                return;
            }
            let now = Instant::now();
            for m in s.members.iter_mut() {
                let Some(log) = m.log.upgrade() else { continue };
                if std::mem::take(&mut m.reopen) {
                    if let Err(e) = log.reopen() {
                        log::error!(target: "context", "log reopen failed: {e}");
                    }
                }
                if now >= m.next {
                    log.flush();
                    m.next = now + m.interval;
                }
            }
            let next = s.members.iter().map(|m| m.next).min().unwrap_or(now);
            WAKE.wait_until(&mut s, next.max(Instant::now() + Duration::from_millis(1)));
        }
    }
}

struct Inner {
    conf: Arc<Config>,
    log: Arc<Log>,
    perf: Arc<PerfCountersCollection>,
    asok: Arc<AdminSocket>,
    state: Mutex<State>,
}

/// Cheap to clone; every clone is the same context.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name().to_string())
            .finish()
    }
}

/// An option whose default applies to daemons only: Ceph's library clients get no admin socket
/// and no log file unless one is configured (Ceph's `daemon_default`).
fn daemon_default_str(conf: &Config, key: &str) -> String {
    if conf.name().ty.is_daemon() || conf.changed_keys_since_default().iter().any(|k| k == key) {
        conf.get_str(key)
    } else {
        String::new()
    }
}

fn log_target(conf: &Config) -> LogTarget {
    LogTarget {
        file: if conf.get_bool("log_to_file") {
            daemon_default_str(conf, "log_file")
        } else {
            String::new()
        },
        to_stderr: conf.get_bool("log_to_stderr"),
        err_to_stderr: conf.get_bool("err_to_stderr"),
        max_recent: conf.get_u64("log_max_recent") as usize,
    }
}

impl Context {
    /// A context for `name` (`osd.3`, `client.admin`) in cluster `ceph`, reading `conf_path` if given.
    pub fn new(name: &str, conf_path: Option<&Path>) -> Result<Context> {
        Self::with_cluster(name, "ceph", conf_path)
    }

    pub fn with_cluster(name: &str, cluster: &str, conf_path: Option<&Path>) -> Result<Context> {
        let entity: EntityName = name.parse()?;
        if cluster.is_empty() || cluster.contains(['/', ' ']) {
            return Err(Error::inval(format!("bad cluster name '{cluster}'")));
        }
        let conf = Arc::new(Config::new(entity.clone(), cluster));
        if let Some(p) = conf_path {
            for w in conf.parse_file(p)? {
                log::warn!(target: "context", "{}: {w}", p.display());
            }
        }
        let log = Log::new(log_target(&conf));
        let perf = Arc::new(PerfCountersCollection::new());
        let asok = AdminSocket::new();
        let ctx = Context {
            inner: Arc::new(Inner {
                conf,
                log,
                perf,
                asok,
                state: Mutex::new(State::default()),
            }),
        };
        ctx.apply_log_levels();
        ctx.watch_log_options();
        ctx.register_builtins()?;
        Ok(ctx)
    }

    pub fn name(&self) -> &EntityName {
        self.inner.conf.name()
    }
    pub fn cluster(&self) -> &str {
        self.inner.conf.cluster()
    }
    pub fn conf(&self) -> &Arc<Config> {
        &self.inner.conf
    }
    pub fn log(&self) -> &Arc<Log> {
        &self.inner.log
    }
    pub fn perf(&self) -> &Arc<PerfCountersCollection> {
        &self.inner.perf
    }
    pub fn admin_socket(&self) -> &Arc<AdminSocket> {
        &self.inner.asok
    }

    /// Sets an option at the command-line level (what `--key value` and the APIs use).
    pub fn set_option(&self, key: &str, value: &str) -> Result<()> {
        self.inner.conf.set_val(key, value, ConfLevel::Cmdline)
    }

    pub fn is_started(&self) -> bool {
        self.inner.state.lock().started
    }

    fn apply_log_levels(&self) {
        for (i, (name, _, _)) in SUBSYSTEMS.iter().enumerate() {
            if let Ok((l, g)) = subsys::parse_debug_level(&self.inner.conf.get_str(&format!("debug_{name}"))) {
                self.inner.log.set_level(i, l, g);
            }
        }
    }

    fn watch_log_options(&self) {
        let mut keys: Vec<String> = SUBSYSTEMS.iter().map(|(n, _, _)| format!("debug_{n}")).collect();
        keys.extend(
            [
                "log_file",
                "log_to_file",
                "log_to_stderr",
                "err_to_stderr",
                "log_max_recent",
            ]
            .map(String::from),
        );
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (log, conf) = (Arc::downgrade(&self.inner.log), Arc::downgrade(&self.inner.conf));
        self.inner.conf.add_observer(
            &keys,
            Arc::new(move |changed: &[String]| {
                let (Some(log), Some(conf)) = (log.upgrade(), conf.upgrade()) else {
                    return;
                };
                for k in changed {
                    if let Some(name) = k.strip_prefix("debug_") {
                        if let (Some(i), Ok((l, g))) =
                            (subsys::index_of(name), subsys::parse_debug_level(&conf.get_str(k)))
                        {
                            log.set_level(i, l, g);
                        }
                    }
                }
                let t = log_target(&conf);
                log.set_target(|cur| *cur = t);
            }),
        );
    }

    /// Starts the log thread, the admin socket (when `admin_socket` is set) and the `service`
    /// thread. Errors leave the context stopped.
    pub fn start(&self) -> Result<()> {
        let mut st = self.inner.state.lock();
        if st.stopped {
            return Err(Error::inval("context was shut down; make a new one"));
        }
        if st.started {
            return Ok(());
        }
        self.inner.log.set_target(|t| *t = log_target(&self.inner.conf));
        self.inner
            .log
            .start()
            .map_err(|e| Error::io(e, "starting log thread"))?;
        clog::install_bridge(&self.inner.log);
        let run_dir = self.inner.conf.get_str("run_dir");
        if let Some(path) = self.configured_asok_path() {
            if !run_dir.is_empty() {
                let _ = std::fs::create_dir_all(&run_dir);
            }
            let mode_s = self.inner.conf.get_str("admin_socket_mode");
            let mode = u32::from_str_radix(mode_s.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| Error::inval(format!("admin_socket_mode '{mode_s}' is not an octal mode like 0600")))?;
            if let Err(e) = self.inner.asok.init(&path, mode) {
                self.inner.log.stop();
                clog::uninstall_bridge(&self.inner.log);
                return Err(e);
            }
        }
        let interval = Duration::from_secs(self.inner.conf.get_u64("heartbeat_interval").max(1));
        let id = service::add(&self.inner.log, interval).map_err(|e| Error::io(e, "starting service thread"))?;
        st.service = Some(id);
        st.started = true;
        log::info!(target: "context", "{} started (osdkit {})", self.name(), crate::VERSION);
        Ok(())
    }

    fn configured_asok_path(&self) -> Option<PathBuf> {
        let p = daemon_default_str(&self.inner.conf, "admin_socket");
        (!p.is_empty()).then(|| PathBuf::from(p))
    }

    /// The admin socket's path once started (`None` before, or when `admin_socket` is empty).
    pub fn asok_path(&self) -> Option<PathBuf> {
        self.inner.asok.path()
    }

    /// Asks the `service` thread to reopen the log (what SIGHUP does).
    pub fn reopen_logs(&self) {
        if let Some(id) = self.inner.state.lock().service {
            service::reopen(id);
        }
    }

    /// Stops the admin socket, the service thread and the log (flushed). Idempotent.
    pub fn shutdown(&self) {
        let service = {
            let mut st = self.inner.state.lock();
            if !st.started || st.stopped {
                st.stopped = true;
                return;
            }
            st.stopped = true;
            st.service.take()
        };
        log::info!(target: "context", "{} shutting down", self.name());
        self.inner.asok.shutdown();
        if let Some(id) = service {
            service::remove(id);
        }
        clog::uninstall_bridge(&self.inner.log);
        self.inner.log.flush();
        self.inner.log.stop();
    }

    /// Registers an admin socket command (see `AdminSocket::register_command`).
    pub fn register_command(&self, desc: &str, help: &str, hook: Arc<dyn AdminSocketHook>) -> Result<u64> {
        self.inner.asok.register_command(desc, help, hook)
    }

    /// A SafeTimer whose counters show in this context's `perf dump`.
    pub fn new_timer(&self, name: &str) -> SafeTimer {
        SafeTimer::new_shared_perf(name, &self.inner.perf)
    }

    /// A named Finisher (`finisher-<name>` counters), thread `finisher`.
    pub fn new_finisher(&self, name: &str) -> Arc<Finisher> {
        Finisher::new_shared_perf(name, "finisher", &self.inner.perf)
    }

    /// A Throttle with `throttle-<name>` counters when `throttler_perf_counter` is on.
    pub fn new_throttle(&self, name: &str, max: u64) -> Arc<Throttle> {
        if self.inner.conf.get_bool("throttler_perf_counter") {
            Throttle::new_shared_perf(name, max, &self.inner.perf)
        } else {
            Throttle::new(name, max, None)
        }
    }

    fn register_builtins(&self) -> Result<()> {
        let conf = self.inner.conf.clone();
        let perf = self.inner.perf.clone();
        let log = self.inner.log.clone();
        let asok = &self.inner.asok;
        let reg = |desc: &str, help: &str, hook: Arc<dyn AdminSocketHook>| asok.register_command(desc, help, hook);

        let p = perf.clone();
        let perf_dump: Arc<dyn AdminSocketHook> = Arc::new(move |r: &Request<'_>| {
            Ok(r.render(&p.dump(r.arg_str("logger").as_deref(), r.arg_str("counter").as_deref())))
        });
        let p = perf.clone();
        let perf_schema: Arc<dyn AdminSocketHook> = Arc::new(move |r: &Request<'_>| Ok(r.render(&p.schema(false))));
        reg("perfcounters_dump", "", perf_dump.clone())?;
        reg("1", "", perf_dump.clone())?;
        reg(
            "perf dump name=logger,type=CephString,req=false name=counter,type=CephString,req=false",
            "dump non-empty perfcounters and their values",
            perf_dump,
        )?;
        reg("perfcounters_schema", "", perf_schema.clone())?;
        reg("2", "", perf_schema.clone())?;
        reg("perf schema", "dump perfcounters schema", perf_schema)?;
        let p = perf.clone();
        reg(
            "perf histogram dump name=logger,type=CephString,req=false name=counter,type=CephString,req=false",
            "dump perf histogram values",
            Arc::new(move |r: &Request<'_>| {
                Ok(r.render(&p.dump_histograms(r.arg_str("logger").as_deref(), r.arg_str("counter").as_deref())))
            }),
        )?;
        let p = perf.clone();
        reg(
            "perf histogram schema",
            "dump perf histogram schema",
            Arc::new(move |r: &Request<'_>| Ok(r.render(&p.schema(true)))),
        )?;
        let p = perf;
        reg(
            "perf reset name=var,type=CephString",
            "perf reset <name>: perf reset all or one perfcounter name",
            Arc::new(move |r: &Request<'_>| {
                let var = r.arg_str("var").unwrap_or_default();
                // Ceph answers an unknown logger with an error object, not an error code.
                Ok(r.render(&if p.reset(&var) {
                    FVal::obj().with("success", FVal::str(format!("perf reset {var}")))
                } else {
                    FVal::obj().with("error", FVal::str(format!("Not find: {var}")))
                }))
            }),
        )?;

        let c = conf.clone();
        reg(
            "config show",
            "dump current config settings",
            Arc::new(move |r: &Request<'_>| Ok(r.render(&c.show()))),
        )?;
        let c = conf.clone();
        reg(
            "config help name=var,type=CephString,req=false",
            "get config setting schema and descriptions",
            Arc::new(move |r: &Request<'_>| Ok(r.render(&c.help(r.arg_str("var").as_deref())?))),
        )?;
        let c = conf.clone();
        reg(
            "config set name=var,type=CephString name=val,type=CephString,n=N",
            "config set <field> <val> [<val> ...]: set a config variable",
            Arc::new(move |r: &Request<'_>| {
                let var = r.arg_str("var").unwrap_or_default();
                let vals: Vec<String> = match r.args.get("val") {
                    Some(serde_json::Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
                        .collect(),
                    Some(v) => vec![v.as_str().map(String::from).unwrap_or_else(|| v.to_string())],
                    None => vec![],
                };
                let report = c.set_from_admin(&var, &vals)?;
                Ok(r.render(&FVal::obj().with("success", FVal::str(report))))
            }),
        )?;
        let c = conf.clone();
        reg(
            "config unset name=var,type=CephString",
            "config unset <field>: unset a config variable",
            Arc::new(move |r: &Request<'_>| {
                c.rm_val(&r.arg_str("var").unwrap_or_default(), ConfLevel::Override)?;
                Ok(r.render(&FVal::obj()))
            }),
        )?;
        let c = conf.clone();
        reg(
            "config get name=var,type=CephString",
            "config get <field>: get the config value",
            Arc::new(move |r: &Request<'_>| {
                let var = r.arg_str("var").unwrap_or_default();
                let v = c.get_val_str(&var).map_err(|e| {
                    Error::new(
                        e.errno,
                        format!("error getting '{var}': {}", crate::common::error::strerror(e.errno)),
                    )
                })?;
                Ok(r.render(&FVal::obj().with(var, FVal::str(v))))
            }),
        )?;
        let c = conf.clone();
        let diff: Arc<dyn AdminSocketHook> = Arc::new(move |r: &Request<'_>| Ok(r.render(&c.diff())));
        reg(
            "config diff",
            "dump diff of current config and default config",
            diff.clone(),
        )?;
        reg(
            "config diff get name=var,type=CephString",
            "dump diff get <field>: dump diff of current and default config setting <field>",
            diff,
        )?;
        let c = conf;
        reg(
            "injectargs name=injected_args,type=CephString,n=N",
            "inject configuration arguments into running daemon",
            Arc::new(move |r: &Request<'_>| {
                let args: Vec<String> = r
                    .arg_str("injected_args")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                let rest = c.parse_args_at(&args, ConfLevel::Override)?;
                if !rest.is_empty() {
                    return Err(Error::inval(format!("unparsed arguments: {}", rest.join(" "))));
                }
                Ok(r.render(&FVal::obj()))
            }),
        )?;

        let l = log.clone();
        reg(
            "log flush",
            "flush log entries to log file",
            Arc::new(move |r: &Request<'_>| {
                l.flush();
                Ok(r.render(&FVal::obj()))
            }),
        )?;
        let l = log.clone();
        reg(
            "log dump",
            "dump recent log entries to log file",
            Arc::new(move |r: &Request<'_>| {
                l.dump_recent();
                Ok(r.render(&FVal::obj()))
            }),
        )?;
        let l = log;
        reg(
            "log reopen",
            "reopen log file",
            Arc::new(move |r: &Request<'_>| {
                l.reopen().map_err(|e| Error::new(libc::EIO, e))?;
                Ok(r.render(&FVal::obj()))
            }),
        )?;
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.asok.shutdown();
        if let Some(id) = self.state.get_mut().service.take() {
            service::remove(id);
        }
        clog::uninstall_bridge(&self.log);
        self.log.stop();
    }
}
