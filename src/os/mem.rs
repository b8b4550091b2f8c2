//! MemStore: everything in memory, lost at exit (Ceph's `memstore`; the default store).
//!
//! The collection map is behind one `RwLock`; each collection (a `BTreeMap` of objects) behind
//! its own. A transaction holds the map lock shared (exclusive only for create/remove
//! collection) and its collection's lock exclusive while it validates and applies, so
//! transactions on different collections run in parallel and a transaction is never seen half
//! done. Object data is one dense buffer per object (holes are zero bytes); `max_object_size`
//! bounds it. `on_commit` runs inline, after the apply, outside the locks.

use super::{
    clip_read, not_mounted, now_ns, ns_to_time, validate_txn, CollId, ObjStat, ObjectId, ObjectStore, OnCommit, Op,
    StoreLimits, Transaction, TxnView,
};
use crate::common::error::{Error, Result};
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
struct MemObj {
    /// Shared with readers and, for large whole-object writes, with the message it came in.
    data: Bytes,
    attrs: BTreeMap<String, Bytes>,
    omap: BTreeMap<String, Bytes>,
    mtime_ns: u64,
}

impl MemObj {
    fn stat(&self) -> ObjStat {
        ObjStat {
            size: self.data.len() as u64,
            mtime: ns_to_time(self.mtime_ns),
        }
    }
}

#[derive(Debug, Default)]
struct MemColl {
    objects: BTreeMap<ObjectId, MemObj>,
}

struct View<'a> {
    coll: Option<&'a MemColl>,
}

impl TxnView for View<'_> {
    fn coll_exists(&self) -> Result<bool> {
        Ok(self.coll.is_some())
    }
    fn object_exists(&self, oid: &ObjectId) -> Result<bool> {
        Ok(self.coll.is_some_and(|c| c.objects.contains_key(oid)))
    }
    fn has_object_besides(&self, removed: &HashSet<ObjectId>) -> Result<bool> {
        Ok(self
            .coll
            .is_some_and(|c| c.objects.keys().any(|o| !removed.contains(o))))
    }
}

/// Whole-object writes at least this large keep the message's buffer instead of a copy.
const SHARE_MIN: usize = 64 << 10;

/// Changes an object's data in place when no reader or message shares it, on a copy otherwise.
fn edit(data: &mut Bytes, f: impl FnOnce(&mut Vec<u8>)) {
    let mut v = Vec::from(std::mem::take(data));
    f(&mut v);
    *data = Bytes::from(v);
}

/// Applies one validated object op; cannot fail.
fn apply_op(coll: &mut MemColl, op: Op, now: u64) {
    let oid = op.oid().expect("object op").clone();
    if let Op::Remove(_) = op {
        coll.objects.remove(&oid);
        return;
    }
    let obj = coll.objects.entry(oid).or_default();
    obj.mtime_ns = now;
    match op {
        Op::Touch(_) => {}
        Op::Write { data, .. } if data.is_empty() => {}
        Op::Zero { len: 0, .. } => {}
        Op::Write { off, data, .. } => {
            let off = off as usize;
            if off == 0 && data.len() >= obj.data.len() {
                // The write replaces the object: keep the message's buffer rather than copy a
                // large one (it pins at most its frame's receive buffer; small ones would pin
                // a buffer many times their size).
                obj.data = if data.len() >= SHARE_MIN {
                    data
                } else {
                    Bytes::copy_from_slice(&data)
                };
                return;
            }
            edit(&mut obj.data, |v| {
                let end = off + data.len();
                if v.len() < off {
                    v.resize(off, 0);
                }
                let overlap = end.min(v.len()) - off;
                v[off..off + overlap].copy_from_slice(&data[..overlap]);
                v.extend_from_slice(&data[overlap..]);
            });
        }
        Op::Zero { off, len, .. } => {
            let (off, end) = (off as usize, (off + len) as usize);
            edit(&mut obj.data, |v| {
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[off..end].fill(0);
            });
        }
        Op::Truncate { size, .. } => {
            let size = size as usize;
            if size == 0 {
                obj.data = Bytes::new();
            } else {
                edit(&mut obj.data, |v| {
                    v.resize(size, 0);
                    if v.capacity() > 2 * v.len() + 4096 {
                        v.shrink_to_fit();
                    }
                });
            }
        }
        Op::SetAttr { name, value, .. } => {
            obj.attrs.insert(name, value);
        }
        Op::RmAttr { name, .. } => {
            obj.attrs.remove(&name);
        }
        Op::OmapSetKeys { kv, .. } => obj.omap.extend(kv),
        Op::OmapRmKeys { keys, .. } => {
            for k in keys {
                obj.omap.remove(&k);
            }
        }
        Op::OmapClear(_) => obj.omap.clear(),
        Op::Remove(_) | Op::CreateCollection | Op::RemoveCollection => unreachable!(),
    }
}

