//! `osdkit_osd_*`, `osdkit_mon_*` and `osdkit_signal_all`: one OSD or monitor hosted in the
//! calling process ([`crate::hosting::instance::HostedDaemon`]), as cohortfs' `libosd_*` did:
//! made from an id, a conf file, a cluster name and option overrides; started (returning before
//! an OSD is up), watched through callbacks and a state, stopped, joined and freed.
//!
//! Every function may be called from any thread. The callbacks run on the instance's own
//! thread (`osd_thread`, `mon_thread`); they must not join or free their instance.

use super::{cstr, free_handle, guard, handle, opt_cstr, options_arg, out, write_str, SendPtr};
use crate::common::error::Error;
use crate::hosting::instance::{signal_all, HostedDaemon, InstanceArgs, InstanceCallbacks, InstanceState};
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// `osdkit_*_state`: made, not started.
pub const OSDKIT_STATE_NEW: c_int = 0;
/// Reading the conf, making the store, binding messengers.
pub const OSDKIT_STATE_STARTING: c_int = 1;
/// An OSD whose boot is sent, not yet up in the map.
pub const OSDKIT_STATE_BOOTING: c_int = 2;
/// Up in the map (an OSD) or serving (a monitor).
pub const OSDKIT_STATE_ACTIVE: c_int = 3;
pub const OSDKIT_STATE_STOPPING: c_int = 4;
pub const OSDKIT_STATE_STOPPED: c_int = 5;
/// Could not start, or stopped on an error or on its own: `why` says.
pub const OSDKIT_STATE_FAILED: c_int = 6;

/// Write flag of `osdkit_osd_write` / `_truncate`: complete once the data is applied (in the
/// store's cache). osdkit's OSD answers once the write is committed on every replica, so this
/// completes then, together with STABLE (`libosd`'s `LIBOSD_WRITE_CB_UNSTABLE`).
pub const OSDKIT_IO_UNSTABLE: c_int = 1;
/// Write flag: complete once the data is on stable storage on every replica
/// (`LIBOSD_WRITE_CB_STABLE`).
pub const OSDKIT_IO_STABLE: c_int = 2;

/// Completion of a direct I/O call (`libosd`'s `libosd_io_completion_fn`): `result` is 0 or a
/// negative errno; `length` the bytes read or written; `flags` the events it reports (for a
/// write, the `OSDKIT_IO_*` asked for; 0 for a read). Called once, on the thread that finished
/// the op (a `tp_osd_tp` worker or a `msgr-worker-N` thread); it must not block.
pub type osdkit_io_cb = Option<extern "C" fn(result: c_int, length: u64, flags: c_int, user: *mut c_void)>;

/// A callback of a hosted daemon, with the `user` pointer of its args.
pub type osdkit_daemon_cb = Option<extern "C" fn(user: *mut c_void)>;

/// What `osdkit_osd_new` makes an OSD from (libosd's `libosd_init_args`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct osdkit_osd_args {
    /// The OSD's id (>= 0): its name is `osd.<id>`.
    pub id: c_int,
    /// A Ceph-style conf file (`[global]`, `[osd]`, `[osd.<id>]` apply); NULL: none.
    pub conf: *const c_char,
    /// `$cluster` in paths (the admin socket is `$run_dir/$cluster-$name.asok`); NULL: "ceph".
    pub cluster: *const c_char,
    /// Option overrides over the conf: `{"name", "value", ..., NULL}`; NULL: none.
    pub options: *const *const c_char,
    /// Runs when the map shows the OSD up; `osdkit_osd_state` says active once it returned.
    pub on_active: osdkit_daemon_cb,
    /// Runs when the OSD stops on its own (not through `osdkit_osd_shutdown`), e.g. marked
    /// down more than `osd_max_markdown_count` times; before `osdkit_osd_join` returns.
    pub on_shutdown: osdkit_daemon_cb,
    pub user: *mut c_void,
}

