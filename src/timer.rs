//! Ceph's `SafeTimer` (reference §3): one thread, named `safe_timer`, running closures at
//! deadlines on the monotonic clock, equal deadlines in insertion order.
//!
//! Ceph shares a caller-owned mutex with the timer and, with `safe_callbacks`, runs callbacks
//! under it, so a cancel made under that lock can never race a running callback. There is no
//! caller lock here; the same guarantee is given at the call: `cancel_event` returning true means
//! the closure will never run, and returning false means it is not running any more (it waits for
//! a callback in flight, unless called from that very callback). No internal lock is held while a
//! callback runs, and a cancel waits only for the event it names, so a callback that needs a lock
//! held by someone cancelling an unrelated event cannot deadlock them. `cancel_all_events` and
//! `shutdown` do wait for whatever callback is running, which is what their callers rely on.
//!
//! Closures are always dropped outside the state lock, because their captures' destructors may
//! call back into the timer.

use crate::common::perf::{PerfCounters, PerfCountersBuilder, PerfCountersCollection};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

/// Identifies a scheduled event; ids are never reused by a timer.
pub type EventId = u64;

type Callback = Box<dyn FnOnce() + Send + 'static>;

const L_ADDED: usize = 0;
const L_FIRED: usize = 1;
const L_CANCELLED: usize = 2;
const L_PENDING: usize = 3;
const L_LATENCY: usize = 4;
const L_PANICS: usize = 5;

struct State {
    /// Keyed by (deadline, id): ids grow, so equal deadlines run in insertion order.
    events: BTreeMap<(Instant, EventId), Callback>,
    deadlines: HashMap<EventId, Instant>,
    next_id: EventId,
    /// The event whose callback is executing now.
    running: Option<EventId>,
    stopping: bool,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    /// Wakes the timer thread: a new earliest event, or shutdown.
    wake: Condvar,
    /// Signalled whenever a callback finishes, for cancels waiting on it.
    done: Condvar,
    perf: Option<Arc<PerfCounters>>,
    panics: AtomicU64,
}

impl Shared {
    fn pinc(&self, idx: usize, v: u64) {
        if let Some(pc) = &self.perf {
            pc.inc(idx, v);
        }
    }

    fn set_pending(&self, st: &State) {
        if let Some(pc) = &self.perf {
            pc.set(L_PENDING, st.events.len() as u64);
        }
    }

    fn on_timer_thread(&self, st: &State) -> bool {
        st.thread_id == Some(std::thread::current().id())
    }

    /// Waits until no callback runs (or only `id`'s, if given, is no longer running). Never
    /// waits on the timer thread itself: the running callback is the caller.
    fn wait_callback(&self, st: &mut MutexGuard<'_, State>, id: Option<EventId>) {
        if self.on_timer_thread(st) {
            return;
        }
        while let Some(r) = st.running {
            if id.is_some_and(|id| id != r) {
                break;
            }
            self.done.wait(st);
        }
    }

    fn take_all(&self, st: &mut State) -> Vec<Callback> {
        st.deadlines.clear();
        let cbs: Vec<Callback> = std::mem::take(&mut st.events).into_values().collect();
        self.pinc(L_CANCELLED, cbs.len() as u64);
        self.set_pending(st);
        cbs
    }

    fn run(self: &Arc<Self>) {
        let mut st = self.state.lock();
        st.thread_id = Some(std::thread::current().id());
        while !st.stopping {
            let now = Instant::now();
            let Some((&(when, id), _)) = st.events.first_key_value() else {
                self.wake.wait(&mut st);
                continue;
            };
            if when > now {
                self.wake.wait_until(&mut st, when);
                continue;
            }
            let cb = st.events.remove(&(when, id)).expect("first key present");
            st.deadlines.remove(&id);
            st.running = Some(id);
            self.set_pending(&st);
            MutexGuard::unlocked(&mut st, || {
                let start = Instant::now();
                if catch_unwind(AssertUnwindSafe(cb)).is_err() {
                    self.panics.fetch_add(1, Ordering::Relaxed);
                    self.pinc(L_PANICS, 1);
                    log::error!(target: "timer", "{}: event {id} callback panicked", self.name);
                }
                self.pinc(L_FIRED, 1);
                if let Some(pc) = &self.perf {
                    pc.tinc(L_LATENCY, start.elapsed());
                }
            });
            st.running = None;
            self.done.notify_all();
        }
    }
}