type CollMap = BTreeMap<CollId, Arc<RwLock<MemColl>>>;

/// The in-memory store.
pub struct MemStore {
    colls: RwLock<CollMap>,
    limits: StoreLimits,
    mounted: AtomicBool,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::with_limits(StoreLimits::default())
    }
    pub fn with_limits(limits: StoreLimits) -> Self {
        MemStore {
            colls: RwLock::new(BTreeMap::new()),
            limits,
            mounted: AtomicBool::new(false),
        }
    }
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    fn check_mounted(&self) -> Result<()> {
        if self.mounted.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(not_mounted())
        }
    }

    fn do_transaction(&self, coll: &CollId, txn: Transaction) -> Result<()> {
        self.check_mounted()?;
        self.limits.check_txn(coll, &txn)?;
        let now = now_ns();
        let touches_map = txn
            .ops
            .iter()
            .any(|op| matches!(op, Op::CreateCollection | Op::RemoveCollection));
        if !touches_map {
            let map = self.colls.read();
            let c = map.get(coll);
            let mut guard = c.map(|c| c.write());
            validate_txn(coll, &txn, &View { coll: guard.as_deref() })?;
            let c = guard.as_deref_mut().expect("validated: collection exists");
            for op in txn.ops {
                apply_op(c, op, now);
            }
            return Ok(());
        }
        let mut map = self.colls.write();
        let existing = map.get(coll).cloned();
        let mut guard = existing.as_ref().map(|c| c.write());
        validate_txn(coll, &txn, &View { coll: guard.as_deref() })?;
        let mut working: Option<MemColl> = guard.as_deref_mut().map(std::mem::take);
        for op in txn.ops {
            match op {
                Op::CreateCollection => working = Some(MemColl::default()),
                Op::RemoveCollection => working = None,
                op => apply_op(working.as_mut().expect("validated: collection exists"), op, now),
            }
        }
        match (working, guard) {
            (Some(w), Some(mut g)) => *g = w,
            (Some(w), None) => {
                map.insert(*coll, Arc::new(RwLock::new(w)));
            }
            (None, g) => {
                drop(g);
                map.remove(coll);
            }
        }
        Ok(())
    }

    fn with_coll<T>(&self, coll: &CollId, f: impl FnOnce(&MemColl) -> Result<T>) -> Result<T> {
        self.check_mounted()?;
        let c = self
            .colls
            .read()
            .get(coll)
            .cloned()
            .ok_or_else(|| Error::noent(format!("no collection {coll}")))?;
        let g = c.read();
        f(&g)
    }

    fn with_obj<T>(&self, coll: &CollId, oid: &ObjectId, f: impl FnOnce(&MemObj) -> Result<T>) -> Result<T> {
        self.with_coll(coll, |c| {
            let o = c
                .objects
                .get(oid)
                .ok_or_else(|| Error::noent(format!("no object {coll}/{oid}")))?;
            f(o)
        })
    }
}

fn omap_page<'a>(
    omap: &'a BTreeMap<String, Bytes>,
    start_after: Option<&str>,
    max: usize,
) -> (impl Iterator<Item = (&'a String, &'a Bytes)>, bool) {
    let lo = match start_after {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    };
    let more = omap.range::<str, _>((lo, Bound::Unbounded)).nth(max).is_some();
    (omap.range::<str, _>((lo, Bound::Unbounded)).take(max), more)
}

