//! KvStore: a durable object store on redb, one database file `<osd_data>/store.redb`, with a
//! write-ahead log `<osd_data>/wal` in front of it.
//!
//! # Commit path
//!
//! `queue_transaction` checks what needs no state (limits, offset overflow; see
//! [`StoreLimits`]) and hands the transaction to the single `kv_sync` thread over a FIFO
//! channel. `kv_sync` takes everything queued (up to [`MAX_BATCH_TXNS`] transactions or
//! [`MAX_BATCH_BYTES`] of payload), opens ONE redb write transaction, and for each queued
//! transaction in order: validates it against the write transaction's current state (which
//! includes the batch's earlier transactions) and, if valid, applies it; an invalid one is
//! skipped whole and its callback gets the error. A batch of up to `wal::WAL_MAX_RECORD` bytes
//! is committed to redb unsynced (`Durability::None`, visible to readers at once) and made
//! durable by one synced record of its transactions in the log (see `wal` and `sync`);
//! a larger one is committed with `Durability::Immediate`. Only then are the callbacks called,
//! on `kv_final` (while `kv_sync` commits the next batch), holding no lock. An op is therefore
//! acknowledged only once durable, and reads (each a fresh redb read transaction) issued after
//! the callback see it. A callback may wait for a lock or call `apply_transaction` (whose own
//! wake-up `kv_sync` runs, not `kv_final`), but it delays the callbacks after it. If the commit
//! itself fails, every transaction of the batch gets `EIO` and none is applied; if a log write
//! fails, the store commits nothing more (every later transaction gets that error).
//!
//! Each redb commit records the log sequence it includes (`super` key `wal_seq`), so at mount
//! the log's newer records are exactly what redb lost (its unsynced commits, at a power cut):
//! they are applied again, redb is synced, and the log starts over (a checkpoint, also done
//! when the log is full, a second after the last one while writes come in, and at umount).
//! The log record of a batch is written and synced by `kv_wal` while `kv_sync` applies the
//! same batch to redb.
//!
//! # Key layout
//!
//! Every table maps bytes to bytes; keys sort bytewise.
//!
//! ```text
//! super   "format"                          -> "osdkit-kv-1"
//! super   "wal_seq"                         -> u64 LE: the last log record redb includes
//! colls   C                                 -> ""                    collection marker
//! onodes  O                                 -> size u64 LE | mtime_ns u64 LE
//! data    O | chunk_index u64 BE            -> chunk bytes (<= 64 KiB; absent chunk = hole)
//! xattrs  O | name                          -> value
//! omap    O | key                           -> value
//!
//! C = pool i64 BE with the sign bit flipped | seed u32 BE                   (12 bytes)
//! O = C | pool i64 BE sign-flipped | esc(namespace) 00 00 | esc(name) 00 00
//! esc: byte 00 -> 00 FF, other bytes as they are (order-preserving, self-delimiting)
//! ```
//!
//! So the objects of a collection are the `onodes` range with prefix `C`, in [`ObjectId`] order,
//! and an object's chunks, xattrs and omap entries are each one contiguous range with prefix
//! `O`. Object data is stored in fixed 64 KiB chunks, so a 4 KiB overwrite rewrites one chunk,
//! not the object; no stored chunk holds bytes at or past the object's size (truncate trims), so
//! a later extension reads zeros.

use super::{
    clip_read, not_mounted, now_ns, ns_to_time, validate_txn, CollId, ObjStat, ObjectId, ObjectStore, OnCommit, Op,
    StoreLimits, Transaction, TxnView,
};
use crate::common::error::{Error, Result};
use crate::common::perf::{PerfCounters, PerfCountersBuilder, PerfCountersCollection};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::RwLock;
use redb::{Database, Durability, ReadableTable, Table, TableDefinition};
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

mod backend;
mod keys;
pub mod simdisk;
mod sync;
mod tables;
mod wal;

use keys::*;
use sync::*;
use tables::*;
pub use wal::WAL_MAX_RECORD;

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
const SUPER: Def = TableDefinition::new("super");
const COLLS: Def = TableDefinition::new("colls");
const ONODES: Def = TableDefinition::new("onodes");
const DATA: Def = TableDefinition::new("data");
const XATTRS: Def = TableDefinition::new("xattrs");
const OMAP: Def = TableDefinition::new("omap");

