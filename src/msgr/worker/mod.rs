//! `msgr-worker-N`: one thread, one `mio::Poll`, owning the sockets of its connections.
//!
//! Other threads never touch a socket: they queue a command and wake the worker. A worker
//! drains each connection's queue into frames and writes them with one `writev`; it reads into
//! the protocol's buffer and hands complete messages to fast dispatch or the DispatchQueue.

mod events;
mod io;

use super::connection::{ConnStatus, ConnectionRef};
use super::dispatch_queue::ConnEvent;
use super::message::{Message, ThrottleRelease};
use super::session;
use super::shared::Inner;
use super::v2::control::{MsgHeader, SessionReconnect};
use super::v2::protocol::{ClientSession, Event, Protocol};
use crate::common::perf::{PerfCounters, PerfCountersBuilder};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, IoSlice};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
/// What one read asks for when no large frame is in progress.
const READ_CHUNK: usize = 64 * 1024;
const LARGE_READ: usize = 256 * 1024;

thread_local! {
    /// On a worker thread: (its messenger, its index). Sends made from there (fast dispatch
    /// replying inline) are noted in `DEFERRED` instead of waking the worker through its
    /// channel and eventfd: the worker drains them before it polls again.
    static CURRENT: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, usize::MAX)) };
    static DEFERRED: std::cell::RefCell<Vec<ConnectionRef>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Called by `kick`: true when the caller is `worker` of `msgr` itself and the kick was noted.
pub(crate) fn defer_kick_if_local(msgr: *const Inner, c: &ConnectionRef) -> bool {
    if CURRENT.with(|w| w.get()) != (msgr as usize, c.worker) {
        return false;
    }
    DEFERRED.with(|d| d.borrow_mut().push(c.clone()));
    true
}

pub(crate) const L_RECV_MSGS: usize = 0;
pub(crate) const L_SEND_MSGS: usize = 1;
pub(crate) const L_RECV_BYTES: usize = 2;
pub(crate) const L_SEND_BYTES: usize = 3;
pub(crate) const L_CREATED: usize = 4;
pub(crate) const L_ACTIVE: usize = 5;
pub(crate) const L_FAULTS: usize = 6;
pub(crate) const L_INJECTED: usize = 7;
pub(crate) const L_DELAYED: usize = 8;

pub(crate) fn worker_perf(idx: usize) -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new(format!("AsyncMessenger::Worker-{idx}"));
    let idx = [
        b.add_u64_counter("msgr_recv_messages", "Network received messages"),
        b.add_u64_counter("msgr_send_messages", "Network sent messages"),
        b.add_u64_counter("msgr_recv_bytes", "Network received bytes"),
        b.add_u64_counter("msgr_send_bytes", "Network sent bytes"),
        b.add_u64_counter("msgr_created_connections", "Created connection number"),
        b.add_u64("msgr_active_connections", "Active connection number"),
        b.add_u64_counter("msgr_connection_faults", "Socket or protocol faults"),
        b.add_u64_counter(
            "msgr_injected_socket_failures",
            "Faults injected by ms_inject_socket_failures",
        ),
        b.add_u64_counter("msgr_injected_delays", "Messages held back by ms_inject_delay_*"),
    ];
    debug_assert_eq!(idx, [0, 1, 2, 3, 4, 5, 6, 7, L_DELAYED]);
    b.build()
}

pub(crate) enum Cmd {
    Connect(ConnectionRef),
    Accepted(TcpStream, SocketAddr),
    Kick(ConnectionRef),
    Keepalive(ConnectionRef),
    /// A socket whose session belongs to this worker's connection.
    Adopt(ConnectionRef, Box<Sock>),
    /// A socket asking to resume a session this worker owns.
    Resume(ConnectionRef, Box<Sock>, SessionReconnect),
    MarkDown(ConnectionRef),
    Stop,
}

pub(crate) struct WorkerHandle {
    pub tx: Sender<Cmd>,
    pub waker: Arc<Waker>,
    pub thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    pub perf: Arc<PerfCounters>,
}

