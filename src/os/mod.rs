//! ObjectStore: the transactional object store under an OSD (Ceph's `src/os/`).
//!
//! A store holds *collections* (one per placement group, [`CollId`], printed like Ceph's
//! `1.7_head`), each an ordered set of objects ([`ObjectId`]). An object has a byte payload,
//! extended attributes (xattrs) and an omap (sorted string keys to byte values).
//!
//! Changes are made by [`Transaction`]s: an ordered list of [`Op`]s against one collection that
//! applies atomically or not at all. Every store first *validates* the whole transaction against
//! the current state (with the effects of the transaction's own earlier ops), and only then
//! applies it, so a failing op leaves no trace. Completion is reported through the `on_commit`
//! callback of [`ObjectStore::queue_transaction`], once the change is as durable as the store
//! makes it (immediately for [`mem::MemStore`], after the batch's fsync for [`kv::KvStore`]).
//!
//! Errors carry Ceph's errnos (positive in [`Error::errno`], as everywhere in this crate):
//!
//! | errno          | when                                                                        |
//! |----------------|-----------------------------------------------------------------------------|
//! | `ENOENT`       | the collection or the object does not exist (reads; truncate, remove, setattr, rmattr, omap ops on a missing object) |
//! | `EEXIST`       | `create_collection` of an existing collection                               |
//! | `ENOTEMPTY`    | `remove_collection` of a collection that still has objects (BlueStore)      |
//! | `ENODATA`      | `getattr` of a missing xattr (BlueStore/MemStore)                           |
//! | `EINVAL`       | `off + len` overflows `u64`                                                 |
//! | `EFBIG`        | the op would reach past `max_object_size` (Ceph's `check_offset_and_length`), or an xattr value is longer than `max_attr_size` |
//! | `ENAMETOOLONG` | object name, namespace, xattr name or omap key longer than its limit        |
//! | `EIO`          | the backing engine failed                                                   |
//! | `ESHUTDOWN`    | the store is not mounted                                                    |
//!
//! Semantics follow Ceph's stores: `touch`, `write` and `zero` create a missing object; `zero`
//! and `write` past the end extend the object (holes read as zeros), but a zero-length one
//! does not (BlueStore's `_do_write` returns early); `truncate` shrinks or
//! extends; `rmattr` of an absent xattr and `omap_rmkeys` of absent keys succeed; `read` past the
//! end returns the short (possibly empty) part, and `len == 0` reads to the end (as
//! `ObjectStore::read` with length 0 in Ceph).

pub mod encoding;
pub mod kv;
pub mod mem;
#[cfg(test)]
mod tests;

use crate::common::error::{Error, Result};
use crate::Context;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A collection: one placement group, `pool.seed` (Ceph's `spg_t`/`coll_t` for the head).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CollId {
    pub pool: i64,
    pub seed: u32,
}

impl CollId {
    pub fn new(pool: i64, seed: u32) -> Self {
        CollId { pool, seed }
    }
}

impl fmt::Display for CollId {
    /// Ceph's `coll_t` text: pool in decimal, PG seed in hex, `_head`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}_head", self.pool, self.seed)
    }
}

impl std::str::FromStr for CollId {
    type Err = Error;
    /// Parses `1.7_head` (the `_head` suffix is optional).
    fn from_str(s: &str) -> Result<Self> {
        let body = s.strip_suffix("_head").unwrap_or(s);
        let bad = || Error::inval(format!("bad collection id '{s}'"));
        let (p, seed) = body.split_once('.').ok_or_else(bad)?;
        Ok(CollId {
            pool: p.parse().map_err(|_| bad())?,
            seed: u32::from_str_radix(seed, 16).map_err(|_| bad())?,
        })
    }
}

/// An object's name within a pool. Sorted by (pool, namespace, name), bytewise on the strings;
/// `list_objects` returns this order in both stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId {
    pub pool: i64,
    pub namespace: String,
    pub name: String,
}

// The derived order, without comparing two empty namespaces (the usual case) through a
// `memcmp` call: object maps are searched with this dozens of times per op.
impl Ord for ObjectId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.pool
            .cmp(&other.pool)
            .then_with(|| match (self.namespace.is_empty(), other.namespace.is_empty()) {
                (true, true) => std::cmp::Ordering::Equal,
                _ => self.namespace.cmp(&other.namespace),
            })
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for ObjectId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl ObjectId {
    pub fn new(pool: i64, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectId {
            pool,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}:{}", self.pool, self.name)
        } else {
            write!(f, "{}:{}/{}", self.pool, self.namespace, self.name)
        }
    }
}

