//! Tests of the DispatchQueue: priorities, throttling, connection events, local delivery and shutdown.

use super::*;
use crate::msgr::connection::Connection;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::{CEPH_MSG_PRIO_DEFAULT, CEPH_MSG_PRIO_HIGH};
use bytes::Bytes;
use std::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);
const GATE: u16 = 999;
const MSG: u16 = 1;

#[derive(Debug, Clone)]
struct Rec {
    what: String,
    thread: String,
    stamped: bool,
}

struct Gate {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<Rec>>,
    cv: Condvar,
    /// Messages of this type are claimed by fast dispatch.
    fast_ty: Option<u16>,
    /// Dispatching a message of this type shuts the queue down from inside the dispatcher.
    shutdown_ty: Option<u16>,
    dq: Mutex<Weak<DispatchQueue>>,
    gate: Mutex<Option<Gate>>,
}

impl Recorder {
    fn record(&self, what: String, stamped: bool) {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.log.lock().push(Rec { what, thread, stamped });
        self.cv.notify_all();
    }

    /// The first `n` records, waiting for them (bounded).
    fn wait_for(&self, n: usize) -> Vec<Rec> {
        let deadline = Instant::now() + LIMIT;
        let mut l = self.log.lock();
        while l.len() < n && !self.cv.wait_until(&mut l, deadline).timed_out() {}
        assert!(l.len() >= n, "only {} of {n} deliveries: {:?}", l.len(), *l);
        l.clone()
    }

    fn whats(&self, n: usize) -> Vec<String> {
        self.wait_for(n).into_iter().map(|r| r.what).collect()
    }
}

impl Dispatcher for Recorder {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        self.fast_ty == Some(m.ty)
    }
    fn ms_fast_dispatch(&self, m: Message) {
        self.record(format!("fast{}", m.tid), m.recv_stamp.is_some());
    }
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        if m.ty == GATE {
            let gate = self.gate.lock().take();
            if let Some(g) = gate {
                let _ = g.entered.send(());
                let _ = g.release.recv_timeout(LIMIT);
            }
        }
        if self.shutdown_ty == Some(m.ty) {
            let dq = self.dq.lock().upgrade();
            if let Some(dq) = dq {
                dq.shutdown();
            }
        }
        self.record(format!("m{}", m.tid), m.recv_stamp.is_some());
        None
    }
    fn ms_handle_connect(&self, c: &ConnectionRef) {
        self.record(format!("connect{}", c.id()), false);
    }
    fn ms_handle_accept(&self, c: &ConnectionRef) {
        self.record(format!("accept{}", c.id()), false);
    }
    fn ms_handle_reset(&self, c: &ConnectionRef) -> bool {
        self.record(format!("reset{}", c.id()), false);
        true
    }
    fn ms_handle_remote_reset(&self, c: &ConnectionRef) {
        self.record(format!("remote_reset{}", c.id()), false);
    }
    fn ms_handle_refused(&self, c: &ConnectionRef) -> bool {
        self.record(format!("refused{}", c.id()), false);
        true
    }
}

struct Harness {
    dq: Arc<DispatchQueue>,
    rec: Arc<Recorder>,
    throttle: Arc<Throttle>,
}

fn harness_with(rec: Recorder, perf: Option<&Arc<PerfCountersCollection>>, start: bool) -> Harness {
    let rec = Arc::new(rec);
    let chain = Arc::new(DispatcherChain::new());
    chain.add_tail(rec.clone());
    let throttle = Throttle::new("msgr_dispatch_throttler-test", 0, None);
    let dq = DispatchQueue::new("test", chain, throttle.clone(), perf, 16_777_216, 65_536);
    *rec.dq.lock() = Arc::downgrade(&dq);
    if start {
        dq.start().expect("start");
    }
    Harness { dq, rec, throttle }
}

fn harness() -> Harness {
    harness_with(Recorder::default(), None, true)
}

impl Harness {
    /// A message holding `bytes` of the dispatch throttle, as the reader would have taken.
    fn msg_ty(&self, ty: u16, tid: u64, bytes: u64) -> Message {
        let mut m = Message::new(ty, Bytes::new()).with_tid(tid);
        if bytes > 0 {
            self.throttle.take(bytes);
            m.dispatch_throttle_size = bytes;
        }
        m
    }

