//! `osdkit bench msgr`: a server process and a client process over loopback, like Ceph's
//! `perf_msgr_server` / `perf_msgr_client`, with a raw-TCP twin of each mode so the two are
//! measured side by side on the same machine.
//!
//! Every message carries (stream, index, send time) in its front segment. The server checks
//! each stream's order (duplicates and reorderings counted as they arrive) and answers: the
//! whole message in ping-pong mode, a 24-byte ack in stream mode. The client keeps `depth`
//! messages in flight per connection, records round-trip times, and at the end asks the server
//! for its counts, so a lost message shows as sent minus received.

use crate::common::entity::EntityType;
use crate::common::error::{Error, Result};
use crate::msgr::addr::EntityAddr;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::Context;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T_PING: u16 = 0x7101;
const T_PONG: u16 = 0x7102;
const T_REPORT: u16 = 0x7103;
const T_REPORT_REPLY: u16 = 0x7104;
const FRONT_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One message in flight per connection, echoed whole: round-trip latency.
    PingPong,
    /// `depth` messages in flight per connection, acked: throughput.
    Stream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The messenger (msgr2, crc mode).
    Msgr,
    /// Plain TCP sockets with a 12-byte length/kind header: the baseline.
    Tcp,
}

#[derive(Debug, Clone)]
pub struct BenchOpts {
    pub mode: Mode,
    pub transport: Transport,
    /// Data-segment bytes per message.
    pub size: usize,
    pub depth: usize,
    pub conns: usize,
    pub seconds: f64,
    /// `ms_inject_socket_failures` on both ends (messenger only).
    pub inject_socket_failures: u64,
    /// `ms_async_op_threads` on both ends.
    pub threads: u64,
}

#[derive(Debug, Clone, Default)]
pub struct BenchReport {
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Of `duplicated` + `reordered`: what the client saw in the replies.
    pub client_dup_reorder: u64,
    pub injected_failures: u64,
}

impl BenchReport {
    pub fn to_json(&self, o: &BenchOpts) -> serde_json::Value {
        serde_json::json!({
            "transport": match o.transport { Transport::Msgr => "msgr", Transport::Tcp => "tcp" },
            "mode": match o.mode { Mode::PingPong => "pingpong", Mode::Stream => "stream" },
            "size": o.size, "depth": o.depth, "conns": o.conns,
            "inject_socket_failures": o.inject_socket_failures,
            "messages": self.messages, "bytes": self.bytes, "seconds": self.seconds,
            "msgs_per_sec": self.msgs_per_sec, "mib_per_sec": self.mib_per_sec,
            "p50_us": self.p50_us, "p99_us": self.p99_us,
            "lost": self.lost, "duplicated": self.duplicated, "reordered": self.reordered,
            "injected_failures": self.injected_failures,
            "client_dup_reorder": self.client_dup_reorder,
        })
    }
}

fn front(stream: u64, idx: u64, t_ns: u64) -> Bytes {
    let mut f = Vec::with_capacity(FRONT_LEN);
    f.extend_from_slice(&stream.to_le_bytes());
    f.extend_from_slice(&idx.to_le_bytes());
    f.extend_from_slice(&t_ns.to_le_bytes());
    Bytes::from(f)
}

fn parse_front(f: &[u8]) -> Option<(u64, u64, u64)> {
    if f.len() < FRONT_LEN {
        return None;
    }
    let u = |i: usize| u64::from_le_bytes(f[i..i + 8].try_into().expect("8 bytes"));
    Some((u(0), u(8), u(16)))
}

/// Per-stream order checking, shared by both transports' servers and clients.
#[derive(Default)]
struct OrderCheck {
    next: HashMap<u64, u64>,
    received: u64,
    duplicated: u64,
    reordered: u64,
}

impl OrderCheck {
    fn see(&mut self, stream: u64, idx: u64) {
        self.received += 1;
        let want = self.next.entry(stream).or_insert(0);
        match idx.cmp(want) {
            std::cmp::Ordering::Less => self.duplicated += 1,
            std::cmp::Ordering::Greater => {
                self.reordered += 1;
                *want = idx + 1;
            }
            std::cmp::Ordering::Equal => *want += 1,
        }
    }
    fn json(&self) -> String {
        serde_json::json!({
            "received": self.received, "duplicated": self.duplicated, "reordered": self.reordered,
            "per_stream": self.next.iter().map(|(k, v)| (k.to_string(), *v)).collect::<HashMap<_, _>>(),
        })
        .to_string()
    }
}

