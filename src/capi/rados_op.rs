//! `osdkit_write_op_*` and `osdkit_read_op_*`: compound operations on one object, built op by
//! op and sent as one request that applies atomically (librados' `rados_write_op_t` and
//! `rados_read_op_t`), blocking or with a completion.
//!
//! An op handle is for one thread at a time; it is not changed by being sent, so it may be
//! sent again, and may be released as soon as the send returns. A read op's out-pointers are
//! written when the request completes: they must stay valid until then.

use super::aio::{osdkit_completion, submit};
use super::rados::{copy_out, io_oid, key_arg, omap_arg, osdkit_ioctx, osdkit_kv_iter, write_stat};
use super::{bytes_arg, cstr, free_handle, guard, handle, opt_cstr, set_last_error, SendPtr};
use crate::common::error::Error;
use crate::types::osd_op::{decode_omap_vals, MOsdOpReply, ObjectStat, OsdOp, CEPH_OSD_CMPXATTR_MODE_STRING};
use bytes::Bytes;
use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::panic::catch_unwind;

/// `cmp_op` of `osdkit_write_op_cmpxattr` / `osdkit_read_op_cmpxattr` (librados'
/// `LIBRADOS_CMPXATTR_OP_*`): the xattr compared with the given value as strings.
pub const OSDKIT_CMPXATTR_OP_EQ: u8 = 1;
pub const OSDKIT_CMPXATTR_OP_NE: u8 = 2;
pub const OSDKIT_CMPXATTR_OP_GT: u8 = 3;
pub const OSDKIT_CMPXATTR_OP_GTE: u8 = 4;
pub const OSDKIT_CMPXATTR_OP_LT: u8 = 5;
pub const OSDKIT_CMPXATTR_OP_LTE: u8 = 6;

/// A compound write (librados' `rados_write_op_t`). One thread at a time.
pub struct osdkit_write_op {
    ops: Vec<OsdOp>,
}

/// A compound read (librados' `rados_read_op_t`), with where each op's results go. One
/// thread at a time.
pub struct osdkit_read_op {
    ops: Vec<OsdOp>,
    outs: Vec<ReadOut>,
}

/// Where one read op's results are written when its request completes (each may be NULL).
#[derive(Clone, Copy)]
enum ReadOut {
    Status {
        prval: SendPtr<c_int>,
    },
    Read {
        buf: SendPtr<c_void>,
        len: usize,
        bytes_read: SendPtr<usize>,
        prval: SendPtr<c_int>,
    },
    Stat {
        size: SendPtr<u64>,
        sec: SendPtr<i64>,
        nsec: SendPtr<u32>,
        prval: SendPtr<c_int>,
    },
    Pairs {
        iter: SendPtr<*mut osdkit_kv_iter>,
        /// For a paged omap read: set when the page was full (there may be more).
        more: SendPtr<c_uchar>,
        max: u64,
        prval: SendPtr<c_int>,
    },
}

fn put<T>(p: SendPtr<T>, v: T) {
    if !p.0.is_null() {
        // SAFETY: a non-NULL out-pointer the caller gave with the op, valid until the request
        // completes (header contract); written once, here.
        unsafe { p.0.write(v) };
    }
}

impl ReadOut {
    fn prval(&self) -> SendPtr<c_int> {
        match *self {
            ReadOut::Status { prval }
            | ReadOut::Read { prval, .. }
            | ReadOut::Stat { prval, .. }
            | ReadOut::Pairs { prval, .. } => prval,
        }
    }

    /// Fills the out-pointers from op `op` of a successful reply; its errno if the output is
    /// malformed.
    fn fill(&self, op: &OsdOp) -> c_int {
        let mut rval = op.rval;
        match *self {
            ReadOut::Status { .. } => {}
            ReadOut::Read {
                buf, len, bytes_read, ..
            } => put(bytes_read, copy_out(&op.outdata, buf.0, len) as usize),
            ReadOut::Stat { size, sec, nsec, .. } => match ObjectStat::decode(&op.outdata) {
                Ok(st) => write_stat(&st, size.0, sec.0, nsec.0),
                Err(_) => rval = -libc::EIO,
            },
            ReadOut::Pairs { iter, more, max, .. } => {
                match decode_omap_vals(&op.outdata).map_err(|_| ()).and_then(|m| {
                    let n = m.len() as u64;
                    osdkit_kv_iter::boxed(m).map(|it| (it, n)).map_err(|_| ())
                }) {
                    Ok((it, n)) => {
                        if iter.0.is_null() {
                            // Nobody will release it.
                            super::rados::osdkit_kv_iter_end(it);
                        }
                        put(iter, it);
                        put(more, c_uchar::from(max > 0 && n >= max));
                    }
                    Err(()) => rval = -libc::EIO,
                }
            }
        }
        put(self.prval(), rval);
        rval
    }