/// One change in a [`Transaction`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create the transaction's collection (`EEXIST` if it exists).
    CreateCollection,
    /// Remove the transaction's collection (`ENOENT` if missing, `ENOTEMPTY` if it has objects).
    RemoveCollection,
    /// Create the object if missing; otherwise only its mtime changes.
    Touch(ObjectId),
    Write {
        oid: ObjectId,
        off: u64,
        data: Bytes,
    },
    Zero {
        oid: ObjectId,
        off: u64,
        len: u64,
    },
    Truncate {
        oid: ObjectId,
        size: u64,
    },
    Remove(ObjectId),
    SetAttr {
        oid: ObjectId,
        name: String,
        value: Bytes,
    },
    RmAttr {
        oid: ObjectId,
        name: String,
    },
    OmapSetKeys {
        oid: ObjectId,
        kv: BTreeMap<String, Bytes>,
    },
    OmapRmKeys {
        oid: ObjectId,
        keys: BTreeSet<String>,
    },
    OmapClear(ObjectId),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::CreateCollection => "create_collection",
            Op::RemoveCollection => "remove_collection",
            Op::Touch(_) => "touch",
            Op::Write { .. } => "write",
            Op::Zero { .. } => "zero",
            Op::Truncate { .. } => "truncate",
            Op::Remove(_) => "remove",
            Op::SetAttr { .. } => "setattr",
            Op::RmAttr { .. } => "rmattr",
            Op::OmapSetKeys { .. } => "omap_setkeys",
            Op::OmapRmKeys { .. } => "omap_rmkeys",
            Op::OmapClear(_) => "omap_clear",
        }
    }

    pub fn oid(&self) -> Option<&ObjectId> {
        match self {
            Op::CreateCollection | Op::RemoveCollection => None,
            Op::Touch(o) | Op::Remove(o) | Op::OmapClear(o) => Some(o),
            Op::Write { oid, .. }
            | Op::Zero { oid, .. }
            | Op::Truncate { oid, .. }
            | Op::SetAttr { oid, .. }
            | Op::RmAttr { oid, .. }
            | Op::OmapSetKeys { oid, .. }
            | Op::OmapRmKeys { oid, .. } => Some(oid),
        }
    }

    /// Whether the op creates a missing object (Ceph: touch, write, zero).
    fn creates(&self) -> bool {
        matches!(self, Op::Touch(_) | Op::Write { .. } | Op::Zero { .. })
    }
}

/// An ordered list of ops against one collection, applied atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    pub ops: Vec<Op>,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Total payload bytes carried (writes, xattr and omap values).
    pub fn data_bytes(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Write { data, .. } => data.len() as u64,
                Op::SetAttr { value, .. } => value.len() as u64,
                Op::OmapSetKeys { kv, .. } => kv.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
                _ => 0,
            })
            .sum()
    }
    pub fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }
    pub fn create_collection(&mut self) -> &mut Self {
        self.push(Op::CreateCollection)
    }
    pub fn remove_collection(&mut self) -> &mut Self {
        self.push(Op::RemoveCollection)
    }
    pub fn touch(&mut self, oid: &ObjectId) -> &mut Self {
        self.push(Op::Touch(oid.clone()))
    }
    pub fn write(&mut self, oid: &ObjectId, off: u64, data: impl Into<Bytes>) -> &mut Self {
        self.push(Op::Write {
            oid: oid.clone(),
            off,
            data: data.into(),
        })
    }
    pub fn zero(&mut self, oid: &ObjectId, off: u64, len: u64) -> &mut Self {
        self.push(Op::Zero {
            oid: oid.clone(),
            off,
            len,
        })
    }
    pub fn truncate(&mut self, oid: &ObjectId, size: u64) -> &mut Self {
        self.push(Op::Truncate { oid: oid.clone(), size })
    }
    pub fn remove(&mut self, oid: &ObjectId) -> &mut Self {
        self.push(Op::Remove(oid.clone()))
    }
    pub fn setattr(&mut self, oid: &ObjectId, name: &str, value: impl Into<Bytes>) -> &mut Self {
        self.push(Op::SetAttr {
            oid: oid.clone(),
            name: name.to_string(),
            value: value.into(),
        })
    }
    pub fn rmattr(&mut self, oid: &ObjectId, name: &str) -> &mut Self {
        self.push(Op::RmAttr {
            oid: oid.clone(),
            name: name.to_string(),
        })
    }
    pub fn omap_setkeys(&mut self, oid: &ObjectId, kv: BTreeMap<String, Bytes>) -> &mut Self {
        self.push(Op::OmapSetKeys { oid: oid.clone(), kv })
    }
    pub fn omap_rmkeys(&mut self, oid: &ObjectId, keys: BTreeSet<String>) -> &mut Self {
        self.push(Op::OmapRmKeys { oid: oid.clone(), keys })
    }
    pub fn omap_clear(&mut self, oid: &ObjectId) -> &mut Self {
        self.push(Op::OmapClear(oid.clone()))
    }
}