const FORMAT: &[u8] = b"osdkit-kv-1";
/// The database file under the store directory.
pub const DB_FILE: &str = "store.redb";
/// Object data chunk size.
pub const CHUNK: u64 = 64 << 10;
/// redb's page cache per mounted store (its default is 1 GiB; a manager hosts many stores).
pub const CACHE_BYTES: usize = 256 << 20;
/// At most this many transactions in one commit.
pub const MAX_BATCH_TXNS: usize = 1024;
/// A batch stops growing once it carries this much payload.
pub const MAX_BATCH_BYTES: u64 = 64 << 20;

const L_COMMIT_LAT: usize = 0;
const L_BATCH_SIZE: usize = 1;
const L_OPS: usize = 2;
const L_BYTES: usize = 3;
const L_QUEUE_LAT: usize = 4;
const L_WAL_BYTES: usize = 5;
const L_CHECKPOINTS: usize = 6;
const L_DIRECT: usize = 7;
const L_WAL_LAT: usize = 8;

fn build_perf() -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new("kvstore");
    let idx = [
        b.add_time_avg("kv_commit_latency", "Time to apply and commit (fsync) one batch"),
        b.add_u64_avg("kv_batch_size", "Transactions per committed batch"),
        b.add_u64_counter("kv_ops", "Transactions committed"),
        b.add_u64_counter("kv_bytes", "Payload bytes committed"),
        b.add_time_avg("kv_queue_latency", "Time from queue_transaction to on_commit"),
        b.add_u64_counter("kv_wal_bytes", "Bytes of write-ahead log records (one fdatasync each)"),
        b.add_u64_counter(
            "kv_checkpoints",
            "Syncs of the database that retired the write-ahead log",
        ),
        b.add_u64_counter("kv_direct_commits", "Large batches synced in the database, not logged"),
        b.add_time_avg("kv_wal_latency", "Time to append and sync one write-ahead log record"),
    ];
    debug_assert_eq!(
        idx,
        [
            L_COMMIT_LAT,
            L_BATCH_SIZE,
            L_OPS,
            L_BYTES,
            L_QUEUE_LAT,
            L_WAL_BYTES,
            L_CHECKPOINTS,
            L_DIRECT,
            L_WAL_LAT
        ]
    );
    b.build()
}

fn eio(e: impl std::fmt::Display) -> Error {
    Error::new(libc::EIO, format!("kv: {e}"))
}

