//! `osdkit_cluster_*` and `osdkit_client_*`: hosting a monitor and OSDs in this process
//! ([`crate::hosting::cluster`]), and the object client ([`crate::client::Rados`]) for them.
//!
//! Every client call has a blocking form, which may be called from any thread, concurrently.
//! Writes also have async forms whose completion runs on a library thread.

use super::{bytes_arg, cstr, free_handle, guard, guard_void, handle, out, set_last_error, write_str};
use crate::client::Rados;
use crate::common::error::Error;
use crate::hosting::cluster::MiniCluster;
use crate::types::osd_op::OsdOp;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A monitor and N OSDs running in this process, with the pool "data" (32 PGs, size 1). Its
/// functions may be called from any thread.
pub struct osdkit_cluster {
    c: MiniCluster,
}

/// A client of a cluster (its own messenger, monitor client and objecter). Its functions may
/// be called from any thread, concurrently.
pub struct osdkit_client {
    c: Rados,
}

/// A list of ops on one object, sent as one request by `osdkit_client_operate`: they apply
/// atomically, all or none. Not thread-safe: one thread at a time.
pub struct osdkit_op_list {
    ops: Vec<OsdOp>,
}

/// Completion of an async call: `result` is 0 or a negative errno (-ENOENT, -EEXIST,
/// -ECANCELED, -ETIMEDOUT, -ESHUTDOWN, ...). Called exactly once per accepted call (one that
/// returned 0), on a library thread: the `msgr-worker-N` thread that received the reply, the
/// `objecter_timer` thread for a timeout, or the thread calling `osdkit_client_free` for ops
/// still in flight then (-ESHUTDOWN). Completions may run concurrently with each other. They
/// must not block, and must not call `osdkit_client_free` of their own client. No library lock
/// is held while it runs.
pub type osdkit_completion_cb = Option<extern "C" fn(user: *mut c_void, result: c_int)>;

/// One object name from `osdkit_client_list`. `name` is borrowed for the call only. Runs on the
/// thread calling `osdkit_client_list`. Return 0 to go on, nonzero to stop the listing.
pub type osdkit_name_cb = Option<extern "C" fn(user: *mut c_void, name: *const c_char) -> c_int>;

/// Hands bytes to C in a `malloc`ed buffer (at least one byte, so never NULL); freed with
/// `osdkit_buffer_free`.
fn give_buffer(b: &[u8], buf: *mut *mut u8, len: *mut usize) -> Result<(), Error> {
    if buf.is_null() || len.is_null() {
        return Err(Error::inval("buf or len is NULL"));
    }
    // SAFETY: plain allocation; checked for NULL below.
    let p = unsafe { libc::malloc(b.len().max(1)) }.cast::<u8>();
    if p.is_null() {
        return Err(Error::new(libc::ENOMEM, format!("allocating {} bytes", b.len())));
    }
    // SAFETY: `p` has room for b.len() bytes; `b` is ours, no overlap.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len()) };
    out(buf, p, "buf")?;
    out(len, b.len(), "len")
}

/// The user pointer of a completion, passed back on a library thread (the header says so).
struct SendPtr(*mut c_void);
// SAFETY: the library never dereferences the pointer; the caller agreed that the completion
// may be called with it on a library thread.
unsafe impl Send for SendPtr {}

// ------------------------------------------------------------------------------------------
// Cluster

/// Starts a monitor (data under `dir`/mon) and `n_osds` OSDs (1..=64) with store `store`
/// ("mem", or "kv" under `dir`/osd.N; NULL means "mem") in this process, creates the pool
/// "data" (32 PGs, size 1) and returns once every OSD serves it. No admin sockets. `dir` is
/// created if needed. On success `*out` is the cluster, to release with
/// `osdkit_cluster_free`. Returns 0, -EINVAL, -ETIMEDOUT or another negative errno.
#[no_mangle]
pub extern "C" fn osdkit_cluster_start(
    dir: *const c_char,
    n_osds: c_int,
    store: *const c_char,
    out_cluster: *mut *mut osdkit_cluster,
) -> c_int {
    osdkit_cluster_start_opts(dir, n_osds, store, 1, std::ptr::null(), out_cluster)
}

