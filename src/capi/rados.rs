//! `osdkit_rados_*`, `osdkit_ioctx_*`, `osdkit_list_*` and `osdkit_kv_iter_*`: the object
//! client ([`crate::client::Rados`]) in librados' C shape — create by name, configure, connect,
//! pools, a pool handle (ioctx) with blocking object calls, listing with a cursor, and the
//! iterator that xattr and omap reads return. Op builders are in `capi/rados_op.rs`, async
//! calls and completions in `capi/aio.rs`.
//!
//! Every call may be made from any thread, concurrently, except where a handle says it is
//! for one thread at a time (listing contexts, iterators).

use super::{bytes_arg, cstr, free_handle, guard, guard_i64, handle, opt_cstr, out, write_str};
use crate::client::objecter::ListCursor;
use crate::client::rados::{client_context, IoCtx};
use crate::client::Rados;
use crate::common::error::Error;
use crate::Context;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

/// A cluster handle (librados' `rados_t`): created by name, configured, then connected.
/// Thread-safe once connected.
pub struct osdkit_rados {
    st: Mutex<RadosState>,
}

enum RadosState {
    /// Created, not yet connected: options may be set, a conf file read.
    Configuring(Context),
    Connected(Arc<Rados>),
}

/// A pool handle (librados' `rados_ioctx_t`). It keeps its cluster's connection alive, but its
/// calls fail with -ESHUTDOWN once `osdkit_rados_shutdown` ran. Thread-safe.
pub struct osdkit_ioctx {
    pub(crate) rados: Arc<Rados>,
    pool: i64,
    name: Arc<str>,
}

impl osdkit_ioctx {
    pub(crate) fn io(&self) -> IoCtx<'_> {
        self.rados.ioctx_at(self.pool, self.name.clone())
    }
}

/// Key/value pairs read from an object (xattrs or omap entries), in key order. One thread at a
/// time. Released with `osdkit_kv_iter_end`.
pub struct osdkit_kv_iter {
    items: Vec<(CString, Bytes)>,
    pos: usize,
}

