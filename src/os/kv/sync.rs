//! The `kv_sync` thread takes every queued transaction (up to a batch limit), validates and
//! applies them in one redb write transaction, and makes the batch durable: a small batch by
//! one record in the write-ahead log (`wal`, one `fdatasync`; redb's commit is not synced),
//! which the `kv_wal` thread writes and syncs while `kv_sync` applies the batch to redb; a large
//! one by syncing redb. The `kv_final` thread runs their callbacks (BlueStore's
//! `bstore_kv_sync` / `bstore_kv_final`), so the next batch commits while they run, and a
//! callback that waits for a lock whose holder waits for a commit does not stop commits.
//! `mount` replays the log (`replay`).

use super::tables::*;
use super::wal::{Wal, WAL_MAX_RECORD};
use super::*;
use bytes::{BufMut, BytesMut};

pub(super) struct Queued {
    pub(super) coll: CollId,
    pub(super) txn: Transaction,
    pub(super) on_commit: OnCommit,
    /// `on_commit` only wakes a waiter: run on `kv_sync`, not `kv_final`.
    pub(super) wake: bool,
    pub(super) queued_at: Instant,
}

pub(super) enum Msg {
    Txn(Queued),
    Stop,
    /// Stop as a crash would: no last checkpoint (tests).
    #[cfg(test)]
    Crash,
}

/// How often `kv_sync` syncs redb and retires the log while writes come in.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The key in `super` holding the last log sequence number whose batch redb holds; written
/// in the same redb commit as the batch, so redb's state and it always agree.
const WAL_SEQ: &[u8] = b"wal_seq";

/// The log sequence redb's current state includes (0: none).
pub(super) fn wal_seq(db: &Database) -> Result<u64> {
    let r = db.begin_read().map_err(eio)?;
    let t = r.open_table(SUPER).map_err(eio)?;
    let v = t.get(WAL_SEQ).map_err(eio)?;
    Ok(v.map_or(0, |v| v.value().try_into().map(u64::from_le_bytes).unwrap_or(0)))
}

/// Validates and applies `txns` in one write transaction (each valid one whole, an invalid
/// one not at all) stamped `now`, records `seq` as the log sequence it includes, and commits
/// with `durability`. Returns each transaction's result.
fn commit(
    db: &Database,
    txns: &mut [(CollId, Transaction)],
    now: u64,
    durability: Durability,
    seq: u64,
) -> Vec<Result<()>> {
    let mut results: Vec<Result<()>> = Vec::with_capacity(txns.len());
    let r = (|| -> Result<()> {
        let mut w = db.begin_write().map_err(eio)?;
        w.set_durability(durability);
        {
            let mut t = Tables {
                colls: w.open_table(COLLS).map_err(eio)?,
                onodes: w.open_table(ONODES).map_err(eio)?,
                data: w.open_table(DATA).map_err(eio)?,
                xattrs: w.open_table(XATTRS).map_err(eio)?,
                omap: w.open_table(OMAP).map_err(eio)?,
                onode_cache: Default::default(),
            };
            for (coll, txn) in txns.iter_mut() {
                let v = validate_txn(coll, txn, &WriteView { t: &t, coll });
                if v.is_ok() {
                    for op in std::mem::take(&mut txn.ops) {
                        t.apply(coll, op, now)?;
                    }
                }
                results.push(v);
            }
            t.flush_onodes()?;
            let mut sup = w.open_table(SUPER).map_err(eio)?;
            sup.insert(WAL_SEQ, &seq.to_le_bytes()[..]).map_err(eio)?;
        }
        w.commit().map_err(eio)
    })();
    match r {
        Ok(()) => results,
        Err(e) => {
            log::error!("kvstore: batch of {} transactions failed: {e}", txns.len());
            txns.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

/// Makes everything redb holds durable (a synced, empty commit), then retires the log.
fn checkpoint(db: &Database, wal: &mut Wal) -> Result<()> {
    let mut w = db.begin_write().map_err(eio)?;
    w.set_durability(Durability::Immediate);
    w.commit().map_err(eio)?;
    wal.reset()
}

/// One transaction as the log keeps it: its collection, then its ops.
fn encode_txn(coll: &CollId, txn: &Transaction) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i64_le(coll.pool);
    b.put_u32_le(coll.seed);
    txn.encode_into(&mut b);
    b
}

/// A log record's payload: the batch's stamp, then its valid transactions.
fn encode_record(now: u64, txns: impl Iterator<Item = BytesMut>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&now.to_le_bytes());
    let at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut n = 0u32;
    for t in txns {
        out.extend_from_slice(&t);
        n += 1;
    }
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
    out
}

fn decode_record(p: &[u8]) -> crate::msgr::encoding::DResult<(u64, Vec<(CollId, Transaction)>)> {
    let mut d = crate::msgr::encoding::Dec::new(p);
    let now = d.u64()?;
    let n = d.u32()?;
    let mut txns = Vec::new();
    for _ in 0..n {
        let coll = CollId::new(d.i64()?, d.u32()?);
        txns.push((coll, Transaction::decode_from(&mut d)?));
    }
    Ok((now, txns))
}

/// At mount: applies the log's records that redb's state lacks (those after its `wal_seq`),
/// then checkpoints. Returns the next sequence number to log.
pub(super) fn replay(db: &Database, wal: &mut Wal, records: Vec<super::wal::Record>) -> Result<u64> {
    let held = wal_seq(db)?;
    let mut last = held;
    let mut replayed = 0usize;
    for r in records {
        if r.seq <= held {
            continue;
        }
        if r.seq != last + 1 {
            return Err(eio(format!(
                "wal: record {} follows {last}: the log lost writes that were acknowledged",
                r.seq
            )));
        }
        let (now, mut txns) = decode_record(&r.payload).map_err(|e| eio(format!("wal record {}: {e}", r.seq)))?;
        for (i, res) in commit(db, &mut txns, now, Durability::None, r.seq)
            .into_iter()
            .enumerate()
        {
            // On the state replay rebuilt, each transaction does what it did then: one refused
            // then (its caller got the error) is refused again.
            if let Err(e) = res {
                if e.errno == libc::EIO {
                    return Err(e);
                }
                log::debug!("kvstore: wal record {} transaction {i} refused, as it was: {e}", r.seq);
            }
        }
        last = r.seq;
        replayed += 1;
    }
    if replayed > 0 {
        log::info!("kvstore: replayed {replayed} wal record(s), through sequence {last}");
    }
    checkpoint(db, wal)?;
    Ok(last + 1)
}

/// A committed batch's callbacks and results, for `kv_final`.
pub(super) type Finished = Vec<(OnCommit, Result<()>)>;

pub(super) fn kv_final_loop(rx: Receiver<Finished>) {
    IN_KV_CALLBACK.with(|f| f.set(true));
    while let Ok(batch) = rx.recv() {
        for (f, r) in batch {
            // A callback that panics must not take the others with it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(r))).is_err() {
                log::error!("kvstore: a commit callback panicked; kv_final goes on");
            }
        }
    }
}