/// As `osdkit_cluster_start`, with pool `data` of `pool_size` replicas and `options`, a
/// NULL-terminated array of name, value, name, value, ... set on every daemon (NULL: none),
/// e.g. {"osd_heartbeat_grace", "4", NULL}. -EINVAL for an odd array, an unknown option or a
/// bad value, or `pool_size` outside 1..=n_osds.
#[no_mangle]
pub extern "C" fn osdkit_cluster_start_opts(
    dir: *const c_char,
    n_osds: c_int,
    store: *const c_char,
    pool_size: c_int,
    options: *const *const c_char,
    out_cluster: *mut *mut osdkit_cluster,
) -> c_int {
    guard(|| {
        if out_cluster.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let dir = cstr(dir, "dir")?;
        let store = super::opt_cstr(store, "store")?.unwrap_or("mem");
        let n = usize::try_from(n_osds).map_err(|_| Error::inval(format!("n_osds {n_osds} < 0")))?;
        let size = u32::try_from(pool_size).map_err(|_| Error::inval(format!("pool_size {pool_size} < 0")))?;
        let mut opts: Vec<(&str, &str)> = Vec::new();
        if !options.is_null() {
            let mut i = 0;
            loop {
                // SAFETY: the caller passes a NULL-terminated array of C strings; we read
                // entries until the first NULL, one at a time, and never past it.
                let k = unsafe { *options.add(i) };
                if k.is_null() {
                    break;
                }
                // SAFETY: as above; `k` was not the terminator, so the array goes on.
                let v = unsafe { *options.add(i + 1) };
                if v.is_null() {
                    return Err(Error::inval(format!("option {} has no value", cstr(k, "option")?)));
                }
                opts.push((cstr(k, "option")?, cstr(v, "value")?));
                i += 2;
            }
        }
        let c = MiniCluster::start_opts(std::path::Path::new(dir), n, store, size, None, &opts)?;
        out(out_cluster, Box::into_raw(Box::new(osdkit_cluster { c })), "out")?;
        Ok(0)
    })
}

/// Copies the monitor's address (e.g. "v2:127.0.0.1:40123/0", what `osdkit_client_connect`
/// takes) NUL-terminated into `buf` of `len` bytes. Returns its length without the NUL,
/// -ERANGE (nothing written; 128 bytes always suffice) or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_cluster_mon_addr(c: *const osdkit_cluster, buf: *mut c_char, len: usize) -> c_int {
    guard(|| write_str(&handle(c, "cluster")?.c.mon_addr(), buf, len))
}

/// Number of OSDs (running or stopped), or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_cluster_num_osds(c: *const osdkit_cluster) -> c_int {
    guard(|| Ok(handle(c, "cluster")?.c.num_osds() as c_int))
}

/// Stops osd.`id`, unmounting its store. Returns 0, -EINVAL (no such id), -ENOENT (already
/// stopped). Ops sent to it meanwhile wait for its restart (or time out).
#[no_mangle]
pub extern "C" fn osdkit_cluster_stop_osd(c: *const osdkit_cluster, id: c_int) -> c_int {
    guard(|| handle(c, "cluster")?.c.stop_osd(id).map(|_| 0))
}

/// Stops osd.`id` as a crash would: no mark-me-down, so the monitor learns of it from the
/// other OSDs' heartbeats after `osd_heartbeat_grace`. Returns 0, -EINVAL, -ENOENT.
#[no_mangle]
pub extern "C" fn osdkit_cluster_kill_osd(c: *const osdkit_cluster, id: c_int) -> c_int {
    guard(|| handle(c, "cluster")?.c.kill_osd(id).map(|_| 0))
}

