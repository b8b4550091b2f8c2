//! Helpers shared by the messenger integration tests (each test file is its own crate and
//! uses only some of them).
#![allow(dead_code)]

use osdkit::common::formatter::{render, Format};
use osdkit::Context;
use std::time::{Duration, Instant};

/// A started context without admin socket or log file, with `opts` set first.
pub fn ctx(name: &str, opts: &[(&str, &str)]) -> Context {
    let c = Context::new(name, None).unwrap();
    c.set_option("admin_socket", "").unwrap();
    c.set_option("log_file", "").unwrap();
    for (k, v) in opts {
        c.set_option(k, v).unwrap();
    }
    c.start().unwrap();
    c
}

/// Polls `f` every 2 ms; fails the test after `secs`.
pub fn wait_for(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `c`'s perf dump as JSON.
pub fn perf_dump(c: &Context) -> serde_json::Value {
    serde_json::from_str(&render(&c.perf().dump(None, None), Format::Json)).unwrap()
}

/// Sum of one counter over the `AsyncMessenger::Worker-N` loggers of `c`'s perf dump.
pub fn worker_counter(c: &Context, counter: &str) -> u64 {
    let v = perf_dump(c);
    let obj = v.as_object().expect("perf dump is an object");
    let workers: Vec<_> = obj
        .iter()
        .filter(|(k, _)| k.starts_with("AsyncMessenger::Worker-"))
        .collect();
    assert!(!workers.is_empty(), "no AsyncMessenger::Worker-N in perf dump: {v}");
    workers
        .iter()
        .map(|(k, w)| {
            w[counter]
                .as_u64()
                .unwrap_or_else(|| panic!("{k} has no {counter}: {w}"))
        })
        .sum()
}

/// Runs the `osdkit` command (the test's build) to success and returns its stdout.
pub fn osdkit_ok(args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "osdkit {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `osdkit stop --dir` of a vstart cluster when dropped (also when the test fails).
pub struct StopCluster(pub String);
impl Drop for StopCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_osdkit"))
            .args(["stop", "--dir", &self.0])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
