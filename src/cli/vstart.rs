//! `osdkit vstart` and `osdkit stop`: a local cluster of daemon processes in one directory, as
//! Ceph's `vstart.sh` makes one.
//!
//! `vstart` writes `DIR/osdkit.conf`, starts `osdkit mon -i a` and N `osdkit osd -i K` processes
//! (this same binary), waits until the monitor's map shows all N up, and creates pool `data`.
//! Pid files and admin sockets go under `DIR/run`, logs to `DIR/$name.log`, monitor and OSD data
//! to `DIR/mon.a` and `DIR/osd.K`. `stop` signals every daemon whose pid file is under
//! `DIR/run` and waits for each to exit; it deletes nothing but stale pid files.

use super::client::ClusterClient;
use super::{live_pid, pid_alive, send_signal};
use crate::types::osdmap::fsid_to_string;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The config file vstart writes in its directory.
pub const CONF_NAME: &str = "osdkit.conf";
/// How long `stop` waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
const UP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct VstartOpts {
    pub dir: PathBuf,
    pub osds: u32,
    /// `mem` or `kv`.
    pub store: String,
    /// Size (replicas) of pool `data`.
    pub size: u32,
    /// The `osdkit` binary to run the daemons with.
    pub exe: PathBuf,
    /// Extra `[global]` options (`-o KEY=VALUE`, like Ceph's `vstart.sh -o`).
    pub options: Vec<(String, String)>,
    /// The OSDs in one `osdkit manager`, each with an `osdkit supervise`.
    pub manager: bool,
}

/// The run directory of a vstart cluster.
pub fn run_dir(dir: &Path) -> PathBuf {
    dir.join("run")
}

/// The config file text vstart writes.
pub fn conf_text(dir: &Path, mon_port: u16, store: &str) -> String {
    let d = dir.display();
    format!(
        "; written by osdkit vstart\n\
         [global]\n\
         \tmon_host = v2:127.0.0.1:{mon_port}\n\
         \trun_dir = {d}/run\n\
         \tlog_file = {d}/$name.log\n\
         \tosd_manager_data = {d}/$name\n\
         \t; every OSD is on this host: count failure reporters per OSD, as Ceph's vstart does\n\
         \tmon_osd_reporter_subtree_level = osd\n\
         \n\
         [mon]\n\
         \tmon_data = {d}/mon.$id\n\
         \n\
         [osd]\n\
         \tosd_data = {d}/osd.$id\n\
         \tosd_objectstore = {store}\n"
    )
}

/// Daemons with a live pid file under `run_dir`: `(name, pid, pid file)`, sorted by name.
pub fn running_daemons(run_dir: &Path) -> Vec<(String, i32, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, i32, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            Some((name, live_pid(&p)?, p))
        })
        .collect();
    v.sort();
    v
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io(e, "finding a free port"))?;
    Ok(l.local_addr().map_err(|e| Error::io(e, "finding a free port"))?.port())
}