/// 1 when the monitor's map has osd.`id` up, 0 when down; -EINVAL for a bad handle, -ENOENT
/// for an id the map does not know.
#[no_mangle]
pub extern "C" fn osdkit_cluster_osd_up(c: *const osdkit_cluster, id: c_int) -> c_int {
    guard(|| {
        let map = handle(c, "cluster")?.c.monitor().osdmap();
        let o = map
            .osd(id)
            .ok_or_else(|| Error::noent(format!("osd.{id} does not exist")))?;
        Ok(c_int::from(o.up))
    })
}

/// Waits up to `timeout_ms` until every PG has its full acting set and none is peering or
/// recovering. Returns 0, -EINVAL or -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_cluster_wait_for_clean(c: *const osdkit_cluster, timeout_ms: u32) -> c_int {
    guard(|| {
        let t = std::time::Duration::from_millis(u64::from(timeout_ms));
        handle(c, "cluster")?.c.wait_for_clean(t).map(|_| 0)
    })
}

/// Scrubs PG `pgid` ("1.a"; NULL: every PG of every pool) on its primary, comparing the
/// copies of its acting set: presence, size, version and xattrs of each object, and with
/// `deep` != 0 its data and omap digests. Blocks until done, trying a PG whose primary is
/// moving again for up to `timeout_ms`. Returns the number of inconsistent objects found
/// (0: the copies agree), -EINVAL (bad handle or PG id), -ENOENT (no such PG), -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_cluster_scrub(
    c: *const osdkit_cluster,
    pgid: *const c_char,
    deep: c_int,
    timeout_ms: u32,
) -> c_int {
    guard(|| {
        let c = &handle(c, "cluster")?.c;
        let pg = if pgid.is_null() {
            None
        } else {
            Some(cstr(pgid, "pgid")?.parse::<crate::types::placement::PgId>()?)
        };
        let t = std::time::Duration::from_millis(u64::from(timeout_ms));
        let reports = c.scrub(pg, deep != 0, t)?;
        Ok(reports.iter().map(|r| r.inconsistent.len() as c_int).sum())
    })
}

/// Starts a stopped osd.`id` again on the same store (the same directory for "kv", the same
/// memory for "mem") and waits until it is up and serves the pool. Returns 0, -EINVAL,
/// -EEXIST (it is running), -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_cluster_start_osd(c: *const osdkit_cluster, id: c_int) -> c_int {
    guard(|| handle(c, "cluster")?.c.start_osd(id).map(|_| 0))
}

/// Stops the OSDs and the monitor and releases the cluster. NULL is ignored. Free its
/// clients first (or expect their ops to time out).
#[no_mangle]
pub extern "C" fn osdkit_cluster_free(c: *mut osdkit_cluster) {
    free_handle(c, |b| b.c.shutdown());
}

// ------------------------------------------------------------------------------------------
// Client

/// Connects as `name` (e.g. "client.admin"; NULL means that) to the monitor at `mon_addr` and
/// waits for its map. On success `*out` is the client, to release with `osdkit_client_free`.
/// Returns 0, -EINVAL (bad address or name), -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_connect(
    mon_addr: *const c_char,
    name: *const c_char,
    out_client: *mut *mut osdkit_client,
) -> c_int {
    guard(|| {
        if out_client.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let addr = cstr(mon_addr, "mon_addr")?;
        let name = super::opt_cstr(name, "name")?.unwrap_or("client.admin");
        let c = Rados::connect(addr, name)?;
        out(out_client, Box::into_raw(Box::new(osdkit_client { c })), "out")?;
        Ok(0)
    })
}

/// Fails the ops in flight with -ESHUTDOWN (their completions run on this thread), stops the
/// client's threads and releases it. NULL is ignored. Not from inside a completion of this
/// client.
#[no_mangle]
pub extern "C" fn osdkit_client_free(c: *mut osdkit_client) {
    free_handle(c, |b| b.c.shutdown());
}

