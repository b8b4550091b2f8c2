//! Messenger semantics over real loopback sockets: priorities and connection events through
//! the DispatchQueue, fast dispatch against queued dispatch, receive throttles, idle timeout,
//! injected delays, and the `messenger dump` admin command.

use bytes::Bytes;
use osdkit::common::entity::EntityType;
use osdkit::msgr::connection::ConnectionRef;
use osdkit::msgr::dispatcher::Dispatcher;
use osdkit::msgr::message::Message;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::Context;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{ctx, wait_for, worker_counter};

const T_QUEUED: u16 = 0x7201;
const T_FAST: u16 = 0x7202;

/// A latch the ms_dispatch thread can be held on.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut g = self.open.lock();
        while !*g {
            self.cv.wait(&mut g);
        }
    }
    fn release(&self) {
        *self.open.lock() = true;
        self.cv.notify_all();
    }
}

/// Records what is dispatched, in order: ("accept"|"connect"|"reset"|"refused"|"q"|"f", idx).
#[derive(Default)]
struct Log {
    seen: Mutex<Vec<(&'static str, u64)>>,
    /// Hold ms_dispatch on the message with this index until the gate opens.
    hold_at: Mutex<Option<u64>>,
    /// ms_dispatch is waiting at the gate.
    holding: AtomicBool,
    gate: Gate,
    fast: AtomicBool,
}

fn idx(m: &Message) -> u64 {
    u64::from_le_bytes(m.front[..8].try_into().unwrap())
}

impl Dispatcher for Log {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        self.fast.load(Ordering::Relaxed) && m.ty == T_FAST
    }
    fn ms_fast_dispatch(&self, m: Message) {
        self.seen.lock().push(("f", idx(&m)));
    }
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        if m.ty != T_QUEUED && m.ty != T_FAST {
            return Some(m);
        }
        let i = idx(&m);
        if *self.hold_at.lock() == Some(i) {
            self.holding.store(true, Ordering::Release);
            self.gate.wait();
        }
        self.seen.lock().push(("q", i));
        None
    }
    fn ms_handle_accept(&self, _c: &ConnectionRef) {
        self.seen.lock().push(("accept", 0));
    }
    fn ms_handle_connect(&self, _c: &ConnectionRef) {
        self.seen.lock().push(("connect", 0));
    }
    fn ms_handle_reset(&self, _c: &ConnectionRef) -> bool {
        self.seen.lock().push(("reset", 0));
        true
    }
    fn ms_handle_remote_reset(&self, _c: &ConnectionRef) {
        self.seen.lock().push(("remote_reset", 0));
    }
    fn ms_handle_refused(&self, _c: &ConnectionRef) -> bool {
        self.seen.lock().push(("refused", 0));
        true
    }
}

fn m(ty: u16, i: u64) -> Message {
    Message::new(ty, Bytes::copy_from_slice(&i.to_le_bytes()))
}

struct Pair {
    _sc: Context,
    sctx: Context,
    srv: Messenger,
    slog: Arc<Log>,
    _cc: Context,
    cli: Messenger,
    clog: Arc<Log>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.slog.gate.release();
        self.cli.shutdown();
        self.srv.shutdown();
    }
}

fn pair(sopts: &[(&str, &str)], spolicy: Policy, copts: &[(&str, &str)], cpolicy: Policy) -> Pair {
    let sc = ctx("osd.0", sopts);
    let srv = Messenger::new(&sc, "osd.0", None).unwrap();
    srv.set_default_policy(spolicy);
    let slog = Arc::new(Log::default());
    srv.add_dispatcher_tail(slog.clone());
    srv.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    srv.start().unwrap();
    let cc = ctx("client.1", copts);
    let cli = Messenger::new(&cc, "client.1", None).unwrap();
    cli.set_default_policy(cpolicy);
    let clog = Arc::new(Log::default());
    cli.add_dispatcher_tail(clog.clone());
    cli.start().unwrap();
    Pair {
        sctx: sc.clone(),
        _sc: sc,
        srv,
        slog,
        _cc: cc,
        cli,
        clog,
    }
}

