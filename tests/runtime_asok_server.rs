//! The admin socket over a real Unix socket: wire format, file handling, bad input, slow clients.

use osdkit::asok::client::AdminSocketClient;
use osdkit::Context;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn started(dir: &Path, name: &str) -> Context {
    let ctx = Context::new(name, None).unwrap();
    ctx.set_option("run_dir", dir.to_str().unwrap()).unwrap();
    ctx.set_option("log_file", dir.join(format!("{name}.log")).to_str().unwrap())
        .unwrap();
    ctx.start().unwrap();
    ctx
}

/// Sends raw bytes, returns the reply payload or None when the server closed without one.
fn raw(path: &Path, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if s.write_all(bytes).is_err() {
        return None;
    }
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return None;
    }
    let mut out = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut out).ok()?;
    Some(out)
}

#[test]
fn wire_format_matches_ceph() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.0");
    let path = ctx.asok_path().unwrap();
    assert_eq!(path, dir.path().join("ceph-osd.0.asok"));
    // The ping of reference §1.3, byte for byte.
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"{\"prefix\":\"0\"}\0").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert_eq!(all, [0, 0, 0, 1, b'2']);
    // A newline ends a request too; the legacy binary form (0 + BE u32) still works.
    assert_eq!(raw(&path, b"{\"prefix\":\"0\"}\n").unwrap(), b"2");
    let legacy = raw(&path, &[0, 0, 0, 0, 0]).unwrap();
    assert_eq!(legacy, b"2");
    let legacy_dump = raw(&path, &[0, 0, 0, 0, 1]).unwrap();
    assert!(serde_json::from_slice::<Value>(&legacy_dump).unwrap().is_object());
    let v: Value =
        serde_json::from_slice(&raw(&path, b"{\"prefix\":\"version\",\"format\":\"json\"}\0").unwrap()).unwrap();
    assert_eq!(v["version"], osdkit::VERSION);
    // json-pretty is the default: 4-space indent and a final newline, like Ceph's formatter.
    let pretty = String::from_utf8(raw(&path, b"{\"prefix\":\"version\"}\0").unwrap()).unwrap();
    assert!(
        pretty.starts_with("{\n    \"version\": ") && pretty.ends_with("}\n"),
        "{pretty}"
    );
    assert_eq!(
        raw(&path, b"{\"prefix\":\"nonexistent\"}\0").unwrap(),
        b"ERROR: (22) Invalid argument\nunknown command prefix nonexistent\n"
    );
    ctx.shutdown();
}

#[test]
fn socket_file_mode_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.1");
    let path = ctx.asok_path().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    ctx.shutdown();
    assert!(!path.exists(), "socket file removed at shutdown");

    let ctx = Context::new("osd.2", None).unwrap();
    ctx.set_option("run_dir", dir.path().to_str().unwrap()).unwrap();
    ctx.set_option("admin_socket_mode", "0640").unwrap();
    ctx.start().unwrap();
    let mode = std::fs::metadata(ctx.asok_path().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
    ctx.shutdown();
}

#[test]
fn stale_socket_is_replaced_live_one_never_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ceph-osd.3.asok");
    // A socket file nobody listens on: what a crashed daemon leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let a = started(dir.path(), "osd.3");
    AdminSocketClient::new(&path).ping().unwrap();

    // A second daemon configured with the same path must fail, and the first keeps serving.
    let b = Context::new("osd.3", None).unwrap();
    b.set_option("run_dir", dir.path().to_str().unwrap()).unwrap();
    let e = b.start().unwrap_err();
    assert_eq!(e.errno, libc::EEXIST, "{e}");
    assert!(e.msg.contains("in use"), "{e}");
    AdminSocketClient::new(&path).ping().unwrap();
    a.shutdown();

    // A regular file at the path is not ours to delete.
    std::fs::write(&path, b"precious").unwrap();
    let c = Context::new("osd.3", None).unwrap();
    c.set_option("run_dir", dir.path().to_str().unwrap()).unwrap();
    assert_eq!(c.start().unwrap_err().errno, libc::EEXIST);
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");

    // A path longer than sun_path allows is refused up front.
    let d = Context::new("osd.4", None).unwrap();
    d.set_option("admin_socket", &format!("/tmp/{}/x.asok", "a".repeat(120)))
        .unwrap();
    assert_eq!(d.start().unwrap_err().errno, libc::ENAMETOOLONG);
}

