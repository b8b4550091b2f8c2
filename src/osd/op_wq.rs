//! `ShardedOpWQ`: the OSD's sharded op work queue (reference §8.1).
//!
//! `osd_op_num_shards` shards, each with its own scheduler (WPQ, `scheduler.rs`), lock and
//! condition variable, served by `osd_op_num_threads_per_shard` threads named `tp_osd_tp`.
//! An item's shard is its PG's placement seed modulo the shard count, so all work of one PG
//! lands in one shard.
//!
//! Per-PG order: a worker that dequeues an item appends it to its PG's slot. If no other worker
//! is running that PG, it takes the slot and runs the slot's items one by one, front first,
//! without the shard lock; otherwise it leaves the item to the worker already running the PG.
//! So one PG's items run strictly in dequeue order and never concurrently, while other PGs of
//! the shard run on the shard's other threads — Ceph's guarantee, without a worker blocking on a
//! busy PG's lock.

use super::scheduler::WeightedPriorityQueue;
use crate::common::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// A placement group as the queue sees it: pool and placement seed (`spg_t` without shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PgKey {
    pub pool: i64,
    pub seed: u32,
}

impl std::fmt::Display for PgKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:x}", self.pool, self.seed)
    }
}

/// What a worker runs for each item, on a `tp_osd_tp` thread, with no queue lock held.
pub type Handler<T> = Arc<dyn Fn(PgKey, T) + Send + Sync>;

struct Slot<T> {
    to_process: VecDeque<T>,
    running: bool,
}

struct ShardState<T> {
    sched: WeightedPriorityQueue<(PgKey, T), u64>,
    slots: crate::common::hash::FxHashMap<PgKey, Slot<T>>,
    stop: bool,
}

struct Shard<T> {
    state: Mutex<ShardState<T>>,
    cond: Condvar,
    /// Items queued or waiting in a slot (what `queue_len` shows).
    queued: AtomicU64,
}

/// Counters of the whole queue, for the OSD's perf counters and `dump_op_pq_state`.
#[derive(Debug, Default)]
pub struct OpWqStats {
    pub enqueued: AtomicU64,
    pub dequeued: AtomicU64,
    /// Items run on the enqueuing thread (`enqueue_or_run`).
    pub inline: AtomicU64,
}

pub struct ShardedOpWQ<T: Send + 'static> {
    shards: Arc<Vec<Shard<T>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stopped: AtomicBool,
    stats: Arc<OpWqStats>,
    threads_per_shard: usize,
    handler: Handler<T>,
}