impl osdkit_kv_iter {
    pub(crate) fn boxed(map: BTreeMap<String, Bytes>) -> Result<*mut osdkit_kv_iter, Error> {
        let items = map
            .into_iter()
            .map(|(k, v)| {
                CString::new(k)
                    .map(|k| (k, v))
                    .map_err(|_| Error::new(libc::EIO, "a key holds a NUL byte"))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Box::into_raw(Box::new(osdkit_kv_iter { items, pos: 0 })))
    }
}

/// A listing of a pool's objects (librados' `rados_list_ctx_t`), PG by PG. One thread at a
/// time. Closed with `osdkit_list_close`.
pub struct osdkit_list_ctx {
    rados: Arc<Rados>,
    pool: i64,
    name: Arc<str>,
    /// Where the next page starts; `None` when the pool has no more.
    next_page: Option<ListCursor>,
    page: VecDeque<(u32, String)>,
    /// The name `osdkit_list_next` returned last, borrowed by the caller until the next call.
    current: CString,
    /// Resuming here returns exactly the entries not yet returned.
    position: Option<ListCursor>,
}

/// How many names one listing request asks a PG for.
const LIST_PAGE: u64 = 1024;

fn connected(r: *const osdkit_rados) -> Result<Arc<Rados>, Error> {
    match &*handle(r, "rados")?.st.lock() {
        RadosState::Connected(c) => Ok(c.clone()),
        RadosState::Configuring(_) => Err(Error::new(libc::ENOTCONN, "not connected: call osdkit_rados_connect")),
    }
}

fn with_context<T>(r: *const osdkit_rados, f: impl FnOnce(&Context) -> Result<T, Error>) -> Result<T, Error> {
    match &*handle(r, "rados")?.st.lock() {
        RadosState::Configuring(ctx) => f(ctx),
        RadosState::Connected(c) => f(c.context()),
    }
}

// ------------------------------------------------------------------------------------------
// The cluster handle

/// Creates a cluster handle for client `name` ("client.admin" when NULL; `rados_create2`'s
/// full name, not `rados_create`'s bare id), not yet connected: set options or read a conf
/// file, then `osdkit_rados_connect`. Release with `osdkit_rados_shutdown`. Returns 0 or
/// -EINVAL (NULL `out`, not a client name).
#[no_mangle]
pub extern "C" fn osdkit_rados_create(name: *const c_char, out_rados: *mut *mut osdkit_rados) -> c_int {
    guard(|| {
        if out_rados.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let name = opt_cstr(name, "name")?.unwrap_or("client.admin");
        let ctx = client_context(name)?;
        let r = osdkit_rados {
            st: Mutex::new(RadosState::Configuring(ctx)),
        };
        out(out_rados, Box::into_raw(Box::new(r)), "out")?;
        Ok(0)
    })
}

/// Reads a Ceph-style conf file (`[global]`, `[client]`, `[client.<id>]` apply), as
/// `rados_conf_read_file`; NULL searches `$OSDKIT_CONF`, then `./osdkit.conf`,
/// `~/.osdkit/osdkit.conf`, `/etc/osdkit/osdkit.conf`. Before `osdkit_rados_connect` only.
/// Returns 0, -ENOENT (no file), -EINVAL (a bad line or value), -EISCONN.
#[no_mangle]
pub extern "C" fn osdkit_rados_conf_read_file(r: *mut osdkit_rados, path: *const c_char) -> c_int {
    guard(|| {
        let given = opt_cstr(path, "path")?.map(std::path::Path::new);
        let path = crate::cli::conventions::find_conf(given)?;
        match &*handle(r, "rados")?.st.lock() {
            RadosState::Configuring(ctx) => ctx.conf().parse_file(&path).map(|_| 0),
            RadosState::Connected(_) => Err(Error::new(libc::EISCONN, "already connected")),
        }
    })
}

/// Sets option `option` (Ceph's name, `_` or space or `-` between words) to `value`, as
/// `rados_conf_set`; e.g. "mon_host" to the monitor's address, "rados_osd_op_timeout" to
/// seconds (0: wait forever). Returns 0, -ENOENT (no such option), -EINVAL (bad value).
#[no_mangle]
pub extern "C" fn osdkit_rados_conf_set(r: *mut osdkit_rados, option: *const c_char, value: *const c_char) -> c_int {
    guard(|| {
        let (k, v) = (cstr(option, "option")?, cstr(value, "value")?);
        with_context(r, |ctx| ctx.set_option(k, v)).map(|_| 0)
    })
}

/// Copies option `option`'s value NUL-terminated into `buf` of `len` bytes
/// (`rados_conf_get`). Returns its length without the NUL, -ENOENT (no such option),
/// -ERANGE (too small; nothing written), -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_rados_conf_get(
    r: *mut osdkit_rados,
    option: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    guard(|| {
        let k = cstr(option, "option")?;
        let v = with_context(r, |ctx| ctx.conf().get_val_str(k))?;
        write_str(&v, buf, len)
    })
}

/// Connects to the monitor named by `mon_host` and waits for its map (`rados_connect`).
/// Returns 0, -EINVAL (`mon_host` unset or bad), -ETIMEDOUT (no monitor answered),
/// -EISCONN (already connected).
#[no_mangle]
pub extern "C" fn osdkit_rados_connect(r: *mut osdkit_rados) -> c_int {
    guard(|| {
        let h = handle(r, "rados")?;
        let mut st = h.st.lock();
        let ctx = match &*st {
            RadosState::Configuring(ctx) => ctx.clone(),
            RadosState::Connected(_) => return Err(Error::new(libc::EISCONN, "already connected")),
        };
        let c = Rados::connect_context(ctx)?;
        *st = RadosState::Connected(Arc::new(c));
        Ok(0)
    })
}

