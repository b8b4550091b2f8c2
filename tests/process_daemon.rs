//! A real daemon process (examples/context_daemon.rs, built on `daemon::run_daemon`): forks,
//! reports start-up failure through the parent's exit status, holds its pid file, reopens its
//! log on SIGHUP and stops cleanly on SIGTERM.

use osdkit::asok::client::AdminSocketClient;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn daemon_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("context_daemon")
}

fn start(dir: &Path, extra: &[&str]) -> Output {
    Command::new(daemon_bin())
        .arg("osd.0")
        .args(["--run_dir", dir.to_str().unwrap()])
        .args(["--log_file", dir.join("osd.log").to_str().unwrap()])
        .args(["--pid_file", dir.join("osd.pid").to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemon_lifecycle_pidfile_sighup_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = start(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let pid: i32 = std::fs::read_to_string(dir.path().join("osd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let asok = dir.path().join("ceph-osd.0.asok");
    // The parent exits only after the child said "ready": the socket answers at once.
    let c = AdminSocketClient::new(&asok);
    assert_eq!(
        c.request(&serde_json::json!({"prefix": "echo", "msg": "hi"})).unwrap(),
        "hi"
    );

    // A second daemon with the same pid file fails (EEXIST, its exit status) and says why.
    let second = start(
        dir.path(),
        &["--admin_socket", dir.path().join("other.asok").to_str().unwrap()],
    );
    assert_eq!(second.status.code(), Some(libc::EEXIST));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("locked by pid") && err.contains(&pid.to_string()), "{err}");
    assert!(alive(pid));

    // Log rotation: move the file away, SIGHUP, and the daemon writes a fresh one.
    let log = dir.path().join("osd.log");
    std::fs::rename(&log, dir.path().join("osd.log.1")).unwrap();
    // SAFETY: sends SIGHUP to the daemon we started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_until("log reopened", || log.exists());

    // SAFETY: as above, SIGTERM.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    wait_until("daemon exit", || !alive(pid));
    assert!(!asok.exists(), "socket removed at stop");
    assert!(!dir.path().join("osd.pid").exists(), "pid file removed at stop");
}

#[test]
fn startup_failure_is_reported_by_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let out = start(dir.path(), &["--admin_socket_mode", "999"]);
    assert_eq!(out.status.code(), Some(libc::EINVAL));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin_socket_mode"), "{err}");
    assert!(!dir.path().join("osd.pid").exists());
    let bad_name = Command::new(daemon_bin()).arg("disk.0").output().unwrap();
    assert_eq!(bad_name.status.code(), Some(libc::EINVAL));
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("unknown entity type"));
}
