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

/// 4 KiB that name their object and sequence number: `OID:SEQ:` then dots.
pub fn seq_content(oid: &str, seq: u64) -> Vec<u8> {
    let mut v = format!("{oid}:{seq}:").into_bytes();
    v.resize(4096, b'.');
    v
}

/// Writer threads overwriting objects `<prefix><t>-<n % objects>` of pool `data` with
/// increasing sequence numbers, and what each object last had acknowledged.
pub struct SeqWriters {
    pub acked: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, u64>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl SeqWriters {
    pub fn start(client: &std::sync::Arc<osdkit::client::Rados>, prefix: &str, writers: usize, objects: u64) -> Self {
        let acked: std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<String, u64>>> = Default::default();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..writers)
            .map(|t| {
                let (client, acked, stop, prefix) = (client.clone(), acked.clone(), stop.clone(), prefix.to_string());
                std::thread::spawn(move || {
                    let mut seq = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        seq += 1;
                        let oid = format!("{prefix}{t}-{}", seq % objects);
                        if client.put("data", &oid, &seq_content(&oid, seq)).is_ok() {
                            acked.lock().insert(oid, seq);
                        }
                    }
                })
            })
            .collect();
        SeqWriters { acked, stop, threads }
    }

    /// Sum of the acknowledged sequence numbers: grows while writes complete.
    pub fn progress(&self) -> u64 {
        self.acked.lock().values().sum()
    }

    /// Stops the writers and checks that every acknowledged object reads back intact, at its
    /// last acknowledged sequence or newer (a write that committed but whose ack was lost).
    pub fn finish_and_check(self, client: &osdkit::client::Rados) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        for (oid, seq) in self.acked.lock().iter() {
            let got = client
                .get("data", oid)
                .unwrap_or_else(|e| panic!("acknowledged {oid} lost: {e}"));
            let got_seq: u64 = String::from_utf8_lossy(&got[..64])
                .split(':')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{oid}: unreadable"));
            assert!(
                got_seq >= *seq,
                "{oid}: seq {got_seq} older than the acknowledged {seq}"
            );
            assert!(got[..] == seq_content(oid, got_seq)[..], "{oid} corrupt");
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a monitor's `mon_host`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `osd create <id>` on `mon` for each id: as in Ceph, an OSD must exist before it boots.
pub fn osd_create(mon: &osdkit::mon::Monitor, ids: impl IntoIterator<Item = i32>) {
    for id in ids {
        let (r, rs, _) = mon.command(&format!(r#"{{"prefix":"osd create","id":{id}}}"#));
        assert_eq!(r, 0, "osd create {id}: {rs}");
    }
}

/// `osd_create` on a hosted monitor.
pub fn hosted_osd_create(mon: &osdkit::hosting::instance::HostedDaemon, ids: impl IntoIterator<Item = i32>) {
    mon.with_mon(|m| osd_create(m, ids)).expect("the monitor runs");
}