/// Fails the ops in flight with -ESHUTDOWN (their completions run on this thread), stops the
/// client's threads and releases the handle (`rados_shutdown`). Pool handles still open fail
/// their calls with -ESHUTDOWN until destroyed. NULL is ignored. Not from a completion.
#[no_mangle]
pub extern "C" fn osdkit_rados_shutdown(r: *mut osdkit_rados) {
    free_handle(r, |h| match &*h.st.lock() {
        RadosState::Connected(c) => c.shutdown(),
        RadosState::Configuring(ctx) => ctx.shutdown(),
    });
}

// ------------------------------------------------------------------------------------------
// Pools

/// Creates pool `name` with the monitor's default PG count and size (`rados_pool_create`)
/// and waits until this client's map has it. Returns 0, -EEXIST, -EINVAL (bad name),
/// -ENOTCONN.
#[no_mangle]
pub extern "C" fn osdkit_rados_pool_create(r: *mut osdkit_rados, name: *const c_char) -> c_int {
    guard(|| {
        let name = cstr(name, "name")?;
        connected(r)?.pool_create(name, 0, 0).map(|_| 0)
    })
}

/// Removes pool `name` and its objects (`rados_pool_delete`). Returns 0, -ENOENT, -ENOTCONN.
#[no_mangle]
pub extern "C" fn osdkit_rados_pool_delete(r: *mut osdkit_rados, name: *const c_char) -> c_int {
    guard(|| {
        let name = cstr(name, "name")?;
        connected(r)?.pool_delete(name).map(|_| 0)
    })
}

/// Pool `name`'s id (`rados_pool_lookup`), or -ENOENT, -ENOTCONN, -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_rados_pool_lookup(r: *mut osdkit_rados, name: *const c_char) -> i64 {
    guard_i64(|| {
        let name = cstr(name, "name")?;
        connected(r)?.pool_id(name)
    })
}

/// Writes every pool's name into `buf` of `len` bytes as librados does: each NUL-terminated,
/// one after another, and an empty name (a second NUL) at the end. Returns the length that
/// takes; when it is more than `len` nothing is written (call again with a bigger buffer).
/// `buf` may be NULL when `len` is 0. Negative errno on failure.
#[no_mangle]
pub extern "C" fn osdkit_rados_pool_list(r: *mut osdkit_rados, buf: *mut c_char, len: usize) -> c_int {
    guard(|| {
        let pools = connected(r)?.pool_list()?;
        let mut all = Vec::new();
        for p in &pools {
            all.extend_from_slice(p.as_bytes());
            all.push(0);
        }
        all.push(0);
        if all.len() <= len {
            if buf.is_null() {
                return Err(Error::inval("buf is NULL"));
            }
            // SAFETY: `buf` is non-NULL with room for `len` >= all.len() bytes (contract);
            // `all` is our own memory.
            unsafe { std::ptr::copy_nonoverlapping(all.as_ptr(), buf.cast::<u8>(), all.len()) };
        }
        c_int::try_from(all.len()).map_err(|_| Error::new(libc::E2BIG, "too many pools"))
    })
}

// ------------------------------------------------------------------------------------------
// Pool handles

/// Opens a handle on pool `pool` (`rados_ioctx_create`). Release with `osdkit_ioctx_destroy`.
/// Returns 0, -ENOENT (no such pool), -ENOTCONN, -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_create(
    r: *mut osdkit_rados,
    pool: *const c_char,
    out_ioctx: *mut *mut osdkit_ioctx,
) -> c_int {
    guard(|| {
        let name = cstr(pool, "pool")?;
        if out_ioctx.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let rados = connected(r)?;
        let id = rados.pool_id(name)?;
        let io = osdkit_ioctx {
            rados,
            pool: id,
            name: name.into(),
        };
        out(out_ioctx, Box::into_raw(Box::new(io)), "out")?;
        Ok(0)
    })
}

