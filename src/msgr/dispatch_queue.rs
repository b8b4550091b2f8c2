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
            let spawned = crate::common::log::ThreadBuilder::new()
                .name(name.to_string())
                .spawn(move || {
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
#[path = "dispatch_queue_tests.rs"]
mod tests;