thread_local! {
    static IN_KV_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

struct Mounted {
    db: Arc<Database>,
    tx: Sender<Msg>,
    thread: JoinHandle<()>,
    final_thread: JoinHandle<()>,
    pc: Option<Arc<PerfCounters>>,
}

/// The durable store. Create with a directory, then `mount`.
pub struct KvStore {
    dir: PathBuf,
    limits: StoreLimits,
    perf: Option<Arc<PerfCountersCollection>>,
    /// Power-loss tests: the files live on this simulated disk, not under `dir`.
    disk: Option<Arc<simdisk::SimDisk>>,
    state: RwLock<Option<Mounted>>,
}

impl KvStore {
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self::with_options(dir, StoreLimits::default(), None)
    }

    /// With `perf`, logger `kvstore` joins that collection while mounted.
    pub fn with_options(dir: impl AsRef<Path>, limits: StoreLimits, perf: Option<Arc<PerfCountersCollection>>) -> Self {
        KvStore {
            dir: dir.as_ref().to_path_buf(),
            limits,
            perf,
            disk: None,
            state: RwLock::new(None),
        }
    }

    /// A store whose database and log are files of `disk`, for power-loss tests
    /// ([`simdisk::SimDisk::power_cut`]).
    pub fn on_sim_disk(disk: Arc<simdisk::SimDisk>) -> Self {
        let mut s = Self::new("<simulated disk>");
        s.disk = Some(disk);
        s
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Queues `txn` for `kv_sync`; `wake`: `on_commit` only wakes a waiter (it neither blocks
    /// nor takes a lock), so `kv_sync` runs it itself.
    fn queue(&self, coll: &CollId, txn: Transaction, on_commit: OnCommit, wake: bool) {
        let st = self.state.read();
        let Some(m) = st.as_ref() else {
            drop(st);
            return on_commit(Err(not_mounted()));
        };
        if let Err(e) = self.limits.check_txn(coll, &txn) {
            drop(st);
            return on_commit(Err(e));
        }
        let q = Queued {
            coll: *coll,
            txn,
            on_commit,
            wake,
            queued_at: Instant::now(),
        };
        if let Err(crossbeam_channel::SendError(Msg::Txn(q))) = m.tx.send(Msg::Txn(q)) {
            drop(st);
            (q.on_commit)(Err(eio("kv_sync is gone")));
        }
    }

    /// Stops as a power cut would look to this process's files: queued transactions are
    /// dropped unanswered, and the log is left as it is, with no last checkpoint.
    #[cfg(test)]
    pub(crate) fn crash(&self) {
        if let Some(m) = self.state.write().take() {
            let _ = m.tx.send(Msg::Crash);
            let _ = m.thread.join();
            let _ = m.final_thread.join();
            if let (Some(coll), Some(pc)) = (&self.perf, &m.pc) {
                coll.remove(pc);
            }
        }
    }

    /// The perf counters while mounted.
    pub fn perf_counters(&self) -> Option<Arc<PerfCounters>> {
        self.state.read().as_ref().and_then(|m| m.pc.clone())
    }

    fn db(&self) -> Result<Arc<Database>> {
        self.state.read().as_ref().map(|m| m.db.clone()).ok_or_else(not_mounted)
    }

    /// Runs `f` on one table in a fresh read transaction.
    fn read_table<T>(&self, def: Def, f: impl FnOnce(&RoTable) -> Result<T>) -> Result<T> {
        let db = self.db()?;
        let r = db.begin_read().map_err(eio)?;
        let t = r.open_table(def).map_err(eio)?;
        f(&t)
    }

    /// Opens the tables needed for an object read and checks the object exists.
    fn with_obj<T>(
        &self,
        coll: &CollId,
        oid: &ObjectId,
        def: Option<Def>,
        f: impl FnOnce(&[u8], (u64, u64), Option<&RoTable>) -> Result<T>,
    ) -> Result<T> {
        let db = self.db()?;
        let r = db.begin_read().map_err(eio)?;
        let ok = okey(coll, oid);
        let onodes = r.open_table(ONODES).map_err(eio)?;
        let Some(meta) = get_onode(&onodes, &ok)? else {
            let colls = r.open_table(COLLS).map_err(eio)?;
            if colls.get(ckey(coll).as_slice()).map_err(eio)?.is_none() {
                return Err(Error::noent(format!("no collection {coll}")));
            }
            return Err(Error::noent(format!("no object {coll}/{oid}")));
        };
        match def {
            Some(def) => {
                let t = r.open_table(def).map_err(eio)?;
                f(&ok, meta, Some(&t))
            }
            None => f(&ok, meta, None),
        }
    }

    fn omap_scan(&self, coll: &CollId, oid: &ObjectId, start_after: Option<&str>, max: usize) -> Result<(Rows, bool)> {
        self.with_obj(coll, oid, Some(OMAP), |ok, _, t| {
            scan_prefix(t.expect("table"), ok, start_after.map(str::as_bytes), max)
        })
    }
}

fn utf8(v: Vec<u8>) -> Result<String> {
    String::from_utf8(v).map_err(|_| eio("non-UTF-8 key"))
}

impl Drop for KvStore {
    fn drop(&mut self) {
        if self.state.get_mut().is_some() {
            if let Err(e) = self.umount() {
                log::error!("kvstore: umount on drop: {e}");
            }
        }
    }
}

impl ObjectStore for KvStore {
    fn kind(&self) -> &'static str {
        "kv"
    }

    fn mount(&self) -> Result<()> {
        let mut st = self.state.write();
        if st.is_some() {
            return Err(Error::new(libc::EBUSY, "kvstore already mounted"));
        }
        if self.disk.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(e, self.dir.display()))?;
        }
        let file = self.dir.join(DB_FILE);
        let mut b = redb::Builder::new();
        b.set_cache_size(CACHE_BYTES);
        let db = match &self.disk {
            Some(d) => b.create_with_backend(backend::SyncedLen(d.file(DB_FILE))),
            None => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&file)
                .map_err(redb::DatabaseError::from)
                .and_then(redb::backends::FileBackend::new)
                .and_then(|f| b.create_with_backend(backend::SyncedLen(f))),
        }
        .map_err(|e| eio(format!("open {}: {e}", file.display())))?;
        {
            let w = db.begin_write().map_err(eio)?;
            {
                let mut sup = w.open_table(SUPER).map_err(eio)?;
                let fmt = sup.get(&b"format"[..]).map_err(eio)?.map(|v| v.value().to_vec());
                match fmt {
                    None => {
                        sup.insert(&b"format"[..], FORMAT).map_err(eio)?;
                    }
                    Some(f) if f == FORMAT => {}
                    Some(f) => {
                        return Err(Error::inval(format!(
                            "{}: unknown store format '{}'",
                            file.display(),
                            String::from_utf8_lossy(&f)
                        )))
                    }
                }
                for def in [COLLS, ONODES, DATA, XATTRS, OMAP] {
                    w.open_table(def).map_err(eio)?;
                }
            }
            w.commit().map_err(eio)?;
        }
        let db = Arc::new(db);
        let (mut wal, records) = match &self.disk {
            Some(d) => wal::Wal::open_on(Box::new(d.file(wal::WAL_FILE)), "on the simulated disk")?,
            None => wal::Wal::open(&self.dir)?,
        };
        let next_seq = replay(&db, &mut wal, records)?;
        let pc = self.perf.as_ref().map(|coll| {
            let pc = build_perf();
            coll.add(&pc);
            pc
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let (fin_tx, fin_rx) = crossbeam_channel::unbounded();
        let final_thread = crate::common::log::ThreadBuilder::new()
            .name("kv_final".into())
            .spawn(move || kv_final_loop(fin_rx))
            .map_err(|e| Error::io(e, "spawn kv_final"))?;
        let sync = KvSync::start(db.clone(), wal, next_seq, pc.clone())?;
        let thread = crate::common::log::ThreadBuilder::new()
            .name("kv_sync".into())
            .spawn(move || sync.run(rx, fin_tx))
            .map_err(|e| Error::io(e, "spawn kv_sync"))?;
        *st = Some(Mounted {
            db,
            tx,
            thread,
            final_thread,
            pc,
        });
        Ok(())
    }

    fn umount(&self) -> Result<()> {
        if IN_KV_CALLBACK.with(|f| f.get()) {
            return Err(Error::new(libc::EDEADLK, "umount from a kvstore commit callback"));
        }
        let m = self.state.write().take().ok_or_else(not_mounted)?;
        let _ = m.tx.send(Msg::Stop);
        m.thread.join().map_err(|_| eio("kv_sync panicked"))?;
        // kv_sync's end closed kv_final's queue: it runs what is left and ends.
        m.final_thread.join().map_err(|_| eio("kv_final panicked"))?;
        if let (Some(coll), Some(pc)) = (&self.perf, &m.pc) {
            coll.remove(pc);
        }
        // Dropping the last handle closes the file (readers hold clones only while reading).
        drop(m.db);
        Ok(())
    }

    fn queue_transaction(&self, coll: &CollId, txn: Transaction, on_commit: OnCommit) {
        self.queue(coll, txn, on_commit, false);
    }

    fn check_transaction(&self, coll: &CollId, txn: &Transaction) -> Result<()> {
        self.limits.check_txn(coll, txn)
    }

    fn apply_transaction(&self, coll: &CollId, txn: Transaction) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        // Woken by kv_sync itself, not through kv_final: a caller may hold a lock that a
        // callback on kv_final is waiting for.
        self.queue(
            coll,
            txn,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
            true,
        );
        rx.recv().unwrap_or_else(|_| Err(eio("transaction dropped")))
    }

    fn list_collections(&self) -> Result<Vec<CollId>> {
        self.read_table(COLLS, |t| {
            let mut v = Vec::new();
            for item in t.range::<&[u8]>(..).map_err(eio)? {
                let (k, _) = item.map_err(eio)?;
                v.push(decode_ckey(k.value()).ok_or_else(|| eio("corrupt collection key"))?);
            }
            Ok(v)
        })
    }

    fn collection_exists(&self, coll: &CollId) -> Result<bool> {
        self.read_table(COLLS, |t| Ok(t.get(ckey(coll).as_slice()).map_err(eio)?.is_some()))
    }

    fn list_objects(&self, coll: &CollId, start_after: Option<&ObjectId>, max: usize) -> Result<(Vec<ObjectId>, bool)> {
        let db = self.db()?;
        let r = db.begin_read().map_err(eio)?;
        let colls = r.open_table(COLLS).map_err(eio)?;
        if colls.get(ckey(coll).as_slice()).map_err(eio)?.is_none() {
            return Err(Error::noent(format!("no collection {coll}")));
        }
        let onodes = r.open_table(ONODES).map_err(eio)?;
        let p = ckey(coll);
        let after = start_after.map(|o| okey(coll, o));
        let (rows, more) = scan_prefix(&onodes, &p, after.as_ref().map(|a| &a[p.len()..]), max)?;
        let mut out = Vec::with_capacity(rows.len());
        for (suffix, _) in rows {
            let full = sub_key(&p, &suffix);
            out.push(decode_okey(&full).ok_or_else(|| eio("corrupt onode key"))?);
        }
        Ok((out, more))
    }

    fn exists(&self, coll: &CollId, oid: &ObjectId) -> Result<bool> {
        let db = self.db()?;
        let r = db.begin_read().map_err(eio)?;
        let onodes = r.open_table(ONODES).map_err(eio)?;
        if get_onode(&onodes, &okey(coll, oid))?.is_some() {
            return Ok(true);
        }
        let colls = r.open_table(COLLS).map_err(eio)?;
        if colls.get(ckey(coll).as_slice()).map_err(eio)?.is_none() {
            return Err(Error::noent(format!("no collection {coll}")));
        }
        Ok(false)
    }

    fn stat(&self, coll: &CollId, oid: &ObjectId) -> Result<ObjStat> {
        self.with_obj(coll, oid, None, |_, (size, mtime), _| {
            Ok(ObjStat {
                size,
                mtime: ns_to_time(mtime),
            })
        })
    }

    fn read(&self, coll: &CollId, oid: &ObjectId, off: u64, len: u64) -> Result<Bytes> {
        self.with_obj(coll, oid, Some(DATA), |ok, (size, _), t| {
            let (off, n) = clip_read(off, len, size)?;
            read_data(t.expect("table"), ok, off, n).map(Bytes::from)
        })
    }

    fn getattr(&self, coll: &CollId, oid: &ObjectId, name: &str) -> Result<Bytes> {
        self.with_obj(coll, oid, Some(XATTRS), |ok, _, t| {
            match t
                .expect("table")
                .get(sub_key(ok, name.as_bytes()).as_slice())
                .map_err(eio)?
            {
                Some(v) => Ok(Bytes::copy_from_slice(v.value())),
                None => Err(Error::new(libc::ENODATA, format!("no xattr '{name}' on {coll}/{oid}"))),
            }
        })
    }

    fn getattrs(&self, coll: &CollId, oid: &ObjectId) -> Result<BTreeMap<String, Bytes>> {
        self.with_obj(coll, oid, Some(XATTRS), |ok, _, t| {
            let (rows, _) = scan_prefix(t.expect("table"), ok, None, usize::MAX)?;
            rows.into_iter().map(|(k, v)| Ok((utf8(k)?, Bytes::from(v)))).collect()
        })
    }

    fn omap_get_keys(
        &self,
        coll: &CollId,
        oid: &ObjectId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<String>, bool)> {
        let (rows, more) = self.omap_scan(coll, oid, start_after, max)?;
        Ok((rows.into_iter().map(|(k, _)| utf8(k)).collect::<Result<_>>()?, more))
    }

    fn omap_get_vals(
        &self,
        coll: &CollId,
        oid: &ObjectId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<(BTreeMap<String, Bytes>, bool)> {
        let (rows, more) = self.omap_scan(coll, oid, start_after, max)?;
        let vals = rows
            .into_iter()
            .map(|(k, v)| Ok((utf8(k)?, Bytes::from(v))))
            .collect::<Result<_>>()?;
        Ok((vals, more))
    }
}