/// Releases a pool handle (`rados_ioctx_destroy`). NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_destroy(io: *mut osdkit_ioctx) {
    free_handle(io, |_| {});
}

/// The pool's id (`rados_ioctx_get_id`), or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_get_id(io: *const osdkit_ioctx) -> i64 {
    guard_i64(|| Ok(handle(io, "ioctx")?.pool))
}

/// Copies the pool's name NUL-terminated into `buf` (`rados_ioctx_get_pool_name`). Returns
/// its length, -ERANGE or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_get_pool_name(io: *const osdkit_ioctx, buf: *mut c_char, len: usize) -> c_int {
    guard(|| write_str(&handle(io, "ioctx")?.name, buf, len))
}

pub(crate) fn io_oid<'a>(io: *const osdkit_ioctx, oid: *const c_char) -> Result<(&'a osdkit_ioctx, &'a str), Error> {
    Ok((handle(io, "ioctx")?, cstr(oid, "oid")?))
}

/// Writes `len` bytes at `buf` at offset `off` of object `oid`, creating it
/// (`rados_write`). Blocks until committed. Each blocking object call returns 0 or a negative
/// errno: -ENOENT (no such object, for reads), -EINVAL, -ETIMEDOUT (`rados_osd_op_timeout`),
/// -ESHUTDOWN, or the OSD's errno.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_write(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    buf: *const c_void,
    len: usize,
    off: u64,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().write(oid, bytes_arg(buf, len, "buf")?, off).map(|_| 0)
    })
}

/// Replaces object `oid`'s data with `len` bytes at `buf`, creating it (`rados_write_full`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_write_full(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    buf: *const c_void,
    len: usize,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().write_full(oid, bytes_arg(buf, len, "buf")?).map(|_| 0)
    })
}

/// Appends `len` bytes at `buf` to object `oid`, creating it (`rados_append`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_append(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    buf: *const c_void,
    len: usize,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().append(oid, bytes_arg(buf, len, "buf")?).map(|_| 0)
    })
}

/// Reads up to `len` bytes (at most `INT_MAX`) from offset `off` of object `oid` into `buf`
/// (`rados_read`). Returns the number of bytes read (0 past the end), or a negative errno.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_read(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    buf: *mut c_void,
    len: usize,
    off: u64,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        check_read_len(buf, len)?;
        // A zero length reads to the end on the OSD; a zero-byte buffer wants none.
        let data = io.io().read(oid, len.max(1) as u64, off)?;
        Ok(copy_out(&data, buf, len))
    })
}

pub(crate) fn check_read_len(buf: *mut c_void, len: usize) -> Result<(), Error> {
    if len > c_int::MAX as usize {
        return Err(Error::inval(format!("len {len} is more than INT_MAX")));
    }
    if buf.is_null() && len > 0 {
        return Err(Error::inval("buf is NULL"));
    }
    Ok(())
}

/// Copies up to `len` bytes of `data` into `buf` (non-NULL when `len` > 0, `len` <= INT_MAX,
/// both checked by `check_read_len`); the count copied.
pub(crate) fn copy_out(data: &[u8], buf: *mut c_void, len: usize) -> c_int {
    let n = data.len().min(len);
    if n > 0 {
        // SAFETY: `buf` has room for `len` >= n bytes (caller contract, non-NULL checked);
        // `data` is the library's own buffer, so they do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.cast::<u8>(), n) };
    }
    n as c_int
}

/// Size and modification time of object `oid` (`rados_stat`; the nanoseconds as
/// `rados_stat2`). Each out-pointer may be NULL (not wanted).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_stat(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    psize: *mut u64,
    pmtime_sec: *mut i64,
    pmtime_nsec: *mut u32,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        let st = io.io().stat(oid)?;
        write_stat(&st, psize, pmtime_sec, pmtime_nsec);
        Ok(0)
    })
}

