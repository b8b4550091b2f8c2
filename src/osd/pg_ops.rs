//! Executing one request's ops on one object (Ceph's `do_osd_ops`), against an `ObjectStore`.
//!
//! The ops run in order, and each sees what the earlier ones of the same request did (a read
//! after a write reads the write), through an overlay of the object kept while the request
//! executes. Writes are collected into one store transaction, so a request applies completely
//! or not at all: if an op fails (and is not marked `FAILOK`), the request's result is that
//! op's errno, nothing is written, and no read data is returned.
//!
//! Errnos follow Ceph's: a missing object is `-ENOENT` for reads, stat, delete and the ops that
//! need it; an exclusive create of an existing object is `-EEXIST`; a missing xattr is
//! `-ENODATA`; a failed `CMPXATTR` is `-ECANCELED`; an op we do not implement is `-EOPNOTSUPP`.

use crate::common::error::Error;
use crate::os::{CollId, ObjectId, ObjectStore, Transaction};
use crate::types::osd_op::*;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

/// A data change not yet in the store, replayed over reads of the same request.
enum Pending {
    Write(u64, Bytes),
    Zero(u64, u64),
    Truncate(u64),
}

/// The object as this request has made it so far.
struct View<'a> {
    store: &'a dyn ObjectStore,
    coll: &'a CollId,
    oid: &'a ObjectId,
    exists: bool,
    /// Size at the start of the request (before `pending`).
    base_size: u64,
    size: u64,
    /// The store has nothing this request may see: the object did not exist when the request
    /// began, or the request deleted it (its old bytes, xattrs and omap are gone).
    recreated: bool,
    pending: Vec<Pending>,
    xattrs: BTreeMap<String, Option<Bytes>>,
    omap: BTreeMap<String, Option<Bytes>>,
    omap_cleared: bool,
}

fn errno(e: &Error) -> i32 {
    -e.errno.abs()
}

impl<'a> View<'a> {
    fn load(store: &'a dyn ObjectStore, coll: &'a CollId, oid: &'a ObjectId) -> Result<Self, i32> {
        let (exists, size) = match store.stat_if_exists(coll, oid) {
            Ok(Some(st)) => (true, st.size),
            Ok(None) => (false, 0),
            Err(e) => return Err(errno(&e)),
        };
        Ok(View {
            store,
            coll,
            oid,
            exists,
            base_size: size,
            size,
            recreated: !exists,
            pending: Vec::new(),
            xattrs: BTreeMap::new(),
            omap: BTreeMap::new(),
            omap_cleared: false,
        })
    }

    fn need(&self) -> Result<(), i32> {
        if self.exists {
            Ok(())
        } else {
            Err(-libc::ENOENT)
        }
    }

    /// Bytes `[off, off+len)` as the request sees them (short at the end).
    fn read(&self, off: u64, len: u64) -> Result<Bytes, i32> {
        self.need()?;
        let end = if len == 0 {
            self.size
        } else {
            off.saturating_add(len).min(self.size)
        };
        if off >= end {
            return Ok(Bytes::new());
        }
        if self.pending.is_empty() && !self.recreated {
            return self
                .store
                .read(self.coll, self.oid, off, end - off)
                .map_err(|e| errno(&e));
        }
        let mut buf = BytesMut::zeroed((end - off) as usize);
        if !self.recreated && off < self.base_size {
            let base = self
                .store
                .read(self.coll, self.oid, off, end.min(self.base_size) - off)
                .map_err(|e| errno(&e))?;
            buf[..base.len()].copy_from_slice(&base);
        }
        // Replay the request's own changes over the window, in order.
        for p in &self.pending {
            match p {
                Pending::Write(woff, data) => {
                    let (a, b) = ((*woff).max(off), (woff + data.len() as u64).min(end));
                    if a < b {
                        buf[(a - off) as usize..(b - off) as usize]
                            .copy_from_slice(&data[(a - woff) as usize..(b - woff) as usize]);
                    }
                }
                Pending::Zero(zoff, zlen) => {
                    let (a, b) = ((*zoff).max(off), (zoff + zlen).min(end));
                    if a < b {
                        buf[(a - off) as usize..(b - off) as usize].fill(0);
                    }
                }
                Pending::Truncate(size) => {
                    if *size < end {
                        let from = (*size).max(off);
                        buf[(from - off) as usize..].fill(0);
                    }
                }
            }
        }
        Ok(buf.freeze())
    }

