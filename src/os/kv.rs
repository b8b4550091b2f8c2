//! KvStore: a durable object store on redb, one database file `<osd_data>/store.redb`.
//!
//! # Commit path
//!
//! `queue_transaction` checks what needs no state (limits, offset overflow; see
//! [`StoreLimits`]) and hands the transaction to the single `kv_sync` thread over a FIFO
//! channel. `kv_sync` takes everything queued (up to [`MAX_BATCH_TXNS`] transactions or
//! [`MAX_BATCH_BYTES`] of payload), opens ONE redb write transaction, and for each queued
//! transaction in order: validates it against the write transaction's current state (which
//! includes the batch's earlier transactions) and, if valid, applies it; an invalid one is
//! skipped whole and its callback gets the error. The batch is committed with
//! `Durability::Immediate` (fsync), and only then are the callbacks called, on `kv_sync`,
//! holding no lock. An op is therefore acknowledged only once durable, and reads (each a fresh
//! redb read transaction) issued after the callback see it. Callbacks must not block on this
//! store (`apply_transaction` from a callback returns `EDEADLK`). If the commit itself fails,
//! every transaction of the batch gets `EIO` and none is applied.
//!
//! # Key layout
//!
//! Every table maps bytes to bytes; keys sort bytewise.
//!
//! ```text
//! super   "format"                          -> "osdkit-kv-1"
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

fn build_perf() -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new("kvstore");
    let idx = [
        b.add_time_avg("kv_commit_latency", "Time to apply and commit (fsync) one batch"),
        b.add_u64_avg("kv_batch_size", "Transactions per committed batch"),
        b.add_u64_counter("kv_ops", "Transactions committed"),
        b.add_u64_counter("kv_bytes", "Payload bytes committed"),
        b.add_time_avg("kv_queue_latency", "Time from queue_transaction to on_commit"),
    ];
    debug_assert_eq!(idx, [L_COMMIT_LAT, L_BATCH_SIZE, L_OPS, L_BYTES, L_QUEUE_LAT]);
    b.build()
}

fn eio(e: impl std::fmt::Display) -> Error {
    Error::new(libc::EIO, format!("kv: {e}"))
}

thread_local! {
    static IN_KV_SYNC: Cell<bool> = const { Cell::new(false) };
}

// ---- keys

fn push_i64(k: &mut Vec<u8>, v: i64) {
    k.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

fn ckey(c: &CollId) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    push_i64(&mut k, c.pool);
    k.extend_from_slice(&c.seed.to_be_bytes());
    k
}

fn decode_ckey(k: &[u8]) -> Option<CollId> {
    if k.len() != 12 {
        return None;
    }
    let pool = (u64::from_be_bytes(k[..8].try_into().ok()?) ^ (1 << 63)) as i64;
    let seed = u32::from_be_bytes(k[8..12].try_into().ok()?);
    Some(CollId { pool, seed })
}

fn push_esc(k: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == 0 {
            k.extend_from_slice(&[0, 0xff]);
        } else {
            k.push(b);
        }
    }
    k.extend_from_slice(&[0, 0]);
}