impl<T: Send + 'static> ShardedOpWQ<T> {
    /// Starts `num_shards * threads_per_shard` workers (`tp_osd_tp`); `cutoff` is the
    /// scheduler's strict threshold (`osd_op_queue_cut_off`).
    pub fn new(num_shards: usize, threads_per_shard: usize, cutoff: u16, handler: Handler<T>) -> Result<Self> {
        if num_shards == 0 || threads_per_shard == 0 || num_shards > 128 || threads_per_shard > 64 {
            return Err(Error::inval(format!(
                "need 1..=128 shards and 1..=64 threads per shard, not {num_shards} x {threads_per_shard}"
            )));
        }
        let shards: Arc<Vec<Shard<T>>> = Arc::new(
            (0..num_shards)
                .map(|i| Shard {
                    state: Mutex::new(ShardState {
                        sched: WeightedPriorityQueue::with_seed(cutoff, 0x9e37_79b9 ^ (i as u64 + 1) << 20),
                        slots: crate::common::hash::FxHashMap::default(),
                        stop: false,
                    }),
                    cond: Condvar::new(),
                    queued: AtomicU64::new(0),
                })
                .collect(),
        );
        let stats = Arc::new(OpWqStats::default());
        let mut threads = Vec::with_capacity(num_shards * threads_per_shard);
        // Worker i serves shard i % num_shards, as in Ceph.
        for i in 0..num_shards * threads_per_shard {
            let (shards, handler, stats) = (shards.clone(), handler.clone(), stats.clone());
            let t = crate::common::log::ThreadBuilder::new()
                .name("tp_osd_tp".into())
                .spawn(move || worker(&shards[i % shards.len()], &handler, &stats))
                .map_err(|e| Error::io(e, "spawning tp_osd_tp"))?;
            threads.push(t);
        }
        Ok(ShardedOpWQ {
            shards,
            threads: Mutex::new(threads),
            stopped: AtomicBool::new(false),
            stats,
            threads_per_shard,
            handler,
        })
    }

    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }
    pub fn threads_per_shard(&self) -> usize {
        self.threads_per_shard
    }
    /// The shard of a PG: its placement seed modulo the shard count.
    pub fn shard_of(&self, pg: PgKey) -> usize {
        pg.seed as usize % self.shards.len()
    }

    /// Queues `item` for `pg`. `owner` is the class the scheduler round-robins (the client's
    /// entity number); `cost` the item's size for the weighted tier. Fails with -ESHUTDOWN once
    /// the queue is stopped (the item is dropped).
    pub fn enqueue(&self, pg: PgKey, owner: u64, priority: u16, cost: u64, item: T) -> Result<()> {
        self.push(pg, owner, priority, cost, item, false)
    }

    /// As `enqueue`, but when the shard's scheduler is empty and nothing of `pg` is running, runs
    /// the item here, on the caller's thread, and with it whatever other workers queued for the
    /// PG meanwhile. An idle shard gains nothing from the hand-off but two thread wake-ups (the
    /// worker's, then the messenger's for the reply), which on a small machine cost more than
    /// the op. Only for handlers that do not block: the caller is a messenger worker.
    pub fn enqueue_or_run(&self, pg: PgKey, owner: u64, priority: u16, cost: u64, item: T) -> Result<()> {
        let shard = &self.shards[self.shard_of(pg)];
        let mut st = shard.state.lock();
        if st.stop {
            return Err(Error::new(libc::ESHUTDOWN, "op queue is shut down"));
        }
        if !st.sched.is_empty() || st.slots.contains_key(&pg) {
            drop(st);
            return self.push(pg, owner, priority, cost, item, false);
        }
        st.slots.insert(
            pg,
            Slot {
                to_process: VecDeque::new(),
                running: true,
            },
        );
        shard.queued.fetch_add(1, Ordering::Relaxed);
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        self.stats.dequeued.fetch_add(1, Ordering::Relaxed);
        self.stats.inline.fetch_add(1, Ordering::Relaxed);
        drop(st);
        run_one(shard, pg, item, &self.handler);
        let st = shard.state.lock();
        if !st.stop {
            drop(run_slot(shard, st, pg, &self.handler));
        }
        Ok(())
    }

    /// As `enqueue`, at the front of its owner's queue (a requeue keeps its place).
    pub fn enqueue_front(&self, pg: PgKey, owner: u64, priority: u16, cost: u64, item: T) -> Result<()> {
        self.push(pg, owner, priority, cost, item, true)
    }

    fn push(&self, pg: PgKey, owner: u64, priority: u16, cost: u64, item: T, front: bool) -> Result<()> {
        let shard = &self.shards[self.shard_of(pg)];
        let mut st = shard.state.lock();
        if st.stop {
            return Err(Error::new(libc::ESHUTDOWN, "op queue is shut down"));
        }
        if front {
            st.sched.enqueue_front(owner, priority, cost, (pg, item));
        } else {
            st.sched.enqueue(owner, priority, cost, (pg, item));
        }
        shard.queued.fetch_add(1, Ordering::Relaxed);
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        drop(st);
        shard.cond.notify_one();
        Ok(())
    }

    /// Items queued or waiting for their PG, per shard.
    pub fn queue_lens(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.queued.load(Ordering::Relaxed)).collect()
    }
    pub fn len(&self) -> u64 {
        self.queue_lens().iter().sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn stats(&self) -> &OpWqStats {
        &self.stats
    }

    /// Stops the workers after the items they are running; queued items are dropped. Waits for
    /// the threads unless called from one of them. Idempotent.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut dropped = Vec::new();
        for s in self.shards.iter() {
            let mut st = s.state.lock();
            st.stop = true;
            while let Some(it) = st.sched.dequeue() {
                dropped.push(it);
            }
            for slot in st.slots.values_mut() {
                dropped.extend(slot.to_process.drain(..).map(|t| (PgKey { pool: 0, seed: 0 }, t)));
            }
            s.queued.store(0, Ordering::Relaxed);
            drop(st);
            s.cond.notify_all();
        }
        // Items are dropped outside the shard locks: dropping one may run arbitrary code.
        drop(dropped);
        let me = std::thread::current().id();
        for t in std::mem::take(&mut *self.threads.lock()) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

impl<T: Send + 'static> Drop for ShardedOpWQ<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker<T: Send>(shard: &Shard<T>, handler: &Handler<T>, stats: &OpWqStats) {
    let mut st = shard.state.lock();
    loop {
        if st.stop {
            return;
        }
        let Some((pg, item)) = st.sched.dequeue() else {
            shard.cond.wait(&mut st);
            continue;
        };
        stats.dequeued.fetch_add(1, Ordering::Relaxed);
        let slot = st.slots.entry(pg).or_insert_with(|| Slot {
            to_process: VecDeque::new(),
            running: false,
        });
        slot.to_process.push_back(item);
        if slot.running {
            // Another worker runs this PG and will take the item in turn.
            continue;
        }
        slot.running = true;
        match run_slot(shard, st, pg, handler) {
            Some(g) => st = g,
            None => return,
        }
    }
}

