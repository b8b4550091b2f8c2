//! `osdkit_context_*`: create, configure, start and free a daemon context.

use super::{cstr, free_handle, guard, guard_void, handle, opt_cstr, out, set_last_error, write_str};
use crate::common::error::Error;
use crate::Context;
use std::ffi::{c_char, c_int, CString};
use std::path::Path;
use std::sync::OnceLock;

/// A daemon context (Ceph's CephContext): entity name, config, log, perf counters, admin socket.
/// Its functions may be called from any thread, concurrently; `osdkit_context_free` last.
pub struct osdkit_context {
    pub(crate) ctx: Context,
    asok_path: OnceLock<CString>,
    /// A handle on a hosted daemon's context (`osdkit_osd_context`): freeing it does not stop
    /// the context, whose life is the daemon's.
    borrowed: bool,
}

impl osdkit_context {
    /// A handle on `ctx`, owned by something else (a hosted daemon).
    pub(crate) fn borrowed(ctx: Context) -> osdkit_context {
        osdkit_context {
            ctx,
            asok_path: OnceLock::new(),
            borrowed: true,
        }
    }
}

/// Creates a context for entity `name` (`"osd.3"`, `"client.admin"`), reading the ceph.conf-style
/// file `conf_path` (may be NULL). Nothing runs until `osdkit_context_start`.
/// Returns 0, -EINVAL (bad name or arguments) or -ENOENT (no such conf file).
#[no_mangle]
pub extern "C" fn osdkit_context_new(
    name: *const c_char,
    conf_path: *const c_char,
    out_ctx: *mut *mut osdkit_context,
) -> c_int {
    guard(|| {
        if out_ctx.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let name = cstr(name, "name")?;
        let conf = opt_cstr(conf_path, "conf_path")?;
        let ctx = Context::new(name, conf.map(Path::new))?;
        let b = Box::new(osdkit_context {
            ctx,
            asok_path: OnceLock::new(),
            borrowed: false,
        });
        out(out_ctx, Box::into_raw(b), "out")?;
        Ok(0)
    })
}

/// Sets option `key` (Ceph's names: `admin_socket`, `run_dir`, `debug_ms`, ...) at the
/// command-line level. Works before and after start (observers are told).
/// Returns 0, -ENOENT (unknown option) or -EINVAL (bad value).
#[no_mangle]
pub extern "C" fn osdkit_context_set_option(
    ctx: *mut osdkit_context,
    key: *const c_char,
    value: *const c_char,
) -> c_int {
    guard(|| {
        let c = handle(ctx, "ctx")?;
        c.ctx.set_option(cstr(key, "key")?, cstr(value, "value")?)?;
        Ok(0)
    })
}

/// Copies the current value of `key` (metavariables expanded) into `buf` of `len` bytes,
/// NUL-terminated. Returns the value's length (without the NUL), -ENOENT for an unknown key, or
/// -ERANGE when `len` is too small (then nothing is written).
#[no_mangle]
pub extern "C" fn osdkit_context_get_option(
    ctx: *const osdkit_context,
    key: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    guard(|| {
        let c = handle(ctx, "ctx")?;
        let v = c.ctx.conf().get_val_str(cstr(key, "key")?)?;
        write_str(&v, buf, len)
    })
}

/// Starts the log thread, the admin socket (if `admin_socket` is set; daemons default to
/// `$run_dir/$cluster-$name.asok`) and the service thread.
/// Returns 0, -EEXIST (a live daemon owns the socket path), -ENAMETOOLONG, or another errno.
#[no_mangle]
pub extern "C" fn osdkit_context_start(ctx: *mut osdkit_context) -> c_int {
    guard(|| {
        handle(ctx, "ctx")?.ctx.start()?;
        Ok(0)
    })
}

/// The admin socket path, or NULL when not started or disabled. Owned by the context; valid
/// until `osdkit_context_free`.
#[no_mangle]
pub extern "C" fn osdkit_context_asok_path(ctx: *const osdkit_context) -> *const c_char {
    let mut r = std::ptr::null();
    guard_void(|| {
        let Ok(c) = handle(ctx, "ctx") else {
            set_last_error("ctx is NULL");
            return;
        };
        if let Some(p) = c.ctx.asok_path() {
            let s = c
                .asok_path
                .get_or_init(|| CString::new(p.to_string_lossy().as_bytes()).unwrap_or_default());
            r = s.as_ptr();
        }
    });
    r
}

/// Stops the admin socket, service and log threads; waits for an admin command in flight
/// (unless called from inside one). Idempotent.
#[no_mangle]
pub extern "C" fn osdkit_context_shutdown(ctx: *mut osdkit_context) -> c_int {
    guard(|| {
        handle(ctx, "ctx")?.ctx.shutdown();
        Ok(0)
    })
}

/// Writes one line to the context's log at Ceph level `level` (-1 error ... 20 most verbose)
/// in subsystem `subsys` (`"osd"`, `"ms"`, ...; NULL or unknown → `"none"`).
#[no_mangle]
pub extern "C" fn osdkit_log(
    ctx: *const osdkit_context,
    subsys: *const c_char,
    level: c_int,
    msg: *const c_char,
) -> c_int {
    guard(|| {
        let c = handle(ctx, "ctx")?;
        let sub = opt_cstr(subsys, "subsys")?
            .and_then(crate::common::subsys::index_of)
            .unwrap_or(0);
        let m = cstr(msg, "msg")?;
        if c.ctx.log().should_gather(sub, level) {
            c.ctx.log().submit(sub, level, m.to_string());
        }
        Ok(0)
    })
}

/// Shuts the context down (see `osdkit_context_shutdown`) and frees it. NULL is ignored.
/// Timers, finishers, throttles and perf counters made from it stay valid and must be freed too.
/// A handle from `osdkit_osd_context` / `osdkit_mon_context` is only released: that context
/// stops with its daemon.
#[no_mangle]
pub extern "C" fn osdkit_context_free(ctx: *mut osdkit_context) {
    free_handle(ctx, |b| {
        if !b.borrowed {
            b.ctx.shutdown()
        }
    });
}