    fn msg(&self, tid: u64, bytes: u64) -> Message {
        self.msg_ty(MSG, tid, bytes)
    }

    /// Parks `ms_dispatch` inside the dispatcher (on message "m0") so that what is enqueued
    /// next is all queued before the next dequeue; sending on the result lets it go.
    fn hold(&self) -> mpsc::Sender<()> {
        let (etx, erx) = mpsc::channel();
        let (rtx, rrx) = mpsc::channel();
        *self.rec.gate.lock() = Some(Gate {
            entered: etx,
            release: rrx,
        });
        self.dq.enqueue(self.msg_ty(GATE, 0, 0), CEPH_MSG_PRIO_DEFAULT, 99);
        erx.recv_timeout(LIMIT).expect("ms_dispatch reached the gate");
        rtx
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.dq.shutdown();
    }
}

fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + LIMIT;
    while !f() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<DispatchQueue>();
}

#[test]
fn one_connection_one_priority_is_dispatched_in_order() {
    let h = harness();
    for tid in 1..=50 {
        h.dq.enqueue(h.msg(tid, 10), CEPH_MSG_PRIO_DEFAULT, 1);
    }
    let recs = h.rec.wait_for(50);
    let expected: Vec<String> = (1..=50).map(|t| format!("m{t}")).collect();
    assert_eq!(recs.iter().map(|r| r.what.clone()).collect::<Vec<_>>(), expected);
    assert!(recs.iter().all(|r| r.thread == "ms_dispatch"), "{recs:?}");
    assert!(
        eventually(|| h.throttle.get_current() == 0),
        "bytes not returned after dispatch"
    );
}

#[test]
fn higher_priority_overtakes_queued_messages() {
    let h = harness();
    let release = h.hold();
    for tid in 1..=20 {
        h.dq.enqueue(h.msg(tid, 0), CEPH_MSG_PRIO_DEFAULT, 1);
    }
    h.dq.enqueue(h.msg(100, 0), CEPH_MSG_PRIO_HIGH, 1);
    assert_eq!(h.dq.len(), 21);
    release.send(()).unwrap();
    let mut expected = names(&["m0", "m100"]);
    expected.extend((1..=20).map(|t| format!("m{t}")));
    assert_eq!(h.rec.whats(22), expected);
}

#[test]
fn prio_low_is_the_first_strict_priority() {
    let h = harness();
    let release = h.hold();
    // 63 goes to the token tier, 64 is strict: strict always goes first.
    h.dq.enqueue(h.msg(1, 0), CEPH_MSG_PRIO_LOW - 1, 1);
    h.dq.enqueue(h.msg(2, 0), CEPH_MSG_PRIO_LOW, 1);
    release.send(()).unwrap();
    assert_eq!(h.rec.whats(3), names(&["m0", "m2", "m1"]));
}

#[test]
fn connection_events_overtake_lower_priorities_and_keep_order_at_255() {
    let h = harness();
    let release = h.hold();
    let (c7, c8, c9) = (
        Connection::new_for_tests(7),
        Connection::new_for_tests(8),
        Connection::new_for_tests(9),
    );
    h.dq.enqueue(h.msg(1, 0), CEPH_MSG_PRIO_DEFAULT, 1);
    h.dq.enqueue(h.msg(2, 0), CEPH_MSG_PRIO_HIGH, 1);
    h.dq.queue_event(ConnEvent::Connect, c7.clone());
    h.dq.enqueue(h.msg(3, 0), CEPH_MSG_PRIO_HIGHEST, 0);
    h.dq.queue_event(ConnEvent::BadReset, c7);
    h.dq.queue_event(ConnEvent::Accept, c8.clone());
    h.dq.queue_event(ConnEvent::BadRemoteReset, c8);
    h.dq.queue_event(ConnEvent::ConnRefused, c9);
    assert_eq!(h.dq.len(), 8);
    release.send(()).unwrap();
    assert_eq!(
        h.rec.whats(9),
        names(&[
            "m0",
            "connect7",
            "m3",
            "reset7",
            "accept8",
            "remote_reset8",
            "refused9",
            "m2",
            "m1"
        ])
    );
}