    /// A failed request: every op reports its errno, iterators are NULL, nothing was read.
    fn fail(&self, err: c_int) {
        match *self {
            ReadOut::Read { bytes_read, .. } => put(bytes_read, 0),
            ReadOut::Pairs { iter, .. } => put(iter, std::ptr::null_mut()),
            _ => {}
        }
        put(self.prval(), err);
    }
}

/// Writes every op's results from a successful reply; the first malformed output's errno.
fn fill_all(outs: &[ReadOut], r: &MOsdOpReply) -> c_int {
    let mut ret = 0;
    for (o, op) in outs.iter().zip(&r.ops) {
        let rv = o.fill(op);
        if rv < 0 && ret == 0 {
            ret = rv;
        }
    }
    ret
}

fn new_handle<T>(v: T) -> *mut T {
    match catch_unwind(std::panic::AssertUnwindSafe(|| Box::into_raw(Box::new(v)))) {
        Ok(p) => p,
        Err(_) => {
            set_last_error("internal error (panic)");
            std::ptr::null_mut()
        }
    }
}

fn ops_to_send(ops: &[OsdOp]) -> Result<Vec<OsdOp>, Error> {
    if ops.is_empty() {
        return Err(Error::inval("the op is empty: add at least one operation"));
    }
    Ok(ops.to_vec())
}

// ------------------------------------------------------------------------------------------
// Write ops

/// A new, empty compound write (`rados_create_write_op`), or NULL (out of memory). Release
/// with `osdkit_write_op_free`.
#[no_mangle]
pub extern "C" fn osdkit_write_op_new() -> *mut osdkit_write_op {
    new_handle(osdkit_write_op { ops: Vec::new() })
}

/// Releases a compound write (`rados_release_write_op`). NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_write_op_free(op: *mut osdkit_write_op) {
    free_handle(op, |_| {});
}

fn push_w(op: *mut osdkit_write_op, f: impl FnOnce() -> Result<OsdOp, Error>) -> c_int {
    guard(|| {
        // SAFETY: a non-NULL op comes from osdkit_write_op_new and is used by one thread at a
        // time (contract), so this is the only reference.
        let w = unsafe { op.as_mut() }.ok_or_else(|| Error::inval("op is NULL"))?;
        w.ops.push(f()?);
        Ok(w.ops.len() as c_int)
    })
}

fn data(buf: *const c_void, len: usize) -> Result<Bytes, Error> {
    Ok(Bytes::copy_from_slice(bytes_arg(buf, len, "buf")?))
}

/// Adds "create the object" (`rados_write_op_create`); with `exclusive` nonzero the request
/// fails with -EEXIST if it exists. Each `osdkit_write_op_*` that adds an op returns the new
/// number of ops, or -EINVAL (the op is unchanged then).
#[no_mangle]
pub extern "C" fn osdkit_write_op_create(op: *mut osdkit_write_op, exclusive: c_int) -> c_int {
    push_w(op, || Ok(OsdOp::create(exclusive != 0)))
}

/// Adds "write `len` bytes at `buf` at offset `off`" (`rados_write_op_write`; copied now).
#[no_mangle]
pub extern "C" fn osdkit_write_op_write(op: *mut osdkit_write_op, buf: *const c_void, len: usize, off: u64) -> c_int {
    push_w(op, || Ok(OsdOp::write(off, data(buf, len)?)))
}

/// Adds "replace the data with `len` bytes at `buf`" (`rados_write_op_write_full`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_write_full(op: *mut osdkit_write_op, buf: *const c_void, len: usize) -> c_int {
    push_w(op, || Ok(OsdOp::writefull(data(buf, len)?)))
}