/// Writes object `oid` of pool `pool` whole (creating it, replacing its data) with `len`
/// bytes at `data` (NULL allowed when `len` is 0). Blocks until the write is committed.
/// Returns 0, -ENOENT (no such pool), -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_put(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    data: *const c_void,
    len: usize,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        c.c.put(pool, oid, bytes_arg(data, len, "data")?).map(|_| 0)
    })
}

/// The async form of `osdkit_client_put`: returns 0 once the write is sent (then `cb` is
/// called exactly once with the result; see `osdkit_completion_cb` for the thread), or a
/// negative errno without calling `cb` (-EINVAL, -ENOENT for a missing pool).
#[no_mangle]
pub extern "C" fn osdkit_client_put_async(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    data: *const c_void,
    len: usize,
    cb: osdkit_completion_cb,
    user: *mut c_void,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        let data = Bytes::copy_from_slice(bytes_arg(data, len, "data")?);
        submit(c, pool, oid, vec![OsdOp::writefull(data)], cb, user)
    })
}

fn submit(
    c: &osdkit_client,
    pool: &str,
    oid: &str,
    ops: Vec<OsdOp>,
    cb: osdkit_completion_cb,
    user: *mut c_void,
) -> Result<c_int, Error> {
    let cb = cb.ok_or_else(|| Error::inval("cb is NULL"))?;
    if ops.is_empty() {
        return Err(Error::inval("the op list is empty"));
    }
    c.c.pool_id(pool)?;
    let user = SendPtr(user);
    c.c.submit_async(
        pool,
        oid,
        ops,
        Box::new(move |r| {
            let user = user;
            let code = match r {
                Ok(_) => 0,
                Err(e) => -e.errno,
            };
            if catch_unwind(AssertUnwindSafe(|| cb(user.0, code))).is_err() {
                log::error!(target: "client", "a C completion unwound");
            }
        }),
    );
    Ok(0)
}

/// Reads object `oid` whole: on success `*buf` is a new buffer of `*len` bytes (never NULL,
/// also for an empty object), to release with `osdkit_buffer_free`. Returns 0, -ENOENT (no
/// such object or pool), -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_get(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    buf: *mut *mut u8,
    len: *mut usize,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        if buf.is_null() || len.is_null() {
            return Err(Error::inval("buf or len is NULL"));
        }
        give_buffer(&c.c.get(pool, oid)?, buf, len)?;
        Ok(0)
    })
}

/// Releases a buffer this library returned (`osdkit_client_get`, `_getxattr`, `_omap_get`).
/// NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_buffer_free(buf: *mut u8) {
    if !buf.is_null() {
        // SAFETY: `buf` came from `give_buffer` (malloc) and is freed once (contract).
        unsafe { libc::free(buf.cast()) };
    }
}

/// Size and modification time of object `oid`. `size`, `mtime_sec` (seconds since the epoch)
/// and `mtime_nsec` may each be NULL (not wanted). Returns 0, -ENOENT, -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_stat(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    size: *mut u64,
    mtime_sec: *mut i64,
    mtime_nsec: *mut u32,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        let st = c.c.stat(pool, oid)?;
        let d = st.mtime.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        if !size.is_null() {
            out(size, st.size, "size")?;
        }
        if !mtime_sec.is_null() {
            out(mtime_sec, d.as_secs() as i64, "mtime_sec")?;
        }
        if !mtime_nsec.is_null() {
            out(mtime_nsec, d.subsec_nanos(), "mtime_nsec")?;
        }
        Ok(0)
    })
}

/// Removes object `oid`. Returns 0, -ENOENT (no such object or pool), -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_remove(c: *const osdkit_client, pool: *const c_char, oid: *const c_char) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        c.c.remove(pool, oid).map(|_| 0)
    })
}