#[test]
fn connections_are_served_round_robin_within_a_priority() {
    let h = harness();
    let release = h.hold();
    for tid in 1..=3 {
        h.dq.enqueue(h.msg(tid, 0), CEPH_MSG_PRIO_DEFAULT, 1);
    }
    for tid in 4..=5 {
        h.dq.enqueue(h.msg(tid, 0), CEPH_MSG_PRIO_DEFAULT, 2);
    }
    release.send(()).unwrap();
    assert_eq!(h.rec.whats(6), names(&["m0", "m1", "m4", "m2", "m5", "m3"]));
}

#[test]
fn local_delivery_uses_fast_dispatch_on_ms_local_or_queues_for_ms_dispatch() {
    let h = harness_with(
        Recorder {
            fast_ty: Some(7),
            ..Default::default()
        },
        None,
        true,
    );
    h.dq.local_delivery(h.msg_ty(7, 1, 10), CEPH_MSG_PRIO_DEFAULT);
    h.dq.local_delivery(h.msg_ty(8, 2, 20), CEPH_MSG_PRIO_DEFAULT);
    let recs = h.rec.wait_for(2);
    assert_eq!(recs[0].what, "fast1");
    assert_eq!(recs[0].thread, "ms_local");
    assert_eq!(recs[1].what, "m2");
    assert_eq!(recs[1].thread, "ms_dispatch");
    assert!(recs.iter().all(|r| r.stamped), "receive stamps missing: {recs:?}");
    assert!(
        eventually(|| h.throttle.get_current() == 0),
        "{}",
        h.throttle.get_current()
    );
}

#[test]
fn discard_queue_removes_a_connection_and_returns_its_bytes() {
    let h = harness();
    let release = h.hold();
    let old = Instant::now().checked_sub(Duration::from_secs(5));
    for tid in 1..=3 {
        let mut m = h.msg(tid, 100);
        if tid == 1 {
            m.recv_stamp = old;
        }
        h.dq.enqueue(m, CEPH_MSG_PRIO_DEFAULT, 1);
    }
    for tid in 4..=5 {
        h.dq.enqueue(h.msg(tid, 50), CEPH_MSG_PRIO_DEFAULT, 2);
    }
    assert_eq!(h.dq.len(), 5);
    assert_eq!(h.throttle.get_current(), 400);
    if old.is_some() {
        assert!(h.dq.max_age() >= Duration::from_secs(5));
    }

    assert_eq!(h.dq.discard_queue(1), 3);
    assert_eq!(h.throttle.get_current(), 100);
    assert_eq!(h.dq.len(), 2);
    assert!(h.dq.max_age() < Duration::from_secs(5));
    assert_eq!(h.dq.discard_queue(1), 0);
    assert_eq!(h.dq.discard_queue(0), 0, "class 0 is not a connection");

    release.send(()).unwrap();
    assert_eq!(h.rec.whats(3), names(&["m0", "m4", "m5"]));
    assert!(
        eventually(|| h.throttle.get_current() == 0),
        "{}",
        h.throttle.get_current()
    );
    assert_eq!(h.dq.max_age(), Duration::ZERO);
    assert!(h.dq.is_empty());
}

#[test]
fn shutdown_discards_the_queue_and_returns_all_bytes() {
    let h = harness();
    let release = h.hold();
    for tid in 1..=10 {
        h.dq.enqueue(h.msg(tid, 100), CEPH_MSG_PRIO_DEFAULT, tid % 3 + 1);
    }
    h.dq.enqueue(h.msg(11, 100), 10, 1);
    h.dq.queue_event(ConnEvent::Connect, Connection::new_for_tests(5));
    assert_eq!(h.throttle.get_current(), 1100);

    // shutdown waits for ms_dispatch, which is parked in the gate: run it aside.
    let (done_tx, done_rx) = mpsc::channel();
    let dq = h.dq.clone();
    let t = std::thread::spawn(move || {
        dq.shutdown();
        let _ = done_tx.send(());
    });
    assert!(
        eventually(|| h.throttle.get_current() == 0 && h.dq.is_empty()),
        "queue not discarded"
    );
    assert!(
        done_rx.try_recv().is_err(),
        "shutdown returned before ms_dispatch exited"
    );
    release.send(()).unwrap();
    done_rx.recv_timeout(LIMIT).expect("shutdown finished");
    t.join().unwrap();
    assert_eq!(h.rec.whats(1), names(&["m0"]));

    // Once stopped, whatever arrives is dropped with its bytes returned.
    h.dq.enqueue(h.msg(20, 100), CEPH_MSG_PRIO_DEFAULT, 1);
    h.dq.local_delivery(h.msg(21, 100), CEPH_MSG_PRIO_DEFAULT);
    h.dq.queue_event(ConnEvent::Accept, Connection::new_for_tests(5));
    assert_eq!(h.throttle.get_current(), 0);
    assert!(h.dq.is_empty());
    assert!(h.dq.start().is_err());
    assert_eq!(h.rec.log.lock().len(), 1, "{:?}", h.rec.log.lock());
}