pub(crate) fn write_stat(
    st: &crate::types::osd_op::ObjectStat,
    psize: *mut u64,
    pmtime_sec: *mut i64,
    pmtime_nsec: *mut u32,
) {
    // Each is optional; NULL means not wanted, so `out`'s error is not one here.
    let _ = out(psize, st.size, "size");
    let d = st.mtime.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let _ = out(pmtime_sec, d.as_secs() as i64, "mtime_sec");
    let _ = out(pmtime_nsec, d.subsec_nanos(), "mtime_nsec");
}

/// Removes object `oid` (`rados_remove`). -ENOENT if it does not exist.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_remove(io: *const osdkit_ioctx, oid: *const c_char) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().remove(oid).map(|_| 0)
    })
}

/// Sets object `oid`'s size to `size`, cutting or zero-extending it (`rados_trunc`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_trunc(io: *const osdkit_ioctx, oid: *const c_char, size: u64) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().trunc(oid, size).map(|_| 0)
    })
}

/// Copies xattr `name` of object `oid` into `buf` of `len` bytes (`rados_getxattr`). Returns
/// its length, -ERANGE when `len` is too small (nothing written), -ENODATA (no such xattr),
/// -ENOENT (no such object).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_getxattr(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    name: *const c_char,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        let name = cstr(name, "name")?;
        check_read_len(buf, len)?;
        let v = io.io().getxattr(oid, name)?;
        if v.len() > len {
            return Err(Error::new(
                libc::ERANGE,
                format!("xattr '{name}' has {} bytes", v.len()),
            ));
        }
        Ok(copy_out(&v, buf, len))
    })
}

/// Sets xattr `name` of object `oid` to `len` bytes at `buf`, creating the object
/// (`rados_setxattr`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_setxattr(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    name: *const c_char,
    buf: *const c_void,
    len: usize,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        let name = cstr(name, "name")?;
        io.io().setxattr(oid, name, bytes_arg(buf, len, "buf")?).map(|_| 0)
    })
}

/// Removes xattr `name` of object `oid` (`rados_rmxattr`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_rmxattr(io: *const osdkit_ioctx, oid: *const c_char, name: *const c_char) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().rmxattr(oid, cstr(name, "name")?).map(|_| 0)
    })
}

/// Every xattr of object `oid` as an iterator (`rados_getxattrs`), to walk with
/// `osdkit_kv_iter_next` and release with `osdkit_kv_iter_end`.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_getxattrs(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    iter: *mut *mut osdkit_kv_iter,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        if iter.is_null() {
            return Err(Error::inval("iter is NULL"));
        }
        out(iter, osdkit_kv_iter::boxed(io.io().getxattrs(oid)?)?, "iter")?;
        Ok(0)
    })
}

/// `n` key, value and length triples from three C arrays (an omap update's arguments).
pub(crate) fn omap_arg(
    keys: *const *const c_char,
    vals: *const *const c_char,
    lens: *const usize,
    n: usize,
) -> Result<BTreeMap<String, Bytes>, Error> {
    let ks = key_arg(keys, n)?;
    if n > 0 && (vals.is_null() || lens.is_null()) {
        return Err(Error::inval("vals or lens is NULL"));
    }
    let mut map = BTreeMap::new();
    for (i, k) in ks.into_iter().enumerate() {
        // SAFETY: `vals` and `lens` are non-NULL arrays of `n` elements living for the call
        // (contract), and i < n.
        let (v, l) = unsafe { (*vals.add(i), *lens.add(i)) };
        let v = bytes_arg(v.cast(), l, &format!("vals[{i}]"))?;
        map.insert(k, Bytes::copy_from_slice(v));
    }
    Ok(map)
}

/// `n` C strings from an array (omap keys).
pub(crate) fn key_arg(keys: *const *const c_char, n: usize) -> Result<Vec<String>, Error> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if keys.is_null() {
        return Err(Error::inval("keys is NULL"));
    }
    (0..n)
        .map(|i| {
            // SAFETY: `keys` is a non-NULL array of `n` C strings living for the call (contract).
            let k = unsafe { *keys.add(i) };
            cstr(k, &format!("keys[{i}]")).map(str::to_string)
        })
        .collect()
}