fn bench_ctx(name: &str, o: &BenchOpts) -> Result<Context> {
    let c = Context::new(name, None)?;
    c.set_option("admin_socket", "")?;
    c.set_option("log_file", "")?;
    c.set_option("ms_async_op_threads", &o.threads.to_string())?;
    // The bench asks for N workers to measure N: its connections spread over all of them.
    c.set_option("ms_async_worker_fill", "0")?;
    c.set_option("ms_inject_socket_failures", &o.inject_socket_failures.to_string())?;
    // A bench measures the path, not the receive throttles: no dispatch-throttle stalls.
    c.set_option("ms_dispatch_throttle_bytes", "0")?;
    c.start()?;
    Ok(c)
}

fn injected(ctx: &Context) -> u64 {
    let d = crate::common::formatter::render(&ctx.perf().dump(None, None), crate::common::formatter::Format::Json);
    let v: serde_json::Value = serde_json::from_str(&d).unwrap_or_default();
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.starts_with("AsyncMessenger::Worker-"))
                .filter_map(|(_, w)| w["msgr_injected_socket_failures"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------- server side

struct EchoServer {
    mode: Mode,
    order: Mutex<OrderCheck>,
}

impl Dispatcher for EchoServer {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.ty == T_PING || m.ty == T_REPORT
    }
    fn ms_fast_dispatch(&self, m: Message) {
        let Some(conn) = m.conn.clone() else { return };
        if m.ty == T_REPORT {
            let body = self.order.lock().json();
            let _ = conn.send_message(Message::new(T_REPORT_REPLY, body));
            return;
        }
        let Some((stream, idx, _)) = parse_front(&m.front) else {
            return;
        };
        self.order.lock().see(stream, idx);
        let reply = match self.mode {
            Mode::PingPong => Message::new(T_PONG, m.front.clone()).with_data(m.data.clone()),
            Mode::Stream => Message::new(T_PONG, m.front.clone()),
        };
        let _ = conn.send_message(reply);
    }
}

/// The server process: binds loopback, prints `ADDR <addr>`, serves until stdin closes.
pub fn serve(o: &BenchOpts) -> Result<()> {
    match o.transport {
        Transport::Msgr => {
            let ctx = bench_ctx("osd.0", o)?;
            let m = Messenger::new(&ctx, "osd.0", None)?;
            m.set_default_policy(Policy::stateful_server());
            m.add_dispatcher_tail(Arc::new(EchoServer {
                mode: o.mode,
                order: Mutex::new(OrderCheck::default()),
            }));
            let addr = m.bind("127.0.0.1:0".parse().expect("literal"))?;
            m.start()?;
            println!("ADDR {addr}");
            std::io::stdout().flush()?;
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            m.shutdown();
            ctx.shutdown();
        }
        Transport::Tcp => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            println!("ADDR {}", l.local_addr()?);
            std::io::stdout().flush()?;
            let mode = o.mode;
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    std::thread::spawn(move || {
                        let _ = tcp_echo(s, mode);
                    });
                }
            });
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
    }
    Ok(())
}

/// Raw TCP frame: kind (u32), front length (u32), data length (u32), then both.
fn tcp_write(s: &mut TcpStream, kind: u32, front: &[u8], data: &[u8]) -> std::io::Result<()> {
    let mut h = [0u8; 12];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[4..8].copy_from_slice(&(front.len() as u32).to_le_bytes());
    h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
    let mut bufs = [
        std::io::IoSlice::new(&h),
        std::io::IoSlice::new(front),
        std::io::IoSlice::new(data),
    ];
    let mut bufs: &mut [std::io::IoSlice<'_>] = &mut bufs;
    while !bufs.is_empty() {
        let n = s.write_vectored(bufs)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

fn tcp_read(s: &mut TcpStream, front: &mut Vec<u8>, data: &mut Vec<u8>) -> std::io::Result<u32> {
    let mut h = [0u8; 12];
    s.read_exact(&mut h)?;
    let kind = u32::from_le_bytes(h[0..4].try_into().expect("4"));
    let fl = u32::from_le_bytes(h[4..8].try_into().expect("4")) as usize;
    let dl = u32::from_le_bytes(h[8..12].try_into().expect("4")) as usize;
    if fl > 1 << 20 || dl > 1 << 30 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "absurd length"));
    }
    front.resize(fl, 0);
    data.resize(dl, 0);
    s.read_exact(front)?;
    s.read_exact(data)?;
    Ok(kind)
}

