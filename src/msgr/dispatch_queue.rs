//! Ceph's `DispatchQueue` (reference §6.2): the messages no fast dispatcher claimed, and the
//! connection events, waiting for the `ms_dispatch` thread; plus the `ms_local` thread that
//! delivers the messages a messenger sends to itself.
//!
//! Ordering comes from the [`PrioritizedQueue`]: priority >= `CEPH_MSG_PRIO_LOW` is strict, below
//! it token buckets; the class is the connection id, so connections are served round-robin
//! inside a priority and each connection's messages stay in order. Connection events are strict
//! items at priority 255 in class 0 (the class of local deliveries), which puts them ahead of
//! ordinary traffic and in order with the other class-0 items of that priority.
//!
//! Each queued message holds `dispatch_throttle_size` bytes of the messenger's dispatch throttle;
//! they go back when the dispatcher returns, when the message is discarded with its connection,
//! or when the queue is shut down, so that a stopped queue can never leave the readers blocked.

use super::connection::ConnectionRef;
use super::dispatcher::DispatcherChain;
use super::message::{Message, CEPH_MSG_PRIO_HIGHEST, CEPH_MSG_PRIO_LOW};
use super::prioritized_queue::PrioritizedQueue;
use crate::common::perf::{PerfCounters, PerfCountersBuilder, PerfCountersCollection};
use crate::common::throttle::Throttle;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

// Counter indices, in the order `build_perf` adds them.
const L_QUEUE_LEN: usize = 0;
const L_DISPATCHED: usize = 1;
const L_DISPATCH_LATENCY: usize = 2;
const L_LOCAL_DELIVERED: usize = 3;

/// Connection events, numbered as Ceph's `D_CONNECT` .. `D_CONN_REFUSED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnEvent {
    Connect = 1,
    Accept = 2,
    BadRemoteReset = 3,
    BadReset = 4,
    ConnRefused = 5,
}

// Nearly every item is a message, so boxing it to shrink the rare event variant would only add
// an allocation per message.
#[allow(clippy::large_enum_variant)]
enum QueueItem {
    Message {
        m: Message,
        enqueued: Instant,
        /// Key in `Queue::arrivals`.
        arrival: (Instant, u64),
    },
    Event {
        ev: ConnEvent,
        conn: ConnectionRef,
    },
}

struct Queue {
    pq: PrioritizedQueue<QueueItem, u64>,
    /// Receive stamps of the queued messages (made unique by a sequence number), oldest first:
    /// `max_age` needs the oldest without a scan.
    arrivals: BTreeSet<(Instant, u64)>,
    next_arrival: u64,
    stop: bool,
}

impl Queue {
    fn take_all(&mut self) -> Vec<QueueItem> {
        self.arrivals.clear();
        std::iter::from_fn(|| self.pq.dequeue()).collect()
    }
}

struct Local {
    q: VecDeque<(Message, u16)>,
    stop: bool,
}

type ThreadBody = fn(&Arc<DispatchQueue>);

#[derive(Default)]
struct Threads {
    started: bool,
    ids: Vec<ThreadId>,
    handles: Vec<JoinHandle<()>>,
}

/// Shared through `Arc`; `start` launches `ms_dispatch` and `ms_local`, which hold a reference
/// until `shutdown`, so a started queue must be shut down to be freed.
pub struct DispatchQueue {
    chain: Arc<DispatcherChain>,
    throttle: Arc<Throttle>,
    queue: Mutex<Queue>,
    queue_cond: Condvar,
    local: Mutex<Local>,
    local_cond: Condvar,
    threads: Mutex<Threads>,
    /// Threads started and not yet finished; `wait` sleeps on `exited` until it is 0. A count
    /// rather than joining handles so that several callers may wait at once.
    running: Mutex<usize>,
    exited: Condvar,
    perf: Option<Arc<PerfCounters>>,
    perf_coll: Option<Weak<PerfCountersCollection>>,
}

/// Lives as long as one of the two threads (it moves into the thread's closure, so a failed
/// spawn counts the thread out as well).
struct RunningGuard(Arc<DispatchQueue>);

impl RunningGuard {
    fn new(dq: &Arc<DispatchQueue>) -> Self {
        *dq.running.lock() += 1;
        RunningGuard(dq.clone())
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut r = self.0.running.lock();
        *r -= 1;
        if *r == 0 {
            self.0.exited.notify_all();
        }
    }
}