impl WorkerHandle {
    pub fn send(&self, c: Cmd) {
        if self.tx.send(c).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

pub(crate) struct Sock {
    stream: TcpStream,
    proto: Protocol,
    wq: VecDeque<Bytes>,
    conn: Option<ConnectionRef>,
    outgoing: bool,
    connected: bool,
    ready: bool,
    started: Instant,
    /// Last time bytes moved either way (for `ms_connection_idle_timeout`).
    last_active: Instant,
}

/// The options a worker reads once at start (Ceph's names).
#[derive(Clone, Debug)]
pub(crate) struct WorkerConf {
    /// `ms_inject_socket_failures`: one failure in N socket operations (0: off).
    pub inject_socket_failures: u64,
    /// `ms_connection_ready_timeout`.
    pub ready_timeout: Duration,
    /// `ms_connection_idle_timeout` (zero: never).
    pub idle_timeout: Duration,
    /// `ms_initial_backoff`, `ms_max_backoff`: reconnect delays after failed attempts.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// `ms_inject_delay_type` as `CEPH_ENTITY_TYPE_*` values, `ms_inject_delay_max`,
    /// `ms_inject_delay_probability`.
    pub inject_delay_types: Vec<u8>,
    pub inject_delay_max: Duration,
    pub inject_delay_probability: f64,
    /// `ms_async_flush_every`: messages delivered from one read between sends of what their
    /// handling queued (0: only after the read).
    pub flush_every: usize,
    /// `ms_async_idle_poll_us`: how long a worker keeps polling without sleeping after its
    /// last event.
    pub idle_poll: Duration,
}

impl WorkerConf {
    pub fn from_conf(conf: &crate::common::config::Config) -> WorkerConf {
        let secs = |k: &str| Duration::try_from_secs_f64(conf.get_f64(k)).unwrap_or(Duration::ZERO);
        let inject_delay_types = conf
            .get_str("ms_inject_delay_type")
            .split_whitespace()
            .filter_map(|t| t.parse::<crate::common::entity::EntityType>().ok())
            .map(|t| t.wire_value())
            .collect();
        WorkerConf {
            inject_socket_failures: conf.get_u64("ms_inject_socket_failures"),
            ready_timeout: Duration::from_secs(conf.get_u64("ms_connection_ready_timeout").max(1)),
            idle_timeout: Duration::from_secs(conf.get_u64("ms_connection_idle_timeout")),
            initial_backoff: secs("ms_initial_backoff"),
            max_backoff: secs("ms_max_backoff"),
            inject_delay_types,
            inject_delay_max: secs("ms_inject_delay_max"),
            inject_delay_probability: conf.get_f64("ms_inject_delay_probability"),
            flush_every: conf.get_u64("ms_async_flush_every") as usize,
            idle_poll: Duration::from_micros(conf.get_u64("ms_async_idle_poll_us")),
        }
    }

    /// The delay before reconnect attempt `failures + 1` (Ceph: none after a session was
    /// open, then initial, doubling up to max).
    fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        self.initial_backoff
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(self.max_backoff)
    }
}

/// A message held back by `ms_inject_delay_*`; later messages of its connection queue behind it.
struct Delayed {
    release: Instant,
    conn: ConnectionRef,
    header: MsgHeader,
    segments: [Bytes; 4],
}

pub(crate) struct Worker {
    idx: usize,
    poll: Poll,
    rx: Receiver<Cmd>,
    socks: HashMap<usize, Sock>,
    by_conn: HashMap<u64, usize>,
    next_token: usize,
    listener: Option<TcpListener>,
    msgr: Weak<Inner>,
    rng: u64,
    conf: WorkerConf,
    reconnects: Vec<(Instant, ConnectionRef)>,
    perf: Arc<PerfCounters>,
    /// Sockets not read because a receive throttle is full: retried on every loop.
    throttled: Vec<usize>,
    /// Messages taken out of a session under its lock, dropped once the lock is released.
    graveyard: Vec<Message>,
    /// `ms_inject_delay_*`: held messages by connection, each queue in release order.
    delayed: HashMap<u64, VecDeque<Delayed>>,
}

enum Verdict {
    Keep,
    Fault(String),
    /// The socket moved to another worker.
    Moved,
}

impl Worker {
    pub fn new(
        idx: usize,
        poll: Poll,
        rx: Receiver<Cmd>,
        listener: Option<TcpListener>,
        msgr: Weak<Inner>,
        conf: WorkerConf,
        perf: Arc<PerfCounters>,
    ) -> Worker {
        Worker {
            idx,
            poll,
            rx,
            socks: HashMap::new(),
            by_conn: HashMap::new(),
            next_token: 2,
            listener,
            msgr,
            rng: 0x9e37_79b9_7f4a_7c15 ^ ((idx as u64 + 1) << 32) ^ u64::from(crate::msgr::addr::random_nonce()),
            conf,
            reconnects: Vec::new(),
            perf,
            throttled: Vec::new(),
            delayed: HashMap::new(),
            graveyard: Vec::new(),
        }
    }