/// Size limits a store enforces. Defaults are Ceph's option defaults where Ceph has one
/// (`osd_max_object_size`, `osd_max_attr_name_len`, `osd_max_object_name_len`,
/// `osd_max_object_namespace_len`); Ceph's `osd_max_attr_size` defaults to 0 (unlimited), we
/// cap xattr values at 64 KiB (FileStore's old inline limit) so one xattr cannot bloat an onode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// `EFBIG` past this (128 MiB, `osd_max_object_size`).
    pub max_object_size: u64,
    /// `EFBIG` for a longer xattr value (64 KiB).
    pub max_attr_size: usize,
    /// `ENAMETOOLONG` for a longer xattr name (100, `osd_max_attr_name_len`).
    pub max_attr_name_len: usize,
    /// `ENAMETOOLONG` for a longer object name (2048, `osd_max_object_name_len`).
    pub max_object_name_len: usize,
    /// `ENAMETOOLONG` for a longer namespace (256, `osd_max_object_namespace_len`).
    pub max_namespace_len: usize,
    /// `ENAMETOOLONG` for a longer omap key (4096).
    pub max_omap_key_len: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_object_size: 128 << 20,
            max_attr_size: 64 << 10,
            max_attr_name_len: 100,
            max_object_name_len: 2048,
            max_namespace_len: 256,
            max_omap_key_len: 4096,
        }
    }
}

impl StoreLimits {
    fn check_oid(&self, oid: &ObjectId) -> Result<()> {
        if oid.name.len() > self.max_object_name_len {
            return Err(Error::new(
                libc::ENAMETOOLONG,
                format!(
                    "object name {} > osd_max_object_name_len {}",
                    oid.name.len(),
                    self.max_object_name_len
                ),
            ));
        }
        if oid.namespace.len() > self.max_namespace_len {
            return Err(Error::new(
                libc::ENAMETOOLONG,
                format!(
                    "namespace {} > osd_max_object_namespace_len {}",
                    oid.namespace.len(),
                    self.max_namespace_len
                ),
            ));
        }
        Ok(())
    }

    /// Ceph's `check_offset_and_length`, with overflow as `EINVAL`.
    pub fn check_extent(&self, off: u64, len: u64) -> Result<()> {
        let end = off
            .checked_add(len)
            .ok_or_else(|| Error::inval(format!("offset {off} + length {len} overflows")))?;
        if end > self.max_object_size {
            return Err(Error::new(
                libc::EFBIG,
                format!("extent {off}~{len} past osd_max_object_size {}", self.max_object_size),
            ));
        }
        Ok(())
    }

    fn check_attr_name(&self, name: &str) -> Result<()> {
        if name.len() > self.max_attr_name_len {
            return Err(Error::new(
                libc::ENAMETOOLONG,
                format!(
                    "xattr name {} > osd_max_attr_name_len {}",
                    name.len(),
                    self.max_attr_name_len
                ),
            ));
        }
        Ok(())
    }

    /// The checks that need no store state.
    pub fn check_op(&self, op: &Op) -> Result<()> {
        if let Some(oid) = op.oid() {
            self.check_oid(oid)?;
        }
        match op {
            Op::Write { off, data, .. } => self.check_extent(*off, data.len() as u64),
            Op::Zero { off, len, .. } => self.check_extent(*off, *len),
            Op::Truncate { size, .. } => self.check_extent(*size, 0),
            Op::SetAttr { name, value, .. } => {
                self.check_attr_name(name)?;
                if value.len() > self.max_attr_size {
                    return Err(Error::new(
                        libc::EFBIG,
                        format!("xattr value {} > max_attr_size {}", value.len(), self.max_attr_size),
                    ));
                }
                Ok(())
            }
            Op::RmAttr { name, .. } => self.check_attr_name(name),
            Op::OmapSetKeys { kv, .. } => kv.keys().try_for_each(|k| self.check_omap_key(k)),
            Op::OmapRmKeys { keys, .. } => keys.iter().try_for_each(|k| self.check_omap_key(k)),
            _ => Ok(()),
        }
    }