/// Lists pool `pool`: calls `cb` once per object name, in sorted order, on this thread (see
/// `osdkit_name_cb`). Returns the number of names passed to `cb` (a nonzero return from `cb`
/// stops early), -ENOENT (no such pool), -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_list(
    c: *const osdkit_client,
    pool: *const c_char,
    cb: osdkit_name_cb,
    user: *mut c_void,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let pool = cstr(pool, "pool")?;
        let cb = cb.ok_or_else(|| Error::inval("cb is NULL"))?;
        let mut n = 0;
        for name in c.c.list(pool)? {
            let s = CString::new(name).map_err(|_| Error::inval("object name holds a NUL"))?;
            n += 1;
            if cb(user, s.as_ptr()) != 0 {
                break;
            }
        }
        Ok(n)
    })
}

/// Lists pool `pool` into a new array: `*names` is `*count` NUL-terminated names, sorted, to
/// release with `osdkit_names_free(*names, *count)`. Returns 0, -ENOENT, -EINVAL,
/// -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_list_names(
    c: *const osdkit_client,
    pool: *const c_char,
    names: *mut *mut *mut c_char,
    count: *mut usize,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let pool = cstr(pool, "pool")?;
        if names.is_null() || count.is_null() {
            return Err(Error::inval("names or count is NULL"));
        }
        let list = c.c.list(pool)?;
        let mut v: Vec<*mut c_char> = Vec::with_capacity(list.len().max(1));
        for n in list {
            v.push(super::to_c_string(n.as_bytes()));
        }
        let n = v.len();
        let p = Box::into_raw(v.into_boxed_slice()).cast::<*mut c_char>();
        out(names, p, "names")?;
        out(count, n, "count")?;
        Ok(0)
    })
}

/// Releases an array from `osdkit_client_list_names` (`count` as returned). NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_names_free(names: *mut *mut c_char, count: usize) {
    if names.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: `names` and `count` came from osdkit_client_list_names (a boxed slice of
        // CString::into_raw pointers) and are freed once (contract).
        let b = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(names, count)) };
        for s in b.iter() {
            super::osdkit_string_free(*s);
        }
    });
}

/// Sets xattr `name` of object `oid` to `len` bytes at `value` (creating the object).
/// Returns 0, -ENOENT (no such pool), -EINVAL (also for an oversized value), -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_setxattr(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    name: *const c_char,
    value: *const c_void,
    len: usize,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid, name) = (cstr(pool, "pool")?, cstr(oid, "oid")?, cstr(name, "name")?);
        c.c.setxattr(pool, oid, name, bytes_arg(value, len, "value")?)
            .map(|_| 0)
    })
}

/// Reads xattr `name` of object `oid` into a new buffer (as `osdkit_client_get`). Returns 0,
/// -ENOENT (no such object or pool), -ENODATA (no such xattr), -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_getxattr(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    name: *const c_char,
    buf: *mut *mut u8,
    len: *mut usize,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid, name) = (cstr(pool, "pool")?, cstr(oid, "oid")?, cstr(name, "name")?);
        if buf.is_null() || len.is_null() {
            return Err(Error::inval("buf or len is NULL"));
        }
        give_buffer(&c.c.getxattr(pool, oid, name)?, buf, len)?;
        Ok(0)
    })
}

/// Sets `n` omap entries of object `oid` (creating it): key `keys[i]` (NUL-terminated) to
/// `val_lens[i]` bytes at `vals[i]`. All are set in one request. Returns 0, -ENOENT (no such
/// pool), -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_omap_set(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    keys: *const *const c_char,
    vals: *const *const c_void,
    val_lens: *const usize,
    n: usize,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        let map = omap_arg(keys, vals, val_lens, n)?;
        c.c.omap_set(pool, oid, &map).map(|_| 0)
    })
}

