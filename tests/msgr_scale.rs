//! 1,000 concurrent sessions to one server messenger, each doing request/reply, with the
//! threads, file descriptors and resident memory they cost.
//!
//! A Messenger keeps one session per target address (`connect_to` reuses it), so 1,000
//! sessions to one server take 1,000 client messengers. They share one client `Context`
//! and run with `ms_async_op_threads = 1`, i.e. three threads each (`msgr-worker-0`,
//! `ms_dispatch`, `ms_local`); the server keeps its default 3 workers and must not add a
//! thread per connection. Client and server live in this one process, so the memory figure
//! is per connection *pair* (both ends): VmRSS after opening the idle sessions minus VmRSS
//! before, over 1,000.
//!
//! `OSDKIT_SCALE_CONNS` (default 1000) changes the number of sessions.

use osdkit::common::entity::EntityType;
use osdkit::common::formatter::{render, Format};
use osdkit::msgr::connection::ConnectionRef;
use osdkit::msgr::dispatcher::Dispatcher;
use osdkit::msgr::message::Message;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::Context;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::ctx;

/// Live heap bytes (allocated minus freed), to tell real per-connection allocations from
/// allocator slack in the RSS figure.
struct CountingAlloc;

static LIVE_HEAP: AtomicU64 = AtomicU64::new(0);

unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE_HEAP.fetch_add(l.size() as u64, Ordering::Relaxed);
        std::alloc::System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE_HEAP.fetch_sub(l.size() as u64, Ordering::Relaxed);
        std::alloc::System.dealloc(p, l)
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE_HEAP.fetch_add(l.size() as u64, Ordering::Relaxed);
        std::alloc::System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        LIVE_HEAP.fetch_add(new as u64, Ordering::Relaxed);
        LIVE_HEAP.fetch_sub(l.size() as u64, Ordering::Relaxed);
        std::alloc::System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const T_REQ: u16 = 0x7201;
const T_REPLY: u16 = 0x7202;
/// Round trips per session.
const ROUNDS: u64 = 3;
/// Resident memory one idle connection pair (client end + server end) may cost. Measured
/// 39.7–40.1 KiB per idle pair (300 and 1,000 sessions) and 45.5–47.4 KiB after the
/// request/reply rounds, Linux x86-64, debug build (see the eprintln). The bounds leave
/// ~1.6x headroom for allocator noise and still catch one more 64 KiB buffer per connection
/// being touched.
const MAX_RSS_PER_PAIR: u64 = 64 * 1024;
const MAX_RSS_PER_PAIR_AFTER_TRAFFIC: u64 = 80 * 1024;
/// How long the waits below may take, counted from the start of the test: a guard against a
/// hang (a session that never opens, a reply that never comes), not a speed target, so it
/// leaves ample room for a loaded machine. The time each phase took is printed.
const TIME_BOUND: Duration = Duration::from_secs(300);

/// A `/proc/self/status` field in its unit (kB for VmRSS).
fn proc_status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line[field.len() + 1..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn rss_bytes() -> u64 {
    proc_status("VmRSS") * 1024
}

fn threads() -> u64 {
    proc_status("Threads")
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// Raises the soft RLIMIT_NOFILE to at least `want` (up to the hard limit, raising that too
/// when allowed). Returns the soft limit in force.
fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        if r.rlim_cur >= want {
            return r.rlim_cur;
        }
        let mut n = r;
        n.rlim_cur = want.max(r.rlim_cur);
        if n.rlim_max < want {
            n.rlim_max = want;
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &n) != 0 {
            // Not allowed to raise the hard limit: take what it allows.
            n.rlim_max = r.rlim_max;
            n.rlim_cur = r.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &n), 0);
        }
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
    }
    r.rlim_cur
}

/// Server: answers each request on the connection it came from.
#[derive(Default)]
struct Echo {
    requests: AtomicU64,
}

impl Dispatcher for Echo {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        if m.ty != T_REQ {
            return Some(m);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let c = m.conn.clone().expect("a request comes on a connection");
        c.send_message(Message::new(T_REPLY, m.front.clone()).with_tid(m.tid))
            .unwrap();
        None
    }
}

/// Clients: replies per session (front = session index, tid = round).
struct Replies {
    per_session: Vec<AtomicU64>,
    bad: AtomicU64,
}