/// Decodes one escaped string from the front of `k`; returns it and the rest.
fn take_esc(k: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match *k.get(i)? {
            0 => match *k.get(i + 1)? {
                0 => return Some((String::from_utf8(out).ok()?, &k[i + 2..])),
                0xff => {
                    out.push(0);
                    i += 2;
                }
                _ => return None,
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

fn okey(c: &CollId, o: &ObjectId) -> Vec<u8> {
    let mut k = ckey(c);
    push_i64(&mut k, o.pool);
    push_esc(&mut k, &o.namespace);
    push_esc(&mut k, &o.name);
    k
}

/// The ObjectId of an `onodes` key.
fn decode_okey(k: &[u8]) -> Option<ObjectId> {
    let rest = k.get(12..)?;
    let pool = (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64;
    let (namespace, rest) = take_esc(&rest[8..])?;
    let (name, rest) = take_esc(rest)?;
    rest.is_empty().then_some(ObjectId { pool, namespace, name })
}

fn sub_key(o: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(o.len() + suffix.len());
    k.extend_from_slice(o);
    k.extend_from_slice(suffix);
    k
}

fn dkey(o: &[u8], idx: u64) -> Vec<u8> {
    sub_key(o, &idx.to_be_bytes())
}

/// The smallest key greater than every key starting with `p` (None: no such bound).
fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

fn encode_onode(size: u64, mtime: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&size.to_le_bytes());
    v[8..].copy_from_slice(&mtime.to_le_bytes());
    v
}

fn decode_onode(v: &[u8]) -> Result<(u64, u64)> {
    if v.len() != 16 {
        return Err(eio(format!("corrupt onode of {} bytes", v.len())));
    }
    Ok((
        u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(v[8..].try_into().expect("8 bytes")),
    ))
}

// ---- reads, generic over read-only and write tables

/// Anything bytes-to-bytes that can be read: a read-only or a write transaction's table.
pub(crate) trait Tbl: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> Tbl for T {}

/// Key suffixes (prefix stripped) and values from a prefix scan.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

type RoTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

fn get_onode(t: &impl Tbl, ok: &[u8]) -> Result<Option<(u64, u64)>> {
    match t.get(ok).map_err(eio)? {
        Some(v) => decode_onode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Keys (with the prefix stripped) and values in `[prefix+after, prefix_end)`, at most `max`
/// entries after `after` (exclusive); the flag says whether more follow.
fn scan_prefix(t: &impl Tbl, prefix: &[u8], after: Option<&[u8]>, max: usize) -> Result<(Rows, bool)> {
    let lo = sub_key(prefix, after.unwrap_or(&[]));
    let hi = prefix_end(prefix);
    let range = match &hi {
        Some(hi) => t.range::<&[u8]>(lo.as_slice()..hi.as_slice()),
        None => t.range::<&[u8]>(lo.as_slice()..),
    }
    .map_err(eio)?;
    let mut out = Vec::new();
    for item in range {
        let (k, v) = item.map_err(eio)?;
        let k = k.value();
        if after.is_some() && k == lo.as_slice() {
            continue;
        }
        if out.len() == max {
            return Ok((out, true));
        }
        out.push((k[prefix.len()..].to_vec(), v.value().to_vec()));
    }
    Ok((out, false))
}

fn read_data(t: &impl Tbl, ok: &[u8], off: u64, n: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n as usize];
    if n == 0 {
        return Ok(buf);
    }
    let end = off + n;
    let (first, last) = (off / CHUNK, (end - 1) / CHUNK);
    let lo = dkey(ok, first);
    let hi = dkey(ok, last);
    for item in t.range::<&[u8]>(lo.as_slice()..=hi.as_slice()).map_err(eio)? {
        let (k, v) = item.map_err(eio)?;
        let idx = u64::from_be_bytes(k.value()[ok.len()..].try_into().map_err(eio)?);
        let chunk = v.value();
        let cstart = idx * CHUNK;
        let s = off.max(cstart);
        let e = end.min(cstart + chunk.len() as u64);
        if s < e {
            buf[(s - off) as usize..(e - off) as usize]
                .copy_from_slice(&chunk[(s - cstart) as usize..(e - cstart) as usize]);
        }
    }
    Ok(buf)
}

// ---- the write side

struct Tables<'t> {
    colls: Table<'t, &'static [u8], &'static [u8]>,
    onodes: Table<'t, &'static [u8], &'static [u8]>,
    data: Table<'t, &'static [u8], &'static [u8]>,
    xattrs: Table<'t, &'static [u8], &'static [u8]>,
    omap: Table<'t, &'static [u8], &'static [u8]>,
}

fn remove_prefix(t: &mut Table<'_, &'static [u8], &'static [u8]>, prefix: &[u8]) -> Result<()> {
    match prefix_end(prefix) {
        Some(hi) => t.retain_in::<&[u8], _>(prefix..hi.as_slice(), |_, _| false),
        None => t.retain_in::<&[u8], _>(prefix.., |_, _| false),
    }
    .map_err(eio)
}

struct WriteView<'a, 't> {
    t: &'a Tables<'t>,
    coll: &'a CollId,
}

impl TxnView for WriteView<'_, '_> {
    fn coll_exists(&self) -> Result<bool> {
        Ok(self.t.colls.get(ckey(self.coll).as_slice()).map_err(eio)?.is_some())
    }
    fn object_exists(&self, oid: &ObjectId) -> Result<bool> {
        Ok(self
            .t
            .onodes
            .get(okey(self.coll, oid).as_slice())
            .map_err(eio)?
            .is_some())
    }
    fn has_object_besides(&self, removed: &HashSet<ObjectId>) -> Result<bool> {
        let p = ckey(self.coll);
        let range = match prefix_end(&p) {
            Some(hi) => self.t.onodes.range::<&[u8]>(p.as_slice()..hi.as_slice()),
            None => self.t.onodes.range::<&[u8]>(p.as_slice()..),
        }
        .map_err(eio)?;
        for item in range {
            let (k, _) = item.map_err(eio)?;
            let oid = decode_okey(k.value()).ok_or_else(|| eio("corrupt onode key"))?;
            if !removed.contains(&oid) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Tables<'_> {
    fn write_chunks(&mut self, ok: &[u8], off: u64, data: &[u8]) -> Result<()> {
        let end = off + data.len() as u64;
        let mut pos = off;
        while pos < end {
            let idx = pos / CHUNK;
            let in_off = (pos - idx * CHUNK) as usize;
            let n = (end - pos).min(CHUNK - in_off as u64) as usize;
            let key = dkey(ok, idx);
            let mut buf = if in_off == 0 && n as u64 == CHUNK {
                Vec::new()
            } else {
                self.data
                    .get(key.as_slice())
                    .map_err(eio)?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default()
            };
            if buf.len() < in_off + n {
                buf.resize(in_off + n, 0);
            }
            let src = (pos - off) as usize;
            buf[in_off..in_off + n].copy_from_slice(&data[src..src + n]);
            self.data.insert(key.as_slice(), buf.as_slice()).map_err(eio)?;
            pos += n as u64;
        }
        Ok(())
    }

    fn zero_chunks(&mut self, ok: &[u8], off: u64, len: u64) -> Result<()> {
        let end = off + len;
        let mut pos = off;
        while pos < end {
            let idx = pos / CHUNK;
            let cstart = idx * CHUNK;
            let in_off = (pos - cstart) as usize;
            let n = (end - pos).min(CHUNK - in_off as u64) as usize;
            let key = dkey(ok, idx);
            if in_off == 0 && n as u64 == CHUNK {
                self.data.remove(key.as_slice()).map_err(eio)?;
            } else {
                let existing = self.data.get(key.as_slice()).map_err(eio)?.map(|v| v.value().to_vec());
                if let Some(mut buf) = existing {
                    if in_off < buf.len() {
                        let e = (in_off + n).min(buf.len());
                        buf[in_off..e].fill(0);
                        self.data.insert(key.as_slice(), buf.as_slice()).map_err(eio)?;
                    }
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn truncate_chunks(&mut self, ok: &[u8], size: u64) -> Result<()> {
        let first_dead = size.div_ceil(CHUNK);
        let lo = dkey(ok, first_dead);
        let hi = dkey(ok, u64::MAX);
        self.data
            .retain_in::<&[u8], _>(lo.as_slice()..=hi.as_slice(), |_, _| false)
            .map_err(eio)?;
        if size % CHUNK != 0 {
            let key = dkey(ok, size / CHUNK);
            let keep = (size % CHUNK) as usize;
            let existing = self.data.get(key.as_slice()).map_err(eio)?.map(|v| v.value().to_vec());
            if let Some(mut buf) = existing {
                if buf.len() > keep {
                    buf.truncate(keep);
                    self.data.insert(key.as_slice(), buf.as_slice()).map_err(eio)?;
                }
            }
        }
        Ok(())
    }

    /// Applies one validated op. Errors here are engine failures (the batch is abandoned).
    fn apply(&mut self, coll: &CollId, op: Op, now: u64) -> Result<()> {
        let oid = match &op {
            Op::CreateCollection => {
                return self
                    .colls
                    .insert(ckey(coll).as_slice(), &[][..])
                    .map(|_| ())
                    .map_err(eio);
            }
            Op::RemoveCollection => {
                return self.colls.remove(ckey(coll).as_slice()).map(|_| ()).map_err(eio);
            }
            op => op.oid().expect("object op"),
        };
        let ok = okey(coll, oid);
        if let Op::Remove(_) = op {
            self.onodes.remove(ok.as_slice()).map_err(eio)?;
            remove_prefix(&mut self.data, &ok)?;
            remove_prefix(&mut self.xattrs, &ok)?;
            return remove_prefix(&mut self.omap, &ok);
        }
        let mut size = get_onode(&self.onodes, &ok)?.map(|(s, _)| s).unwrap_or(0);
        match op {
            Op::Touch(_) => {}
            Op::Write { data, .. } if data.is_empty() => {}
            Op::Zero { len: 0, .. } => {}
            Op::Write { off, data, .. } => {
                self.write_chunks(&ok, off, &data)?;
                size = size.max(off + data.len() as u64);
            }
            Op::Zero { off, len, .. } => {
                self.zero_chunks(&ok, off, len)?;
                size = size.max(off + len);
            }
            Op::Truncate { size: new, .. } => {
                if new < size {
                    self.truncate_chunks(&ok, new)?;
                }
                size = new;
            }
            Op::SetAttr { name, value, .. } => {
                self.xattrs
                    .insert(sub_key(&ok, name.as_bytes()).as_slice(), &value[..])
                    .map_err(eio)?;
            }
            Op::RmAttr { name, .. } => {
                self.xattrs
                    .remove(sub_key(&ok, name.as_bytes()).as_slice())
                    .map_err(eio)?;
            }
            Op::OmapSetKeys { kv, .. } => {
                for (k, v) in kv {
                    self.omap
                        .insert(sub_key(&ok, k.as_bytes()).as_slice(), &v[..])
                        .map_err(eio)?;
                }
            }
            Op::OmapRmKeys { keys, .. } => {
                for k in keys {
                    self.omap.remove(sub_key(&ok, k.as_bytes()).as_slice()).map_err(eio)?;
                }
            }
            Op::OmapClear(_) => remove_prefix(&mut self.omap, &ok)?,
            Op::Remove(_) | Op::CreateCollection | Op::RemoveCollection => unreachable!(),
        }
        self.onodes
            .insert(ok.as_slice(), &encode_onode(size, now)[..])
            .map_err(eio)?;
        Ok(())
    }
}

// ---- kv_sync

struct Queued {
    coll: CollId,
    txn: Transaction,
    on_commit: OnCommit,
    queued_at: Instant,
}

enum Msg {
    Txn(Queued),
    Stop,
}

/// Validates and applies a batch in one write transaction and commits it. Returns each
/// transaction's result.
fn commit_batch(db: &Database, batch: &mut [Queued]) -> Vec<Result<()>> {
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

fn kv_sync_loop(db: Arc<Database>, rx: Receiver<Msg>, pc: Option<Arc<PerfCounters>>) {
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

struct Mounted {
    db: Arc<Database>,
    tx: Sender<Msg>,
    thread: JoinHandle<()>,
    pc: Option<Arc<PerfCounters>>,
}

/// The durable store. Create with a directory, then `mount`.
pub struct KvStore {
    dir: PathBuf,
    limits: StoreLimits,
    perf: Option<Arc<PerfCountersCollection>>,
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
            state: RwLock::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
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
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(e, self.dir.display()))?;
        let file = self.dir.join(DB_FILE);
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&file)
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
        let pc = self.perf.as_ref().map(|coll| {
            let pc = build_perf();
            coll.add(&pc);
            pc
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let (db2, pc2) = (db.clone(), pc.clone());
        let thread = std::thread::Builder::new()
            .name("kv_sync".into())
            .spawn(move || kv_sync_loop(db2, rx, pc2))
            .map_err(|e| Error::io(e, "spawn kv_sync"))?;
        *st = Some(Mounted { db, tx, thread, pc });
        Ok(())
    }

    fn umount(&self) -> Result<()> {
        if IN_KV_SYNC.with(|f| f.get()) {
            return Err(Error::new(libc::EDEADLK, "umount from a kvstore commit callback"));
        }
        let m = self.state.write().take().ok_or_else(not_mounted)?;
        let _ = m.tx.send(Msg::Stop);
        m.thread.join().map_err(|_| eio("kv_sync panicked"))?;
        if let (Some(coll), Some(pc)) = (&self.perf, &m.pc) {
            coll.remove(pc);
        }
        // Dropping the last handle closes the file (readers hold clones only while reading).
        drop(m.db);
        Ok(())
    }

    fn queue_transaction(&self, coll: &CollId, txn: Transaction, on_commit: OnCommit) {
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
            queued_at: Instant::now(),
        };
        if let Err(crossbeam_channel::SendError(Msg::Txn(q))) = m.tx.send(Msg::Txn(q)) {
            drop(st);
            (q.on_commit)(Err(eio("kv_sync is gone")));
        }
    }

    fn apply_transaction(&self, coll: &CollId, txn: Transaction) -> Result<()> {
        if IN_KV_SYNC.with(|f| f.get()) {
            return Err(Error::new(
                libc::EDEADLK,
                "apply_transaction from a kvstore commit callback",
            ));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.queue_transaction(
            coll,
            txn,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
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