fn omap_arg(
    keys: *const *const c_char,
    vals: *const *const c_void,
    val_lens: *const usize,
    n: usize,
) -> Result<BTreeMap<String, Bytes>, Error> {
    if n == 0 {
        return Err(Error::inval("no omap entries (n is 0)"));
    }
    if keys.is_null() || vals.is_null() || val_lens.is_null() {
        return Err(Error::inval("keys, vals or val_lens is NULL"));
    }
    // SAFETY: three non-NULL arrays of `n` elements each, living for the call (contract).
    let (ks, vs, ls) = unsafe {
        (
            std::slice::from_raw_parts(keys, n),
            std::slice::from_raw_parts(vals, n),
            std::slice::from_raw_parts(val_lens, n),
        )
    };
    let mut map = BTreeMap::new();
    for i in 0..n {
        let k = cstr(ks[i], &format!("keys[{i}]"))?;
        let v = bytes_arg(vs[i], ls[i], &format!("vals[{i}]"))?;
        map.insert(k.to_string(), Bytes::copy_from_slice(v));
    }
    Ok(map)
}

/// Reads omap key `key` of object `oid` into a new buffer (as `osdkit_client_get`). Returns
/// 0, -ENOENT (no such object, pool or key), -EINVAL, -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_client_omap_get(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    key: *const c_char,
    buf: *mut *mut u8,
    len: *mut usize,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid, key) = (cstr(pool, "pool")?, cstr(oid, "oid")?, cstr(key, "key")?);
        if buf.is_null() || len.is_null() {
            return Err(Error::inval("buf or len is NULL"));
        }
        let keys = [key.to_string()];
        let vals = c.c.omap_get(pool, oid, Some(&keys))?;
        let v = vals
            .get(key)
            .ok_or_else(|| Error::noent(format!("{oid}: no omap key '{key}'")))?;
        give_buffer(v, buf, len)?;
        Ok(0)
    })
}

// ------------------------------------------------------------------------------------------
// Several ops as one

/// A new empty op list, or NULL (out of memory). Release with `osdkit_op_list_free`.
#[no_mangle]
pub extern "C" fn osdkit_op_list_new() -> *mut osdkit_op_list {
    match catch_unwind(|| Box::into_raw(Box::new(osdkit_op_list { ops: Vec::new() }))) {
        Ok(p) => p,
        Err(_) => {
            set_last_error("internal error (panic)");
            std::ptr::null_mut()
        }
    }
}

/// Releases an op list. NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_op_list_free(l: *mut osdkit_op_list) {
    free_handle(l, |_| {});
}

fn push(l: *mut osdkit_op_list, f: impl FnOnce() -> Result<OsdOp, Error>) -> c_int {
    guard(|| {
        // SAFETY: non-NULL lists come from osdkit_op_list_new and are used by one thread at a
        // time (contract), so this is the only reference.
        let l = unsafe { l.as_mut() }.ok_or_else(|| Error::inval("ops is NULL"))?;
        l.ops.push(f()?);
        Ok(l.ops.len() as c_int)
    })
}

/// Appends "create the object"; with `exclusive` nonzero the request fails with -EEXIST if it
/// exists. Each `osdkit_op_list_*` append returns the new number of ops, or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_op_list_create(l: *mut osdkit_op_list, exclusive: c_int) -> c_int {
    push(l, || Ok(OsdOp::create(exclusive != 0)))
}

/// Appends "replace the object's data with `len` bytes at `data`".
#[no_mangle]
pub extern "C" fn osdkit_op_list_write_full(l: *mut osdkit_op_list, data: *const c_void, len: usize) -> c_int {
    push(l, || {
        Ok(OsdOp::writefull(Bytes::copy_from_slice(bytes_arg(data, len, "data")?)))
    })
}

/// Appends "write `len` bytes at `data` at offset `off`".
#[no_mangle]
pub extern "C" fn osdkit_op_list_write(l: *mut osdkit_op_list, off: u64, data: *const c_void, len: usize) -> c_int {
    push(l, || {
        Ok(OsdOp::write(off, Bytes::copy_from_slice(bytes_arg(data, len, "data")?)))
    })
}