/// Adds "append `len` bytes at `buf`" (`rados_write_op_append`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_append(op: *mut osdkit_write_op, buf: *const c_void, len: usize) -> c_int {
    push_w(op, || Ok(OsdOp::append(data(buf, len)?)))
}

/// Adds "remove the object" (`rados_write_op_remove`; -ENOENT if it does not exist).
#[no_mangle]
pub extern "C" fn osdkit_write_op_remove(op: *mut osdkit_write_op) -> c_int {
    push_w(op, || Ok(OsdOp::delete()))
}

/// Adds "set the size to `off`" (`rados_write_op_truncate`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_truncate(op: *mut osdkit_write_op, off: u64) -> c_int {
    push_w(op, || Ok(OsdOp::truncate(off)))
}

/// Adds "zero `len` bytes from `off`" (`rados_write_op_zero`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_zero(op: *mut osdkit_write_op, off: u64, len: u64) -> c_int {
    push_w(op, || Ok(OsdOp::zero(off, len)))
}

/// Adds "set xattr `name` to `len` bytes at `value`" (`rados_write_op_setxattr`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_setxattr(
    op: *mut osdkit_write_op,
    name: *const c_char,
    value: *const c_void,
    len: usize,
) -> c_int {
    push_w(op, || Ok(OsdOp::setxattr(cstr(name, "name")?, data(value, len)?)))
}

/// Adds "remove xattr `name`" (`rados_write_op_rmxattr`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_rmxattr(op: *mut osdkit_write_op, name: *const c_char) -> c_int {
    push_w(op, || Ok(OsdOp::rmxattr(cstr(name, "name")?)))
}

fn cmpxattr(name: *const c_char, cmp_op: u8, value: *const c_void, len: usize) -> Result<OsdOp, Error> {
    if !(OSDKIT_CMPXATTR_OP_EQ..=OSDKIT_CMPXATTR_OP_LTE).contains(&cmp_op) {
        return Err(Error::inval(format!("cmp_op {cmp_op} is not an OSDKIT_CMPXATTR_OP_*")));
    }
    Ok(OsdOp::cmpxattr(
        cstr(name, "name")?,
        cmp_op,
        CEPH_OSD_CMPXATTR_MODE_STRING,
        data(value, len)?,
    ))
}

/// Adds "xattr `name` compared with `len` bytes at `value` by `cmp_op`
/// (`OSDKIT_CMPXATTR_OP_*`) must hold" (`rados_write_op_cmpxattr`): otherwise the request
/// fails with -ECANCELED and applies nothing; -ENODATA if the xattr is missing.
#[no_mangle]
pub extern "C" fn osdkit_write_op_cmpxattr(
    op: *mut osdkit_write_op,
    name: *const c_char,
    cmp_op: u8,
    value: *const c_void,
    len: usize,
) -> c_int {
    push_w(op, || cmpxattr(name, cmp_op, value, len))
}

/// Adds "set `n` omap entries": `keys[i]` to `lens[i]` bytes at `vals[i]`
/// (`rados_write_op_omap_set`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_omap_set(
    op: *mut osdkit_write_op,
    keys: *const *const c_char,
    vals: *const *const c_char,
    lens: *const usize,
    n: usize,
) -> c_int {
    push_w(op, || Ok(OsdOp::omap_set_vals(&omap_arg(keys, vals, lens, n)?)))
}

/// Adds "remove `n` omap keys" (`rados_write_op_omap_rm_keys`).
#[no_mangle]
pub extern "C" fn osdkit_write_op_omap_rm_keys(
    op: *mut osdkit_write_op,
    keys: *const *const c_char,
    n: usize,
) -> c_int {
    push_w(op, || Ok(OsdOp::omap_rm_keys(key_arg(keys, n)?)))
}