    fn getattr(&self, name: &str) -> Result<Bytes, i32> {
        self.need()?;
        match self.xattrs.get(name) {
            Some(Some(v)) => Ok(v.clone()),
            Some(None) => Err(-libc::ENODATA),
            None if self.recreated => Err(-libc::ENODATA),
            None => self.store.getattr(self.coll, self.oid, name).map_err(|e| errno(&e)),
        }
    }

    fn getattrs(&self) -> Result<BTreeMap<String, Bytes>, i32> {
        self.need()?;
        let mut all = if self.recreated {
            BTreeMap::new()
        } else {
            self.store.getattrs(self.coll, self.oid).map_err(|e| errno(&e))?
        };
        for (k, v) in &self.xattrs {
            match v {
                Some(v) => all.insert(k.clone(), v.clone()),
                None => all.remove(k),
            };
        }
        Ok(all)
    }

    fn omap_vals(&self) -> Result<BTreeMap<String, Bytes>, i32> {
        self.need()?;
        let mut all = BTreeMap::new();
        if !self.recreated && !self.omap_cleared {
            let mut after: Option<String> = None;
            loop {
                let (page, more) = self
                    .store
                    .omap_get_vals(self.coll, self.oid, after.as_deref(), 1024)
                    .map_err(|e| errno(&e))?;
                after = page.keys().next_back().cloned();
                all.extend(page);
                if !more || after.is_none() {
                    break;
                }
            }
        }
        for (k, v) in &self.omap {
            match v {
                Some(v) => all.insert(k.clone(), v.clone()),
                None => all.remove(k),
            };
        }
        Ok(all)
    }

    fn create(&mut self, txn: &mut Transaction) {
        if !self.exists {
            txn.touch(self.oid);
            self.exists = true;
        }
    }
}

/// What executing a request produced: the result (0 or the first failing op's errno), and the
/// writes to commit (None for a read-only or failed request).
pub struct Executed {
    pub result: i32,
    pub txn: Option<Transaction>,
    /// The object's size after the request.
    pub size: u64,
}

fn cmp_xattr(have: &[u8], op: u8, mode: u8, want: &[u8]) -> Result<bool, i32> {
    use std::cmp::Ordering::*;
    let ord = match mode {
        CEPH_OSD_CMPXATTR_MODE_STRING => have.cmp(want),
        CEPH_OSD_CMPXATTR_MODE_U64 => {
            let num = |b: &[u8]| -> Result<u64, i32> {
                if b.is_empty() {
                    return Ok(0);
                }
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or(-libc::EINVAL)
            };
            num(have)?.cmp(&num(want)?)
        }
        _ => return Err(-libc::EINVAL),
    };
    Ok(match op {
        CEPH_OSD_CMPXATTR_OP_EQ => ord == Equal,
        CEPH_OSD_CMPXATTR_OP_NE => ord != Equal,
        CEPH_OSD_CMPXATTR_OP_GT => ord == Greater,
        CEPH_OSD_CMPXATTR_OP_GTE => ord != Less,
        CEPH_OSD_CMPXATTR_OP_LT => ord == Less,
        CEPH_OSD_CMPXATTR_OP_LTE => ord != Greater,
        _ => return Err(-libc::EINVAL),
    })
}