/// Sets `n` omap entries of object `oid`, creating it (`rados_write_op_omap_set` as one
/// call): `keys[i]` to `lens[i]` bytes at `vals[i]`.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_omap_set(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    keys: *const *const c_char,
    vals: *const *const c_char,
    lens: *const usize,
    n: usize,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().omap_set(oid, &omap_arg(keys, vals, lens, n)?).map(|_| 0)
    })
}

/// Removes `n` omap keys of object `oid` (`rados_write_op_omap_rm_keys` as one call).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_omap_rm_keys(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    keys: *const *const c_char,
    n: usize,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        io.io().omap_rm_keys(oid, &key_arg(keys, n)?).map(|_| 0)
    })
}

/// Up to `max` omap entries of object `oid` after key `start_after` (NULL or "": from the
/// first) as an iterator (`rados_read_op_omap_get_vals2` as one call).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_omap_get_vals(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    start_after: *const c_char,
    max: u64,
    iter: *mut *mut osdkit_kv_iter,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        let after = opt_cstr(start_after, "start_after")?.unwrap_or("");
        if iter.is_null() {
            return Err(Error::inval("iter is NULL"));
        }
        out(
            iter,
            osdkit_kv_iter::boxed(io.io().omap_get_vals(oid, after, max)?)?,
            "iter",
        )?;
        Ok(0)
    })
}

/// The omap entries of object `oid` among `n` `keys` that exist, as an iterator
/// (`rados_read_op_omap_get_vals_by_keys` as one call).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_omap_get_vals_by_keys(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    keys: *const *const c_char,
    n: usize,
    iter: *mut *mut osdkit_kv_iter,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        let keys = key_arg(keys, n)?;
        if iter.is_null() {
            return Err(Error::inval("iter is NULL"));
        }
        out(
            iter,
            osdkit_kv_iter::boxed(io.io().omap_get_vals_by_keys(oid, &keys)?)?,
            "iter",
        )?;
        Ok(0)
    })
}

// ------------------------------------------------------------------------------------------
// Iterators

/// The next pair (`rados_getxattrs_next`, `rados_omap_get_next`): `*key` and `*val` point to
/// the library's copies, valid until `osdkit_kv_iter_end`; `*len` is the value's length. At
/// the end `*key` and `*val` are NULL and `*len` 0. `val` and `len` may be NULL. Returns 0 or
/// -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_kv_iter_next(
    it: *mut osdkit_kv_iter,
    key: *mut *const c_char,
    val: *mut *const c_char,
    len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: a non-NULL iterator comes from this library and is used by one thread at a
        // time (contract), so this is the only reference.
        let it = unsafe { it.as_mut() }.ok_or_else(|| Error::inval("iter is NULL"))?;
        if key.is_null() {
            return Err(Error::inval("key is NULL"));
        }
        let (k, v, l) = match it.items.get(it.pos) {
            Some((k, v)) => {
                it.pos += 1;
                (k.as_ptr(), v.as_ptr().cast::<c_char>(), v.len())
            }
            None => (std::ptr::null(), std::ptr::null(), 0),
        };
        out(key, k, "key")?;
        let _ = out(val, v, "val");
        let _ = out(len, l, "len");
        Ok(0)
    })
}

/// How many pairs the iterator holds in all (`rados_omap_iter_size`), or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_kv_iter_size(it: *const osdkit_kv_iter) -> c_int {
    guard(|| Ok(handle(it, "iter")?.items.len() as c_int))
}

/// Releases an iterator and the keys and values it handed out. NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_kv_iter_end(it: *mut osdkit_kv_iter) {
    free_handle(it, |_| {});
}

// ------------------------------------------------------------------------------------------
// Listing