fn build_perf(msgr_name: &str) -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new(format!("dispatch_queue-{msgr_name}"));
    let idx = [
        b.add_u64("queue_len", "Messages and connection events waiting for ms_dispatch"),
        b.add_u64_counter("dispatched", "Messages handed to the dispatchers by ms_dispatch"),
        b.add_time_avg("dispatch_latency", "Time from enqueue to the start of dispatch"),
        b.add_u64_counter("local_delivered", "Messages delivered by ms_local"),
    ];
    debug_assert_eq!(idx, [L_QUEUE_LEN, L_DISPATCHED, L_DISPATCH_LATENCY, L_LOCAL_DELIVERED]);
    b.build()
}

impl DispatchQueue {
    /// `max_tokens` and `min_cost` configure the [`PrioritizedQueue`] (Ceph's
    /// `ms_pq_max_tokens_per_priority` and `ms_pq_min_cost`). With `perf`, logger
    /// `dispatch_queue-<msgr_name>` is added to it, and removed when the queue is dropped.
    pub fn new(
        msgr_name: &str,
        chain: Arc<DispatcherChain>,
        dispatch_throttle: Arc<Throttle>,
        perf: Option<&Arc<PerfCountersCollection>>,
        max_tokens: u64,
        min_cost: u64,
    ) -> Arc<Self> {
        let pc = perf.map(|coll| {
            let pc = build_perf(msgr_name);
            coll.add(&pc);
            pc
        });
        Arc::new(DispatchQueue {
            chain,
            throttle: dispatch_throttle,
            queue: Mutex::new(Queue {
                pq: PrioritizedQueue::new(max_tokens, min_cost),
                arrivals: BTreeSet::new(),
                next_arrival: 0,
                stop: false,
            }),
            queue_cond: Condvar::new(),
            local: Mutex::new(Local {
                q: VecDeque::new(),
                stop: false,
            }),
            local_cond: Condvar::new(),
            threads: Mutex::new(Threads::default()),
            running: Mutex::new(0),
            exited: Condvar::new(),
            perf: pc,
            perf_coll: perf.map(Arc::downgrade),
        })
    }