/// One op against the view; read results go to `op.outdata`.
fn do_op(v: &mut View<'_>, op: &mut OsdOp, txn: &mut Transaction) -> Result<(), i32> {
    let oid = v.oid;
    let end = |off: u64, len: u64| off.checked_add(len).ok_or(-libc::EINVAL);
    match op.op {
        CEPH_OSD_OP_READ | CEPH_OSD_OP_SYNC_READ => op.outdata = v.read(op.offset, op.length)?,
        CEPH_OSD_OP_STAT => {
            v.need()?;
            // Ceph's stat reply: size u64 then mtime (seconds, nanoseconds).
            let mtime = if v.pending.is_empty() {
                v.store.stat(v.coll, oid).ok().and_then(|s| s.mtime)
            } else {
                Some(std::time::SystemTime::now())
            };
            let d = mtime
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&v.size.to_le_bytes());
            out.extend_from_slice(&(d.as_secs() as u32).to_le_bytes());
            out.extend_from_slice(&d.subsec_nanos().to_le_bytes());
            op.outdata = Bytes::from(out);
        }
        CEPH_OSD_OP_CREATE => {
            if v.exists && op.flags & CEPH_OSD_OP_FLAG_EXCL != 0 {
                return Err(-libc::EEXIST);
            }
            v.create(txn);
        }
        CEPH_OSD_OP_WRITE => {
            let e = end(op.offset, op.indata.len() as u64)?;
            v.create(txn);
            txn.write(oid, op.offset, op.indata.clone());
            v.pending.push(Pending::Write(op.offset, op.indata.clone()));
            v.size = v.size.max(e);
        }
        CEPH_OSD_OP_WRITEFULL => {
            v.create(txn);
            txn.truncate(oid, 0);
            txn.write(oid, 0, op.indata.clone());
            v.pending.push(Pending::Truncate(0));
            v.pending.push(Pending::Write(0, op.indata.clone()));
            v.size = op.indata.len() as u64;
        }
        CEPH_OSD_OP_APPEND => {
            let off = v.size;
            end(off, op.indata.len() as u64)?;
            v.create(txn);
            txn.write(oid, off, op.indata.clone());
            v.pending.push(Pending::Write(off, op.indata.clone()));
            v.size = off + op.indata.len() as u64;
        }
        CEPH_OSD_OP_TRUNCATE => {
            v.create(txn);
            txn.truncate(oid, op.offset);
            v.pending.push(Pending::Truncate(op.offset));
            v.size = op.offset;
        }
        CEPH_OSD_OP_ZERO => {
            let e = end(op.offset, op.length)?;
            // Ceph: zeroing a missing object does nothing; zeroing never grows one.
            if v.exists && op.offset < v.size {
                let len = e.min(v.size) - op.offset;
                txn.zero(oid, op.offset, len);
                v.pending.push(Pending::Zero(op.offset, len));
            }
        }
        CEPH_OSD_OP_DELETE => {
            v.need()?;
            txn.remove(oid);
            v.exists = false;
            v.size = 0;
            v.recreated = true;
            v.pending.clear();
            v.xattrs.clear();
            v.omap.clear();
        }
        CEPH_OSD_OP_GETXATTR => op.outdata = v.getattr(&op.name)?,
        CEPH_OSD_OP_GETXATTRS => op.outdata = encode_omap_vals(&v.getattrs()?),
        CEPH_OSD_OP_SETXATTR => {
            v.create(txn);
            txn.setattr(oid, &op.name, op.indata.clone());
            v.xattrs.insert(op.name.clone(), Some(op.indata.clone()));
        }
        CEPH_OSD_OP_RMXATTR => {
            v.need()?;
            txn.rmattr(oid, &op.name);
            v.xattrs.insert(op.name.clone(), None);
        }
        CEPH_OSD_OP_CMPXATTR => {
            let have = match v.getattr(&op.name) {
                Ok(b) => b,
                Err(e) if e == -libc::ENODATA => Bytes::new(),
                Err(e) => return Err(e),
            };
            if !cmp_xattr(&have, op.cmp_op, op.cmp_mode, &op.indata)? {
                return Err(-libc::ECANCELED);
            }
        }
        CEPH_OSD_OP_OMAPGETKEYS | CEPH_OSD_OP_OMAPGETVALS => {
            let all = v.omap_vals()?;
            let max = if op.length == 0 { usize::MAX } else { op.length as usize };
            let page: BTreeMap<String, Bytes> = all
                .range::<str, _>((std::ops::Bound::Excluded(op.name.as_str()), std::ops::Bound::Unbounded))
                .take(max)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            op.outdata = if op.op == CEPH_OSD_OP_OMAPGETKEYS {
                encode_string_list(&page.into_keys().collect::<Vec<_>>())
            } else {
                encode_omap_vals(&page)
            };
        }
        CEPH_OSD_OP_OMAPGETVALSBYKEYS => {
            let all = v.omap_vals()?;
            let page: BTreeMap<String, Bytes> = op
                .keys
                .iter()
                .filter_map(|k| all.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            op.outdata = encode_omap_vals(&page);
        }
        CEPH_OSD_OP_OMAPSETVALS => {
            let vals = decode_omap_vals(&op.indata).map_err(|_| -libc::EINVAL)?;
            v.create(txn);
            for (k, val) in &vals {
                v.omap.insert(k.clone(), Some(val.clone()));
            }
            txn.omap_setkeys(oid, vals);
        }
        CEPH_OSD_OP_OMAPRMKEYS => {
            v.need()?;
            let keys: BTreeSet<String> = op.keys.iter().cloned().collect();
            for k in &keys {
                v.omap.insert(k.clone(), None);
            }
            txn.omap_rmkeys(oid, keys);
        }
        CEPH_OSD_OP_OMAPCLEAR => {
            v.need()?;
            txn.omap_clear(oid);
            v.omap.clear();
            v.omap_cleared = true;
        }
        _ => return Err(-libc::EOPNOTSUPP),
    }
    Ok(())
}