/// What `osdkit_mon_new` makes a monitor from; as `osdkit_osd_args`, with a name for an id.
/// The monitor binds the first address of `mon_host` and keeps its store in `mon_data`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct osdkit_mon_args {
    /// The monitor's id ("a"): its name is `mon.<id>`.
    pub id: *const c_char,
    pub conf: *const c_char,
    pub cluster: *const c_char,
    pub options: *const *const c_char,
    /// Runs once the monitor serves.
    pub on_active: osdkit_daemon_cb,
    /// Runs if it stops on its own.
    pub on_shutdown: osdkit_daemon_cb,
    pub user: *mut c_void,
}

/// An OSD hosted in this process. Thread-safe.
pub struct osdkit_osd {
    d: HostedDaemon,
}

/// A monitor hosted in this process. Thread-safe.
pub struct osdkit_mon {
    d: HostedDaemon,
}

fn callback(cb: osdkit_daemon_cb, user: SendPtr<c_void>) -> Option<crate::hosting::instance::InstanceCallback> {
    let cb = cb?;
    Some(Arc::new(move || {
        let user = user;
        if catch_unwind(AssertUnwindSafe(|| cb(user.0))).is_err() {
            log::error!(target: "context", "a C daemon callback unwound");
        }
    }))
}

fn make_args(
    id: String,
    conf: *const c_char,
    cluster: *const c_char,
    options: *const *const c_char,
) -> Result<InstanceArgs, Error> {
    Ok(InstanceArgs {
        id,
        conf: opt_cstr(conf, "conf")?.map(Into::into),
        cluster: opt_cstr(cluster, "cluster")?.unwrap_or("").to_string(),
        options: options_arg(options)?,
        hosted_set: None,
        store: None,
    })
}

fn callbacks(on_active: osdkit_daemon_cb, on_shutdown: osdkit_daemon_cb, user: *mut c_void) -> InstanceCallbacks {
    InstanceCallbacks {
        on_active: callback(on_active, SendPtr(user)),
        on_shutdown: callback(on_shutdown, SendPtr(user)),
    }
}

/// `wait_active` for at most `timeout_ms` (0: for ever): 0 or the error.
fn wait_active(d: &HostedDaemon, timeout_ms: u32) -> Result<c_int, Error> {
    let t = timeout(timeout_ms).unwrap_or(Duration::from_secs(u64::from(u32::MAX)));
    d.wait_active(t).map(|_| 0)
}

fn state_of(d: &HostedDaemon, why: *mut c_char, len: usize) -> Result<c_int, Error> {
    let s = d.state().0;
    if !why.is_null() {
        let text = match &s {
            InstanceState::Failed(w) => w.as_str(),
            _ => "",
        };
        write_str(text, why, len)?;
    }
    Ok(s.code())
}

fn timeout(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
}

// ------------------------------------------------------------------------------------------
// OSDs

/// Makes an OSD (not started) from `args` (copied; the strings need live only for the call).
/// Release with `osdkit_osd_free`. Returns 0, -EINVAL (a bad id, option array or NULL), or
/// -EEXIST when this process already hosts `osd.<id>` of that cluster.
#[no_mangle]
pub extern "C" fn osdkit_osd_new(args: *const osdkit_osd_args, out_osd: *mut *mut osdkit_osd) -> c_int {
    guard(|| {
        let a = *handle(args, "args")?;
        if out_osd.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        if a.id < 0 {
            return Err(Error::inval(format!("OSD id {} < 0", a.id)));
        }
        let d = HostedDaemon::osd(
            make_args(a.id.to_string(), a.conf, a.cluster, a.options)?,
            callbacks(a.on_active, a.on_shutdown, a.user),
        )?;
        out(out_osd, Box::into_raw(Box::new(osdkit_osd { d })), "out")?;
        Ok(0)
    })
}

/// Reads the conf, makes the store (`osd_objectstore`, `osd_data`), binds the messengers
/// (`public_addr`, default 127.0.0.1 on any port), starts the admin socket and sends the boot
/// to the monitor of `mon_host`; returns before the OSD is up (`on_active` says when, or
/// `osdkit_osd_wait_active`). A stopped or failed OSD may be started again. Returns 0,
/// -EEXIST (it runs), or why it could not start (then its state is FAILED with the text).
#[no_mangle]
pub extern "C" fn osdkit_osd_start(osd: *const osdkit_osd) -> c_int {
    guard(|| handle(osd, "osd")?.d.start().map(|_| 0))
}

