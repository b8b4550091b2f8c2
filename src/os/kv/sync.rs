//! The `kv_sync` thread: takes every queued transaction (up to a batch limit), validates and
//! applies them in one redb write transaction, commits it with fsync, then runs their
//! callbacks.

use super::tables::*;
use super::*;

pub(super) struct Queued {
    pub(super) coll: CollId,
    pub(super) txn: Transaction,
    pub(super) on_commit: OnCommit,
    pub(super) queued_at: Instant,
}

pub(super) enum Msg {
    Txn(Queued),
    Stop,
}

/// Validates and applies a batch in one write transaction and commits it. Returns each
/// transaction's result.
pub(super) fn commit_batch(db: &Database, batch: &mut [Queued]) -> Vec<Result<()>> {
    let mut results: Vec<Result<()>> = Vec::with_capacity(batch.len());
    let r = (|| -> Result<()> {
        let mut w = db.begin_write().map_err(eio)?;
        w.set_durability(Durability::Immediate);
        {
            let mut t = Tables {
                colls: w.open_table(COLLS).map_err(eio)?,
                onodes: w.open_table(ONODES).map_err(eio)?,
                data: w.open_table(DATA).map_err(eio)?,
                xattrs: w.open_table(XATTRS).map_err(eio)?,
                omap: w.open_table(OMAP).map_err(eio)?,
            };
            let now = now_ns();
            for q in batch.iter_mut() {
                let v = validate_txn(&q.coll, &q.txn, &WriteView { t: &t, coll: &q.coll });
                if v.is_ok() {
                    for op in std::mem::take(&mut q.txn.ops) {
                        t.apply(&q.coll, op, now)?;
                    }
                }
                results.push(v);
            }
        }
        w.commit().map_err(eio)
    })();
    match r {
        Ok(()) => results,
        Err(e) => {
            log::error!("kvstore: batch of {} transactions failed: {e}", batch.len());
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

pub(super) fn kv_sync_loop(db: Arc<Database>, rx: Receiver<Msg>, pc: Option<Arc<PerfCounters>>) {
    IN_KV_SYNC.with(|f| f.set(true));
    let mut stop = false;
    while !stop {
        let first = match rx.recv() {
            Ok(Msg::Txn(q)) => q,
            Ok(Msg::Stop) | Err(_) => break,
        };
        let mut bytes = first.txn.data_bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_TXNS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(Msg::Txn(q)) => {
                    bytes += q.txn.data_bytes();
                    batch.push(q);
                }
                Ok(Msg::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let start = Instant::now();
        let results = commit_batch(&db, &mut batch);
        if let Some(pc) = &pc {
            pc.tinc(L_COMMIT_LAT, start.elapsed());
            pc.inc(L_BATCH_SIZE, batch.len() as u64);
            pc.inc(L_OPS, results.iter().filter(|r| r.is_ok()).count() as u64);
            pc.inc(L_BYTES, bytes);
        }
        for (q, r) in batch.into_iter().zip(results) {
            if let Some(pc) = &pc {
                pc.tinc(L_QUEUE_LAT, q.queued_at.elapsed());
            }
            (q.on_commit)(r);
        }
    }
}
