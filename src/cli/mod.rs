//! The `osdkit` command's logic: one daemon per process (`osdkit mon`, `osdkit osd`), a local
//! cluster of them (`osdkit vstart` / `osdkit stop`), the client commands that talk to a
//! running cluster (`status`, `pool`, `put`/`get`/...), `bench`, `ping` and `demo`.
//!
//! Every daemon takes its pid file as `$run_dir/$name.pid` unless `pid_file` is configured, and
//! its admin socket from `admin_socket` (default `$run_dir/$cluster-$name.asok`), so a cluster's
//! processes are found from its config file alone.

pub mod bench_hosting;
pub mod bench_msgr;
pub mod bench_osd;
pub mod client;
pub mod conventions;
pub mod daemons;
pub mod demo;
pub mod ping;
pub mod report;
pub mod supervise;
pub mod vstart;

use crate::common::config::Config;
use crate::Result;
use std::path::{Path, PathBuf};

/// The pid file default when `pid_file` is not configured.
pub const DEFAULT_PID_FILE: &str = "$run_dir/$name.pid";

/// The config of entity `name` (`osd.3`) as the daemon would read it from `conf`.
pub fn load_conf(name: &str, conf: &Path) -> Result<Config> {
    let c = Config::new(name.parse()?, "ceph");
    c.parse_file(conf)?;
    Ok(c)
}

pub use crate::client::rados::parse_mon_host;

/// Where the daemon of `conf` keeps its pid file (configured, or the default under `run_dir`).
pub fn pid_file_of(conf: &Config) -> PathBuf {
    let p = conf.get_str("pid_file");
    if p.is_empty() {
        PathBuf::from(conf.expand_meta(DEFAULT_PID_FILE))
    } else {
        PathBuf::from(p)
    }
}

/// The live process holding the pid file at `path`, if any.
pub fn live_pid(path: &Path) -> Option<i32> {
    crate::daemon::is_locked(path).ok().flatten()
}

/// Whether `pid` is a live (not zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 delivers nothing; it only asks whether the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    if !exists {
        return false;
    }
    // A zombie still "exists" until reaped; it is not running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|st| st != "Z" && st != "X"),
        Err(_) => true,
    }
}

/// Sends `sig` to `pid`; false when there is no such process.
pub fn send_signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) == 0 }
}