/// The OSD's state (`OSDKIT_STATE_*`); when `why` is not NULL, the reason of a FAILED state
/// ("" otherwise) is copied into it NUL-terminated (-ERANGE if `len` is too small). -EINVAL
/// for NULL.
#[no_mangle]
pub extern "C" fn osdkit_osd_state(osd: *const osdkit_osd, why: *mut c_char, len: usize) -> c_int {
    guard(|| state_of(&handle(osd, "osd")?.d, why, len))
}

/// Waits up to `timeout_ms` (0: for ever) until the OSD is active. Returns 0, -ETIMEDOUT,
/// -EIO (it failed; `osdkit_last_error` says why), -ENODEV (not started, or stopped).
#[no_mangle]
pub extern "C" fn osdkit_osd_wait_active(osd: *const osdkit_osd, timeout_ms: u32) -> c_int {
    guard(|| wait_active(&handle(osd, "osd")?.d, timeout_ms))
}

/// Begins stopping the OSD (`libosd_shutdown`): it marks itself down, finishes its ops and
/// unmounts its store on its own thread; returns at once. 0, or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_osd_shutdown(osd: *const osdkit_osd) -> c_int {
    guard(|| {
        handle(osd, "osd")?.d.shutdown();
        Ok(0)
    })
}

/// Waits up to `timeout_ms` (0: for ever) until the OSD is stopped or failed (`libosd_join`).
/// Returns its state then (`OSDKIT_STATE_STOPPED` or `_FAILED`), or -ETIMEDOUT.
#[no_mangle]
pub extern "C" fn osdkit_osd_join(osd: *const osdkit_osd, timeout_ms: u32) -> c_int {
    guard(|| Ok(handle(osd, "osd")?.d.join(timeout(timeout_ms))?.code()))
}

/// Copies the OSD's admin socket path (`ceph --admin-daemon` takes it) into `buf`. Returns
/// its length, -ENOENT (not running, or `admin_socket` is empty), -ERANGE, -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_osd_asok_path(osd: *const osdkit_osd, buf: *mut c_char, len: usize) -> c_int {
    guard(|| asok_path(&handle(osd, "osd")?.d, buf, len))
}

/// Copies the OSD's public address ("v2:127.0.0.1:6801/1234") into `buf`. Returns its
/// length, -ENOENT (not running), -ERANGE, -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_osd_addr(osd: *const osdkit_osd, buf: *mut c_char, len: usize) -> c_int {
    guard(|| addr(&handle(osd, "osd")?.d, buf, len))
}

/// A handle on the running OSD's context: its conf, its admin socket (`osdkit_asok_register`
/// adds commands to it), perf counters and log. Release it with `osdkit_context_free`, which
/// for this handle does not stop anything; it stays valid after the OSD stops, but the
/// context is shut down then. Returns 0, -ENOENT (not running), -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_osd_context(
    osd: *const osdkit_osd,
    out_ctx: *mut *mut super::context::osdkit_context,
) -> c_int {
    guard(|| context(&handle(osd, "osd")?.d, out_ctx))
}