/// Owns the thread: dropped when the last `SafeTimer` clone goes, which shuts the timer down.
/// The thread itself holds only `Shared`, so it does not keep the timer alive.
struct Handle {
    shared: Arc<Shared>,
    coll: Option<Weak<PerfCountersCollection>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        shutdown(&self.shared);
        if let (Some(coll), Some(pc)) = (self.coll.as_ref().and_then(Weak::upgrade), &self.shared.perf) {
            coll.remove(pc);
        }
    }
}

fn shutdown(shared: &Shared) {
    let mut st = shared.state.lock();
    st.stopping = true;
    let cbs = shared.take_all(&mut st);
    shared.wake.notify_all();
    let join = if shared.on_timer_thread(&st) {
        None
    } else {
        st.thread.take()
    };
    drop(st);
    drop(cbs);
    if let Some(h) = join {
        // The thread finishes its current callback, sees `stopping`, and exits.
        if h.join().is_err() {
            log::error!(target: "timer", "{}: timer thread panicked", shared.name);
        }
    }
}

/// A timer. Clones share one timer; it shuts down when the last clone is dropped.
#[derive(Clone)]
pub struct SafeTimer {
    h: Arc<Handle>,
}

impl std::fmt::Debug for SafeTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTimer")
            .field("name", &self.h.shared.name)
            .field("pending", &self.pending())
            .finish()
    }
}

fn build_perf(name: &str) -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new(format!("safe_timer-{name}"));
    let idx = [
        b.add_u64_counter("events_added", "Events scheduled"),
        b.add_u64_counter("events_fired", "Events whose callback ran"),
        b.add_u64_counter("events_cancelled", "Events dropped without running"),
        b.add_u64("events_pending", "Events waiting for their deadline"),
        b.add_time_avg("callback_latency", "Time spent in callbacks"),
        b.add_u64_counter("callback_panics", "Callbacks that panicked"),
    ];
    debug_assert_eq!(idx, [L_ADDED, L_FIRED, L_CANCELLED, L_PENDING, L_LATENCY, L_PANICS]);
    b.build()
}

impl SafeTimer {
    /// A timer, not yet running (see [`SafeTimer::init`]). With `perf`, logger
    /// `safe_timer-<name>` is added to that collection; a borrowed collection cannot be reached
    /// from `Drop`, so use [`SafeTimer::new_shared_perf`] to have it removed automatically.
    pub fn new(name: &str, perf: Option<&PerfCountersCollection>) -> SafeTimer {
        let pc = perf.map(|coll| {
            let pc = build_perf(name);
            coll.add(&pc);
            pc
        });
        Self::build(name, pc, None)
    }

    /// Like [`SafeTimer::new`], but the logger leaves `coll` when the last clone is dropped.
    pub fn new_shared_perf(name: &str, coll: &Arc<PerfCountersCollection>) -> SafeTimer {
        let pc = build_perf(name);
        coll.add(&pc);
        Self::build(name, Some(pc), Some(Arc::downgrade(coll)))
    }

