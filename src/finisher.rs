//! Ceph's `Finisher` (reference §4): one worker thread completing queued callbacks in FIFO
//! order, so that completions run off the threads that produce them (and off their locks).
//!
//! The worker swaps the whole queue out under the lock and runs the batch unlocked, so
//! producers never wait for callbacks. `stop` does not drain, as in Ceph: callers that need
//! everything run call `wait_for_empty` first. Unlike Ceph, what is still queued at stop (or
//! queued afterwards) is dropped rather than leaked, so captured resources are released.

use crate::common::perf::{PerfCounters, PerfCountersBuilder, PerfCountersCollection};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

/// A queued completion: called once with the result code it was queued with.
pub type Completion = Box<dyn FnOnce(i32) + Send + 'static>;

const L_QUEUE_LEN: usize = 0;
const L_COMPLETE_LAT: usize = 1;

struct State {
    queue: Vec<(Completion, i32)>,
    /// A batch is executing (its entries are no longer in `queue`).
    running: bool,
    stop: bool,
    started: bool,
    thread_id: Option<ThreadId>,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    /// Wakes the worker: work arrived, or stop.
    work: Condvar,
    /// Wakes `wait_for_empty` callers.
    empty: Condvar,
    perf: Option<Arc<PerfCounters>>,
    panics: AtomicU64,
}

impl Shared {
    fn queue_len_dec(&self, n: usize) {
        if let (Some(pc), true) = (&self.perf, n > 0) {
            pc.dec(L_QUEUE_LEN, n as u64);
        }
    }

    fn on_worker(&self, st: &State) -> bool {
        st.thread_id == Some(std::thread::current().id())
    }

    fn run(&self) {
        let mut st = self.state.lock();
        while !st.stop {
            if st.queue.is_empty() {
                self.empty.notify_all();
                self.work.wait(&mut st);
                continue;
            }
            let batch = std::mem::take(&mut st.queue);
            st.running = true;
            MutexGuard::unlocked(&mut st, || self.run_batch(batch));
            st.running = false;
        }
        // Whatever is left will never run; release it without the lock held, as its
        // destructors may queue (and be dropped in turn) or wait.
        let left = std::mem::take(&mut st.queue);
        drop(st);
        self.queue_len_dec(left.len());
        drop(left);
        self.empty.notify_all();
    }

    fn run_batch(&self, batch: Vec<(Completion, i32)>) {
        let start = Instant::now();
        let n = batch.len();
        for (f, r) in batch {
            if catch_unwind(AssertUnwindSafe(move || f(r))).is_err() {
                self.panics.fetch_add(1, Ordering::Relaxed);
                log::error!(target: "finisher", "{}: completion panicked", self.name);
            }
        }
        self.queue_len_dec(n);
        if let Some(pc) = &self.perf {
            pc.tinc(L_COMPLETE_LAT, start.elapsed());
        }
    }
}

/// A finisher; shared through `Arc`. Dropping the last reference stops it.
pub struct Finisher {
    thread_name: String,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    coll: Option<Weak<PerfCountersCollection>>,
}

impl std::fmt::Debug for Finisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finisher")
            .field("name", &self.shared.name)
            .field("thread_name", &self.thread_name)
            .field("empty", &self.is_empty())
            .finish()
    }
}

fn build_perf(name: &str) -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new(format!("finisher-{name}"));
    let idx = [
        b.add_u64("queue_len", "Items in queue"),
        b.add_time_avg("complete_latency", "Latency of a batch"),
    ];
    debug_assert_eq!(idx, [L_QUEUE_LEN, L_COMPLETE_LAT]);
    b.build()
}

impl Finisher {
    /// A finisher whose worker will be named `thread_name` (Linux keeps 15 characters). With
    /// `perf`, logger `finisher-<name>` is added to that collection; a borrowed collection cannot
    /// be reached from `Drop`, so use [`Finisher::new_shared_perf`] to have it removed
    /// automatically.
    pub fn new(name: &str, thread_name: &str, perf: Option<&PerfCountersCollection>) -> Arc<Finisher> {
        let pc = perf.map(|coll| {
            let pc = build_perf(name);
            coll.add(&pc);
            pc
        });
        Self::build(name, thread_name, pc, None)
    }