/// Reads up to `len` bytes from `off` of object `oid` in pool `pool` into `buf`, on this OSD
/// without a network hop (`libosd_read`): through its own op queue, so ordering and the op
/// tracker apply. Without `cb` it waits and returns the bytes read; with `cb` it returns 0 and
/// `cb` reports (then `buf` must stay valid until it runs). `flags` must be 0. Errors: -ENODEV
/// (not active, or stopping), -ENXIO (this OSD is not the object's primary), -ENOENT (no such
/// object or pool), -EINVAL (bad argument, `len` above INT_MAX without `cb`).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn osdkit_osd_read(
    osd: *const osdkit_osd,
    pool: *const c_char,
    oid: *const c_char,
    off: u64,
    len: u64,
    buf: *mut c_char,
    flags: c_int,
    cb: osdkit_io_cb,
    user: *mut c_void,
) -> c_int {
    guard(|| {
        let d = &handle(osd, "osd")?.d;
        if flags != 0 {
            return Err(Error::inval(format!("read flags {flags:#x}: must be 0")));
        }
        let n = usize::try_from(len).map_err(|_| Error::inval("len too large"))?;
        if buf.is_null() && n > 0 {
            return Err(Error::inval("buf is NULL"));
        }
        if len == 0 {
            // Nothing to read; a completion still completes, once.
            if let Some(cb) = cb {
                cb(0, 0, 0, user);
            }
            return Ok(0);
        }
        let dst = SendPtr(buf);
        let op = crate::types::osd_op::OsdOp::read(off, len);
        direct_io(d, pool, oid, op, 0, cb, user, move |r| {
            let dst = dst;
            let data = r.ops.first().map(|o| &o.outdata[..]).unwrap_or(&[]);
            let k = data.len().min(n);
            // SAFETY: `buf` has room for `len` >= k bytes and stays valid until this runs
            // (header contract); `data` is the reply's own buffer.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst.0.cast::<u8>(), k) };
            k as u64
        })
    })
}

/// Writes `len` bytes at `buf` at `off` of object `oid` in pool `pool` on this OSD without a
/// network hop (`libosd_write`); the data is copied before this returns. `flags`: when to
/// complete, `OSDKIT_IO_UNSTABLE`, `OSDKIT_IO_STABLE` or both (-EINVAL otherwise). Without `cb`
/// it waits and returns `len`; with `cb`, 0. Errors as `osdkit_osd_read`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn osdkit_osd_write(
    osd: *const osdkit_osd,
    pool: *const c_char,
    oid: *const c_char,
    off: u64,
    len: u64,
    buf: *const c_char,
    flags: c_int,
    cb: osdkit_io_cb,
    user: *mut c_void,
) -> c_int {
    guard(|| {
        let d = &handle(osd, "osd")?.d;
        let flags = write_flags(flags)?;
        if cb.is_none() && len > c_int::MAX as u64 {
            return Err(Error::inval("len above INT_MAX: give a callback"));
        }
        let n = usize::try_from(len).map_err(|_| Error::inval("len too large"))?;
        let data = bytes::Bytes::copy_from_slice(super::bytes_arg(buf.cast(), n, "buf")?);
        let op = crate::types::osd_op::OsdOp::write(off, data);
        direct_io(d, pool, oid, op, flags, cb, user, move |_| len)
    })
}

/// Sets the size of object `oid` to `size` on this OSD without a network hop
/// (`libosd_truncate`); `flags`, `cb` and the errors as `osdkit_osd_write`; returns 0.
#[no_mangle]
pub extern "C" fn osdkit_osd_truncate(
    osd: *const osdkit_osd,
    pool: *const c_char,
    oid: *const c_char,
    size: u64,
    flags: c_int,
    cb: osdkit_io_cb,
    user: *mut c_void,
) -> c_int {
    guard(|| {
        let d = &handle(osd, "osd")?.d;
        let flags = write_flags(flags)?;
        let op = crate::types::osd_op::OsdOp::truncate(size);
        direct_io(d, pool, oid, op, flags, cb, user, |_| 0)
    })
}

/// Stops the OSD if it runs (as shutdown + join), frees its name and releases it
/// (`libosd_cleanup`). NULL is ignored. Not from its own callbacks.
#[no_mangle]
pub extern "C" fn osdkit_osd_free(osd: *mut osdkit_osd) {
    free_handle(osd, |_| {});
}