/// Appends "append `len` bytes at `data`".
#[no_mangle]
pub extern "C" fn osdkit_op_list_append(l: *mut osdkit_op_list, data: *const c_void, len: usize) -> c_int {
    push(l, || {
        Ok(OsdOp::append(Bytes::copy_from_slice(bytes_arg(data, len, "data")?)))
    })
}

/// Appends "remove the object" (-ENOENT if it does not exist).
#[no_mangle]
pub extern "C" fn osdkit_op_list_remove(l: *mut osdkit_op_list) -> c_int {
    push(l, || Ok(OsdOp::delete()))
}

/// Appends "set xattr `name` to `len` bytes at `value`".
#[no_mangle]
pub extern "C" fn osdkit_op_list_setxattr(
    l: *mut osdkit_op_list,
    name: *const c_char,
    value: *const c_void,
    len: usize,
) -> c_int {
    push(l, || {
        let name = cstr(name, "name")?;
        Ok(OsdOp::setxattr(
            name,
            Bytes::copy_from_slice(bytes_arg(value, len, "value")?),
        ))
    })
}

/// Appends "xattr `name` must equal `len` bytes at `value`" (a string comparison): the
/// request fails with -ECANCELED if it differs, -ENODATA if the xattr is missing.
#[no_mangle]
pub extern "C" fn osdkit_op_list_cmpxattr_eq(
    l: *mut osdkit_op_list,
    name: *const c_char,
    value: *const c_void,
    len: usize,
) -> c_int {
    use crate::types::osd_op::{CEPH_OSD_CMPXATTR_MODE_STRING, CEPH_OSD_CMPXATTR_OP_EQ};
    push(l, || {
        let name = cstr(name, "name")?;
        let v = Bytes::copy_from_slice(bytes_arg(value, len, "value")?);
        Ok(OsdOp::cmpxattr(
            name,
            CEPH_OSD_CMPXATTR_OP_EQ,
            CEPH_OSD_CMPXATTR_MODE_STRING,
            v,
        ))
    })
}

/// Appends "set omap key `key` to `len` bytes at `value`".
#[no_mangle]
pub extern "C" fn osdkit_op_list_omap_set(
    l: *mut osdkit_op_list,
    key: *const c_char,
    value: *const c_void,
    len: usize,
) -> c_int {
    push(l, || {
        let key = cstr(key, "key")?;
        let v = Bytes::copy_from_slice(bytes_arg(value, len, "value")?);
        Ok(OsdOp::omap_set_vals(&[(key.to_string(), v)].into()))
    })
}

fn ops_of(l: *const osdkit_op_list) -> Result<Vec<OsdOp>, Error> {
    let l = handle(l, "ops")?;
    if l.ops.is_empty() {
        return Err(Error::inval("the op list is empty"));
    }
    Ok(l.ops.clone())
}

/// Sends the ops of `ops` on object `oid` as one request and waits: they apply atomically,
/// all or none. Returns 0, or the errno of the first failing op (then nothing was applied),
/// -ENOENT for a missing pool, -EINVAL (also for an empty list), -ETIMEDOUT. `ops` is not
/// changed and may be sent again.
#[no_mangle]
pub extern "C" fn osdkit_client_operate(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    ops: *const osdkit_op_list,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        c.c.operate(pool, oid, ops_of(ops)?).map(|_| 0)
    })
}

/// The async form of `osdkit_client_operate`: returns 0 once sent (then `cb` is called exactly
/// once; see `osdkit_completion_cb`), or a negative errno without calling `cb`. `ops` may be
/// freed as soon as this returns.
#[no_mangle]
pub extern "C" fn osdkit_client_operate_async(
    c: *const osdkit_client,
    pool: *const c_char,
    oid: *const c_char,
    ops: *const osdkit_op_list,
    cb: osdkit_completion_cb,
    user: *mut c_void,
) -> c_int {
    guard(|| {
        let c = handle(c, "client")?;
        let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
        submit(c, pool, oid, ops_of(ops)?, cb, user)
    })
}