/// Runs the items of `pg`'s slot (which the caller marked running), front first, until the
/// slot is empty, then removes it. Returns the shard lock again, or `None` once the queue stops.
fn run_slot<'a, T: Send>(
    shard: &'a Shard<T>,
    mut st: parking_lot::MutexGuard<'a, ShardState<T>>,
    pg: PgKey,
    handler: &Handler<T>,
) -> Option<parking_lot::MutexGuard<'a, ShardState<T>>> {
    loop {
        let slot = st.slots.get_mut(&pg).expect("a running slot stays");
        let Some(next) = slot.to_process.pop_front() else {
            st.slots.remove(&pg);
            return Some(st);
        };
        drop(st);
        run_one(shard, pg, next, handler);
        st = shard.state.lock();
        if st.stop {
            return None;
        }
    }
}

fn run_one<T: Send>(shard: &Shard<T>, pg: PgKey, item: T, handler: &Handler<T>) {
    let t0 = Instant::now();
    // A panicking handler must not take the worker (and the PG) with it.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(pg, item))).is_err() {
        log::error!(target: "osd", "op handler panicked on pg {pg} after {:?}", t0.elapsed());
    }
    shard.queued.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn enqueue_or_run_runs_on_the_callers_thread_only_when_the_shard_is_idle() {
        let ran: Arc<Mutex<Vec<(u32, u64, String)>>> = Arc::default();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let h: Handler<u64> = {
            let (ran, gate) = (ran.clone(), gate.clone());
            Arc::new(move |pg: PgKey, i: u64| {
                if i == 100 {
                    let mut open = gate.0.lock();
                    while !*open {
                        gate.1.wait(&mut open);
                    }
                }
                let who = std::thread::current().name().unwrap_or("?").to_string();
                ran.lock().push((pg.seed, i, who));
            })
        };
        // One shard with one worker, so PGs 1 and 2 share its scheduler and its thread.
        let wq = ShardedOpWQ::new(1, 1, 196, h).unwrap();
        let (a, b) = (PgKey { pool: 1, seed: 1 }, PgKey { pool: 1, seed: 2 });
        let me = std::thread::current().name().unwrap_or("?").to_string();
        wq.enqueue_or_run(a, 1, 63, 1, 1).unwrap();
        assert_eq!(
            ran.lock().clone(),
            vec![(1, 1, me.clone())],
            "an idle shard runs inline"
        );
        // A worker holds PG a (item 100 waits at the gate): a's next item must queue behind it,
        // and b's must queue too once the scheduler holds a's.
        wq.enqueue(a, 1, 63, 1, 100).unwrap();
        wait_for("a worker on pg a", || wq.stats().dequeued.load(Ordering::Relaxed) == 2);
        wq.enqueue_or_run(a, 1, 63, 1, 101).unwrap();
        wq.enqueue_or_run(b, 1, 63, 1, 200).unwrap();
        assert_eq!(
            ran.lock().len(),
            1,
            "nothing ran past the busy PG on the caller's thread"
        );
        *gate.0.lock() = true;
        gate.1.notify_all();
        wait_for("all four", || ran.lock().len() == 4);
        let ran = ran.lock().clone();
        let a_items: Vec<u64> = ran.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
        assert_eq!(a_items, vec![1, 100, 101], "pg a in order");
        assert!(
            ran[1..].iter().all(|r| r.2 == "tp_osd_tp"),
            "queued items ran on workers: {ran:?}"
        );
        assert_eq!(wq.stats().inline.load(Ordering::Relaxed), 1);
        wq.shutdown();
    }

    #[test]
    fn enqueue_or_run_keeps_each_pgs_order_when_inline_and_queued_items_mix() {
        const PGS: u32 = 12;
        const PER_PG: u64 = 300;
        let seen: Arc<Mutex<HashMap<PgKey, Vec<u64>>>> = Arc::default();
        let in_flight: Arc<Vec<AtomicUsize>> = Arc::new((0..PGS).map(|_| AtomicUsize::new(0)).collect());
        let overlap = Arc::new(AtomicUsize::new(0));
        let h: Handler<u64> = {
            let (seen, in_flight, overlap) = (seen.clone(), in_flight.clone(), overlap.clone());
            Arc::new(move |pg: PgKey, i: u64| {
                if in_flight[pg.seed as usize].fetch_add(1, Ordering::SeqCst) != 0 {
                    overlap.fetch_add(1, Ordering::SeqCst);
                }
                // Now and then slow, so the other producers find the shard busy and queue.
                if i % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
                seen.lock().entry(pg).or_default().push(i);
                in_flight[pg.seed as usize].fetch_sub(1, Ordering::SeqCst);
            })
        };
        let wq = Arc::new(ShardedOpWQ::new(2, 2, 196, h).unwrap());
        // Three producers (messenger workers), each the only source of its PGs.
        let producers: Vec<_> = (0..3u32)
            .map(|k| {
                let wq = wq.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_PG {
                        for seed in (0..PGS).filter(|s| s % 3 == k) {
                            let pg = PgKey { pool: 1, seed };
                            // Producer 0 always queues, so the others find a busy scheduler
                            // now and then and queue behind their own inline items.
                            if k == 0 {
                                wq.enqueue(pg, 0, 63, 4096, i).unwrap();
                            } else {
                                wq.enqueue_or_run(pg, u64::from(k), 63, 4096, i).unwrap();
                            }
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        wait_for("all items", || {
            seen.lock().values().map(Vec::len).sum::<usize>() == (PGS as usize) * PER_PG as usize
        });
        assert_eq!(overlap.load(Ordering::SeqCst), 0, "a PG ran two items at once");
        for (pg, v) in seen.lock().iter() {
            assert_eq!(v, &(0..PER_PG).collect::<Vec<_>>(), "pg {pg} out of order");
        }
        let total = u64::from(PGS) * PER_PG;
        wait_for("queue empty", || wq.is_empty());
        assert_eq!(wq.stats().enqueued.load(Ordering::Relaxed), total);
        assert_eq!(wq.stats().dequeued.load(Ordering::Relaxed), total);
        wq.shutdown();
    }

    #[test]
    fn one_pg_runs_in_order_and_never_concurrently_while_pgs_run_in_parallel() {
        const PGS: u32 = 24;
        const PER_PG: u64 = 400;
        let seen: Arc<Mutex<HashMap<PgKey, Vec<u64>>>> = Arc::default();
        let in_flight: Arc<Vec<AtomicUsize>> = Arc::new((0..PGS).map(|_| AtomicUsize::new(0)).collect());
        let overlap = Arc::new(AtomicUsize::new(0));
        let concurrent_pgs = Arc::new(AtomicUsize::new(0));
        let max_concurrent = Arc::new(AtomicUsize::new(0));
        let threads: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let h: Handler<u64> = {
            let (seen, in_flight, overlap, cc, mc, threads) = (
                seen.clone(),
                in_flight.clone(),
                overlap.clone(),
                concurrent_pgs.clone(),
                max_concurrent.clone(),
                threads.clone(),
            );
            Arc::new(move |pg: PgKey, i: u64| {
                if in_flight[pg.seed as usize].fetch_add(1, Ordering::SeqCst) != 0 {
                    overlap.fetch_add(1, Ordering::SeqCst);
                }
                let now = cc.fetch_add(1, Ordering::SeqCst) + 1;
                mc.fetch_max(now, Ordering::SeqCst);
                threads
                    .lock()
                    .insert(std::thread::current().name().unwrap_or("?").to_string());
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                seen.lock().entry(pg).or_default().push(i);
                cc.fetch_sub(1, Ordering::SeqCst);
                in_flight[pg.seed as usize].fetch_sub(1, Ordering::SeqCst);
            })
        };
        let wq = ShardedOpWQ::new(4, 2, 196, h).unwrap();
        for i in 0..PER_PG {
            for seed in 0..PGS {
                // Mixed owners and priorities: the scheduler reorders between PGs, but each PG's
                // items come out in the order they went in (one owner, one priority per PG).
                let pg = PgKey { pool: 1, seed };
                wq.enqueue(pg, u64::from(seed % 3), if seed % 5 == 0 { 200 } else { 63 }, 4096, i)
                    .unwrap();
            }
        }
        wait_for("all items", || {
            seen.lock().values().map(Vec::len).sum::<usize>() == (PGS as usize) * PER_PG as usize
        });
        assert_eq!(overlap.load(Ordering::SeqCst), 0, "a PG ran two items at once");
        for (pg, v) in seen.lock().iter() {
            assert_eq!(v, &(0..PER_PG).collect::<Vec<_>>(), "pg {pg} out of order");
        }
        assert!(
            max_concurrent.load(Ordering::SeqCst) > 1,
            "different PGs ran in parallel"
        );
        assert_eq!(threads.lock().iter().collect::<Vec<_>>(), vec!["tp_osd_tp"]);
        wait_for("queue empty", || wq.is_empty());
        assert_eq!(wq.stats().enqueued.load(Ordering::Relaxed), u64::from(PGS) * PER_PG);
        wq.shutdown();
    }

    #[test]
    fn shard_is_the_pg_seed_modulo_the_shard_count() {
        let wq = ShardedOpWQ::new(5, 1, 196, Arc::new(|_: PgKey, _: ()| {})).unwrap();
        assert_eq!(wq.num_shards(), 5);
        assert_eq!(wq.shard_of(PgKey { pool: 3, seed: 12 }), 2);
        assert_eq!(
            wq.shard_of(PgKey { pool: 9, seed: 12 }),
            2,
            "the pool does not pick the shard"
        );
        assert_eq!(wq.shard_of(PgKey { pool: 3, seed: 5 }), 0);
    }

    #[test]
    fn strict_priority_work_overtakes_queued_client_ops() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let order: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let h: Handler<&'static str> = {
            let (gate, order) = (gate.clone(), order.clone());
            Arc::new(move |_pg, what| {
                if what == "first" {
                    let (m, c) = &*gate;
                    let mut open = m.lock();
                    while !*open {
                        c.wait(&mut open);
                    }
                }
                order.lock().push(what);
            })
        };
        let wq = ShardedOpWQ::new(1, 1, 196, h).unwrap();
        let pg = |seed| PgKey { pool: 1, seed };
        wq.enqueue(pg(0), 1, 63, 4096, "first").unwrap();
        wait_for("the worker to hold 'first'", || {
            wq.stats().dequeued.load(Ordering::Relaxed) == 1
        });
        for _ in 0..5 {
            wq.enqueue(pg(1), 1, 63, 4096, "client").unwrap();
        }
        wq.enqueue(pg(2), 2, 255, 0, "peering").unwrap();
        let (m, c) = &*gate;
        *m.lock() = true;
        c.notify_all();
        wait_for("all run", || order.lock().len() == 7);
        let o = order.lock().clone();
        assert_eq!(o[0], "first");
        assert_eq!(o[1], "peering", "priority 255 is strict: {o:?}");
        wq.shutdown();
    }

    #[test]
    fn shutdown_stops_workers_refuses_new_items_and_drops_the_queued_ones() {
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let h: Handler<Arc<()>> = {
            let (ran, gate) = (ran.clone(), gate.clone());
            Arc::new(move |_pg, _t| {
                let (m, c) = &*gate;
                let mut open = m.lock();
                while !*open {
                    c.wait(&mut open);
                }
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        let wq = Arc::new(ShardedOpWQ::new(2, 1, 196, h).unwrap());
        let token = Arc::new(());
        for seed in 0..10 {
            wq.enqueue(PgKey { pool: 1, seed }, 1, 63, 1, token.clone()).unwrap();
        }
        wait_for("two items held by the two workers", || {
            wq.stats().dequeued.load(Ordering::Relaxed) >= 2
        });
        let wq2 = wq.clone();
        let stopper = std::thread::spawn(move || wq2.shutdown());
        std::thread::sleep(Duration::from_millis(50));
        let (m, c) = &*gate;
        *m.lock() = true;
        c.notify_all();
        stopper.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 2, "only the items already running finished");
        assert_eq!(Arc::strong_count(&token), 1, "queued items were dropped, not leaked");
        let e = wq
            .enqueue(PgKey { pool: 1, seed: 0 }, 1, 63, 1, token.clone())
            .unwrap_err();
        assert_eq!(e.errno, libc::ESHUTDOWN);
        assert!(ShardedOpWQ::new(0, 1, 196, Arc::new(|_: PgKey, _: ()| {})).is_err());
    }

    #[test]
    fn a_panicking_handler_does_not_stop_the_pg_or_the_worker() {
        let done = Arc::new(AtomicUsize::new(0));
        let h: Handler<u32> = {
            let done = done.clone();
            Arc::new(move |_pg, i| {
                if i == 1 {
                    panic!("op 1 fails");
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        };
        let wq = ShardedOpWQ::new(1, 1, 196, h).unwrap();
        for i in 0..3 {
            wq.enqueue(PgKey { pool: 1, seed: 7 }, 1, 63, 1, i).unwrap();
        }
        wait_for("ops 0 and 2", || done.load(Ordering::SeqCst) == 2);
        wq.shutdown();
    }
}