    /// `ms_inject_socket_failures`: one failure in `inject` socket operations.
    fn inject_failure(&mut self) -> bool {
        if self.conf.inject_socket_failures == 0 {
            return false;
        }
        if self.next_rand() % self.conf.inject_socket_failures == 0 {
            self.perf.inc(L_INJECTED, 1);
            return true;
        }
        false
    }

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    pub fn run(mut self) {
        CURRENT.with(|w| w.set((self.msgr.as_ptr() as usize, self.idx)));
        if let Some(l) = self.listener.as_mut() {
            if let Err(e) = self.poll.registry().register(l, LISTENER, Interest::READABLE) {
                log::error!(target: "ms", "worker {}: cannot watch listener: {e}", self.idx);
            }
        }
        let mut events = Events::with_capacity(1024);
        let mut next_check = Instant::now();
        let mut last_event = Instant::now();
        loop {
            let now = Instant::now();
            let mut timeout = Duration::from_secs(1);
            let delayed = self.delayed.values().filter_map(|q| q.front().map(|d| d.release));
            for t in self.reconnects.iter().map(|(t, _)| *t).chain(delayed) {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if !self.throttled.is_empty() {
                // Ceph retries a throttled read after a millisecond, too.
                timeout = timeout.min(Duration::from_millis(1));
            }
            if let Err(e) = self.wait(&mut events, timeout, last_event) {
                log::error!(target: "ms", "worker {}: poll failed: {e}", self.idx);
                return;
            }
            if !events.is_empty() {
                last_event = Instant::now();
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    LISTENER => self.accept_all(),
                    Token(t) => {
                        if !self.socks.contains_key(&t) {
                            continue;
                        }
                        let closing = ev.is_read_closed() || ev.is_error();
                        let v = self.on_ready(t, ev.is_readable() || closing, closing, ev.is_writable());
                        self.settle(t, v);
                    }
                }
            }
            self.run_deferred();
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Stop) => {
                        self.shutdown();
                        return;
                    }
                    Ok(c) => self.command(c),
                    Err(_) => break,
                }
            }
            self.due_reconnects();
            self.release_delayed();
            self.retry_throttled();
            if Instant::now() >= next_check {
                self.check_timeouts();
                next_check = Instant::now() + Duration::from_millis(100);
            }
            // Whatever the steps above sent from this thread goes out before the next poll.
            self.run_deferred();
        }
    }

    /// Waits up to `timeout` for events. Within `ms_async_idle_poll_us` of the last one it
    /// polls without sleeping: waking a sleeping thread here took about 40 us a hop, more
    /// than the messenger's own work on a small message (`bench msgr --transport tcp`).
    fn wait(&mut self, events: &mut Events, timeout: Duration, last_event: Instant) -> std::io::Result<()> {
        let spin_end = last_event + self.conf.idle_poll;
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            let sleep = now >= spin_end || timeout.is_zero();
            let t = if sleep { timeout } else { Duration::ZERO };
            match self.poll.poll(events, Some(t)) {
                Ok(()) if sleep || !events.is_empty() => return Ok(()),
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
            if now >= deadline {
                // The timers and checks that follow the wait are due.
                return Ok(());
            }
            // Other threads that have work (the OSD's op threads, the client's) go first.
            std::thread::yield_now();
        }
    }

    /// The kicks made on this thread while it handled events (see `DEFERRED`).
    fn run_deferred(&mut self) {
        loop {
            let list = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
            if list.is_empty() {
                return;
            }
            for conn in list {
                self.command(Cmd::Kick(conn));
            }
        }
    }

    /// Reads again the sockets a full throttle stopped, once there is room.
    fn retry_throttled(&mut self) {
        if self.throttled.is_empty() {
            return;
        }
        for t in std::mem::take(&mut self.throttled) {
            if self.socks.contains_key(&t) {
                let v = self.on_ready(t, true, true, false);
                self.settle(t, v);
            }
        }
    }

    /// True when a receive throttle of the socket's session (policy messages/bytes, or the
    /// messenger's dispatch throttle) is full: Ceph stops reading that socket until it drains.
    fn recv_throttled(&self, t: usize) -> bool {
        let Some(s) = self.socks.get(&t) else { return false };
        let Some(c) = s.conn.as_ref().filter(|_| s.ready) else {
            return false;
        };
        let full = |th: &Option<Arc<crate::common::throttle::Throttle>>| {
            th.as_ref()
                .is_some_and(|th| th.get_max() > 0 && th.get_current() >= th.get_max())
        };
        if full(&c.policy.throttler_messages) || full(&c.policy.throttler_bytes) {
            return true;
        }
        self.msgr.upgrade().is_some_and(|m| {
            let d = &m.dispatch_throttle;
            d.get_max() > 0 && d.get_current() >= d.get_max()
        })
    }

    /// Hands on the delayed messages whose time has come, in order.
    fn release_delayed(&mut self) {
        if self.delayed.is_empty() {
            return;
        }
        let now = Instant::now();
        let Some(msgr) = self.msgr.upgrade() else { return };
        let mut due = Vec::new();
        self.delayed.retain(|_, q| {
            while q.front().is_some_and(|d| d.release <= now) {
                due.push(q.pop_front().expect("front checked"));
            }
            !q.is_empty()
        });
        for d in due {
            if d.conn.status() != ConnStatus::Closed {
                self.dispatch(&msgr, &d.conn, d.header, d.segments);
            }
        }
    }

    fn shutdown(&mut self) {
        for (_, mut s) in self.socks.drain() {
            let _ = self.poll.registry().deregister(&mut s.stream);
        }
        self.perf.set(L_ACTIVE, 0);
    }

    fn add_sock(&mut self, mut s: Sock) -> Option<usize> {
        let t = self.next_token;
        self.next_token += 1;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut s.stream, Token(t), Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!(target: "ms", "worker {}: register failed: {e}", self.idx);
            return None;
        }
        if let Some(c) = &s.conn {
            if let Some(old) = self.by_conn.insert(c.id(), t) {
                // A reconnect replaced this session's socket: the old one goes quietly.
                if let Some(mut o) = self.socks.remove(&old) {
                    let _ = self.poll.registry().deregister(&mut o.stream);
                }
            }
        }
        self.socks.insert(t, s);
        self.perf.set(L_ACTIVE, self.socks.len() as u64);
        Some(t)
    }

    fn accept_all(&mut self) {
        let Some(msgr) = self.msgr.upgrade() else { return };
        loop {
            let Some(l) = self.listener.as_ref() else { return };
            match l.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let w = msgr.pick_worker();
                    if w == self.idx {
                        self.accepted(stream, peer);
                    } else {
                        msgr.worker(w).send(Cmd::Accepted(stream, peer));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!(target: "ms", "accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn accepted(&mut self, stream: TcpStream, peer: SocketAddr) {
        let Some(msgr) = self.msgr.upgrade() else { return };
        self.perf.inc(L_CREATED, 1);
        // The identity is the messenger's own until CLIENT_IDENT names one it hosts.
        let mut proto = Protocol::server(
            msgr.local_info(msgr.nonce),
            peer,
            msgr.sessions.next_global_id(),
            msgr.frame_limits(),
        );
        proto.set_recv_pool(msgr.recv_pool());
        let mut s = Sock {
            stream,
            proto,
            wq: VecDeque::new(),
            conn: None,
            outgoing: false,
            connected: true,
            ready: false,
            started: Instant::now(),
            last_active: Instant::now(),
        };
        s.wq.extend(s.proto.take_output());
        if let Some(t) = self.add_sock(s) {
            let v = self.flush(t);
            self.settle(t, v);
        }
    }

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Connect(conn) => self.connect(conn),
            Cmd::Accepted(s, p) => self.accepted(s, p),
            Cmd::Kick(conn) => {
                if let Some(&t) = self.by_conn.get(&conn.id()) {
                    let v = self.drain(t);
                    self.settle(t, v);
                } else {
                    conn.state.lock().kicked = false;
                }
            }
            Cmd::Keepalive(conn) => {
                if let Some(&t) = self.by_conn.get(&conn.id()) {
                    if let Some(s) = self.socks.get_mut(&t) {
                        if s.ready {
                            s.proto.send_keepalive();
                            let v = self.flush(t);
                            self.settle(t, v);
                        }
                    }
                }
            }
            Cmd::Adopt(conn, s) => {
                if let Some(t) = self.add_sock(*s) {
                    // Frames that came with the socket (already decoded) are handled here.
                    let v = match self.events(t) {
                        Verdict::Keep => self.drain(t),
                        v => v,
                    };
                    self.settle(t, v);
                }
                drop(conn);
            }
            Cmd::Resume(_conn, s, r) => {
                let Some(msgr) = self.msgr.upgrade() else { return };
                // The session's current socket is replaced (in add_sock) only if the
                // reconnect is accepted: a forged one must not cut the real peer off.
                let mut s = *s;
                let resumed = msgr.resume_session(&r, &mut s.proto);
                if let Some(c) = &resumed {
                    s.ready = true;
                    s.conn = Some(c.clone());
                    c.state.lock().kicked = true;
                }
                if let Some(t) = self.add_sock(s) {
                    let v = match self.events(t) {
                        Verdict::Keep if resumed.is_some() => self.drain(t),
                        Verdict::Keep => self.flush(t),
                        v => v,
                    };
                    self.settle(t, v);
                }
            }
            Cmd::MarkDown(conn) => {
                if let Some(t) = self.by_conn.remove(&conn.id()) {
                    if let Some(mut s) = self.socks.remove(&t) {
                        let _ = self.poll.registry().deregister(&mut s.stream);
                    }
                }
                self.reconnects.retain(|(_, c)| c.id() != conn.id());
                self.perf.set(L_ACTIVE, self.socks.len() as u64);
            }
            Cmd::Stop => {}
        }
    }

    /// Opens (or reopens) the TCP connection of an outgoing session.
    fn connect(&mut self, conn: ConnectionRef) {
        let Some(msgr) = self.msgr.upgrade() else { return };
        let target = conn.peer_addr();
        let session = {
            let mut st = conn.state.lock();
            if st.status == ConnStatus::Closed {
                return;
            }
            let gseq = msgr.sessions.next_global_seq();
            session::client_session(
                &mut st,
                conn.policy.lossy,
                msgr.addrs_for(conn.local_nonce),
                gseq,
                crate::msgr::addr::random_cookie,
            )
        };
        let Some(sa) = target.addr else {
            self.give_up(&conn, "target has no address");
            return;
        };
        let in_seq = conn.state.lock().in_seq;
        let mut proto = Protocol::client(
            msgr.local_info(conn.local_nonce),
            target,
            Some(conn.peer_type()),
            session,
            msgr.frame_limits(),
        );
        proto.set_in_seq(in_seq);
        proto.set_recv_pool(msgr.recv_pool());
        let stream = match TcpStream::connect(sa) {
            Ok(s) => s,
            Err(e) => {
                self.fault_conn(&conn, &format!("connect {sa}: {e}"), true);
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        self.perf.inc(L_CREATED, 1);
        let mut s = Sock {
            stream,
            proto,
            wq: VecDeque::new(),
            conn: Some(conn),
            outgoing: true,
            connected: false,
            ready: false,
            started: Instant::now(),
            last_active: Instant::now(),
        };
        s.wq.extend(s.proto.take_output());
        self.add_sock(s);
    }

    fn give_up(&mut self, conn: &ConnectionRef, why: &str) {
        log::warn!(target: "ms", "connection to {}: {why}", conn.peer_addr());
        conn.close_and_discard();
    }

    fn due_reconnects(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reconnects)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.reconnects = later;
        for (_, c) in due {
            if !self.by_conn.contains_key(&c.id()) {
                self.connect(c);
            }
        }
    }

    /// `ms_connection_ready_timeout`: a handshake that does not finish in time is a fault;
    /// `ms_connection_idle_timeout`: neither does a session that carried nothing for that long.
    fn check_timeouts(&mut self) {
        let now = Instant::now();
        let (ready, idle) = (self.conf.ready_timeout, self.conf.idle_timeout);
        let stale: Vec<(usize, &'static str)> = self
            .socks
            .iter()
            .filter_map(|(t, s)| {
                if !s.ready && now.duration_since(s.started) > ready {
                    Some((*t, "handshake timed out (ms_connection_ready_timeout)"))
                } else if s.ready && !idle.is_zero() && now.duration_since(s.last_active) > idle {
                    Some((*t, "idle for longer than ms_connection_idle_timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (t, why) in stale {
            if why.starts_with("idle") {
                log::info!(target: "ms", "closing connection: {why}");
            }
            self.settle(t, Verdict::Fault(why.into()));
        }
    }

    fn settle(&mut self, t: usize, v: Verdict) {
        match v {
            Verdict::Keep | Verdict::Moved => {}
            Verdict::Fault(why) => self.fault(t, &why),
        }
    }

    /// `to_eagain`: keep reading until the socket says EAGAIN. Needed when the event already
    /// reported the peer's close (no later edge will) and when data may have been left unread
    /// (throttled); otherwise a short read means the socket is empty, and what arrives later
    /// raises a new edge, which saves a read per wake-up.
    fn on_ready(&mut self, t: usize, readable: bool, to_eagain: bool, writable: bool) -> Verdict {
        {
            let s = self.socks.get_mut(&t).expect("token checked");
            if !s.connected {
                match s.stream.take_error() {
                    Ok(Some(e)) | Err(e) => return Verdict::Fault(format!("connect: {e}")),
                    Ok(None) => {}
                }
                match s.stream.peer_addr() {
                    Ok(_) => s.connected = true,
                    Err(e) if e.kind() == ErrorKind::NotConnected => return Verdict::Keep,
                    Err(e) => return Verdict::Fault(format!("connect: {e}")),
                }
            }
        }
        if readable {
            match self.read(t, to_eagain) {
                Verdict::Keep => {}
                v => return v,
            }
        }
        if writable || self.socks.get(&t).is_some_and(|s| !s.wq.is_empty()) {
            return self.flush(t);
        }
        Verdict::Keep
    }

    /// A socket failed: close it and decide the session's fate by its policy.
    fn fault(&mut self, t: usize, why: &str) {
        let Some(mut s) = self.socks.remove(&t) else { return };
        let _ = self.poll.registry().deregister(&mut s.stream);
        self.perf.inc(L_FAULTS, 1);
        self.perf.set(L_ACTIVE, self.socks.len() as u64);
        let Some(conn) = s.conn.take() else {
            log::debug!(target: "ms", "handshake socket closed: {why}");
            return;
        };
        if self.by_conn.get(&conn.id()) == Some(&t) {
            self.by_conn.remove(&conn.id());
        } else if s.ready {
            // Not the session's current socket (already replaced): nothing else to do.
            return;
        }
        let refused = s.outgoing && !s.connected;
        self.fault_conn(&conn, why, refused);
    }

    fn fault_conn(&mut self, conn: &ConnectionRef, why: &str, refused: bool) {
        let Some(msgr) = self.msgr.upgrade() else { return };
        log::debug!(target: "ms", "fault on {} ({}): {why}", conn.peer_addr(), conn.policy.name());
        let mut st = conn.state.lock();
        if st.status == ConnStatus::Closed {
            return;
        }
        if conn.policy.lossy {
            drop(st);
            conn.close_and_discard();
            msgr.forget(conn);
            let ev = if refused {
                ConnEvent::ConnRefused
            } else {
                ConnEvent::BadReset
            };
            msgr.dq().queue_event(ev, conn.clone());
            return;
        }
        session::requeue_unacked(&mut st);
        if conn.outgoing && !conn.policy.server {
            st.status = ConnStatus::Connecting;
            let backoff = self.conf.backoff(st.failures);
            st.failures += 1;
            drop(st);
            if refused {
                msgr.dq().queue_event(ConnEvent::ConnRefused, conn.clone());
            }
            self.reconnects.push((Instant::now() + backoff, conn.clone()));
        } else {
            st.status = ConnStatus::Standby;
        }
    }
}