fn tcp_echo(mut s: TcpStream, mode: Mode) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let (mut f, mut d) = (Vec::new(), Vec::new());
    let mut order = OrderCheck::default();
    loop {
        match tcp_read(&mut s, &mut f, &mut d)? as u16 {
            T_REPORT => tcp_write(&mut s, T_REPORT_REPLY as u32, order.json().as_bytes(), &[])?,
            T_PING => {
                if let Some((stream, idx, _)) = parse_front(&f) {
                    order.see(stream, idx);
                }
                let data: &[u8] = if mode == Mode::PingPong { &d } else { &[] };
                tcp_write(&mut s, T_PONG as u32, &f, data)?;
            }
            _ => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------- client side

/// Client-side state of one connection.
struct Stream {
    id: u64,
    next_idx: AtomicU64,
    in_flight: AtomicU64,
    lat_us: Mutex<Vec<u32>>,
    order: Mutex<OrderCheck>,
    conn: Mutex<Option<crate::msgr::connection::ConnectionRef>>,
    send_lock: Mutex<()>,
}

struct BenchClient {
    streams: Vec<Arc<Stream>>,
    running: AtomicBool,
    data: Bytes,
    epoch: Instant,
    report: Mutex<Vec<String>>,
    cv: Condvar,
    done: Mutex<()>,
}

impl BenchClient {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
    fn send_next(&self, st: &Stream) {
        // The first window goes out from the main thread while replies already trigger sends
        // on the worker: numbering and queueing must be one step, or two senders could queue
        // their indexes out of order.
        let _one_sender = st.send_lock.lock();
        let idx = st.next_idx.fetch_add(1, Ordering::Relaxed);
        st.in_flight.fetch_add(1, Ordering::Relaxed);
        let m = Message::new(T_PING, front(st.id, idx, self.now_ns())).with_data(self.data.clone());
        let c = st.conn.lock().clone();
        if let Some(c) = c {
            if c.send_message(m).is_err() {
                st.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Dispatcher for BenchClient {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.ty == T_PONG || m.ty == T_REPORT_REPLY
    }
    fn ms_fast_dispatch(&self, m: Message) {
        if m.ty == T_REPORT_REPLY {
            self.report.lock().push(String::from_utf8_lossy(&m.front).into_owned());
            self.cv.notify_all();
            return;
        }
        let Some((stream, idx, t)) = parse_front(&m.front) else {
            return;
        };
        let Some(st) = self.streams.get(stream as usize) else {
            return;
        };
        let rtt = self.now_ns().saturating_sub(t) / 1000;
        st.lat_us.lock().push(rtt.min(u64::from(u32::MAX)) as u32);
        st.order.lock().see(stream, idx);
        let left = st.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        if self.running.load(Ordering::Relaxed) {
            self.send_next(st);
        } else if left == 0 {
            let _g = self.done.lock();
            self.cv.notify_all();
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}

fn finish(lat: &mut [u32], sent: u64, secs: f64, size: usize, server: &[String], client: &OrderCheck) -> BenchReport {
    lat.sort_unstable();
    let (mut received, mut dups, mut reord) = (0u64, client.duplicated, client.reordered);
    for r in server {
        let v: serde_json::Value = serde_json::from_str(r).unwrap_or_default();
        received += v["received"].as_u64().unwrap_or(0);
        dups += v["duplicated"].as_u64().unwrap_or(0);
        reord += v["reordered"].as_u64().unwrap_or(0);
    }
    let messages = client.received;
    let bytes = messages * size as u64;
    BenchReport {
        messages,
        bytes,
        seconds: secs,
        msgs_per_sec: messages as f64 / secs,
        mib_per_sec: bytes as f64 / secs / (1024.0 * 1024.0),
        p50_us: percentile(lat, 0.5),
        p99_us: percentile(lat, 0.99),
        lost: sent.saturating_sub(received) + received.saturating_sub(client.received),
        duplicated: dups,
        reordered: reord,
        client_dup_reorder: client.duplicated + client.reordered,
        injected_failures: 0,
    }
}

/// Starts the server process (this binary, `bench msgr --serve`) and returns it with its
/// address.
fn spawn_server(o: &BenchOpts) -> Result<(Child, String)> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "msgr", "--serve"])
        .args(["--mode", if o.mode == Mode::PingPong { "pingpong" } else { "stream" }])
        .args([
            "--transport",
            if o.transport == Transport::Msgr { "msgr" } else { "tcp" },
        ])
        .args(["--inject-socket-failures", &o.inject_socket_failures.to_string()])
        .args(["--threads", &o.threads.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(e, "starting the bench server process"))?;
    let out = child.stdout.take().expect("piped");
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line)?;
    let Some(addr) = line.trim().strip_prefix("ADDR ") else {
        let _ = child.kill();
        return Err(Error::new(
            libc::EIO,
            format!("bench server did not start (said {line:?})"),
        ));
    };
    Ok((child, addr.to_string()))
}

/// The client side: starts the server process, runs the load, returns the figures.
pub fn run(o: &BenchOpts, progress: &mut dyn FnMut(f64, u64)) -> Result<BenchReport> {
    if o.size > 256 << 20 || o.depth == 0 || o.conns == 0 || o.conns > 1024 || o.seconds.is_nan() || o.seconds <= 0.0 {
        return Err(Error::inval(
            "need --size <= 256 MiB, --depth >= 1, 1 <= --conns <= 1024, --seconds > 0",
        ));
    }
    let (mut child, addr) = spawn_server(o)?;
    let r = match o.transport {
        Transport::Msgr => run_msgr(o, &addr, progress),
        Transport::Tcp => run_tcp(o, &addr, progress),
    };
    drop(child.stdin.take());
    let _ = child.wait();
    r
}

fn run_msgr(o: &BenchOpts, addr: &str, progress: &mut dyn FnMut(f64, u64)) -> Result<BenchReport> {
    let target: EntityAddr = addr.parse()?;
    let depth = if o.mode == Mode::PingPong { 1 } else { o.depth };
    let client = Arc::new(BenchClient {
        streams: (0..o.conns as u64)
            .map(|id| {
                Arc::new(Stream {
                    id,
                    next_idx: AtomicU64::new(0),
                    in_flight: AtomicU64::new(0),
                    lat_us: Mutex::new(Vec::new()),
                    order: Mutex::new(OrderCheck::default()),
                    conn: Mutex::new(None),
                    send_lock: Mutex::new(()),
                })
            })
            .collect(),
        running: AtomicBool::new(true),
        data: Bytes::from(vec![0x5au8; o.size]),
        epoch: Instant::now(),
        report: Mutex::new(Vec::new()),
        cv: Condvar::new(),
        done: Mutex::new(()),
    });
    // One session per connection: each is its own client messenger (a messenger keeps one
    // session per peer address, as Ceph's does).
    let mut msgrs = Vec::new();
    for st in &client.streams {
        let name = format!("client.{}", st.id + 1);
        let ctx = bench_ctx(&name, o)?;
        let m = Messenger::new(&ctx, &name, None)?;
        m.set_default_policy(Policy::lossless_peer());
        m.add_dispatcher_tail(client.clone());
        m.start()?;
        *st.conn.lock() = Some(m.connect_to(EntityType::Osd, &target)?);
        msgrs.push((ctx, m));
    }
    let start = Instant::now();
    for st in &client.streams {
        for _ in 0..depth {
            client.send_next(st);
        }
    }
    let total = || client.streams.iter().map(|s| s.order.lock().received).sum::<u64>();
    let end = start + Duration::from_secs_f64(o.seconds);
    let mut last = (start, 0u64);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
        if last.0.elapsed() >= Duration::from_secs(1) {
            let n = total();
            progress(start.elapsed().as_secs_f64(), n - last.1);
            last = (Instant::now(), n);
        }
    }
    client.running.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let at_stop = total();
    // Lossless sessions deliver what is in flight; wait for it (bounded).
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    {
        let mut g = client.done.lock();
        while client.streams.iter().any(|s| s.in_flight.load(Ordering::Relaxed) > 0) && Instant::now() < drain_deadline
        {
            client.cv.wait_for(&mut g, Duration::from_millis(20));
        }
    }
    for st in &client.streams {
        if let Some(c) = st.conn.lock().clone() {
            c.send_message(Message::new(T_REPORT, Bytes::new()))?;
            // The server's counts cover every stream; one report is enough.
            break;
        }
    }
    {
        let mut g = client.report.lock();
        let deadline = Instant::now() + Duration::from_secs(30);
        while g.is_empty() && Instant::now() < deadline {
            client.cv.wait_for(&mut g, Duration::from_millis(20));
        }
    }
    let server = client.report.lock().clone();
    if server.is_empty() {
        return Err(Error::new(
            libc::ETIMEDOUT,
            "the bench server did not report its counts",
        ));
    }
    let sent: u64 = client.streams.iter().map(|s| s.next_idx.load(Ordering::Relaxed)).sum();
    let mut lat = Vec::new();
    let mut order = OrderCheck::default();
    for s in &client.streams {
        lat.extend_from_slice(&s.lat_us.lock());
        let o = s.order.lock();
        order.received += o.received;
        order.duplicated += o.duplicated;
        order.reordered += o.reordered;
    }
    let injected_failures = msgrs.iter().map(|(c, _)| injected(c)).sum();
    for (c, m) in msgrs {
        m.shutdown();
        c.shutdown();
    }
    let mut r = finish(&mut lat, sent, elapsed, o.size, &server, &order);
    // Throughput counts what came back within the timed window only.
    r.msgs_per_sec = at_stop as f64 / elapsed;
    r.mib_per_sec = (at_stop * o.size as u64) as f64 / elapsed / (1024.0 * 1024.0);
    r.injected_failures = injected_failures;
    Ok(r)
}

fn run_tcp(o: &BenchOpts, addr: &str, progress: &mut dyn FnMut(f64, u64)) -> Result<BenchReport> {
    let sa: SocketAddr = addr.parse().map_err(|_| Error::inval(format!("bad address {addr}")))?;
    let depth = if o.mode == Mode::PingPong { 1 } else { o.depth } as u64;
    let running = Arc::new(AtomicBool::new(true));
    let count = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let data = Arc::new(vec![0x5au8; o.size]);
    let start = Instant::now();
    let threads: Vec<_> = (0..o.conns as u64)
        .map(|id| {
            let (running, count, data) = (running.clone(), count.clone(), data.clone());
            std::thread::spawn(move || -> std::io::Result<(Vec<u32>, OrderCheck, u64, String)> {
                let mut s = TcpStream::connect(sa)?;
                s.set_nodelay(true)?;
                let now = || epoch.elapsed().as_nanos() as u64;
                let (mut f, mut d) = (Vec::new(), Vec::new());
                let (mut lat, mut order) = (Vec::new(), OrderCheck::default());
                let mut next = 0u64;
                for _ in 0..depth {
                    tcp_write(&mut s, T_PING as u32, &front(id, next, now()), &data)?;
                    next += 1;
                }
                let mut in_flight = depth;
                while in_flight > 0 {
                    if tcp_read(&mut s, &mut f, &mut d)? as u16 != T_PONG {
                        continue;
                    }
                    in_flight -= 1;
                    if let Some((st, idx, t)) = parse_front(&f) {
                        lat.push((now().saturating_sub(t) / 1000).min(u64::from(u32::MAX)) as u32);
                        order.see(st, idx);
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    if running.load(Ordering::Relaxed) {
                        tcp_write(&mut s, T_PING as u32, &front(id, next, now()), &data)?;
                        next += 1;
                        in_flight += 1;
                    }
                }
                tcp_write(&mut s, T_REPORT as u32, &[], &[])?;
                tcp_read(&mut s, &mut f, &mut d)?;
                Ok((lat, order, next, String::from_utf8_lossy(&f).into_owned()))
            })
        })
        .collect();
    let end = start + Duration::from_secs_f64(o.seconds);
    let mut last = (start, 0u64);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())));
        if last.0.elapsed() >= Duration::from_secs(1) {
            let n = count.load(Ordering::Relaxed);
            progress(start.elapsed().as_secs_f64(), n - last.1);
            last = (Instant::now(), n);
        }
    }
    running.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let at_stop = count.load(Ordering::Relaxed);
    let (mut lat, mut order, mut sent, mut server) = (Vec::new(), OrderCheck::default(), 0, Vec::new());
    for t in threads {
        let (l, o, n, rep) = t
            .join()
            .map_err(|_| Error::new(libc::EIO, "bench thread panicked"))?
            .map_err(|e| Error::io(e, "raw TCP bench"))?;
        lat.extend(l);
        order.received += o.received;
        order.duplicated += o.duplicated;
        order.reordered += o.reordered;
        sent += n;
        server.push(rep);
    }
    let mut r = finish(&mut lat, sent, elapsed, o.size, &server, &order);
    r.msgs_per_sec = at_stop as f64 / elapsed;
    r.mib_per_sec = (at_stop * o.size as u64) as f64 / elapsed / (1024.0 * 1024.0);
    Ok(r)
}