fn daemon_cmd(exe: &Path, what: &str, conf: &Path, id: &str) -> Command {
    let mut c = Command::new(exe);
    c.arg(what)
        .arg("-c")
        .arg(conf)
        .args(["-i", id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn check_exit(name: &str, out: std::io::Result<std::process::Output>) -> Result<()> {
    let out = out.map_err(|e| Error::io(e, format!("running the {name} process")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(Error::new(
        libc::EIO,
        format!(
            "{name} did not start ({}): {}",
            out.status,
            if err.is_empty() { "no message" } else { &err }
        ),
    ))
}

/// Starts the cluster; `progress` gets a line per step. Returns the summary (also what
/// `--json` prints). On failure, whatever was started is stopped again.
pub fn vstart(o: &VstartOpts, progress: &mut dyn FnMut(&str)) -> Result<Value> {
    if o.store != "mem" && o.store != "kv" {
        return Err(Error::inval(format!("--store {}: mem or kv", o.store)));
    }
    if o.osds == 0 || o.osds > 64 {
        return Err(Error::inval(format!("--osds {}: 1 to 64", o.osds)));
    }
    if o.size == 0 || o.size > o.osds {
        return Err(Error::inval(format!(
            "--size {}: a pool of size R needs at least R OSDs (have {})",
            o.size, o.osds
        )));
    }
    std::fs::create_dir_all(&o.dir).map_err(|e| Error::io(e, format!("creating {}", o.dir.display())))?;
    let dir = o
        .dir
        .canonicalize()
        .map_err(|e| Error::io(e, format!("resolving {}", o.dir.display())))?;
    let run = run_dir(&dir);
    let running = running_daemons(&run);
    if !running.is_empty() {
        let names: Vec<String> = running.iter().map(|(n, p, _)| format!("{n} (pid {p})")).collect();
        return Err(Error::exists(format!(
            "a cluster is already running in {}: {}; run `osdkit stop --dir {}` first",
            dir.display(),
            names.join(", "),
            dir.display()
        )));
    }
    std::fs::create_dir_all(&run).map_err(|e| Error::io(e, format!("creating {}", run.display())))?;
    let conf = dir.join(CONF_NAME);
    let port = free_port()?;
    let mut text = conf_text(&dir, port, &o.store);
    if !o.options.is_empty() {
        // Checked now, so a typo fails here and not in a daemon's log.
        let probe = crate::common::config::Config::new(
            crate::common::entity::EntityName::new(crate::common::entity::EntityType::Osd, "0"),
            "ceph",
        );
        let mut extra = String::from("\t; given to vstart with -o\n");
        for (k, v) in &o.options {
            probe.set_val(k, v, crate::common::config::ConfLevel::File)?;
            extra.push_str(&format!("\t{k} = {v}\n"));
        }
        text = text.replacen("\n[mon]\n", &format!("{extra}\n[mon]\n"), 1);
    }
    std::fs::write(&conf, text).map_err(|e| Error::io(e, format!("writing {}", conf.display())))?;
    progress(&format!("wrote {}", conf.display()));

    let mut started = || -> Result<Value> {
        progress(&format!("starting mon.a on v2:127.0.0.1:{port}"));
        check_exit("mon.a", daemon_cmd(&o.exe, "mon", &conf, "a").output())?;
        let client = ClusterClient::connect(&conf)?;
        // As Ceph's vstart.sh does with `osd new`: an OSD must exist before it boots.
        for i in 0..o.osds {
            client
                .mon_command(&json!({"prefix": "osd create", "id": i}))
                .map_err(|e| Error::new(e.errno, format!("osd create {i}: {}", e.msg)))?;
        }
        let what = if o.manager {
            progress("starting client.manager-a");
            check_exit("client.manager-a", daemon_cmd(&o.exe, "manager", &conf, "a").output())?;
            progress(&format!(
                "starting {} OSD(s) ({} store) in it, each with a supervisor",
                o.osds, o.store
            ));
            "supervise"
        } else {
            progress(&format!("starting {} OSD(s) ({} store)", o.osds, o.store));
            "osd"
        };
        let children: Vec<(String, std::io::Result<std::process::Child>)> = (0..o.osds)
            .map(|i| {
                (
                    format!("osd.{i}"),
                    daemon_cmd(&o.exe, what, &conf, &i.to_string()).spawn(),
                )
            })
            .collect();
        let mut first_err = None;
        for (name, child) in children {
            let r = child
                .and_then(|c| c.wait_with_output())
                .map_err(|e| Error::io(e, format!("running the {name} process")))
                .and_then(|out| check_exit(&name, Ok(out)));
            match r {
                Ok(()) => progress(&format!("  {name} up")),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let n = o.osds as usize;
        client
            .monc()
            .wait_for_map(UP_TIMEOUT, |m| (0..o.osds as i32).filter(|i| m.is_up(*i)).count() == n)
            .map_err(|e| {
                Error::new(
                    e.errno,
                    format!("the monitor's map never showed all {n} OSDs up: {}", e.msg),
                )
            })?;
        progress(&format!(
            "all {n} OSD(s) up; creating pool 'data' (size {}, 32 PGs)",
            o.size
        ));
        let pool = match client.pool_create("data", 32, o.size) {
            Ok(v) => v,
            Err(e) if e.errno == libc::EEXIST => json!({"pool": "data"}),
            Err(e) => return Err(Error::new(e.errno, format!("creating pool 'data': {}", e.msg))),
        };
        let mut st = client.status();
        let map = client.osdmap();
        client.shutdown();
        let mon_pid = live_pid(&run.join("mon.a.pid"));
        if let Some(p) = map.pool_by_name("data") {
            st["pool"] = json!({"name": "data", "id": p.id, "size": p.size, "pg_num": p.pg_num});
        } else {
            st["pool"] = pool;
        }
        st["dir"] = json!(dir.display().to_string());
        st["conf"] = json!(conf.display().to_string());
        st["store"] = json!(o.store);
        st["mon_pid"] = json!(mon_pid);
        st["manager"] = json!(o.manager);
        st["fsid"] = json!(fsid_to_string(&map.fsid));
        Ok(st)
    };
    match started() {
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = stop(&dir, &mut |_| {});
            Err(e)
        }
    }
}

/// Stops every daemon with a live pid file under `DIR/run`: SIGTERM, then SIGKILL (with a
/// message through `progress`) for any still running after [`STOP_GRACE`]. Returns what was
/// stopped.
pub fn stop(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<Value> {
    let run = run_dir(dir);
    // OSDs (and anything else) first, the monitor last, so no OSD is left looking for it.
    let (mons, others): (Vec<_>, Vec<_>) = running_daemons(&run)
        .into_iter()
        .partition(|(name, _, _)| name.starts_with("mon."));
    let mut report = stop_all(&others, progress);
    report.extend(stop_all(&mons, progress));
    let failed: Vec<String> = report
        .iter()
        .filter(|r| r["stopped"] == json!(false))
        .map(|r| format!("{} (pid {})", r["name"].as_str().unwrap_or("?"), r["pid"]))
        .collect();
    if !failed.is_empty() {
        return Err(Error::new(libc::EBUSY, format!("could not stop {}", failed.join(", "))));
    }
    Ok(json!({"dir": dir.display().to_string(), "stopped": report}))
}

/// SIGTERM to each of `daemons`, a wait of [`STOP_GRACE`], SIGKILL for the ones left.
fn stop_all(daemons: &[(String, i32, PathBuf)], progress: &mut dyn FnMut(&str)) -> Vec<Value> {
    for (name, pid, _) in daemons {
        if send_signal(*pid, libc::SIGTERM) {
            progress(&format!("stopping {name} (pid {pid})"));
        }
    }
    // Gone means both: the process has ended (a clean exit releases the pid file a moment
    // before), and its pid file lock is released (a killed process's leader thread can look
    // dead while its other threads still hold the file). The pid was read from a file it held
    // just now, so it cannot have been reused yet.
    let gone = |pid: i32, file: &Path| !pid_alive(pid) && live_pid(file) != Some(pid);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && !daemons.iter().all(|(_, p, f)| gone(*p, f)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut report = Vec::new();
    for (name, pid, file) in daemons {
        let mut killed = false;
        if !gone(*pid, file) {
            progress(&format!(
                "{name} (pid {pid}) still running {STOP_GRACE:?} after SIGTERM: sending SIGKILL"
            ));
            send_signal(*pid, libc::SIGKILL);
            killed = true;
            let d2 = Instant::now() + Duration::from_secs(5);
            while Instant::now() < d2 && !gone(*pid, file) {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Its pid file is stale now; nothing else is removed.
            if live_pid(file).is_none() {
                let _ = std::fs::remove_file(file);
            }
        }
        let stopped = gone(*pid, file);
        report.push(json!({"name": name, "pid": pid, "killed": killed, "stopped": stopped}));
    }
    report
}