/// Runs `ops` on `oid` in `coll`. Each op's `rval` is set (0, or its errno); on failure the
/// ops after the failing one are not run.
pub fn execute(store: &dyn ObjectStore, coll: &CollId, oid: &ObjectId, ops: &mut [OsdOp]) -> Executed {
    let mut v = match View::load(store, coll, oid) {
        Ok(v) => v,
        Err(e) => {
            return Executed {
                result: e,
                txn: None,
                size: 0,
            }
        }
    };
    let mut txn = Transaction::new();
    let mut result = 0;
    for op in ops.iter_mut() {
        op.outdata = Bytes::new();
        match do_op(&mut v, op, &mut txn) {
            Ok(()) => op.rval = 0,
            Err(e) => {
                op.rval = e;
                if op.flags & CEPH_OSD_OP_FLAG_FAILOK == 0 {
                    result = e;
                    break;
                }
            }
        }
    }
    if result != 0 {
        // Nothing of a failed request is applied, and none of its reads are returned.
        for op in ops.iter_mut() {
            op.outdata = Bytes::new();
        }
        return Executed {
            result,
            txn: None,
            size: 0,
        };
    }
    let size = if v.exists { v.size } else { 0 };
    Executed {
        result: 0,
        txn: (!txn.is_empty()).then_some(txn),
        size,
    }
}

