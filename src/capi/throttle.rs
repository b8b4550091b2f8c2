//! `osdkit_throttle_*`: Ceph's Throttle (FIFO counting semaphore; max 0 = unlimited).

use super::context::osdkit_context;
use super::{cstr, free_handle, guard, guard_i64, handle};
use crate::common::error::Error;
use crate::common::throttle::Throttle;
use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::Duration;

/// A Throttle (Ceph's): a budget of units taken with `get` and given back with `put`, waiters
/// served in FIFO order. Its functions may be called from any thread, concurrently;
/// `osdkit_throttle_free` last, with no thread waiting in it.
pub struct osdkit_throttle {
    t: Arc<Throttle>,
}

/// Creates a throttle of `max` units (0 = unlimited). `ctx` may be NULL; with a context its
/// counters appear as `throttle-<name>`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_throttle_new(
    ctx: *mut osdkit_context,
    name: *const c_char,
    max: u64,
    out_throttle: *mut *mut osdkit_throttle,
) -> c_int {
    guard(|| {
        let name = cstr(name, "name")?;
        if out_throttle.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let t = if ctx.is_null() {
            Throttle::new(name, max, None)
        } else {
            handle(ctx, "ctx")?.ctx.new_throttle(name, max)
        };
        super::out(out_throttle, Box::into_raw(Box::new(osdkit_throttle { t })), "out")?;
        Ok(0)
    })
}

/// Takes `c` units, waiting in FIFO order behind earlier waiters. Returns 1 if it waited, 0 if not.
#[no_mangle]
pub extern "C" fn osdkit_throttle_get(t: *mut osdkit_throttle, c: u64) -> c_int {
    guard(|| Ok(handle(t, "throttle")?.t.get(c, 0) as c_int))
}

/// As `osdkit_throttle_get`, giving up after `seconds`: -ETIMEDOUT (the place in line is left).
#[no_mangle]
pub extern "C" fn osdkit_throttle_get_timeout(t: *mut osdkit_throttle, c: u64, seconds: f64) -> c_int {
    guard(|| {
        let t = handle(t, "throttle")?;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(Error::inval("seconds must be >= 0"));
        }
        match t.t.get_timeout(c, Duration::from_secs_f64(seconds.min(1e9))) {
            Some(w) => Ok(w as c_int),
            None => Err(Error::new(
                libc::ETIMEDOUT,
                format!("throttle {} still full", t.t.name()),
            )),
        }
    })
}

/// Takes `c` units only if that needs no wait and nobody waits: 0, or -EAGAIN.
#[no_mangle]
pub extern "C" fn osdkit_throttle_get_or_fail(t: *mut osdkit_throttle, c: u64) -> c_int {
    guard(|| {
        let t = handle(t, "throttle")?;
        if t.t.get_or_fail(c) {
            Ok(0)
        } else {
            Err(Error::new(libc::EAGAIN, format!("throttle {} is full", t.t.name())))
        }
    })
}

/// Takes `c` units without waiting (may go over max). Returns 0.
#[no_mangle]
pub extern "C" fn osdkit_throttle_take(t: *mut osdkit_throttle, c: u64) -> c_int {
    guard(|| {
        handle(t, "throttle")?.t.take(c);
        Ok(0)
    })
}

/// Returns `c` units and wakes the first waiter. Returns 0.
#[no_mangle]
pub extern "C" fn osdkit_throttle_put(t: *mut osdkit_throttle, c: u64) -> c_int {
    guard(|| {
        handle(t, "throttle")?.t.put(c);
        Ok(0)
    })
}

/// Changes max (0 = unlimited) and wakes the first waiter. Returns 0.
#[no_mangle]
pub extern "C" fn osdkit_throttle_reset_max(t: *mut osdkit_throttle, max: u64) -> c_int {
    guard(|| {
        handle(t, "throttle")?.t.reset_max(max);
        Ok(0)
    })
}

/// Units currently taken, or -EINVAL for NULL (Ceph's `Throttle::get_current`, an int64_t).
#[no_mangle]
pub extern "C" fn osdkit_throttle_current(t: *const osdkit_throttle) -> i64 {
    throttle_value(t, |t| t.get_current())
}

/// The limit (0 = unlimited), or -EINVAL for NULL (Ceph's `Throttle::get_max`).
#[no_mangle]
pub extern "C" fn osdkit_throttle_max(t: *const osdkit_throttle) -> i64 {
    throttle_value(t, |t| t.get_max())
}

/// One reading of `t` as C's int64_t; a negative errno for a NULL handle.
fn throttle_value(t: *const osdkit_throttle, f: impl FnOnce(&Throttle) -> u64) -> i64 {
    guard_i64(|| Ok(i64::try_from(f(&handle(t, "throttle")?.t)).unwrap_or(i64::MAX)))
}

/// Number of requests waiting in line (blocked in `osdkit_throttle_get` or
/// `osdkit_throttle_get_timeout`), or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_throttle_waiters(t: *const osdkit_throttle) -> c_int {
    guard(|| Ok(handle(t, "throttle")?.t.waiters() as c_int))
}

/// Frees the throttle. NULL is ignored. No thread may be waiting in it.
#[no_mangle]
pub extern "C" fn osdkit_throttle_free(t: *mut osdkit_throttle) {
    free_handle(t, |_| {});
}