/// What `kv_sync` owns.
pub(super) struct KvSync {
    db: Arc<Database>,
    /// Shared with `kv_wal`, which holds it only while it appends a record `kv_sync` waits for.
    wal: Arc<parking_lot::Mutex<Wal>>,
    /// Records for `kv_wal` to append, and its answers, one per record.
    to_wal: Option<Sender<(u64, Vec<u8>)>>,
    from_wal: Receiver<Result<()>>,
    wal_thread: Option<JoinHandle<()>>,
    next_seq: u64,
    pc: Option<Arc<PerfCounters>>,
    last_checkpoint: Instant,
    /// A log write or a database commit failed: redb and the log may disagree, so nothing more
    /// is committed (Ceph's BlueStore aborts); every later transaction gets this error.
    failed: Option<Error>,
}

impl KvSync {
    /// `kv_sync`'s state, with its `kv_wal` thread started.
    pub(super) fn start(db: Arc<Database>, wal: Wal, next_seq: u64, pc: Option<Arc<PerfCounters>>) -> Result<KvSync> {
        let wal = Arc::new(parking_lot::Mutex::new(wal));
        let (to_wal, rx) = crossbeam_channel::unbounded::<(u64, Vec<u8>)>();
        let (tx, from_wal) = crossbeam_channel::unbounded();
        let (w, pc2) = (wal.clone(), pc.clone());
        let wal_thread = crate::common::log::ThreadBuilder::new()
            .name("kv_wal".into())
            .spawn(move || {
                for (seq, payload) in rx {
                    let t0 = Instant::now();
                    let r = w.lock().append(seq, &payload);
                    if let Some(pc) = &pc2 {
                        pc.tinc(L_WAL_LAT, t0.elapsed());
                    }
                    if tx.send(r).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io(e, "spawn kv_wal"))?;
        Ok(KvSync {
            db,
            wal,
            to_wal: Some(to_wal),
            from_wal,
            wal_thread: Some(wal_thread),
            next_seq,
            pc,
            last_checkpoint: Instant::now(),
            failed: None,
        })
    }

    /// Commits one batch durably; returns each transaction's result.
    fn commit_batch(&mut self, batch: &mut [Queued], bytes: u64) -> Vec<Result<()>> {
        if let Some(e) = &self.failed {
            return batch.iter().map(|_| Err(e.clone())).collect();
        }
        let now = now_ns();
        let mut txns: Vec<(CollId, Transaction)> =
            batch.iter_mut().map(|q| (q.coll, std::mem::take(&mut q.txn))).collect();
        if bytes > WAL_MAX_RECORD as u64 {
            // Large writes: synced once in redb rather than written twice.
            let seq = self.next_seq - 1;
            let r = commit(&self.db, &mut txns, now, Durability::Immediate, seq);
            self.count(L_DIRECT, 1);
            return r;
        }
        // The whole batch is logged, encoded before `commit` consumes it, and synced while
        // redb applies it; replay validates again, on the same state, so a transaction refused
        // now is refused then too.
        let payload = encode_record(now, txns.iter().map(|(c, t)| encode_txn(c, t)));
        let seq = self.next_seq;
        self.next_seq += 1;
        let logged = self.wal.lock().has_room(payload.len());
        if logged {
            self.count(L_WAL_BYTES, payload.len() as u64);
            if let Some(tx) = &self.to_wal {
                let _ = tx.send((seq, payload));
            }
        }
        let results = commit(&self.db, &mut txns, now, Durability::None, seq);
        let durable = if logged {
            self.from_wal.recv().unwrap_or_else(|_| Err(eio("kv_wal is gone")))
        } else {
            // The log is full: syncing redb makes this batch durable along with the rest.
            self.count(L_CHECKPOINTS, 1);
            self.last_checkpoint = Instant::now();
            checkpoint(&self.db, &mut self.wal.lock())
        };
        let committed = !results.iter().any(|r| r.as_ref().is_err_and(|e| e.errno == libc::EIO));
        match (durable, committed) {
            (Ok(()), true) => results,
            (Err(e), _) => {
                log::error!("kvstore: {e}: the store stops committing");
                self.failed = Some(e.clone());
                results.iter().map(|_| Err(e.clone())).collect()
            }
            (Ok(()), false) => {
                // Logged but not in redb: a restart would replay it, so nothing more is
                // committed until then.
                let e = eio("the database commit failed: the store stops committing");
                log::error!("kvstore: {e}");
                self.failed = Some(e);
                results
            }
        }
    }

    fn count(&self, idx: usize, v: u64) {
        if let Some(pc) = &self.pc {
            pc.inc(idx, v);
        }
    }

    /// The thread: batches until `Stop`, then a last checkpoint so that a clean umount leaves
    /// an empty log.
    pub(super) fn run(mut self, rx: Receiver<Msg>, fin: Sender<Finished>) {
        let mut stop = false;
        while !stop {
            let first = match rx.recv() {
                Ok(Msg::Txn(q)) => q,
                Ok(Msg::Stop) | Err(_) => break,
                #[cfg(test)]
                Ok(Msg::Crash) => return,
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
                    #[cfg(test)]
                    Ok(Msg::Crash) => return,
                    Err(_) => break,
                }
            }
            let start = Instant::now();
            let results = self.commit_batch(&mut batch, bytes);
            if let Some(pc) = &self.pc {
                pc.tinc(L_COMMIT_LAT, start.elapsed());
                pc.inc(L_BATCH_SIZE, batch.len() as u64);
                pc.inc(L_OPS, results.iter().filter(|r| r.is_ok()).count() as u64);
                pc.inc(L_BYTES, bytes);
            }
            let mut done = Vec::with_capacity(batch.len());
            for (q, r) in batch.into_iter().zip(results) {
                if let Some(pc) = &self.pc {
                    pc.tinc(L_QUEUE_LAT, q.queued_at.elapsed());
                }
                if q.wake {
                    (q.on_commit)(r);
                } else {
                    done.push((q.on_commit, r));
                }
            }
            if !done.is_empty() {
                if let Err(crossbeam_channel::SendError(done)) = fin.send(done) {
                    // kv_final is gone (it panicked): run them here rather than lose them.
                    for (f, r) in done {
                        f(r);
                    }
                }
            }
            // Unsynced redb commits pile up pages redb cannot reuse until it syncs: sync it
            // now and then, after a batch's callbacks are on their way.
            if self.failed.is_none()
                && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
                && !self.wal.lock().is_empty()
            {
                self.count(L_CHECKPOINTS, 1);
                self.last_checkpoint = Instant::now();
                if let Err(e) = checkpoint(&self.db, &mut self.wal.lock()) {
                    log::error!("kvstore: checkpoint: {e}: the store stops committing");
                    self.failed = Some(e);
                }
            }
        }
        self.to_wal = None;
        if let Some(t) = self.wal_thread.take() {
            let _ = t.join();
        }
        if self.failed.is_none() && !self.wal.lock().is_empty() {
            if let Err(e) = checkpoint(&self.db, &mut self.wal.lock()) {
                log::error!("kvstore: last checkpoint at umount: {e}");
            }
        }
    }
}