#[test]
fn shutdown_from_a_dispatcher_does_not_deadlock() {
    const STOP: u16 = 5;
    let h = harness_with(
        Recorder {
            shutdown_ty: Some(STOP),
            ..Default::default()
        },
        None,
        true,
    );
    h.dq.enqueue(h.msg_ty(STOP, 1, 10), CEPH_MSG_PRIO_DEFAULT, 1);
    for tid in 2..=4 {
        h.dq.enqueue(h.msg(tid, 10), CEPH_MSG_PRIO_DEFAULT, 1);
    }
    let (tx, rx) = mpsc::channel();
    let dq = h.dq.clone();
    std::thread::spawn(move || {
        dq.wait();
        let _ = tx.send(());
    });
    rx.recv_timeout(LIMIT).expect("threads exited");
    assert_eq!(h.rec.whats(1), names(&["m1"]));
    assert_eq!(h.rec.log.lock().len(), 1);
    assert_eq!(h.throttle.get_current(), 0);
}

#[test]
fn perf_counters_follow_the_queue() {
    let coll = Arc::new(PerfCountersCollection::new());
    let h = harness_with(Recorder::default(), Some(&coll), true);
    let pc = coll.get("dispatch_queue-test").expect("logger registered");

    let release = h.hold();
    h.dq.enqueue(h.msg(1, 0), CEPH_MSG_PRIO_DEFAULT, 1);
    h.dq.enqueue(h.msg(2, 0), 5, 1);
    assert_eq!(pc.get(L_QUEUE_LEN), 2);
    release.send(()).unwrap();
    h.dq.local_delivery(h.msg(3, 0), CEPH_MSG_PRIO_DEFAULT);
    h.rec.wait_for(4);
    // Joining the threads makes their last counter updates visible.
    h.dq.shutdown();
    assert_eq!(pc.get(L_DISPATCHED), 4);
    assert_eq!(pc.get(L_LOCAL_DELIVERED), 1);
    assert_eq!(pc.read_avg(L_DISPATCH_LATENCY).1, 4);
    assert_eq!(pc.get(L_QUEUE_LEN), 0);

    drop(h);
    assert!(
        coll.get("dispatch_queue-test").is_none(),
        "logger left behind after drop"
    );
}

#[test]
fn a_queue_never_started_returns_bytes_when_dropped() {
    // Built by hand: the harness would shut the queue down, which returns the bytes itself.
    let throttle = Throttle::new("t", 0, None);
    let dq = DispatchQueue::new(
        "t",
        Arc::new(DispatcherChain::new()),
        throttle.clone(),
        None,
        16_777_216,
        65_536,
    );
    for (i, bytes) in [100u64, 50].into_iter().enumerate() {
        let mut m = Message::new(MSG, Bytes::new());
        throttle.take(bytes);
        m.dispatch_throttle_size = bytes;
        if i == 0 {
            dq.enqueue(m, CEPH_MSG_PRIO_DEFAULT, 1);
        } else {
            dq.local_delivery(m, CEPH_MSG_PRIO_DEFAULT);
        }
    }
    assert_eq!(dq.len(), 1);
    dq.wait(); // nothing started, nothing to wait for
    assert_eq!(throttle.get_current(), 150);
    drop(dq);
    assert_eq!(throttle.get_current(), 0);
}