/// Sends the compound write on object `oid` and waits (`rados_write_op_operate`): all its ops
/// apply, or none. Returns 0, the errno of the first failing op, -EINVAL (also for an empty
/// op), -ETIMEDOUT, -ESHUTDOWN.
#[no_mangle]
pub extern "C" fn osdkit_write_op_operate(
    op: *const osdkit_write_op,
    io: *const osdkit_ioctx,
    oid: *const c_char,
) -> c_int {
    guard(|| {
        let ops = ops_to_send(&handle(op, "op")?.ops)?;
        let (io, oid) = io_oid(io, oid)?;
        io.io().operate(oid, ops).map(|_| 0)
    })
}

/// The async form (`rados_aio_write_op_operate`): 0 once sent (then `comp` completes exactly
/// once with 0 or the errno), or a negative errno without touching `comp`.
#[no_mangle]
pub extern "C" fn osdkit_write_op_aio_operate(
    op: *const osdkit_write_op,
    io: *const osdkit_ioctx,
    comp: *mut osdkit_completion,
    oid: *const c_char,
) -> c_int {
    guard(|| {
        let ops = ops_to_send(&handle(op, "op")?.ops)?;
        let (io, oid) = io_oid(io, oid)?;
        submit(io, oid, comp, ops, |_| 0, |_| {})
    })
}

// ------------------------------------------------------------------------------------------
// Read ops

/// A new, empty compound read (`rados_create_read_op`), or NULL (out of memory). Release with
/// `osdkit_read_op_free`.
#[no_mangle]
pub extern "C" fn osdkit_read_op_new() -> *mut osdkit_read_op {
    new_handle(osdkit_read_op {
        ops: Vec::new(),
        outs: Vec::new(),
    })
}

/// Releases a compound read (`rados_release_read_op`). NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_read_op_free(op: *mut osdkit_read_op) {
    free_handle(op, |_| {});
}

fn push_r(op: *mut osdkit_read_op, f: impl FnOnce() -> Result<(OsdOp, ReadOut), Error>) -> c_int {
    guard(|| {
        // SAFETY: a non-NULL op comes from osdkit_read_op_new and is used by one thread at a
        // time (contract), so this is the only reference.
        let r = unsafe { op.as_mut() }.ok_or_else(|| Error::inval("op is NULL"))?;
        let (o, out) = f()?;
        r.ops.push(o);
        r.outs.push(out);
        Ok(r.ops.len() as c_int)
    })
}

/// Adds "read up to `len` bytes from `off` into `buf`" (`rados_read_op_read`): `*bytes_read`
/// gets the count and `*prval` the op's result (each may be NULL). Each `osdkit_read_op_*`
/// that adds an op returns the new number of ops, or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_read_op_read(
    op: *mut osdkit_read_op,
    off: u64,
    len: usize,
    buf: *mut c_void,
    bytes_read: *mut usize,
    prval: *mut c_int,
) -> c_int {
    push_r(op, || {
        super::rados::check_read_len(buf, len)?;
        let out = ReadOut::Read {
            buf: SendPtr(buf),
            len,
            bytes_read: SendPtr(bytes_read),
            prval: SendPtr(prval),
        };
        // A zero length reads to the end on the OSD; a caller's zero-byte buffer wants none.
        Ok((OsdOp::read(off, len.max(1) as u64), out))
    })
}

/// Adds "stat" (`rados_read_op_stat`): size and modification time (each may be NULL).
#[no_mangle]
pub extern "C" fn osdkit_read_op_stat(
    op: *mut osdkit_read_op,
    psize: *mut u64,
    pmtime_sec: *mut i64,
    pmtime_nsec: *mut u32,
    prval: *mut c_int,
) -> c_int {
    push_r(op, || {
        let out = ReadOut::Stat {
            size: SendPtr(psize),
            sec: SendPtr(pmtime_sec),
            nsec: SendPtr(pmtime_nsec),
            prval: SendPtr(prval),
        };
        Ok((OsdOp::stat(), out))
    })
}

/// Adds a comparison as `osdkit_write_op_cmpxattr` (`rados_read_op_cmpxattr`).
#[no_mangle]
pub extern "C" fn osdkit_read_op_cmpxattr(
    op: *mut osdkit_read_op,
    name: *const c_char,
    cmp_op: u8,
    value: *const c_void,
    len: usize,
) -> c_int {
    push_r(op, || {
        let o = cmpxattr(name, cmp_op, value, len)?;
        Ok((
            o,
            ReadOut::Status {
                prval: SendPtr(std::ptr::null_mut()),
            },
        ))
    })
}

