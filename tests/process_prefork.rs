//! `prefork` runs in a separate, single-threaded process: the test harness has threads.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `cargo test` builds examples next to the test binaries' parent directory.
fn probe_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("prefork_probe")
}

fn probe(args: &[&str]) -> Output {
    Command::new(probe_path()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn ready_child_detaches_and_parent_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    // `output()` returns only once every holder of the stdout/stderr pipes closed them, so
    // returning at all shows the daemon let go of our pipes.
    let out = probe(&["ready", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("child before ready"), "{stdout}");
    assert!(!stdout.contains("after ready"), "{stdout}");
    assert!(!stderr(&out).contains("after ready"), "{}", stderr(&out));

    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&report) {
            break t;
        }
        assert!(Instant::now() < deadline, "daemon never wrote its report");
        std::thread::sleep(Duration::from_millis(10));
    };
    let v: Vec<i32> = text.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(v[0], v[1], "daemon is not a session leader: {text}");
}

#[test]
fn child_failure_is_printed_by_the_parent() {
    let out = probe(&["fail"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "(2) No such file or directory: no such thing\n");
}

#[test]
fn silent_exit_reports_the_status() {
    let out = probe(&["exit"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "(5) Input/output error: daemon exited during startup (status 3)\n"
    );
}

#[test]
fn death_by_signal_is_reported() {
    let out = probe(&["kill"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("daemon killed by signal 9 during startup"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn threaded_process_is_refused() {
    let out = probe(&["threads"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("before any thread is started"),
        "{}",
        stderr(&out)
    );
}