    fn check_omap_key(&self, k: &str) -> Result<()> {
        if k.len() > self.max_omap_key_len {
            return Err(Error::new(
                libc::ENAMETOOLONG,
                format!("omap key {} > max_omap_key_len {}", k.len(), self.max_omap_key_len),
            ));
        }
        Ok(())
    }

    /// Stateless validation of a whole transaction; errors name the failing op.
    pub fn check_txn(&self, coll: &CollId, txn: &Transaction) -> Result<()> {
        for (i, op) in txn.ops.iter().enumerate() {
            self.check_op(op).map_err(|e| op_error(coll, i, op, e))?;
        }
        Ok(())
    }
}

fn op_error(coll: &CollId, i: usize, op: &Op, e: Error) -> Error {
    let target = match op.oid() {
        Some(o) => format!("{coll}/{o}"),
        None => coll.to_string(),
    };
    Error::new(e.errno, format!("op {i} ({}) on {target}: {}", op.name(), e.msg))
}

/// What validation needs to know about the state before a transaction.
pub(crate) trait TxnView {
    fn coll_exists(&self) -> Result<bool>;
    fn object_exists(&self, oid: &ObjectId) -> Result<bool>;
    /// Whether the collection holds an object that is not in `removed`.
    fn has_object_besides(&self, removed: &HashSet<ObjectId>) -> Result<bool>;
}

/// Stateful validation: replays the transaction's effect on existence (collection, objects) over
/// `view`, so later ops see earlier ones. Run after [`StoreLimits::check_txn`].
pub(crate) fn validate_txn(coll: &CollId, txn: &Transaction, view: &dyn TxnView) -> Result<()> {
    let mut coll_exists = view.coll_exists()?;
    let mut shadow: crate::common::hash::FxHashMap<&ObjectId, bool> = Default::default();
    for (i, op) in txn.ops.iter().enumerate() {
        let fail = |e: Error| op_error(coll, i, op, e);
        match op {
            Op::CreateCollection => {
                if coll_exists {
                    return Err(fail(Error::exists("collection exists")));
                }
                coll_exists = true;
            }
            Op::RemoveCollection => {
                if !coll_exists {
                    return Err(fail(Error::noent("no such collection")));
                }
                let removed: HashSet<ObjectId> =
                    shadow.iter().filter(|(_, e)| !**e).map(|(o, _)| (*o).clone()).collect();
                if shadow.values().any(|e| *e) || view.has_object_besides(&removed)? {
                    return Err(fail(Error::new(libc::ENOTEMPTY, "collection not empty")));
                }
                coll_exists = false;
                shadow.clear();
            }
            _ => {
                let oid = op.oid().expect("object op");
                if !coll_exists {
                    return Err(fail(Error::noent("no such collection")));
                }
                // An op that creates its object needs no lookup: the common write is of a
                // new object, and the lookup was 2% of a one-OSD write bench's OSD time.
                if op.creates() {
                    shadow.insert(oid, true);
                    continue;
                }
                let exists = match shadow.get(oid) {
                    Some(e) => *e,
                    None => view.object_exists(oid)?,
                };
                if !exists {
                    return Err(fail(Error::noent("no such object")));
                } else if matches!(op, Op::Remove(_)) {
                    shadow.insert(oid, false);
                }
            }
        }
    }
    Ok(())
}

/// `stat` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjStat {
    pub size: u64,
    /// Time of the last change to data, xattrs or omap.
    pub mtime: Option<SystemTime>,
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(crate) fn ns_to_time(ns: u64) -> Option<SystemTime> {
    if ns == 0 {
        None
    } else {
        Some(UNIX_EPOCH + Duration::from_nanos(ns))
    }
}

/// The range `[off, off+len)` clipped to an object of `size` (len 0 = to the end); checks overflow.
pub(crate) fn clip_read(off: u64, len: u64, size: u64) -> Result<(u64, u64)> {
    let end = if len == 0 {
        size
    } else {
        off.checked_add(len)
            .ok_or_else(|| Error::inval(format!("offset {off} + length {len} overflows")))?
            .min(size)
    };
    if off >= end {
        return Ok((0, 0));
    }
    Ok((off, end - off))
}