fn pairs(iter: *mut *mut osdkit_kv_iter, more: *mut c_uchar, max: u64, prval: *mut c_int) -> ReadOut {
    ReadOut::Pairs {
        iter: SendPtr(iter),
        more: SendPtr(more),
        max,
        prval: SendPtr(prval),
    }
}

/// Adds "every xattr" (`rados_read_op_getxattrs`): `*iter` gets an iterator to release with
/// `osdkit_kv_iter_end` (NULL if the request failed).
#[no_mangle]
pub extern "C" fn osdkit_read_op_getxattrs(
    op: *mut osdkit_read_op,
    iter: *mut *mut osdkit_kv_iter,
    prval: *mut c_int,
) -> c_int {
    push_r(op, || {
        Ok((OsdOp::getxattrs(), pairs(iter, std::ptr::null_mut(), 0, prval)))
    })
}

/// Adds "up to `max` omap entries after `start_after` (NULL: from the first)"
/// (`rados_read_op_omap_get_vals2`): `*iter` as for getxattrs, `*more` nonzero when `max`
/// entries came back (there may be more; read again after the last key).
#[no_mangle]
pub extern "C" fn osdkit_read_op_omap_get_vals(
    op: *mut osdkit_read_op,
    start_after: *const c_char,
    max: u64,
    iter: *mut *mut osdkit_kv_iter,
    more: *mut c_uchar,
    prval: *mut c_int,
) -> c_int {
    push_r(op, || {
        let after = opt_cstr(start_after, "start_after")?.unwrap_or("");
        Ok((OsdOp::omap_get_vals(after, max), pairs(iter, more, max, prval)))
    })
}

/// Adds "the omap entries among `n` `keys` that exist" (`rados_read_op_omap_get_vals_by_keys`).
#[no_mangle]
pub extern "C" fn osdkit_read_op_omap_get_vals_by_keys(
    op: *mut osdkit_read_op,
    keys: *const *const c_char,
    n: usize,
    iter: *mut *mut osdkit_kv_iter,
    prval: *mut c_int,
) -> c_int {
    push_r(op, || {
        let keys = key_arg(keys, n)?;
        Ok((
            OsdOp::omap_get_vals_by_keys(keys),
            pairs(iter, std::ptr::null_mut(), 0, prval),
        ))
    })
}

/// Sends the compound read on object `oid` and waits (`rados_read_op_operate`), then fills
/// every op's out-pointers. Returns 0, or the errno of the first failing op (then every
/// `prval` has it and no iterator was made), -EINVAL, -ETIMEDOUT, -ESHUTDOWN.
#[no_mangle]
pub extern "C" fn osdkit_read_op_operate(
    op: *const osdkit_read_op,
    io: *const osdkit_ioctx,
    oid: *const c_char,
) -> c_int {
    guard(|| {
        let r = handle(op, "op")?;
        let ops = ops_to_send(&r.ops)?;
        let (io, oid) = io_oid(io, oid)?;
        match io.io().operate(oid, ops) {
            Ok(reply) => match fill_all(&r.outs, &reply) {
                0 => Ok(0),
                e => Err(Error::new(-e, "malformed reply")),
            },
            Err(e) => {
                r.outs.iter().for_each(|o| o.fail(-e.errno));
                Err(e)
            }
        }
    })
}

/// The async form (`rados_aio_read_op_operate`): the out-pointers are filled, on the
/// completing thread, before `comp` completes.
#[no_mangle]
pub extern "C" fn osdkit_read_op_aio_operate(
    op: *const osdkit_read_op,
    io: *const osdkit_ioctx,
    comp: *mut osdkit_completion,
    oid: *const c_char,
) -> c_int {
    guard(|| {
        let r = handle(op, "op")?;
        let ops = ops_to_send(&r.ops)?;
        let (io, oid) = io_oid(io, oid)?;
        let (outs, outs2) = (r.outs.clone(), r.outs.clone());
        submit(
            io,
            oid,
            comp,
            ops,
            move |reply| fill_all(&outs, reply),
            move |err| outs2.iter().for_each(|o| o.fail(err)),
        )
    })
}