/// Runs one direct I/O op on `d`: with `cb`, returns 0 once queued and reports through it
/// (`report` turns the reply into the length); without, waits and returns the length.
#[allow(clippy::too_many_arguments)]
fn direct_io(
    d: &HostedDaemon,
    pool: *const c_char,
    oid: *const c_char,
    op: crate::types::osd_op::OsdOp,
    flags: c_int,
    cb: osdkit_io_cb,
    user: *mut c_void,
    report: impl FnOnce(&crate::types::osd_op::MOsdOpReply) -> u64 + Send + 'static,
) -> Result<c_int, Error> {
    let (pool, oid) = (cstr(pool, "pool")?, cstr(oid, "oid")?);
    match cb {
        None => {
            let r = d.operate(pool, oid, vec![op])?;
            c_int::try_from(report(&r)).map_err(|_| Error::inval("length above INT_MAX: give a callback"))
        }
        Some(cb) => {
            let user = SendPtr(user);
            d.submit(
                pool,
                oid,
                vec![op],
                Box::new(move |r| {
                    let user = user;
                    let (res, len) = match r {
                        Ok(rep) => (0, report(&rep)),
                        Err(e) => (-e.errno, 0),
                    };
                    if catch_unwind(AssertUnwindSafe(|| cb(res, len, flags, user.0))).is_err() {
                        log::error!(target: "osd", "a C I/O completion unwound");
                    }
                }),
            );
            Ok(0)
        }
    }
}

fn write_flags(flags: c_int) -> Result<c_int, Error> {
    let all = OSDKIT_IO_UNSTABLE | OSDKIT_IO_STABLE;
    if flags == 0 || flags & !all != 0 {
        return Err(Error::inval(format!(
            "write flags {flags:#x}: give OSDKIT_IO_UNSTABLE, OSDKIT_IO_STABLE or both"
        )));
    }
    Ok(flags)
}

fn context(d: &HostedDaemon, out_ctx: *mut *mut super::context::osdkit_context) -> Result<c_int, Error> {
    if out_ctx.is_null() {
        return Err(Error::inval("out is NULL"));
    }
    let ctx = d
        .context()
        .ok_or_else(|| Error::noent(format!("{} is not running", d.name())))?;
    let h = Box::new(super::context::osdkit_context::borrowed(ctx));
    out(out_ctx, Box::into_raw(h), "out")?;
    Ok(0)
}

fn asok_path(d: &HostedDaemon, buf: *mut c_char, len: usize) -> Result<c_int, Error> {
    let p = d
        .asok_path()
        .ok_or_else(|| Error::noent(format!("{} has no admin socket (not running?)", d.name())))?;
    write_str(&p.to_string_lossy(), buf, len)
}

fn addr(d: &HostedDaemon, buf: *mut c_char, len: usize) -> Result<c_int, Error> {
    let a = d
        .addr()
        .ok_or_else(|| Error::noent(format!("{} is not running", d.name())))?;
    write_str(&a, buf, len)
}

// ------------------------------------------------------------------------------------------
// Monitors

/// Makes a monitor (not started) from `args`, as `osdkit_osd_new`.
#[no_mangle]
pub extern "C" fn osdkit_mon_new(args: *const osdkit_mon_args, out_mon: *mut *mut osdkit_mon) -> c_int {
    guard(|| {
        let a = *handle(args, "args")?;
        if out_mon.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let id = cstr(a.id, "id")?.to_string();
        let d = HostedDaemon::mon(
            make_args(id, a.conf, a.cluster, a.options)?,
            callbacks(a.on_active, a.on_shutdown, a.user),
        )?;
        out(out_mon, Box::into_raw(Box::new(osdkit_mon { d })), "out")?;
        Ok(0)
    })
}

/// Starts the monitor: binds the first address of `mon_host`, opens (or creates) its store
/// in `mon_data`, starts its admin socket. Returns as `osdkit_osd_start`.
#[no_mangle]
pub extern "C" fn osdkit_mon_start(mon: *const osdkit_mon) -> c_int {
    guard(|| handle(mon, "mon")?.d.start().map(|_| 0))
}

/// As `osdkit_osd_state`.
#[no_mangle]
pub extern "C" fn osdkit_mon_state(mon: *const osdkit_mon, why: *mut c_char, len: usize) -> c_int {
    guard(|| state_of(&handle(mon, "mon")?.d, why, len))
}

