//! The OSD's op queue: a `ShardedOpWQ` of its own, or its share of one pool of `tp_osd_tp`
//! threads that serves every OSD of a `HostedSet` (an OSD manager's), each item carrying the
//! OSD it is for. Either way one PG's ops run in order and never two at once.

use super::op_wq::{PgKey, ShardedOpWQ};
use super::scheduler::cutoff_from_option;
use super::{OpItem, Shared};
use crate::common::error::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// A client op in a pool shared by several OSDs: it holds its OSD until it ran.
pub struct PooledOp {
    osd: Arc<Shared>,
    op: OpItem,
}

/// The `tp_osd_tp` pool of a `HostedSet`.
pub type OpPool = ShardedOpWQ<PooledOp>;

/// `osd_op_num_shards` x `osd_op_num_threads_per_shard` workers, from `conf`.
pub(super) fn shape(conf: &crate::common::config::Config) -> (usize, usize, u16) {
    (
        conf.get_u64("osd_op_num_shards").max(1) as usize,
        conf.get_u64("osd_op_num_threads_per_shard").max(1) as usize,
        cutoff_from_option(&conf.get_str("osd_op_queue_cut_off")),
    )
}

/// A pool for the OSDs of one process, shaped by `conf`.
pub(super) fn new_pool(conf: &crate::common::config::Config) -> Result<OpPool> {
    let (shards, threads, cutoff) = shape(conf);
    ShardedOpWQ::new(
        shards,
        threads,
        cutoff,
        Arc::new(|pg, p: PooledOp| p.osd.run_pooled(pg, p.op)),
    )
}

/// Where an OSD queues its ops (what its dispatchers and requeues hold).
#[derive(Clone)]
pub(super) enum OpQueue {
    Own(Weak<ShardedOpWQ<OpItem>>),
    Pooled(Weak<OpPool>, Weak<Shared>),
}

/// The queue an OSD owns, or its hold on the pool.
pub(super) enum OpQueueOwner {
    Own(Arc<ShardedOpWQ<OpItem>>),
    Pooled(Arc<OpPool>),
}

impl OpQueueOwner {
    pub(super) fn handle(&self, shared: &Arc<Shared>) -> OpQueue {
        match self {
            OpQueueOwner::Own(w) => OpQueue::Own(Arc::downgrade(w)),
            OpQueueOwner::Pooled(p) => OpQueue::Pooled(Arc::downgrade(p), Arc::downgrade(shared)),
        }
    }

    /// Stops the OSD's share: its own queue stops (queued ops dropped, running ones finished);
    /// in a pool, its queued ops are dropped as they come up (`stopping` is set) and this waits
    /// for its running ones.
    pub(super) fn shutdown(&self, shared: &Shared) {
        match self {
            OpQueueOwner::Own(w) => w.shutdown(),
            OpQueueOwner::Pooled(_) => {
                shared.stopping.store(true, Ordering::SeqCst);
                while shared.pooled_running.load(Ordering::SeqCst) > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }
}

impl OpQueue {
    /// Items queued (in a pool: every OSD's); 0 once the queue is gone.
    pub(super) fn len(&self) -> u64 {
        match self {
            OpQueue::Own(w) => w.upgrade().map_or(0, |w| w.len()),
            OpQueue::Pooled(p, _) => p.upgrade().map_or(0, |p| p.len()),
        }
    }

    /// As `ShardedOpWQ::enqueue`, or `enqueue_or_run` when `inline`.
    pub(super) fn enqueue(
        &self,
        key: PgKey,
        owner: u64,
        priority: u16,
        cost: u64,
        op: OpItem,
        inline: bool,
    ) -> Result<()> {
        let gone = || Error::new(libc::ESHUTDOWN, "op queue is shut down");
        match self {
            OpQueue::Own(w) => {
                let w = w.upgrade().ok_or_else(gone)?;
                if inline {
                    w.enqueue_or_run(key, owner, priority, cost, op)
                } else {
                    w.enqueue(key, owner, priority, cost, op)
                }
            }
            OpQueue::Pooled(p, osd) => {
                let (p, osd) = (p.upgrade().ok_or_else(gone)?, osd.upgrade().ok_or_else(gone)?);
                let item = PooledOp { osd, op };
                if inline {
                    p.enqueue_or_run(key, owner, priority, cost, item)
                } else {
                    p.enqueue(key, owner, priority, cost, item)
                }
            }
        }
    }
}

impl Shared {
    /// A pooled op of this OSD, on a pool worker: dropped once the OSD is stopping, else run
    /// (counted, so that the stop can wait for it).
    fn run_pooled(&self, pg: PgKey, op: OpItem) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        // SeqCst with the stop's store and load: either the stop sees this count, or this
        // sees the stop.
        self.pooled_running.fetch_add(1, Ordering::SeqCst);
        if !self.stopping.load(Ordering::SeqCst) {
            self.handle(pg, op);
        }
        self.pooled_running.fetch_sub(1, Ordering::SeqCst);
    }
}