impl Dispatcher for Replies {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        if m.ty != T_REPLY {
            return Some(m);
        }
        let i = u64::from_le_bytes(m.front[..8].try_into().unwrap()) as usize;
        // The reply must come back on the session that asked.
        let ok = m
            .conn
            .as_ref()
            .is_some_and(|c| c.peer_type() == EntityType::Osd.wire_value())
            && m.tid < ROUNDS;
        if !ok || i >= self.per_session.len() {
            self.bad.fetch_add(1, Ordering::Relaxed);
        } else {
            self.per_session[i].fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

fn wait_for(what: &str, deadline: Instant, f: impl Fn() -> bool) {
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn worker_sum(c: &Context, counter: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&render(&c.perf().dump(None, None), Format::Json)).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("AsyncMessenger::Worker-"))
        .map(|(_, w)| w[counter].as_u64().unwrap())
        .sum()
}

#[test]
fn a_thousand_sessions_to_one_server() {
    let started = Instant::now();
    let deadline = started + TIME_BOUND;
    let n: usize = std::env::var("OSDKIT_SCALE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // Each session: two sockets here (both ends); each client messenger: an epoll fd and a
    // waker per worker; plus slack for the rest of the process.
    let nofile = raise_nofile(4 * n as u64 + 512);
    assert!(
        nofile >= 4 * n as u64 + 256,
        "RLIMIT_NOFILE {nofile} too low for {n} sessions"
    );

    let sctx = ctx("osd.0", &[]);
    let srv = Messenger::new(&sctx, "osd.0", None).unwrap();
    srv.set_default_policy(Policy::stateless_server());
    let echo = Arc::new(Echo::default());
    srv.add_dispatcher_tail(echo.clone());
    let saddr = srv.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    srv.start().unwrap();
    let server_workers = sctx.conf().get_u64("ms_async_op_threads");

    let cctx = ctx("client.scale", &[("ms_async_op_threads", "1")]);
    let replies = Arc::new(Replies {
        per_session: (0..n).map(|_| AtomicU64::new(0)).collect(),
        bad: AtomicU64::new(0),
    });
    let threads0 = threads();
    let clients: Vec<Messenger> = (0..n)
        .map(|i| {
            let name = format!("client.{}", 1000 + i);
            let m = Messenger::new(&cctx, &name, None).unwrap();
            m.set_default_policy(Policy::lossy_client());
            m.add_dispatcher_tail(replies.clone());
            m.start().unwrap();
            m
        })
        .collect();
    let threads1 = threads();
    let per_msgr = (threads1 - threads0) as f64 / n as f64;
    eprintln!(
        "{n} client messengers started in {:.1} s: {} threads ({per_msgr:.2} per messenger)",
        started.elapsed().as_secs_f64(),
        threads1 - threads0
    );
    assert_eq!(
        threads1 - threads0,
        3 * n as u64,
        "a client messenger with ms_async_op_threads=1 runs 3 threads"
    );

    // Memory and fds before any session exists; settle first so thread stacks are touched.
    std::thread::sleep(Duration::from_millis(300));
    let (rss0, fds0, heap0) = (rss_bytes(), open_fds(), LIVE_HEAP.load(Ordering::Relaxed));
    let t_connect = Instant::now();
    let conns: Vec<ConnectionRef> = clients
        .iter()
        .map(|m| m.connect_to(EntityType::Osd, &saddr).unwrap())
        .collect();
    wait_for("every session open", deadline, || {
        conns.iter().all(|c| c.is_connected())
    });
    wait_for("the server accepting all", deadline, || srv.connections().len() == n);
    let connect_time = t_connect.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (rss1, fds1, threads2) = (rss_bytes(), open_fds(), threads());
    let idle_pair = rss1.saturating_sub(rss0) / n as u64;
    let heap_pair = LIVE_HEAP.load(Ordering::Relaxed).saturating_sub(heap0) / n as u64;
    eprintln!(
        "{n} sessions open in {:.2} s: +{} fds, +{} threads, VmRSS {} -> {} KiB = {} bytes ({:.1} KiB) per idle connection pair \
         (live heap +{heap_pair} bytes per pair)",
        connect_time.as_secs_f64(),
        fds1 - fds0,
        threads2 as i64 - threads1 as i64,
        rss0 / 1024,
        rss1 / 1024,
        idle_pair,
        idle_pair as f64 / 1024.0
    );
    assert_eq!(
        fds1 - fds0,
        2 * n as u64,
        "each session costs its two sockets' fds, nothing more"
    );
    assert!(
        threads2 <= threads1,
        "no thread per connection: {threads1} -> {threads2}"
    );
    assert_eq!(worker_sum(&sctx, "msgr_active_connections"), n as u64, "server sockets");
    assert_eq!(worker_sum(&sctx, "msgr_created_connections"), n as u64);

    // Request/reply on every session, all at once.
    let t_rr = Instant::now();
    for round in 0..ROUNDS {
        for (i, c) in conns.iter().enumerate() {
            c.send_message(Message::new(T_REQ, (i as u64).to_le_bytes().to_vec()).with_tid(round))
                .unwrap();
        }
    }
    let total = ROUNDS * n as u64;
    let got = || {
        replies
            .per_session
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    wait_for("every reply", deadline, || got() >= total);
    let rr_time = t_rr.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(replies.bad.load(Ordering::Relaxed), 0, "replies on a wrong session");
    assert_eq!(echo.requests.load(Ordering::Relaxed), total);
    for (i, r) in replies.per_session.iter().enumerate() {
        assert_eq!(r.load(Ordering::Relaxed), ROUNDS, "session {i}");
    }
    assert!(conns.iter().all(|c| c.is_connected()), "every session is still open");
    let rss2 = rss_bytes();
    let used_pair = rss2.saturating_sub(rss0) / n as u64;
    let heap_pair2 = LIVE_HEAP.load(Ordering::Relaxed).saturating_sub(heap0) / n as u64;
    eprintln!(
        "{total} request/reply round trips in {:.2} s ({:.0}/s); VmRSS {} KiB = {} bytes ({:.1} KiB) per connection pair \
         after traffic (live heap +{heap_pair2} bytes per pair); server workers {server_workers}, threads now {}",
        rr_time.as_secs_f64(),
        total as f64 / rr_time.as_secs_f64(),
        rss2 / 1024,
        used_pair,
        used_pair as f64 / 1024.0,
        threads()
    );
    assert!(
        idle_pair < MAX_RSS_PER_PAIR,
        "an idle connection pair costs {idle_pair} bytes of RSS (bound {MAX_RSS_PER_PAIR})"
    );
    assert!(
        used_pair < MAX_RSS_PER_PAIR_AFTER_TRAFFIC,
        "a connection pair costs {used_pair} bytes of RSS after {ROUNDS} request/reply rounds (bound {MAX_RSS_PER_PAIR_AFTER_TRAFFIC})"
    );

    let t_down = Instant::now();
    for m in &clients {
        m.shutdown();
    }
    srv.shutdown();
    eprintln!(
        "shutdown of {} messengers in {:.1} s; whole test {:.1} s",
        n + 1,
        t_down.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