/// As `osdkit_osd_wait_active`.
#[no_mangle]
pub extern "C" fn osdkit_mon_wait_active(mon: *const osdkit_mon, timeout_ms: u32) -> c_int {
    guard(|| wait_active(&handle(mon, "mon")?.d, timeout_ms))
}

/// As `osdkit_osd_shutdown`.
#[no_mangle]
pub extern "C" fn osdkit_mon_shutdown(mon: *const osdkit_mon) -> c_int {
    guard(|| {
        handle(mon, "mon")?.d.shutdown();
        Ok(0)
    })
}

/// As `osdkit_osd_join`.
#[no_mangle]
pub extern "C" fn osdkit_mon_join(mon: *const osdkit_mon, timeout_ms: u32) -> c_int {
    guard(|| Ok(handle(mon, "mon")?.d.join(timeout(timeout_ms))?.code()))
}

/// As `osdkit_osd_asok_path`.
#[no_mangle]
pub extern "C" fn osdkit_mon_asok_path(mon: *const osdkit_mon, buf: *mut c_char, len: usize) -> c_int {
    guard(|| asok_path(&handle(mon, "mon")?.d, buf, len))
}

/// The monitor's address (what `mon_host` names), as `osdkit_osd_addr`.
#[no_mangle]
pub extern "C" fn osdkit_mon_addr(mon: *const osdkit_mon, buf: *mut c_char, len: usize) -> c_int {
    guard(|| addr(&handle(mon, "mon")?.d, buf, len))
}

/// As `osdkit_osd_context`.
#[no_mangle]
pub extern "C" fn osdkit_mon_context(
    mon: *const osdkit_mon,
    out_ctx: *mut *mut super::context::osdkit_context,
) -> c_int {
    guard(|| context(&handle(mon, "mon")?.d, out_ctx))
}

/// Runs one monitor command (a JSON object with a `prefix`, as `ceph` sends them; e.g.
/// `{"prefix": "osd create", "id": 0}`, which an OSD needs before it boots) on this hosted
/// monitor. The output goes NUL-terminated into `out` and the status text (the reason, on
/// failure) into `status`; either may be NULL with length 0 to ignore it. Returns the command's
/// result (0 or a negative errno), -ERANGE when the output does not fit (the command ran;
/// nothing written),
/// -ENODEV when the monitor does not run, -EINVAL for a bad argument.
#[no_mangle]
pub extern "C" fn osdkit_mon_command(
    mon: *const osdkit_mon,
    cmd: *const c_char,
    out: *mut c_char,
    out_len: usize,
    status: *mut c_char,
    status_len: usize,
) -> c_int {
    guard(|| {
        let d = &handle(mon, "mon")?.d;
        let cmd = cstr(cmd, "cmd")?;
        let (r, rs, outbl) = d
            .with_mon(|m| m.command(cmd))
            .ok_or_else(|| Error::new(libc::ENODEV, "the monitor is not running"))?;
        let text = String::from_utf8_lossy(&outbl);
        let put = |s: &str, buf: *mut c_char, len: usize| match (buf.is_null(), len) {
            (true, 0) => Ok(0),
            _ => write_str(s, buf, len),
        };
        put(&text, out, out_len)?;
        // A status that does not fit is cut: it is for people, not parsers.
        let mut cut = rs.len().min(status_len.saturating_sub(1));
        while !rs.is_char_boundary(cut) {
            cut -= 1;
        }
        put(&rs[..cut], status, status_len)?;
        Ok(r)
    })
}

/// As `osdkit_osd_free`.
#[no_mangle]
pub extern "C" fn osdkit_mon_free(mon: *mut osdkit_mon) {
    free_handle(mon, |_| {});
}

/// Forwards a signal to every OSD and monitor hosted in the process (`libosd_signal`):
/// SIGTERM or SIGINT begins stopping each, SIGHUP reopens each one's log. Returns how many
/// running daemons it reached, or -EINVAL for another signal.
#[no_mangle]
pub extern "C" fn osdkit_signal_all(signum: c_int) -> c_int {
    guard(|| signal_all(signum).map(|n| n as c_int))
}