    /// Like [`Finisher::new`], but the logger leaves `coll` when the finisher is dropped.
    pub fn new_shared_perf(name: &str, thread_name: &str, coll: &Arc<PerfCountersCollection>) -> Arc<Finisher> {
        let pc = build_perf(name);
        coll.add(&pc);
        Self::build(name, thread_name, Some(pc), Some(Arc::downgrade(coll)))
    }

    fn build(
        name: &str,
        thread_name: &str,
        perf: Option<Arc<PerfCounters>>,
        coll: Option<Weak<PerfCountersCollection>>,
    ) -> Arc<Finisher> {
        Arc::new(Finisher {
            thread_name: thread_name.to_string(),
            shared: Arc::new(Shared {
                name: name.to_string(),
                state: Mutex::new(State {
                    queue: Vec::new(),
                    running: false,
                    stop: false,
                    started: false,
                    thread_id: None,
                }),
                work: Condvar::new(),
                empty: Condvar::new(),
                perf,
                panics: AtomicU64::new(0),
            }),
            thread: Mutex::new(None),
            coll,
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn thread_name(&self) -> &str {
        &self.thread_name
    }

    /// The `finisher-<name>` logger, if any.
    pub fn perf_counters(&self) -> Option<&Arc<PerfCounters>> {
        self.shared.perf.as_ref()
    }

    /// Starts the worker. Idempotent; fails once stopped (nothing would run the queue).
    pub fn start(&self) -> std::io::Result<()> {
        let mut st = self.shared.state.lock();
        if st.stop {
            return Err(std::io::Error::other(format!(
                "finisher {} is stopped",
                self.shared.name
            )));
        }
        if st.started {
            return Ok(());
        }
        let shared = self.shared.clone();
        // Spawned under the lock so the worker's id is recorded before any of its callbacks can
        // ask whether they run on it.
        let h = crate::common::log::ThreadBuilder::new()
            .name(self.thread_name.clone())
            .spawn(move || shared.run())?;
        st.thread_id = Some(h.thread().id());
        st.started = true;
        *self.thread.lock() = Some(h);
        Ok(())
    }

    /// True once `stop` ran: queued work is then dropped unrun.
    pub fn is_stopped(&self) -> bool {
        self.shared.state.lock().stop
    }

    /// Queues `f` to be called with `r` on the worker, after everything queued before it.
    pub fn queue(&self, f: impl FnOnce(i32) + Send + 'static, r: i32) {
        let mut st = self.shared.state.lock();
        if st.stop {
            drop(st);
            log::debug!(target: "finisher", "{}: queue after stop, dropped", self.shared.name);
            return;
        }
        // Only an empty queue can have a sleeping worker; otherwise it will find the new entry.
        if st.queue.is_empty() {
            self.shared.work.notify_one();
        }
        // Counted under the lock: the worker's decrement after the batch must not come first,
        // or a reader could see the gauge wrap below zero.
        if let Some(pc) = &self.shared.perf {
            pc.inc(L_QUEUE_LEN, 1);
        }
        st.queue.push((Box::new(f), r));
    }

    /// Queues every entry, in order, each called with 0.
    pub fn queue_many(&self, fs: Vec<Completion>) {
        if fs.is_empty() {
            return;
        }
        let n = fs.len();
        let mut st = self.shared.state.lock();
        if st.stop {
            drop(st);
            drop(fs);
            return;
        }
        if st.queue.is_empty() {
            self.shared.work.notify_one();
        }
        if let Some(pc) = &self.shared.perf {
            pc.inc(L_QUEUE_LEN, n as u64);
        }
        st.queue.extend(fs.into_iter().map(|f| (f, 0)));
    }

    fn wait_empty_until(&self, deadline: Option<Instant>) -> bool {
        let mut st = self.shared.state.lock();
        if self.shared.on_worker(&st) {
            // The caller is part of the running batch: waiting for it would never end.
            return true;
        }
        while !st.queue.is_empty() || st.running {
            match deadline {
                Some(d) => {
                    if self.shared.empty.wait_until(&mut st, d).timed_out() {
                        return st.queue.is_empty() && !st.running;
                    }
                }
                None => self.shared.empty.wait(&mut st),
            }
        }
        true
    }

    /// Blocks until the queue is empty and no batch is running. Returns at once when called
    /// from a completion on the worker. Blocks for ever if the finisher was never started.
    pub fn wait_for_empty(&self) {
        self.wait_empty_until(None);
    }

    /// `wait_for_empty` bounded by `d`: true if it became empty in time.
    pub fn wait_for_empty_timeout(&self, d: Duration) -> bool {
        self.wait_empty_until(Instant::now().checked_add(d))
    }

    /// Nothing queued (a batch may still be running, as in Ceph).
    pub fn is_empty(&self) -> bool {
        self.shared.state.lock().queue.is_empty()
    }

    /// Number of completions that panicked (each was caught and logged).
    pub fn panics(&self) -> u64 {
        self.shared.panics.load(Ordering::Relaxed)
    }

    /// Stops the worker after its current batch and joins it; what is still queued is dropped
    /// unrun. From a completion it does not join (the worker exits after the batch).
    /// Idempotent.
    pub fn stop(&self) {
        let mut st = self.shared.state.lock();
        st.stop = true;
        self.shared.work.notify_all();
        let on_worker = self.shared.on_worker(&st);
        // Never started: no worker will release the queue, so do it here.
        let left = if st.started {
            Vec::new()
        } else {
            std::mem::take(&mut st.queue)
        };
        drop(st);
        self.shared.queue_len_dec(left.len());
        drop(left);
        self.shared.empty.notify_all();
        if on_worker {
            return;
        }
        let h = self.thread.lock().take();
        if let Some(h) = h {
            if h.join().is_err() {
                log::error!(target: "finisher", "{}: worker panicked", self.shared.name);
            }
        }
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        self.stop();
        if let (Some(coll), Some(pc)) = (self.coll.as_ref().and_then(Weak::upgrade), &self.shared.perf) {
            coll.remove(pc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(10);

    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn started(name: &str) -> Arc<Finisher> {
        let f = Finisher::new(name, "finisher", None);
        f.start().unwrap();
        f
    }

    #[test]
    fn fifo_per_producer_and_result_codes() {
        let f = started("fifo");
        let seen = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for p in 0..4 {
                let (f, seen) = (f.clone(), seen.clone());
                s.spawn(move || {
                    for i in 0..500 {
                        let seen = seen.clone();
                        f.queue(move |r| seen.lock().push((p, i, r)), p * 1000 + i);
                    }
                });
            }
        });
        assert!(f.wait_for_empty_timeout(LONG));
        let seen = seen.lock();
        assert_eq!(seen.len(), 2000);
        for p in 0..4 {
            let mine: Vec<_> = seen.iter().filter(|e| e.0 == p).collect();
            assert!(
                mine.iter().enumerate().all(|(k, e)| e.1 == k as i32),
                "producer {p} reordered"
            );
            assert!(mine.iter().all(|e| e.2 == p * 1000 + e.1), "r passed through");
        }
    }

    #[test]
    fn queue_many_in_order_with_zero() {
        let f = Finisher::new("many", "fn_many", None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut fs: Vec<Completion> = Vec::new();
        for i in 0..10 {
            let seen = seen.clone();
            fs.push(Box::new(move |r| seen.lock().push((i, r))));
        }
        f.queue_many(fs);
        assert!(!f.is_empty());
        f.start().unwrap(); // queued before start still runs
        f.wait_for_empty();
        assert!(f.is_empty());
        assert_eq!(*seen.lock(), (0..10).map(|i| (i, 0)).collect::<Vec<_>>());
    }

    #[test]
    fn thread_is_named() {
        let f = Finisher::new("named", "MR_Finisher", None);
        f.start().unwrap();
        let (tx, rx) = mpsc::channel();
        f.queue(
            move |_| tx.send(std::thread::current().name().map(String::from)).unwrap(),
            0,
        );
        assert_eq!(rx.recv_timeout(LONG).unwrap().as_deref(), Some("MR_Finisher"));
        assert_eq!(f.thread_name(), "MR_Finisher");
    }

    #[test]
    fn wait_for_empty_waits_for_running_batch() {
        let f = started("running");
        let (tx, rx) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        f.queue(
            move |_| {
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                d.store(true, Ordering::SeqCst);
            },
            0,
        );
        rx.recv_timeout(LONG).unwrap();
        assert!(f.is_empty(), "the batch left the queue");
        f.wait_for_empty();
        assert!(
            done.load(Ordering::SeqCst),
            "returned while the batch was still running"
        );
    }

    #[test]
    fn wait_for_empty_from_worker_returns() {
        let f = started("self-wait");
        let (tx, rx) = mpsc::channel();
        let f2 = f.clone();
        f.queue(
            move |_| {
                f2.queue(|_| {}, 0);
                f2.wait_for_empty();
                tx.send(()).unwrap();
            },
            0,
        );
        rx.recv_timeout(LONG).expect("wait_for_empty on the worker deadlocked");
        assert!(f.wait_for_empty_timeout(LONG));
    }

    #[test]
    fn wait_for_empty_timeout_expires() {
        let f = Finisher::new("never", "finisher", None);
        f.queue(|_| {}, 0);
        assert!(!f.wait_for_empty_timeout(Duration::from_millis(20)));
    }

    #[test]
    fn stop_drops_pending() {
        let f = started("stop");
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (in_tx, in_rx) = mpsc::channel();
        f.queue(
            move |_| {
                in_tx.send(()).unwrap();
                let _ = gate_rx.recv_timeout(LONG);
            },
            0,
        );
        in_rx.recv_timeout(LONG).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        for i in 0..5 {
            let r = ran.clone();
            let g = (i == 0).then(|| DropFlag(dropped.clone()));
            f.queue(
                move |_| {
                    let _g = g;
                    r.fetch_add(1, Ordering::SeqCst);
                },
                0,
            );
        }
        let f2 = f.clone();
        let stopper = std::thread::spawn(move || f2.stop());
        std::thread::sleep(Duration::from_millis(20));
        gate_tx.send(()).unwrap(); // let the running batch end
        stopper.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "stop must not drain");
        assert!(dropped.load(Ordering::SeqCst), "pending closures released");
        let late = Arc::new(AtomicBool::new(false));
        let g = DropFlag(late.clone());
        f.queue(move |_| drop(g), 0);
        assert!(late.load(Ordering::SeqCst), "queue after stop drops at once");
        f.stop(); // idempotent
        assert!(f.start().is_err());
        assert!(f.wait_for_empty_timeout(LONG));
    }

    #[test]
    fn stop_from_inside_callback() {
        let f = started("self-stop");
        let (tx, rx) = mpsc::channel();
        let f2 = f.clone();
        f.queue(
            move |_| {
                f2.stop();
                tx.send(()).unwrap();
            },
            0,
        );
        rx.recv_timeout(LONG).expect("stop from the worker must not self-join");
        f.stop();
        assert!(f.is_empty());
    }

    #[test]
    fn panicking_completion_is_contained() {
        let f = started("panic");
        let (tx, rx) = mpsc::channel();
        f.queue(|_| panic!("boom (expected by the test)"), 0);
        f.queue(move |r| tx.send(r).unwrap(), 7);
        assert_eq!(rx.recv_timeout(LONG).unwrap(), 7);
        assert_eq!(f.panics(), 1);
    }

    #[test]
    fn perf_counters() {
        let coll = Arc::new(PerfCountersCollection::new());
        let f = Finisher::new_shared_perf("pc", "finisher", &coll);
        let pc = coll.get("finisher-pc").expect("registered");
        let ql = pc.index_of("queue_len").unwrap();
        for _ in 0..10 {
            f.queue(|_| {}, 0);
        }
        assert_eq!(pc.get(ql), 10);
        f.start().unwrap();
        f.wait_for_empty();
        assert_eq!(pc.get(ql), 0);
        let (_, batches) = pc.read_avg(pc.index_of("complete_latency").unwrap());
        assert!(batches >= 1);
        drop(f);
        assert!(coll.get("finisher-pc").is_none(), "logger removed with the finisher");

        let plain = PerfCountersCollection::new();
        let g = Finisher::new("plain", "finisher", Some(&plain));
        g.queue(|_| {}, 0);
        g.stop();
        assert_eq!(g.perf_counters().unwrap().get(ql), 0, "dropped entries leave queue_len");
    }
}
