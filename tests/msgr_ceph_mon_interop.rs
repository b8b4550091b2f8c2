//! msgr2 against the real thing: a throwaway Ceph 16 `ceph-mon` (Debian's package, auth none)
//! on loopback, reached by `osdkit ping`. Skipped with a message when ceph-mon is not
//! installed, unless OSDKIT_REQUIRE_CEPH=1 (the test command sets it) makes that a failure.

use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Mon {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Mon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a one-monitor cluster with auth none listening on a free loopback port (msgr2 only).
fn start_mon() -> Option<Mon> {
    if !have("ceph-mon") || !have("monmaptool") {
        assert!(
            std::env::var("OSDKIT_REQUIRE_CEPH").as_deref() != Ok("1"),
            "ceph-mon is required (OSDKIT_REQUIRE_CEPH=1) but not installed: apt-get install ceph-mon"
        );
        eprintln!("SKIP: ceph-mon not installed (apt-get install ceph-mon)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let fsid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .unwrap()
        .trim()
        .to_string();
    let conf = d.join("ceph.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nfsid = {fsid}\nmon host = v2:127.0.0.1:{port}\nauth cluster required = none\n\
             auth service required = none\nauth client required = none\nrun dir = {dir}/run\n\
             log file = {dir}/$name.log\nmon data = {dir}/data\nms bind msgr1 = false\n",
            dir = d.display()
        ),
    )
    .unwrap();
    let monmap = d.join("monmap");
    run(Command::new("monmaptool")
        .args([
            "--create",
            "--addv",
            "a",
            &format!("[v2:127.0.0.1:{port}]"),
            "--fsid",
            &fsid,
        ])
        .arg(&monmap));
    run(Command::new("ceph-mon")
        .args(["--mkfs", "-i", "a", "--monmap"])
        .arg(&monmap)
        .arg("-c")
        .arg(&conf));
    let child = Command::new("ceph-mon")
        .args(["-f", "-i", "a", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mon = Mon { child, port, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ceph-mon did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(mon)
}

fn osdkit(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_osdkit")).args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn ping_completes_the_msgr2_handshake_with_a_real_ceph_mon() {
    let Some(mon) = start_mon() else { return };
    let addr = format!("v2:127.0.0.1:{}", mon.port);
    // A fresh mon may refuse auth until it has formed its quorum of one (EBUSY closes the
    // connection): retry for a while, as a Ceph client would.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, out, err) = loop {
        let r = osdkit(&["ping", "--json", "--count", "5", "-i", "0.05", &addr]);
        if r.0 == Some(0) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["peer_type"], "mon");
    assert_eq!(v["peer_addrs"][0], format!("{addr}/0"));
    assert!(
        v["global_id"].as_u64().unwrap() > 0,
        "the mon assigned us a global_id: {v}"
    );
    assert_eq!(v["rtt_us"].as_array().unwrap().len(), 5);
    assert!(v["my_addr"].as_str().unwrap().contains("127.0.0.1"));

    // The text form says what happened, like ping(8).
    let (code, out, _) = osdkit(&["ping", "--count", "2", "-i", "0", &addr]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("msgr2 session with mon") && out.contains("keepalive 2 from"),
        "{out}"
    );
}

#[test]
fn ping_reports_refusals_clearly() {
    // Nothing listens: a clear error, and the errno as the exit status.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, err) = osdkit(&["ping", "--timeout", "2", &format!("v2:127.0.0.1:{port}")]);
    assert_eq!(code, Some(libc::ECONNREFUSED));
    assert!(err.contains("connect") && err.contains("refused"), "{err}");
    // A peer that is not msgr2 (here: an HTTP-ish listener that sends garbage).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, _) = l.accept().unwrap();
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        std::thread::sleep(Duration::from_millis(200));
    });
    let (code, _, err) = osdkit(&["ping", "--timeout", "5", &format!("127.0.0.1:{p}")]);
    assert_eq!(code, Some(libc::EPROTO));
    assert!(err.contains("bad banner"), "{err}");
    t.join().unwrap();
    let (code, _, err) = osdkit(&["ping", "v1:127.0.0.1:6789"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("msgr1"), "{err}");
}