    /// Starts `ms_dispatch` and `ms_local`. A second call does nothing; after `shutdown` it
    /// fails, because a stopped queue discards everything it is given.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let mut th = self.threads.lock();
        if self.queue.lock().stop {
            return Err(std::io::Error::other("dispatch queue was shut down"));
        }
        if th.started {
            return Ok(());
        }
        th.started = true;
        let bodies: [(&str, ThreadBody); 2] = [("ms_dispatch", Self::run_dispatch), ("ms_local", Self::run_local)];
        for (name, body) in bodies {
            let guard = RunningGuard::new(self);
            let spawned = std::thread::Builder::new().name(name.to_string()).spawn(move || {
                let g = guard;
                body(&g.0);
            });
            match spawned {
                Ok(h) => {
                    th.ids.push(h.thread().id());
                    th.handles.push(h);
                }
                Err(e) => {
                    drop(th);
                    self.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn pset(&self, idx: usize, v: u64) {
        if let Some(pc) = &self.perf {
            pc.set(idx, v);
        }
    }

    fn pinc(&self, idx: usize, v: u64) {
        if let Some(pc) = &self.perf {
            pc.inc(idx, v);
        }
    }

    /// Drops a message that will not be dispatched, giving back its dispatch-throttle share.
    fn release(&self, m: Message) {
        if m.dispatch_throttle_size > 0 {
            self.throttle.put(m.dispatch_throttle_size);
        }
    }

    fn release_items(&self, items: Vec<QueueItem>) -> usize {
        let mut n = 0;
        for it in items {
            if let QueueItem::Message { m, .. } = it {
                self.release(m);
                n += 1;
            }
        }
        n
    }

    /// Queues a message from connection `conn_id` (0 = local) for `ms_dispatch`. After
    /// `shutdown` the message is dropped and its throttle share returned.
    pub fn enqueue(&self, m: Message, priority: u16, conn_id: u64) {
        let now = Instant::now();
        let mut q = self.queue.lock();
        if q.stop {
            drop(q);
            log::debug!(target: "ms", "dispatch queue stopped, discarding message type {} (tid {})", m.ty, m.tid);
            self.release(m);
            return;
        }
        // The receive stamp, when there is one, also counts the time spent waiting for the
        // throttles, which is what the heartbeat's queue-age check wants to see.
        let arrival = (m.recv_stamp.unwrap_or(now), q.next_arrival);
        q.next_arrival += 1;
        q.arrivals.insert(arrival);
        let cost = m.cost();
        let item = QueueItem::Message {
            m,
            enqueued: now,
            arrival,
        };
        if priority >= CEPH_MSG_PRIO_LOW {
            q.pq.enqueue_strict(conn_id, priority, item);
        } else {
            q.pq.enqueue(conn_id, priority, cost, item);
        }
        self.pset(L_QUEUE_LEN, q.pq.len() as u64);
        drop(q);
        self.queue_cond.notify_one();
    }

    /// Queues a connection event for `ms_dispatch`, ahead of lower-priority messages and in order
    /// with the other items of class 0 at priority 255.
    pub fn queue_event(&self, ev: ConnEvent, conn: ConnectionRef) {
        let mut q = self.queue.lock();
        if q.stop {
            return;
        }
        q.pq.enqueue_strict(0, CEPH_MSG_PRIO_HIGHEST, QueueItem::Event { ev, conn });
        self.pset(L_QUEUE_LEN, q.pq.len() as u64);
        drop(q);
        self.queue_cond.notify_one();
    }

    /// A message this messenger sent to itself: handed to `ms_local`, which offers it to the fast
    /// dispatchers and queues it (class 0) if none claims it. The caller never runs a dispatcher.
    pub fn local_delivery(&self, mut m: Message, priority: u16) {
        m.recv_stamp = Some(Instant::now());
        let mut l = self.local.lock();
        if l.stop {
            drop(l);
            self.release(m);
            return;
        }
        l.q.push_back((m, priority));
        drop(l);
        self.local_cond.notify_one();
    }

    /// Removes the queued messages of a connection (Ceph does this when a connection is marked
    /// down) and returns their dispatch-throttle bytes. Returns how many were removed.
    pub fn discard_queue(&self, conn_id: u64) -> usize {
        if conn_id == 0 {
            // Class 0 holds connection events and local deliveries, which belong to no
            // connection; Ceph asserts on this.
            log::warn!(target: "ms", "discard_queue(0) refused: id 0 is not a connection");
            return 0;
        }
        let removed = {
            let mut q = self.queue.lock();
            let removed = q.pq.remove_by_class(&conn_id);
            for it in &removed {
                if let QueueItem::Message { arrival, .. } = it {
                    q.arrivals.remove(arrival);
                }
            }
            self.pset(L_QUEUE_LEN, q.pq.len() as u64);
            removed
        };
        self.release_items(removed)
    }

    /// Messages and events waiting for `ms_dispatch` (not counting those still with `ms_local`).
    pub fn len(&self) -> usize {
        self.queue.lock().pq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long the oldest queued message has been waiting since it was received; zero when
    /// none is queued.
    pub fn max_age(&self) -> Duration {
        let oldest = self.queue.lock().arrivals.first().map(|(t, _)| *t);
        oldest.map_or(Duration::ZERO, |t| t.elapsed())
    }

    fn is_own_thread(&self) -> bool {
        self.threads.lock().ids.contains(&std::thread::current().id())
    }

    /// Stops both threads and discards everything queued (returning the throttle bytes at once,
    /// so that readers blocked on the dispatch throttle are freed even while a dispatcher is
    /// still running). Then waits for the threads, unless called from one of them (a
    /// dispatcher), which would wait for itself.
    pub fn shutdown(&self) {
        let queued = {
            let mut q = self.queue.lock();
            q.stop = true;
            let items = q.take_all();
            self.pset(L_QUEUE_LEN, 0);
            self.queue_cond.notify_all();
            items
        };
        let local: Vec<(Message, u16)> = {
            let mut l = self.local.lock();
            l.stop = true;
            self.local_cond.notify_all();
            l.q.drain(..).collect()
        };
        let n = self.release_items(queued) + local.len();
        for (m, _) in local {
            self.release(m);
        }
        if n > 0 {
            log::debug!(target: "ms", "dispatch queue shut down, discarded {n} messages");
        }
        if !self.is_own_thread() {
            self.wait();
        }
    }

    /// Blocks until both threads have exited (at once if they were never started). From one of
    /// the two threads it returns at once, since it would wait for itself.
    pub fn wait(&self) {
        if self.is_own_thread() {
            log::warn!(target: "ms", "DispatchQueue::wait called from a dispatch thread; not waiting");
            return;
        }
        let mut r = self.running.lock();
        while *r > 0 {
            self.exited.wait(&mut r);
        }
        drop(r);
        let handles = std::mem::take(&mut self.threads.lock().handles);
        for h in handles {
            let _ = h.join();
        }
    }

    /// The `ms_dispatch` thread.
    fn run_dispatch(self: &Arc<Self>) {
        loop {
            let item = {
                let mut q = self.queue.lock();
                loop {
                    if q.stop {
                        return;
                    }
                    if let Some(item) = q.pq.dequeue() {
                        if let QueueItem::Message { arrival, .. } = &item {
                            q.arrivals.remove(arrival);
                        }
                        self.pset(L_QUEUE_LEN, q.pq.len() as u64);
                        break item;
                    }
                    self.queue_cond.wait(&mut q);
                }
            };
            // No lock of ours is held from here: a dispatcher may enqueue, discard or even
            // shut the queue down.
            match item {
                QueueItem::Message { mut m, enqueued, .. } => {
                    // Zeroed so that a dispatcher that requeues the message cannot return the
                    // bytes a second time.
                    let size = std::mem::take(&mut m.dispatch_throttle_size);
                    if let Some(pc) = &self.perf {
                        pc.tinc(L_DISPATCH_LATENCY, enqueued.elapsed());
                    }
                    let (ty, tid) = (m.ty, m.tid);
                    if catch_unwind(AssertUnwindSafe(|| self.chain.dispatch(m))).is_err() {
                        log::error!(target: "ms", "dispatcher panicked on message type {ty} (tid {tid})");
                    }
                    if size > 0 {
                        self.throttle.put(size);
                    }
                    self.pinc(L_DISPATCHED, 1);
                }
                QueueItem::Event { ev, conn } => {
                    let deliver = || match ev {
                        ConnEvent::Connect => self.chain.connect(&conn),
                        ConnEvent::Accept => self.chain.accept(&conn),
                        ConnEvent::BadRemoteReset => self.chain.remote_reset(&conn),
                        ConnEvent::BadReset => self.chain.reset(&conn),
                        ConnEvent::ConnRefused => self.chain.refused(&conn),
                    };
                    if catch_unwind(AssertUnwindSafe(deliver)).is_err() {
                        log::error!(target: "ms", "dispatcher panicked on {ev:?} of connection {}", conn.id());
                    }
                }
            }
        }
    }

    /// The `ms_local` thread.
    fn run_local(self: &Arc<Self>) {
        loop {
            let (mut m, priority) = {
                let mut l = self.local.lock();
                loop {
                    if l.stop {
                        return;
                    }
                    if let Some(x) = l.q.pop_front() {
                        break x;
                    }
                    self.local_cond.wait(&mut l);
                }
            };
            let size = std::mem::take(&mut m.dispatch_throttle_size);
            let (ty, tid) = (m.ty, m.tid);
            match catch_unwind(AssertUnwindSafe(|| self.chain.try_fast_dispatch(m))) {
                Ok(Some(mut m)) => {
                    m.dispatch_throttle_size = size;
                    self.enqueue(m, priority, 0);
                }
                // Fast-dispatched: Ceph's fast_dispatch does the post_dispatch release too.
                Ok(None) => {
                    if size > 0 {
                        self.throttle.put(size);
                    }
                }
                Err(_) => {
                    log::error!(target: "ms", "fast dispatcher panicked on local message type {ty} (tid {tid})");
                    if size > 0 {
                        self.throttle.put(size);
                    }
                }
            }
            self.pinc(L_LOCAL_DELIVERED, 1);
        }
    }
}

impl Drop for DispatchQueue {
    fn drop(&mut self) {
        // Only reached when no thread runs (they hold an Arc), but a queue that was never
        // started or shut down may still hold throttle bytes.
        let items = self.queue.get_mut().take_all();
        self.release_items(items);
        let local: Vec<_> = self.local.get_mut().q.drain(..).collect();
        for (m, _) in local {
            self.release(m);
        }
        if let (Some(pc), Some(coll)) = (&self.perf, self.perf_coll.as_ref().and_then(Weak::upgrade)) {
            coll.remove(pc);
        }
    }
}

#[cfg(test)]
mod tests {
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
}
