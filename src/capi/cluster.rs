//! `osdkit_cluster_*`: a monitor and N OSDs hosted in this process
//! ([`crate::hosting::cluster::MiniCluster`]), for tests and embedders; its clients are
//! `osdkit_rados_*` (see `capi/rados.rs`) connected to `osdkit_cluster_mon_addr`.

use super::{cstr, free_handle, guard, handle, out, write_str};
use crate::common::error::Error;
use crate::hosting::cluster::MiniCluster;
use std::ffi::{c_char, c_int};

/// A monitor and N OSDs running in this process, with the pool "data" (32 PGs, size 1). Its
/// functions may be called from any thread.
pub struct osdkit_cluster {
    c: MiniCluster,
}

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
        let owned = super::options_arg(options)?;
        let opts: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let c = MiniCluster::start_opts(std::path::Path::new(dir), n, store, size, None, &opts)?;
        out(out_cluster, Box::into_raw(Box::new(osdkit_cluster { c })), "out")?;
        Ok(0)
    })
}

/// Copies the monitor's address (e.g. "v2:127.0.0.1:40123/0", the `mon_host` to give
/// `osdkit_rados_conf_set`) NUL-terminated into `buf` of `len` bytes. Returns its length without the NUL,
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
        let map = handle(c, "cluster")?.c.osdmap();
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