/// Starts listing the pool's objects (`rados_nobjects_list_open`). Close with
/// `osdkit_list_close`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_list_open(io: *const osdkit_ioctx, ctx: *mut *mut osdkit_list_ctx) -> c_int {
    guard(|| {
        let io = handle(io, "ioctx")?;
        let l = osdkit_list_ctx {
            rados: io.rados.clone(),
            pool: io.pool,
            name: io.name.clone(),
            next_page: Some(ListCursor::default()),
            page: VecDeque::new(),
            current: CString::default(),
            position: Some(ListCursor::default()),
        };
        out(ctx, Box::into_raw(Box::new(l)), "ctx")?;
        Ok(0)
    })
}

fn list_ctx<'a>(ctx: *mut osdkit_list_ctx) -> Result<&'a mut osdkit_list_ctx, Error> {
    // SAFETY: a non-NULL listing context comes from this library and is used by one thread at
    // a time (contract), so this is the only reference.
    unsafe { ctx.as_mut() }.ok_or_else(|| Error::inval("ctx is NULL"))
}

/// The next object's name (`rados_nobjects_list_next`): `*name` points to the library's
/// copy, valid until the next call on `ctx`. Objects come PG by PG, sorted within a PG.
/// Returns 0, -ENOENT at the end, or a negative errno (the listing can go on after
/// -ETIMEDOUT).
#[no_mangle]
pub extern "C" fn osdkit_list_next(ctx: *mut osdkit_list_ctx, name: *mut *const c_char) -> c_int {
    guard(|| {
        let l = list_ctx(ctx)?;
        if name.is_null() {
            return Err(Error::inval("name is NULL"));
        }
        while l.page.is_empty() {
            let Some(from) = l.next_page.clone() else {
                return Err(Error::noent("end of the listing"));
            };
            let io = l.rados.ioctx_at(l.pool, l.name.clone());
            let (page, next) = io.list_page(&from, LIST_PAGE)?;
            l.page.extend(page);
            l.next_page = next;
        }
        let (pg, n) = l.page.pop_front().expect("not empty");
        l.current = CString::new(n.as_str()).map_err(|_| Error::new(libc::EIO, "a name holds a NUL byte"))?;
        l.position = if l.page.is_empty() && l.next_page.is_none() {
            None
        } else {
            Some(ListCursor { pg, after: n })
        };
        out(name, l.current.as_ptr(), "name")?;
        Ok(0)
    })
}

/// Copies the listing's position NUL-terminated into `buf` (what `rados_object_list_cursor`
/// is for): `osdkit_list_seek` with it, from this or another process, resumes with the first
/// object `osdkit_list_next` has not returned yet. Returns its length, -ERANGE, -EINVAL; at
/// the end of the listing the position is "end".
#[no_mangle]
pub extern "C" fn osdkit_list_get_cursor(ctx: *mut osdkit_list_ctx, buf: *mut c_char, len: usize) -> c_int {
    guard(|| {
        let l = list_ctx(ctx)?;
        let s = l
            .position
            .as_ref()
            .map_or_else(|| "end".to_string(), ToString::to_string);
        write_str(&s, buf, len)
    })
}

/// Moves the listing to `cursor`, a position `osdkit_list_get_cursor` gave
/// (`rados_nobjects_list_seek_cursor`). Returns 0 or -EINVAL (not a cursor).
#[no_mangle]
pub extern "C" fn osdkit_list_seek(ctx: *mut osdkit_list_ctx, cursor: *const c_char) -> c_int {
    guard(|| {
        let l = list_ctx(ctx)?;
        let s = cstr(cursor, "cursor")?;
        let at = if s == "end" {
            None
        } else {
            Some(s.parse::<ListCursor>()?)
        };
        l.page.clear();
        l.next_page = at.clone();
        l.position = at;
        Ok(0)
    })
}

/// Ends a listing (`rados_nobjects_list_close`). NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_list_close(ctx: *mut osdkit_list_ctx) {
    free_handle(ctx, |_| {});
}