/// `PGNLS`: up to `max` object names of the PG after `start_after`, in store order; exactly
/// `max` when there are more, which is how a client knows to ask for the next page.
pub fn list_pg(
    store: &dyn ObjectStore,
    coll: &CollId,
    start_after: &str,
    max: u64,
) -> Result<(Vec<String>, bool), i32> {
    let mut after = (!start_after.is_empty()).then(|| ObjectId::new(coll.pool, "", start_after));
    let max = if max == 0 { 1024 } else { max.min(100_000) as usize };
    let mut names = Vec::new();
    loop {
        let (objs, more) = store
            .list_objects(coll, after.as_ref(), max - names.len())
            .map_err(|e| errno(&e))?;
        after = objs.last().cloned();
        // The empty name is the PG's metadata object (`pg::pgmeta`), not a client's: a page
        // it was on is topped up from the store.
        names.extend(objs.into_iter().filter(|o| !o.name.is_empty()).map(|o| o.name));
        if !more || names.len() >= max {
            return Ok((names, more));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::mem::MemStore;

    fn setup() -> (MemStore, CollId, ObjectId) {
        let s = MemStore::new();
        s.mount().unwrap();
        let c = CollId::new(1, 7);
        let mut t = Transaction::new();
        t.create_collection();
        s.apply_transaction(&c, t).unwrap();
        (s, c, ObjectId::new(1, "", "obj"))
    }

    /// Executes and commits like the OSD does; returns the result.
    fn run(s: &MemStore, c: &CollId, o: &ObjectId, ops: &mut [OsdOp]) -> i32 {
        let e = execute(s, c, o, ops);
        if let Some(t) = e.txn {
            s.apply_transaction(c, t).unwrap();
        }
        e.result
    }

    #[test]
    fn write_then_read_in_one_request_sees_the_write() {
        let (s, c, o) = setup();
        let mut ops = [
            OsdOp::write(0, Bytes::from_static(b"hello world")),
            OsdOp::write(6, Bytes::from_static(b"WORLD")),
            OsdOp::read(0, 0),
            OsdOp::stat(),
        ];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        assert_eq!(&ops[2].outdata[..], b"hello WORLD");
        assert_eq!(u64::from_le_bytes(ops[3].outdata[..8].try_into().unwrap()), 11);
        let mut r = [OsdOp::read(6, 100)];
        assert_eq!(run(&s, &c, &o, &mut r), 0);
        assert_eq!(&r[0].outdata[..], b"WORLD");
    }

    #[test]
    fn append_truncate_zero_and_writefull() {
        let (s, c, o) = setup();
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::append(Bytes::from_static(b"abc"))]), 0);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::append(Bytes::from_static(b"def"))]), 0);
        let mut ops = [OsdOp::zero(1, 2), OsdOp::truncate(5), OsdOp::read(0, 0)];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        assert_eq!(&ops[2].outdata[..], b"a\0\0de");
        let mut ops = [OsdOp::writefull(Bytes::from_static(b"xy")), OsdOp::read(0, 0)];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        assert_eq!(&ops[1].outdata[..], b"xy");
        assert_eq!(s.read(&c, &o, 0, 0).unwrap(), Bytes::from_static(b"xy"));
        // Zero never grows an object, and on a missing one does nothing.
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::zero(0, 100)]), 0);
        assert_eq!(s.stat(&c, &o).unwrap().size, 2);
        let missing = ObjectId::new(1, "", "nope");
        assert_eq!(run(&s, &c, &missing, &mut [OsdOp::zero(0, 10)]), 0);
        assert!(!s.exists(&c, &missing).unwrap());
    }

    #[test]
    fn errnos_follow_ceph() {
        let (s, c, o) = setup();
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::read(0, 10)]), -libc::ENOENT);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::stat()]), -libc::ENOENT);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::delete()]), -libc::ENOENT);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::rmxattr("a")]), -libc::ENOENT);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::create(true)]), 0);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::create(true)]), -libc::EEXIST);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::create(false)]), 0);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::getxattr("none")]), -libc::ENODATA);
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::new(CEPH_OSD_OP_WATCH)]), -libc::EOPNOTSUPP);
        assert_eq!(
            run(&s, &c, &o, &mut [OsdOp::write(u64::MAX - 1, Bytes::from_static(b"xx"))]),
            -libc::EINVAL
        );
    }

    #[test]
    fn a_failed_op_leaves_no_trace_of_the_request() {
        let (s, c, o) = setup();
        let mut ops = [
            OsdOp::write(0, Bytes::from_static(b"data")),
            OsdOp::setxattr("k", Bytes::from_static(b"v")),
            OsdOp::read(0, 0),
            OsdOp::cmpxattr(
                "k",
                CEPH_OSD_CMPXATTR_OP_EQ,
                CEPH_OSD_CMPXATTR_MODE_STRING,
                Bytes::from_static(b"other"),
            ),
        ];
        let e = execute(&s, &c, &o, &mut ops);
        assert_eq!(e.result, -libc::ECANCELED);
        assert!(e.txn.is_none(), "nothing to commit");
        assert_eq!(ops[3].rval, -libc::ECANCELED);
        assert!(ops[2].outdata.is_empty(), "no read data from a failed request");
        assert!(!s.exists(&c, &o).unwrap());
        // FAILOK lets the request go on past a failed op.
        let mut failok = OsdOp::cmpxattr(
            "k",
            CEPH_OSD_CMPXATTR_OP_EQ,
            CEPH_OSD_CMPXATTR_MODE_STRING,
            Bytes::from_static(b"x"),
        );
        failok.flags |= CEPH_OSD_OP_FLAG_FAILOK;
        let mut ops = [OsdOp::write(0, Bytes::from_static(b"d")), failok];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        assert_eq!(ops[1].rval, -libc::ECANCELED);
        assert!(s.exists(&c, &o).unwrap());
    }

    #[test]
    fn xattrs_and_cmpxattr_modes() {
        let (s, c, o) = setup();
        let mut ops = [
            OsdOp::setxattr("n", Bytes::from_static(b"10")),
            OsdOp::setxattr("s", Bytes::from_static(b"abc")),
        ];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        let cmp = |name: &str, op, mode, v: &'static [u8]| OsdOp::cmpxattr(name, op, mode, Bytes::from_static(v));
        use CEPH_OSD_CMPXATTR_MODE_STRING as S;
        use CEPH_OSD_CMPXATTR_MODE_U64 as U;
        assert_eq!(
            run(&s, &c, &o, &mut [cmp("n", CEPH_OSD_CMPXATTR_OP_GT, U, b"9")]),
            0,
            "10 > 9 as numbers"
        );
        assert_eq!(
            run(&s, &c, &o, &mut [cmp("n", CEPH_OSD_CMPXATTR_OP_GT, S, b"9")]),
            -libc::ECANCELED,
            "'10' < '9'"
        );
        assert_eq!(run(&s, &c, &o, &mut [cmp("s", CEPH_OSD_CMPXATTR_OP_EQ, S, b"abc")]), 0);
        assert_eq!(run(&s, &c, &o, &mut [cmp("s", CEPH_OSD_CMPXATTR_OP_LTE, S, b"abd")]), 0);
        assert_eq!(run(&s, &c, &o, &mut [cmp("s", 99, S, b"abc")]), -libc::EINVAL);
        let mut ops = [OsdOp::rmxattr("s"), OsdOp::getxattrs()];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        let all = decode_omap_vals(&ops[1].outdata).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["n"]);
    }

    #[test]
    fn omap_set_get_page_and_remove() {
        let (s, c, o) = setup();
        let vals: BTreeMap<String, Bytes> = (0..10)
            .map(|i| (format!("k{i}"), Bytes::from(format!("v{i}"))))
            .collect();
        assert_eq!(run(&s, &c, &o, &mut [OsdOp::omap_set_vals(&vals)]), 0);
        let mut ops = [OsdOp::omap_get_keys("k3", 3), OsdOp::omap_get_vals("", 2)];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        assert_eq!(decode_string_list(&ops[0].outdata).unwrap(), ["k4", "k5", "k6"]);
        let two = decode_omap_vals(&ops[1].outdata).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two["k0"], Bytes::from_static(b"v0"));
        let mut ops = [
            OsdOp::omap_rm_keys(vec!["k0".into(), "k1".into()]),
            OsdOp::omap_get_vals_by_keys(vec!["k0".into(), "k2".into()]),
        ];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        assert_eq!(
            decode_omap_vals(&ops[1].outdata).unwrap().keys().collect::<Vec<_>>(),
            ["k2"],
            "sees its own removal"
        );
        let mut ops = [OsdOp::new(CEPH_OSD_OP_OMAPCLEAR), OsdOp::omap_get_keys("", 0)];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        assert!(decode_string_list(&ops[1].outdata).unwrap().is_empty());
    }

    #[test]
    fn delete_then_recreate_in_one_request_starts_from_nothing() {
        let (s, c, o) = setup();
        let mut ops = [
            OsdOp::write(0, Bytes::from_static(b"old data")),
            OsdOp::setxattr("a", Bytes::from_static(b"1")),
        ];
        assert_eq!(run(&s, &c, &o, &mut ops), 0);
        let mut ops = [
            OsdOp::delete(),
            OsdOp::write(0, Bytes::from_static(b"new")),
            OsdOp::read(0, 0),
            OsdOp::getxattr("a"),
        ];
        assert_eq!(run(&s, &c, &o, &mut ops[..3]), 0);
        assert_eq!(&ops[2].outdata[..], b"new");
        assert_eq!(s.read(&c, &o, 0, 0).unwrap(), Bytes::from_static(b"new"));
        assert_eq!(run(&s, &c, &o, &mut ops[3..]), -libc::ENODATA);
    }

    /// Creates objects o0..o{n-1} through the op path.
    fn create_objects(s: &MemStore, c: &CollId, n: usize) {
        for i in 0..n {
            let o = ObjectId::new(1, "", format!("o{i}"));
            assert_eq!(run(s, c, &o, &mut [OsdOp::create(false)]), 0);
        }
    }

    #[test]
    fn pg_listing_pages_through_the_collection() {
        let (s, c, _) = setup();
        create_objects(&s, &c, 5);
        let (first, more) = list_pg(&s, &c, "", 3).unwrap();
        assert_eq!(first, ["o0", "o1", "o2"]);
        assert!(more);
        let (rest, more) = list_pg(&s, &c, "o2", 3).unwrap();
        assert_eq!(rest, ["o3", "o4"]);
        assert!(!more);
        assert_eq!(list_pg(&s, &CollId::new(9, 9), "", 3).unwrap_err(), -libc::ENOENT);
    }

    #[test]
    fn a_page_with_the_pg_metadata_object_is_still_full() {
        let (s, c, _) = setup();
        let mut t = Transaction::new();
        t.touch(&ObjectId::new(1, "", ""));
        s.apply_transaction(&c, t).unwrap();
        create_objects(&s, &c, 4);
        // The metadata object sorts first; the page still holds 3 names, so a client that
        // stops at a short page does not stop here.
        let (first, more) = list_pg(&s, &c, "", 3).unwrap();
        assert_eq!(first, ["o0", "o1", "o2"]);
        assert!(more);
        let (rest, more) = list_pg(&s, &c, "o2", 3).unwrap();
        assert_eq!(rest, ["o3"]);
        assert!(!more);
    }
}