pub(crate) fn not_mounted() -> Error {
    Error::new(libc::ESHUTDOWN, "object store is not mounted")
}

/// Called once with the transaction's outcome, when it is durable (or failed).
pub type OnCommit = Box<dyn FnOnce(Result<()>) + Send>;

/// The object store interface (Ceph's `ObjectStore`). Shared as `Arc<dyn ObjectStore>`.
pub trait ObjectStore: Send + Sync {
    /// `mem` or `kv` (the `osd_objectstore` value).
    fn kind(&self) -> &'static str;
    fn mount(&self) -> Result<()>;
    /// True when `apply_transaction` returns without waiting on a device (a memory store): the
    /// OSD may then run ops on its messenger threads.
    fn commits_in_memory(&self) -> bool {
        false
    }
    /// Waits for queued transactions to commit, then stops.
    fn umount(&self) -> Result<()>;

    /// Queues `txn` against `coll`. `on_commit` is called exactly once: with `Ok` once the whole
    /// transaction is durable, or with the error of the first failing op (nothing applied).
    /// Transactions queued from one thread apply in queue order.
    fn queue_transaction(&self, coll: &CollId, txn: Transaction, on_commit: OnCommit);

    /// The checks `queue_transaction` makes without looking at the store's state (limits,
    /// extents): a transaction that passes them can fail later only on a state it did not
    /// expect, or on a device error.
    fn check_transaction(&self, coll: &CollId, txn: &Transaction) -> Result<()>;

    /// Queues `txn` and waits for its commit.
    fn apply_transaction(&self, coll: &CollId, txn: Transaction) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.queue_transaction(
            coll,
            txn,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(Error::new(libc::EIO, "transaction dropped without completion")))
    }

    fn list_collections(&self) -> Result<Vec<CollId>>;
    fn collection_exists(&self, coll: &CollId) -> Result<bool>;
    /// Up to `max` objects after `start_after` (exclusive), in [`ObjectId`] order; the flag says
    /// whether more follow.
    fn list_objects(&self, coll: &CollId, start_after: Option<&ObjectId>, max: usize) -> Result<(Vec<ObjectId>, bool)>;

    fn exists(&self, coll: &CollId, oid: &ObjectId) -> Result<bool>;
    fn stat(&self, coll: &CollId, oid: &ObjectId) -> Result<ObjStat>;
    /// [`ObjectStore::stat`], with a missing object or collection as `None`: the op path asks
    /// this of every object it writes, most of them new, and needs no error text for that.
    fn stat_if_exists(&self, coll: &CollId, oid: &ObjectId) -> Result<Option<ObjStat>> {
        match self.stat(coll, oid) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }
    /// Bytes `[off, off+len)`, short at the end of the object; `len == 0` reads to the end.
    fn read(&self, coll: &CollId, oid: &ObjectId, off: u64, len: u64) -> Result<Bytes>;
    /// `ENODATA` if the object has no such xattr.
    fn getattr(&self, coll: &CollId, oid: &ObjectId, name: &str) -> Result<Bytes>;
    fn getattrs(&self, coll: &CollId, oid: &ObjectId) -> Result<BTreeMap<String, Bytes>>;
    /// Up to `max` omap keys after `start_after` (exclusive), sorted; the flag says whether more follow.
    fn omap_get_keys(
        &self,
        coll: &CollId,
        oid: &ObjectId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<String>, bool)>;
    /// Like [`ObjectStore::omap_get_keys`], with the values.
    fn omap_get_vals(
        &self,
        coll: &CollId,
        oid: &ObjectId,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<(BTreeMap<String, Bytes>, bool)>;
}

/// Builds the store `osd_objectstore` names: `mem`, or `kv` under `osd_data` (expanded). Perf
/// counters go to the context's collection. The store is not mounted yet.
pub fn create_store(ctx: &Context) -> Result<Arc<dyn ObjectStore>> {
    let conf = ctx.conf();
    match conf.get_str("osd_objectstore").as_str() {
        "mem" => Ok(Arc::new(mem::MemStore::new())),
        "kv" => {
            let dir = conf.get_str("osd_data");
            Ok(Arc::new(kv::KvStore::with_options(
                dir,
                StoreLimits::default(),
                Some(ctx.perf().clone()),
            )))
        }
        other => Err(Error::inval(format!("unknown osd_objectstore '{other}'"))),
    }
}