impl ObjectStore for MemStore {
    fn kind(&self) -> &'static str {
        "mem"
    }
    fn commits_in_memory(&self) -> bool {
        true
    }
    fn mount(&self) -> Result<()> {
        self.mounted.store(true, Ordering::Release);
        Ok(())
    }
    fn umount(&self) -> Result<()> {
        self.mounted.store(false, Ordering::Release);
        Ok(())
    }

    fn queue_transaction(&self, coll: &CollId, txn: Transaction, on_commit: OnCommit) {
        let r = self.do_transaction(coll, txn);
        on_commit(r);
    }

    fn apply_transaction(&self, coll: &CollId, txn: Transaction) -> Result<()> {
        self.do_transaction(coll, txn)
    }

    fn check_transaction(&self, coll: &CollId, txn: &Transaction) -> Result<()> {
        self.limits.check_txn(coll, txn)
    }

    fn list_collections(&self) -> Result<Vec<CollId>> {
        self.check_mounted()?;
        Ok(self.colls.read().keys().copied().collect())
    }

    fn collection_exists(&self, coll: &CollId) -> Result<bool> {
        self.check_mounted()?;
        Ok(self.colls.read().contains_key(coll))
    }

    fn list_objects(&self, coll: &CollId, start_after: Option<&ObjectId>, max: usize) -> Result<(Vec<ObjectId>, bool)> {
        self.with_coll(coll, |c| {
            let lo = match start_after {
                Some(s) => Bound::Excluded(s),
                None => Bound::Unbounded,
            };
            let mut it = c.objects.range((lo, Bound::Unbounded)).map(|(k, _)| k.clone());
            let v: Vec<ObjectId> = it.by_ref().take(max).collect();
            Ok((v, it.next().is_some()))
        })
    }

    fn exists(&self, coll: &CollId, oid: &ObjectId) -> Result<bool> {
        self.with_coll(coll, |c| Ok(c.objects.contains_key(oid)))
    }

    fn stat(&self, coll: &CollId, oid: &ObjectId) -> Result<ObjStat> {
        self.with_obj(coll, oid, |o| Ok(o.stat()))
    }

    fn stat_if_exists(&self, coll: &CollId, oid: &ObjectId) -> Result<Option<ObjStat>> {
        // Only a missing collection, which the op path has created before, pays an error text.
        match self.with_coll(coll, |c| Ok(c.objects.get(oid).map(MemObj::stat))) {
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            r => r,
        }
    }

    fn read(&self, coll: &CollId, oid: &ObjectId, off: u64, len: u64) -> Result<Bytes> {
        self.with_obj(coll, oid, |o| {
            let (off, n) = clip_read(off, len, o.data.len() as u64)?;
            Ok(o.data.slice(off as usize..(off + n) as usize))
        })
    }

    fn getattr(&self, coll: &CollId, oid: &ObjectId, name: &str) -> Result<Bytes> {
        self.with_obj(coll, oid, |o| {
            o.attrs
                .get(name)
                .cloned()
                .ok_or_else(|| Error::new(libc::ENODATA, format!("no xattr '{name}' on {coll}/{oid}")))
        })
    }

    fn getattrs(&self, coll: &CollId, oid: &ObjectId) -> Result<BTreeMap<String, Bytes>> {
        self.with_obj(coll, oid, |o| Ok(o.attrs.clone()))
    }

    fn omap_get_keys(
        &self,
        coll: &CollId,
        oid: &ObjectId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<String>, bool)> {
        self.with_obj(coll, oid, |o| {
            let (it, more) = omap_page(&o.omap, start_after, max);
            Ok((it.map(|(k, _)| k.clone()).collect(), more))
        })
    }

    fn omap_get_vals(
        &self,
        coll: &CollId,
        oid: &ObjectId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<(BTreeMap<String, Bytes>, bool)> {
        self.with_obj(coll, oid, |o| {
            let (it, more) = omap_page(&o.omap, start_after, max);
            Ok((it.map(|(k, v)| (k.clone(), v.clone())).collect(), more))
        })
    }
}