    fn build(name: &str, perf: Option<Arc<PerfCounters>>, coll: Option<Weak<PerfCountersCollection>>) -> SafeTimer {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            state: Mutex::new(State {
                events: BTreeMap::new(),
                deadlines: HashMap::new(),
                next_id: 1,
                running: None,
                stopping: false,
                thread: None,
                thread_id: None,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            perf,
            panics: AtomicU64::new(0),
        });
        SafeTimer {
            h: Arc::new(Handle { shared, coll }),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.h.shared
    }

    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// The `safe_timer-<name>` logger, if any.
    pub fn perf_counters(&self) -> Option<&Arc<PerfCounters>> {
        self.shared().perf.as_ref()
    }

    /// Starts the `safe_timer` thread. Idempotent; after `shutdown` it starts nothing.
    pub fn init(&self) -> std::io::Result<()> {
        let mut st = self.shared().state.lock();
        if st.thread.is_some() || st.thread_id.is_some() || st.stopping {
            return Ok(());
        }
        let shared = self.shared().clone();
        // Spawned under the lock so the thread (which starts by taking it) records its id before
        // anyone can ask whether they are on it.
        let h = crate::common::log::ThreadBuilder::new()
            .name("safe_timer".into())
            .spawn(move || shared.run())?;
        st.thread_id = Some(h.thread().id());
        st.thread = Some(h);
        Ok(())
    }

    /// Runs `f` once `d` has passed. `None` (and `f` dropped unrun) if the timer is shutting
    /// down.
    pub fn add_event_after(&self, d: Duration, f: impl FnOnce() + Send + 'static) -> Option<EventId> {
        // A delay too large for `Instant` means "never" in practice; a century is close enough.
        let now = Instant::now();
        let when = now
            .checked_add(d)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86400));
        self.add_event_at(when, f)
    }

    /// Runs `f` at `when` (at once if that has passed). `None` if shutting down.
    pub fn add_event_at(&self, when: Instant, f: impl FnOnce() + Send + 'static) -> Option<EventId> {
        let sh = self.shared();
        let mut st = sh.state.lock();
        if st.stopping {
            drop(st);
            drop(f);
            return None;
        }
        let id = st.next_id;
        st.next_id += 1;
        st.events.insert((when, id), Box::new(f));
        st.deadlines.insert(id, when);
        let earliest = st.events.first_key_value().is_some_and(|(k, _)| *k == (when, id));
        sh.set_pending(&st);
        drop(st);
        sh.pinc(L_ADDED, 1);
        // Any later event leaves the thread's current sleep deadline correct.
        if earliest {
            sh.wake.notify_one();
        }
        Some(id)
    }

    /// True: the event was pending and now never runs (its closure is dropped). False: it is not
    /// pending; if its callback is running, this returns once it has finished (at once when
    /// called from that callback).
    pub fn cancel_event(&self, id: EventId) -> bool {
        let sh = self.shared();
        let mut st = sh.state.lock();
        let cb = match st.deadlines.remove(&id) {
            Some(when) => st.events.remove(&(when, id)),
            None => {
                sh.wait_callback(&mut st, Some(id));
                None
            }
        };
        sh.set_pending(&st);
        drop(st);
        match cb {
            Some(cb) => {
                sh.pinc(L_CANCELLED, 1);
                drop(cb);
                true
            }
            None => false,
        }
    }

    /// Drops every pending event unrun and waits for a callback in flight (unless called from
    /// it).
    pub fn cancel_all_events(&self) {
        let sh = self.shared();
        let mut st = sh.state.lock();
        let cbs = sh.take_all(&mut st);
        sh.wait_callback(&mut st, None);
        drop(st);
        drop(cbs);
    }

    /// Cancels everything, refuses new events and joins the thread (after its current
    /// callback). From inside a callback it does not join; the thread exits when the callback
    /// returns. Idempotent.
    pub fn shutdown(&self) {
        shutdown(self.shared());
    }

    /// Number of events waiting for their deadline.
    pub fn pending(&self) -> usize {
        self.shared().state.lock().events.len()
    }

    /// Number of callbacks that panicked (each was caught and logged).
    pub fn panics(&self) -> u64 {
        self.shared().panics.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(10);

    fn started(name: &str) -> SafeTimer {
        let t = SafeTimer::new(name, None);
        t.init().unwrap();
        t
    }

    /// Sets its flag when dropped: shows whether a closure was released.
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + LONG;
        while Instant::now() < end {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        cond()
    }

    #[test]
    fn equal_deadlines_run_fifo() {
        let t = SafeTimer::new("fifo", None);
        let (tx, rx) = mpsc::channel();
        let when = Instant::now() + Duration::from_millis(20);
        for i in 0..50 {
            let tx = tx.clone();
            t.add_event_at(when, move || tx.send(i).unwrap()).unwrap();
        }
        t.init().unwrap();
        let got: Vec<i32> = (0..50).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        t.shutdown();
    }

    #[test]
    fn runs_in_deadline_order() {
        let t = SafeTimer::new("order", None);
        let (tx, rx) = mpsc::channel();
        let base = Instant::now() + Duration::from_millis(30);
        for i in [5u64, 1, 4, 2, 3, 0] {
            let tx = tx.clone();
            t.add_event_at(base + Duration::from_millis(i * 5), move || tx.send(i).unwrap())
                .unwrap();
        }
        t.init().unwrap();
        t.init().unwrap(); // idempotent
        let got: Vec<u64> = (0..6).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn earlier_event_wakes_the_thread() {
        let t = started("wake");
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        t.add_event_after(Duration::from_secs(3600), move || tx2.send("late").unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(10)); // let the thread sleep on the hour
        t.add_event_after(Duration::from_millis(1), move || tx.send("soon").unwrap())
            .unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), "soon");
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn cancel_before_fire_drops_closure() {
        let t = started("cancel");
        let ran = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicBool::new(false));
        let (r, g) = (ran.clone(), DropFlag(dropped.clone()));
        let id = t
            .add_event_after(Duration::from_millis(100), move || {
                let _g = g;
                r.store(true, Ordering::SeqCst);
            })
            .unwrap();
        assert!(t.cancel_event(id));
        assert!(dropped.load(Ordering::SeqCst), "closure released at cancel");
        assert!(!t.cancel_event(id), "second cancel finds nothing");
        std::thread::sleep(Duration::from_millis(150));
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn cancel_from_inside_callbacks() {
        let t = started("inner");
        let (tx, rx) = mpsc::channel();
        let victim_ran = Arc::new(AtomicBool::new(false));
        let vr = victim_ran.clone();
        let victim = t
            .add_event_after(Duration::from_millis(200), move || vr.store(true, Ordering::SeqCst))
            .unwrap();
        let own = Arc::new(Mutex::new(None::<EventId>));
        let (t2, own2) = (t.clone(), own.clone());
        // Holds the lock across add so the callback cannot read its id before it is stored.
        let mut slot = own.lock();
        *slot = t
            .add_event_after(Duration::from_millis(10), move || {
                let other = t2.cancel_event(victim);
                let me = own2.lock().unwrap();
                let itself = t2.cancel_event(me); // running: false, and must not wait on itself
                tx.send((other, itself)).unwrap();
            })
            .unwrap()
            .into();
        drop(slot);
        assert_eq!(rx.recv_timeout(LONG).unwrap(), (true, false));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!victim_ran.load(Ordering::SeqCst));
    }

    #[test]
    fn add_from_inside_callback() {
        let t = started("readd");
        let (tx, rx) = mpsc::channel();
        let count = Arc::new(AtomicUsize::new(0));
        fn rearm(t: SafeTimer, count: Arc<AtomicUsize>, tx: mpsc::Sender<usize>) {
            let t2 = t.clone();
            t.add_event_after(Duration::from_millis(1), move || {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tx.send(n).unwrap();
                if n < 5 {
                    rearm(t2, count, tx);
                }
            })
            .unwrap();
        }
        rearm(t.clone(), count, tx);
        let got: Vec<usize> = (0..5).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert!(wait_until(|| t.pending() == 0));
    }

    #[test]
    fn cancel_all_events() {
        let t = started("all");
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped: Vec<_> = (0..10).map(|_| Arc::new(AtomicBool::new(false))).collect();
        for d in &dropped {
            let (r, g) = (ran.clone(), DropFlag(d.clone()));
            t.add_event_after(Duration::from_millis(50), move || {
                let _g = g;
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        assert_eq!(t.pending(), 10);
        t.cancel_all_events();
        assert_eq!(t.pending(), 0);
        assert!(dropped.iter().all(|d| d.load(Ordering::SeqCst)));
        // Still usable afterwards.
        let (tx, rx) = mpsc::channel();
        t.add_event_after(Duration::ZERO, move || tx.send(()).unwrap()).unwrap();
        rx.recv_timeout(LONG).unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn shutdown_with_pending_events() {
        let t = started("shut");
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        for i in 0..5 {
            let r = ran.clone();
            let g = (i == 0).then(|| DropFlag(dropped.clone()));
            t.add_event_after(Duration::from_millis(50 + i), move || {
                let _g = g;
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        t.shutdown();
        assert!(dropped.load(Ordering::SeqCst));
        assert_eq!(t.pending(), 0);
        let late = Arc::new(AtomicBool::new(false));
        let g = DropFlag(late.clone());
        assert_eq!(t.add_event_after(Duration::ZERO, move || drop(g)), None);
        assert!(late.load(Ordering::SeqCst), "refused closure is dropped");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        t.shutdown(); // idempotent
        t.init().unwrap(); // and no restart
        assert_eq!(t.add_event_after(Duration::ZERO, || {}), None);
    }

    #[test]
    fn shutdown_from_inside_callback() {
        let t = started("self-stop");
        let (tx, rx) = mpsc::channel();
        let t2 = t.clone();
        t.add_event_after(Duration::ZERO, move || {
            t2.shutdown();
            tx.send(t2.add_event_after(Duration::ZERO, || {}).is_none()).unwrap();
        })
        .unwrap();
        assert!(rx.recv_timeout(LONG).unwrap());
        t.shutdown(); // joins the now-exiting thread
    }

    #[test]
    fn cancel_waits_for_running_callback() {
        let t = started("busy");
        let (started_tx, started_rx) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let id = t
            .add_event_after(Duration::ZERO, move || {
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                f.store(true, Ordering::SeqCst);
            })
            .unwrap();
        started_rx.recv_timeout(LONG).unwrap();
        assert!(!t.cancel_event(id));
        assert!(
            finished.load(Ordering::SeqCst),
            "cancel returned before the callback finished"
        );
    }

    #[test]
    fn cancel_all_waits_for_running_callback() {
        let t = started("busy-all");
        let (started_tx, started_rx) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        t.add_event_after(Duration::ZERO, move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            f.store(true, Ordering::SeqCst);
        })
        .unwrap();
        started_rx.recv_timeout(LONG).unwrap();
        t.cancel_all_events();
        assert!(finished.load(Ordering::SeqCst));
    }

    #[test]
    fn shutdown_waits_for_running_callback() {
        let t = started("busy-shut");
        let (started_tx, started_rx) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        t.add_event_after(Duration::ZERO, move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            f.store(true, Ordering::SeqCst);
        })
        .unwrap();
        started_rx.recv_timeout(LONG).unwrap();
        t.shutdown();
        assert!(
            finished.load(Ordering::SeqCst),
            "shutdown returned before the callback finished"
        );
    }

    #[test]
    fn panicking_callback_does_not_kill_thread() {
        let t = started("panic");
        t.add_event_after(Duration::ZERO, || panic!("boom (expected by the test)"))
            .unwrap();
        let (tx, rx) = mpsc::channel();
        t.add_event_after(Duration::from_millis(5), move || tx.send(42).unwrap())
            .unwrap();
        assert_eq!(rx.recv_timeout(LONG).unwrap(), 42);
        assert_eq!(t.panics(), 1);
    }

    #[test]
    fn drop_of_last_clone_shuts_down() {
        let t = started("drop");
        let dropped = Arc::new(AtomicBool::new(false));
        let g = DropFlag(dropped.clone());
        t.add_event_after(Duration::from_secs(3600), move || drop(g)).unwrap();
        let t2 = t.clone();
        drop(t);
        assert!(!dropped.load(Ordering::SeqCst), "a clone still holds the timer");
        drop(t2);
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn perf_counters() {
        let coll = Arc::new(PerfCountersCollection::new());
        let t = SafeTimer::new_shared_perf("pc", &coll);
        t.init().unwrap();
        let pc = coll.get("safe_timer-pc").expect("registered");
        let at = |n: &str| pc.get(pc.index_of(n).unwrap());
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let tx = tx.clone();
            t.add_event_after(Duration::ZERO, move || tx.send(()).unwrap()).unwrap();
        }
        let a = t.add_event_after(Duration::from_secs(3600), || {}).unwrap();
        t.add_event_after(Duration::from_secs(3600), || {}).unwrap();
        t.add_event_after(Duration::from_secs(3600), || {}).unwrap();
        t.add_event_after(Duration::ZERO, || panic!("counted (expected by the test)"))
            .unwrap();
        for _ in 0..3 {
            rx.recv_timeout(LONG).unwrap();
        }
        assert!(wait_until(|| at("events_fired") == 4));
        assert_eq!(at("events_pending"), 2 + 1);
        assert!(t.cancel_event(a));
        assert_eq!(
            (at("events_added"), at("events_cancelled"), at("events_pending")),
            (7, 1, 2)
        );
        assert_eq!(at("callback_panics"), 1);
        assert_eq!(pc.read_avg(pc.index_of("callback_latency").unwrap()).1, 4);
        t.shutdown();
        assert_eq!((at("events_cancelled"), at("events_pending")), (3, 0));
        drop(t);
        assert!(coll.get("safe_timer-pc").is_none(), "logger removed with the timer");

        let plain = PerfCountersCollection::new();
        let u = SafeTimer::new("plain", Some(&plain));
        assert!(Arc::ptr_eq(
            &plain.get("safe_timer-plain").unwrap(),
            u.perf_counters().unwrap()
        ));
    }
}