/// A small deterministic generator: the test must not depend on a random crate or on luck.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn bad_input_gets_errors_and_the_socket_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.5");
    let path = ctx.asok_path().unwrap();

    // Clients that connect and never send anything, held open during the whole flood.
    let idle: Vec<UnixStream> = (0..64).map(|_| UnixStream::connect(&path).unwrap()).collect();
    // A client that sent half a request and stalls.
    let mut half = UnixStream::connect(&path).unwrap();
    half.write_all(b"{\"prefix\":\"ver").unwrap();

    let mut rng = XorShift(0x9e3779b97f4a7c15);
    let templates: Vec<Vec<u8>> = vec![
        b"{nope".to_vec(),
        b"[]".to_vec(),
        b"\"str\"".to_vec(),
        b"{\"prefix\":42}".to_vec(),
        b"{\"prefix\":\"version\",\"format\":[1]}".to_vec(),
        b"{\"prefix\":\"config get\"}".to_vec(),
        b"{\"prefix\":\"config get\",\"var\":\"no_such_option\"}".to_vec(),
        b"{\"prefix\":\"config set\",\"var\":\"debug_ms\",\"val\":[\"not-a-level\"]}".to_vec(),
        b"{\"prefix\":\"perf dump\",\"logger\":{\"nested\":1}}".to_vec(),
        b"{\"prefix\":\"perf reset\",\"var\":7}".to_vec(),
        b"{\"prefix\":\"\xff\xfe\"}".to_vec(),
        b"{\"prefix\":\"perf dump\",\"logger\":[1,\"a\"]}".to_vec(),
    ];
    let (mut errors, mut closed, mut ok) = (0, 0, 0);
    for i in 0..3000 {
        let mut req = match i % 4 {
            0 => templates[i / 4 % templates.len()].clone(),
            1 => {
                // Random bytes without terminators inside.
                let n = (rng.next() % 300) as usize;
                rng.bytes(n)
                    .into_iter()
                    .map(|b| if b == 0 || b == b'\n' { b'x' } else { b })
                    .collect()
            }
            2 => {
                // A valid request corrupted at one byte.
                let mut r = b"{\"prefix\":\"perf dump\",\"logger\":\"x\"}".to_vec();
                let at = (rng.next() as usize) % r.len();
                r[at] = (rng.next() as u8).max(1);
                r
            }
            _ => {
                // A valid request cut short: the connection then closes.
                let r = b"{\"prefix\":\"config show\"}";
                let cut = (rng.next() as usize) % r.len();
                let mut s = UnixStream::connect(&path).unwrap();
                s.write_all(&r[..cut]).unwrap();
                drop(s);
                closed += 1;
                continue;
            }
        };
        req.push(0);
        match raw(&path, &req) {
            Some(reply) if reply.starts_with(b"ERROR: (") => errors += 1,
            Some(reply) => {
                // A corruption can still be a valid request (e.g. inside the logger string).
                assert!(
                    serde_json::from_slice::<Value>(&reply).is_ok(),
                    "{}",
                    String::from_utf8_lossy(&reply)
                );
                ok += 1;
            }
            None => closed += 1,
        }
    }
    // Oversized: no terminator within the limit gets an ERROR reply, not a hang.
    let big = vec![b'a'; osdkit::asok::server::MAX_REQUEST + 10];
    let reply = raw(&path, &big).unwrap();
    assert!(
        reply.starts_with(b"ERROR: (90) Message too long"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(errors > 1500, "errors={errors} ok={ok} closed={closed}");

    let t = Instant::now();
    let v: Value = serde_json::from_str(
        &AdminSocketClient::new(&path)
            .request(&json!({"prefix": "version"}))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["version"], osdkit::VERSION);
    // Generous bound: this is a liveness check (the idle clients must not block others), not a
    // benchmark. A server that waited on its idle clients would stall READ_TIMEOUT (5 s) for
    // each of the 65 held open here.
    assert!(t.elapsed() < Duration::from_secs(10), "version took {:?}", t.elapsed());
    drop(idle);
    drop(half);
    ctx.shutdown();
}

#[test]
fn a_client_that_does_not_read_its_reply_does_not_stall_others() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.6");
    let path = ctx.asok_path().unwrap();
    // Several large replies nobody reads: they sit in socket buffers or our write queue.
    let sluggish: Vec<UnixStream> = (0..8)
        .map(|_| {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"{\"prefix\":\"config show\"}\0").unwrap();
            s
        })
        .collect();
    let client = AdminSocketClient::new(&path).with_timeout(Duration::from_secs(3));
    for _ in 0..50 {
        client.ping().unwrap();
    }
    drop(sluggish);
    ctx.shutdown();
}

#[test]
fn parallel_clients_all_get_their_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.7");
    ctx.register_command(
        "echo name=msg,type=CephString",
        "echo",
        std::sync::Arc::new(|r: &osdkit::asok::Request<'_>| Ok(r.arg_str("msg").unwrap())),
    )
    .unwrap();
    let path: PathBuf = ctx.asok_path().unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let path = &path;
            s.spawn(move || {
                let c = AdminSocketClient::new(path);
                for i in 0..100 {
                    let msg = format!("t{t}-{i}");
                    assert_eq!(c.request(&json!({"prefix": "echo", "msg": msg})).unwrap(), msg);
                }
            });
        }
    });
    ctx.shutdown();
}
