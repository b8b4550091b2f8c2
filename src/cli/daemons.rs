//! `osdkit mon` and `osdkit osd`: one daemon per process, through [`run_daemon`].
//!
//! Both read the config file for their entity (`mon.<id>`, `osd.<id>`), fork into the
//! background unless `-f` (the parent exits only once the daemon serves, or with the reason it
//! could not start), hold `$run_dir/$name.pid` (unless `pid_file` says otherwise), answer their
//! admin socket, log to `log_file` and stop cleanly on SIGTERM or SIGINT.
//!
//! The monitor binds the (first) address of `mon_host` and keeps its store in `mon_data`. The
//! OSD builds its store from `osd_objectstore`/`osd_data`, binds `public_addr` (default
//! `127.0.0.1:0`), boots to `mon_host` and reports ready only once the monitor's map shows it up.

use super::{load_conf, pid_file_of, DEFAULT_PID_FILE};
use crate::daemon::{run_daemon, DaemonOpts};
use crate::hosting::instance::{start_mon, start_osd};
use crate::{Context, Error, Result};
use std::path::Path;
use std::time::Duration;

/// How long an OSD waits to be marked up before it gives up starting.
pub const OSD_BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks the config in the (still single-threaded) parent and builds the daemon options:
/// the pid file defaults to `$run_dir/$name.pid`, and its directory is created.
fn prepare(name: &str, conf: &Path, foreground: bool) -> Result<DaemonOpts> {
    let c = load_conf(name, conf)?;
    let mut overrides = Vec::new();
    if c.get_str("pid_file").is_empty() {
        overrides.push(("pid_file".to_string(), DEFAULT_PID_FILE.to_string()));
    }
    // The manager's entity is a client name, which by Ceph's rule gets no admin socket or log
    // file unless configured; it is a daemon, so it gets a daemon's defaults.
    if c.name().ty == crate::common::entity::EntityType::Client {
        let set = c.changed_keys_since_default();
        for key in ["admin_socket", "log_file"] {
            if !set.iter().any(|k| k == key) {
                let default = crate::common::options::find(key)
                    .map(|d| d.default.clone())
                    .unwrap_or_default();
                overrides.push((key.to_string(), default));
            }
        }
    }
    let pid = pid_file_of(&c);
    if let Some(dir) = pid.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(e, format!("creating {}", dir.display())))?;
    }
    Ok(DaemonOpts {
        name: name.to_string(),
        conf: Some(conf.to_path_buf()),
        foreground,
        overrides,
    })
}

fn run(
    name: &str,
    conf: &Path,
    foreground: bool,
    setup: impl FnOnce(&Context) -> Result<crate::daemon::host::Stopper>,
) -> i32 {
    match prepare(name, conf, foreground) {
        Ok(opts) => run_daemon(opts, setup),
        Err(e) => {
            eprintln!("{name}: failed to start: {e}");
            e.exit_code()
        }
    }
}

/// `osdkit mon -c CONF -i ID [-f]`: returns the process exit code.
pub fn run_mon(conf: &Path, id: &str, foreground: bool) -> i32 {
    let name = format!("mon.{id}");
    run(&name, conf, foreground, |ctx| {
        let mon = start_mon(ctx)?;
        log::info!(target: "mon", "{} serving {}", ctx.name(), mon.addr());
        Ok(Box::new(move || mon.shutdown()))
    })
}

/// `osdkit osd -c CONF -i ID [-f]`: returns the process exit code.
pub fn run_osd(conf: &Path, id: &str, foreground: bool) -> i32 {
    let whoami: i32 = match id.parse() {
        Ok(n) if n >= 0 => n,
        _ => {
            eprintln!("osd.{id}: failed to start: an OSD id is a non-negative number, not '{id}'");
            return libc::EINVAL;
        }
    };
    let name = format!("osd.{whoami}");
    run(&name, conf, foreground, move |ctx| {
        let osd = start_osd(ctx, &whoami.to_string())?;
        if let Err(e) = osd.wait_for_up(OSD_BOOT_TIMEOUT) {
            let _ = osd.shutdown();
            let mon = ctx.conf().get_str("mon_host");
            return Err(Error::new(
                e.errno,
                format!(
                    "the monitor at {mon} did not mark osd.{whoami} up within {OSD_BOOT_TIMEOUT:?} (is it running?): {}",
                    e.msg
                ),
            ));
        }
        log::info!(target: "osd", "osd.{whoami} up at {}", osd.addr());
        // An OSD that gives up on its own (marked down too often, a slow disk) ends its process,
        // as Ceph's does: the watch sends the process the SIGTERM a stop would.
        let osd = std::sync::Arc::new(osd);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (o2, s2) = (osd.clone(), stop.clone());
        let watch = crate::common::log::ThreadBuilder::new()
            .name("osd_watch".into())
            .spawn(move || {
                while !s2.load(std::sync::atomic::Ordering::Acquire) {
                    if let Some(why) = o2.gave_up() {
                        log::error!(target: "osd", "osd.{whoami}: {why}: stopping");
                        // SAFETY: kill(2) on our own pid; the signal_handler thread takes it.
                        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .map_err(|e| Error::io(e, "spawning osd_watch"))?;
        Ok(Box::new(move || {
            stop.store(true, std::sync::atomic::Ordering::Release);
            let _ = watch.join();
            if let Err(e) = osd.shutdown() {
                log::error!(target: "osd", "osd.{whoami} shutdown: {e}");
            }
        }))
    })
}

/// `osdkit manager -c CONF [-i NAME] [-f]`: the OSD manager, a daemon hosting many OSD
/// instances (`client.manager-NAME`, admin socket `$run_dir/$cluster-client.manager-NAME.asok`),
/// started and stopped by `osd start|stop|restart <id>` on its socket; restores the instances
/// it ran before a crash from `osd_manager_data`.
pub fn run_manager(conf: &Path, id: &str, foreground: bool) -> i32 {
    let name = format!("client.manager-{id}");
    let conf_path = conf.to_path_buf();
    run(&name, conf, foreground, move |ctx| {
        let data = ctx.conf().get_str("osd_manager_data");
        if data.is_empty() {
            return Err(Error::inval(
                "osd_manager_data is not set: name the manager's state directory",
            ));
        }
        let m = crate::hosting::manager::OsdManager::start(ctx, &conf_path, ctx.cluster(), Path::new(&data))?;
        log::info!(target: "osd", "{}: hosting {} OSD(s), state in {data}", ctx.name(), m.states().len());
        Ok(Box::new(move || m.shutdown()))
    })
}

/// `osdkit supervise -c CONF -i ID [--manager NAME | --asok PATH] [-f]`: the supervisor of
/// osd.ID hosted by an `osdkit manager` (see [`super::supervise`]); its entity is
/// `client.supervise-ID`. Started, it has asked the manager to start the OSD.
pub fn run_supervise(conf: &Path, id: &str, manager: &str, asok: Option<&Path>, foreground: bool) -> i32 {
    let whoami: i32 = match id.parse() {
        Ok(n) if n >= 0 => n,
        _ => {
            eprintln!("supervise: an OSD id is a non-negative number, not '{id}'");
            return libc::EINVAL;
        }
    };
    let name = format!("client.supervise-{whoami}");
    let (manager, asok) = (manager.to_string(), asok.map(Path::to_path_buf));
    run(&name, conf, foreground, move |ctx| {
        let m = super::supervise::manager_asok(ctx, &manager, asok.as_deref());
        super::supervise::start(ctx, whoami, m)
    })
}