fn dq_len(c: &Context) -> u64 {
    common::perf_dump(c)["dispatch_queue-osd.0"]["queue_len"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn accept_event_comes_before_the_first_message_and_priorities_overtake() {
    let p = pair(&[], Policy::stateless_server(), &[], Policy::lossy_client());
    *p.slog.hold_at.lock() = Some(0);
    let c = p.cli.connect_to(EntityType::Osd, &p.srv.my_addrs()[0]).unwrap();
    c.send_message(m(T_QUEUED, 0)).unwrap();
    // Once ms_dispatch holds message 0 (not merely once it was read: on a loaded machine
    // ms_dispatch may take it only after the ones below arrived, and the priority-200 one
    // would go first), everything below queues behind it.
    wait_for("message 0 held", 10, || p.slog.holding.load(Ordering::Acquire));
    for i in 1..=50 {
        c.send_message(m(T_QUEUED, i).with_priority(10)).unwrap();
    }
    c.send_message(m(T_QUEUED, 100).with_priority(200)).unwrap();
    // All 51 must be in the queue, not merely read off the socket, before ms_dispatch goes on.
    wait_for("51 queued behind the held one", 10, || dq_len(&p.sctx) == 51);
    p.slog.gate.release();
    wait_for("all 52 dispatched", 10, || {
        p.slog.seen.lock().iter().filter(|e| e.0 == "q").count() == 52
    });
    let seen = p.slog.seen.lock().clone();
    assert_eq!(
        seen[0],
        ("accept", 0),
        "the accept event is delivered before any message: {seen:?}"
    );
    assert_eq!(seen[1], ("q", 0));
    assert_eq!(
        seen[2],
        ("q", 100),
        "priority 200 overtakes the queued priority-10 messages: {seen:?}"
    );
    let low: Vec<u64> = seen[3..].iter().map(|e| e.1).collect();
    assert_eq!(
        low,
        (1..=50).collect::<Vec<_>>(),
        "one connection at one priority keeps its order"
    );
    // The client's connect event goes through the client's own dispatch queue, which owes
    // no order to the server's: on a loaded machine it can come after all 52 dispatches.
    wait_for("the client to see its connect event", 10, || {
        p.clog.seen.lock().contains(&("connect", 0))
    });
}

#[test]
fn fast_dispatch_may_overtake_queued_messages_of_the_same_connection() {
    // Documented in msgr::dispatcher: fast-dispatched messages run on the worker as they
    // arrive, so they can pass messages of the same connection still waiting for ms_dispatch;
    // each kind keeps its own order.
    let p = pair(&[], Policy::stateless_server(), &[], Policy::lossy_client());
    p.slog.fast.store(true, Ordering::Relaxed);
    *p.slog.hold_at.lock() = Some(0);
    let c = p.cli.connect_to(EntityType::Osd, &p.srv.my_addrs()[0]).unwrap();
    c.send_message(m(T_QUEUED, 0)).unwrap();
    for i in 1..=20 {
        c.send_message(m(T_QUEUED, i)).unwrap();
        c.send_message(m(T_FAST, 1000 + i)).unwrap();
    }
    wait_for("20 fast dispatched while ms_dispatch is held", 10, || {
        p.slog.seen.lock().iter().filter(|e| e.0 == "f").count() == 20
    });
    assert!(
        !p.slog.seen.lock().iter().any(|e| e.0 == "q"),
        "queued ones wait for ms_dispatch"
    );
    p.slog.gate.release();
    wait_for("21 queued dispatched", 10, || {
        p.slog.seen.lock().iter().filter(|e| e.0 == "q").count() == 21
    });
    let seen = p.slog.seen.lock().clone();
    let fast: Vec<u64> = seen.iter().filter(|e| e.0 == "f").map(|e| e.1).collect();
    let queued: Vec<u64> = seen.iter().filter(|e| e.0 == "q").map(|e| e.1).collect();
    assert_eq!(fast, (1001..=1020).collect::<Vec<_>>());
    assert_eq!(queued, (0..=20).collect::<Vec<_>>());
}

#[test]
fn a_full_message_throttle_stops_reading_until_dispatch_catches_up() {
    let sc = ctx("osd.0", &[]);
    let srv = Messenger::new(&sc, "osd.0", None).unwrap();
    let th = sc.new_throttle("msgr_client_messages", 10);
    srv.set_default_policy(Policy::stateless_server().with_throttlers(Some(th.clone()), None));
    let slog = Arc::new(Log::default());
    *slog.hold_at.lock() = Some(0);
    srv.add_dispatcher_tail(slog.clone());
    srv.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    srv.start().unwrap();
    let cc = ctx("client.1", &[]);
    let cli = Messenger::new(&cc, "client.1", None).unwrap();
    cli.set_default_policy(Policy::lossy_client());
    cli.start().unwrap();
    let c = cli.connect_to(EntityType::Osd, &srv.my_addrs()[0]).unwrap();
    for i in 0..2000 {
        c.send_message(m(T_QUEUED, i).with_data(Bytes::from(vec![7u8; 4096])))
            .unwrap();
    }
    wait_for("the throttle to fill", 10, || th.get_current() >= 10);
    std::thread::sleep(Duration::from_millis(300));
    let received = worker_counter(&sc, "msgr_recv_messages");
    // One read can bring in a chunk's worth of frames past the limit, no more.
    assert!(
        received < 40,
        "reading stopped at the throttle: {received} messages read with max 10"
    );
    assert!(th.get_current() <= received);
    slog.gate.release();
    wait_for("all 2000 dispatched", 30, || slog.seen.lock().len() == 2001);
    let q: Vec<u64> = slog.seen.lock().iter().filter(|e| e.0 == "q").map(|e| e.1).collect();
    assert_eq!(q, (0..2000).collect::<Vec<_>>());
    wait_for("the throttle to drain", 10, || th.get_current() == 0);
    cli.shutdown();
    srv.shutdown();
}

#[test]
fn idle_connections_are_closed_after_ms_connection_idle_timeout() {
    let p = pair(
        &[("ms_connection_idle_timeout", "1")],
        Policy::stateless_server(),
        &[],
        Policy::lossy_client(),
    );
    let c = p.cli.connect_to(EntityType::Osd, &p.srv.my_addrs()[0]).unwrap();
    // Taken before the send: the connection's last activity comes after it, however late this
    // thread sees the message dispatched, so `waited` can only overstate the idle time.
    let t0 = Instant::now();
    c.send_message(m(T_QUEUED, 0)).unwrap();
    wait_for("message", 10, || p.slog.seen.lock().contains(&("q", 0)));
    wait_for("the idle connection to close", 10, || p.srv.connections().is_empty());
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "closed after {waited:?}, before the timeout"
    );
    wait_for("the client to see the reset", 10, || {
        p.clog.seen.lock().contains(&("reset", 0))
    });
    assert!(!c.is_connected());
}

#[test]
fn refused_connections_are_reported() {
    let cc = ctx("client.1", &[]);
    let cli = Messenger::new(&cc, "client.1", None).unwrap();
    cli.set_default_policy(Policy::lossy_client());
    let clog = Arc::new(Log::default());
    cli.add_dispatcher_tail(clog.clone());
    cli.start().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("v2:127.0.0.1:{port}/1").parse().unwrap();
    let c = cli.connect_to(EntityType::Osd, &addr).unwrap();
    let _ = c.send_message(m(T_QUEUED, 0));
    wait_for("refused", 10, || clog.seen.lock().contains(&("refused", 0)));
    assert!(
        c.send_message(m(T_QUEUED, 1)).is_err(),
        "a refused lossy session is closed"
    );
    cli.shutdown();
}

#[test]
fn injected_delays_keep_each_connections_order() {
    let opts = [
        ("ms_inject_delay_type", "client"),
        ("ms_inject_delay_max", "0.005"),
        ("ms_inject_delay_probability", "0.3"),
    ];
    let p = pair(&opts, Policy::stateful_server(), &[], Policy::lossless_client());
    let c = p.cli.connect_to(EntityType::Osd, &p.srv.my_addrs()[0]).unwrap();
    for i in 0..1000 {
        c.send_message(m(T_QUEUED, i)).unwrap();
    }
    wait_for("1000 dispatched", 30, || {
        p.slog.seen.lock().iter().filter(|e| e.0 == "q").count() == 1000
    });
    let q: Vec<u64> = p.slog.seen.lock().iter().filter(|e| e.0 == "q").map(|e| e.1).collect();
    assert_eq!(q, (0..1000).collect::<Vec<_>>());
    let delayed = worker_counter(&p.sctx, "msgr_injected_delays");
    assert!(delayed > 100, "about 30% of 1000 were delayed, counted {delayed}");
}

#[test]
fn messenger_dump_lists_connections_on_the_admin_socket() {
    let p = pair(&[], Policy::stateless_server(), &[], Policy::lossy_client());
    let c = p.cli.connect_to(EntityType::Osd, &p.srv.my_addrs()[0]).unwrap();
    c.send_message(m(T_QUEUED, 0)).unwrap();
    wait_for("message", 10, || p.slog.seen.lock().contains(&("q", 0)));
    let reply = p
        .sctx
        .admin_socket()
        .execute(br#"{"prefix": "messenger dump", "format": "json"}"#);
    let v: serde_json::Value =
        serde_json::from_slice(&reply).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&reply)));
    let ms = v["messengers"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0]["name"], "osd.0");
    let conns = ms[0]["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{v}");
    assert_eq!(conns[0]["state"], "open");
    assert_eq!(conns[0]["policy"], "stateless_server");
    assert_eq!(conns[0]["peer_type"], 8, "a client peer");
    let bad = p
        .sctx
        .admin_socket()
        .execute(br#"{"prefix": "messenger dump", "msgr": "osd.99"}"#);
    assert!(
        String::from_utf8_lossy(&bad).starts_with("ERROR: (2)"),
        "{}",
        String::from_utf8_lossy(&bad)
    );
    p.srv.shutdown();
    let gone = p.sctx.admin_socket().execute(br#"{"prefix": "messenger dump"}"#);
    assert!(
        String::from_utf8_lossy(&gone).starts_with("ERROR:"),
        "unregistered at shutdown"
    );
}

#[test]
fn a_messenger_cannot_bind_after_start_or_restart_after_shutdown() {
    let c = ctx("osd.5", &[]);
    let m = Messenger::new(&c, "osd.5", None).unwrap();
    m.start().unwrap();
    assert_eq!(m.bind("127.0.0.1:0".parse().unwrap()).unwrap_err().errno, libc::EINVAL);
    m.shutdown();
    assert_eq!(m.start().unwrap_err().errno, libc::EINVAL);
}

#[test]
fn a_restarted_server_resets_the_session_and_the_client_is_told() {
    // A lossless client reconnects to a server that lost its sessions (a new process on the
    // same address): SESSION_RECONNECT gets SESSION_RESET, the client's dispatchers see
    // ms_handle_remote_reset, and the session starts again.
    let start_server = |port: u16| {
        let sc = ctx("osd.0", &[]);
        let srv = Messenger::new(&sc, "osd.0", Some(7)).unwrap();
        srv.set_default_policy(Policy::stateful_server());
        let log = Arc::new(Log::default());
        srv.add_dispatcher_tail(log.clone());
        let addr = srv.bind(format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
        srv.start().unwrap();
        (sc, srv, log, addr)
    };
    let (_sc1, srv1, log1, addr) = start_server(0);
    let port = addr.addr.unwrap().port();
    let cc = ctx("osd.1", &[("ms_initial_backoff", "0.01"), ("ms_max_backoff", "0.05")]);
    let cli = Messenger::new(&cc, "osd.1", None).unwrap();
    cli.set_default_policy(Policy::lossless_peer());
    let clog = Arc::new(Log::default());
    cli.add_dispatcher_tail(clog.clone());
    cli.start().unwrap();
    let c = cli.connect_to(EntityType::Osd, &addr).unwrap();
    c.send_message(m(T_QUEUED, 0)).unwrap();
    wait_for("the first server got message 0", 10, || {
        log1.seen.lock().contains(&("q", 0))
    });
    srv1.shutdown();
    let (_sc2, srv2, log2, _) = start_server(port);
    c.send_message(m(T_QUEUED, 1)).unwrap();
    wait_for("the remote reset", 20, || {
        clog.seen.lock().contains(&("remote_reset", 0))
    });
    wait_for("the new server to accept", 10, || {
        log2.seen.lock().contains(&("accept", 0))
    });
    c.send_message(m(T_QUEUED, 2)).unwrap();
    wait_for("message 2 on the new session", 10, || {
        log2.seen.lock().contains(&("q", 2))
    });
    assert!(
        !log2.seen.lock().contains(&("q", 0)),
        "nothing of the old session is replayed to the new server"
    );
    cli.shutdown();
    srv2.shutdown();
}
