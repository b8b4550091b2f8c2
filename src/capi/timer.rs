//! `osdkit_timer_*`: Ceph's SafeTimer for C.

use super::asok::osdkit_drop_cb;
use super::context::osdkit_context;
use super::{cstr, free_handle, guard, handle, UserData};
use crate::common::error::Error;
use crate::timer::SafeTimer;
use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

/// A SafeTimer: one thread (`safe_timer`) running events in deadline order, equal deadlines
/// in the order they were added. Its functions may be called from any thread, concurrently
/// (from its own events too); `osdkit_timer_free` last, not from an event.
pub struct osdkit_timer {
    timer: SafeTimer,
}

/// A timer event. Runs on the `safe_timer` thread, one event at a time (never concurrently).
/// While it runs, `osdkit_timer_cancel` from another thread waits for it to return; from inside
/// the callback, the timer's own functions may be called (add, cancel, shutdown).
pub type osdkit_timer_cb = Option<extern "C" fn(user: *mut c_void)>;

/// Creates and starts a timer. `ctx` may be NULL; with a context its counters appear in
/// `perf dump` as `safe_timer-<name>`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_timer_new(
    ctx: *mut osdkit_context,
    name: *const c_char,
    out_timer: *mut *mut osdkit_timer,
) -> c_int {
    guard(|| {
        let name = cstr(name, "name")?;
        if out_timer.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let timer = if ctx.is_null() {
            SafeTimer::new(name, None)
        } else {
            handle(ctx, "ctx")?.ctx.new_timer(name)
        };
        timer.init().map_err(|e| Error::io(e, "starting safe_timer thread"))?;
        super::out(out_timer, Box::into_raw(Box::new(osdkit_timer { timer })), "out")?;
        Ok(0)
    })
}

/// Schedules `cb(user)` after `seconds` (>= 0, finite). `drop(user)` (may be NULL) is called
/// once after the callback ran or when the event is cancelled. `*id_out` (may be NULL) gets the
/// event id. Returns 0, -EINVAL (then `drop` is not called and `user` stays the caller's), or
/// -ESHUTDOWN (timer shut down: then `drop` is called at once).
#[no_mangle]
pub extern "C" fn osdkit_timer_add_after(
    t: *mut osdkit_timer,
    seconds: f64,
    cb: osdkit_timer_cb,
    user: *mut c_void,
    drop: osdkit_drop_cb,
    id_out: *mut u64,
) -> c_int {
    guard(|| {
        let t = handle(t, "timer")?;
        let cb = cb.ok_or_else(|| Error::inval("cb is NULL"))?;
        if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
            return Err(Error::inval(format!("seconds {seconds} is not a delay")));
        }
        let ud = UserData::new(user, drop);
        let id = t
            .timer
            .add_event_after(Duration::from_secs_f64(seconds), move || {
                let ud = ud;
                cb(ud.user);
            })
            .ok_or_else(|| Error::new(libc::ESHUTDOWN, "timer is shut down"))?;
        if !id_out.is_null() {
            super::out(id_out, id, "id_out")?;
        }
        Ok(0)
    })
}

/// Cancels event `id`: 0 if it was pending (it will never run; its `drop` was called), -ENOENT
/// if it already ran or was cancelled.
#[no_mangle]
pub extern "C" fn osdkit_timer_cancel(t: *mut osdkit_timer, id: u64) -> c_int {
    guard(|| {
        if handle(t, "timer")?.timer.cancel_event(id) {
            Ok(0)
        } else {
            Err(Error::noent(format!("timer event {id} is not pending")))
        }
    })
}

/// Cancels every pending event. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_timer_cancel_all(t: *mut osdkit_timer) -> c_int {
    guard(|| {
        handle(t, "timer")?.timer.cancel_all_events();
        Ok(0)
    })
}

/// Number of pending events.
#[no_mangle]
pub extern "C" fn osdkit_timer_pending(t: *const osdkit_timer) -> c_int {
    guard(|| Ok(handle(t, "timer")?.timer.pending() as c_int))
}

/// Cancels everything and stops the thread; no event runs afterwards. Idempotent.
#[no_mangle]
pub extern "C" fn osdkit_timer_shutdown(t: *mut osdkit_timer) -> c_int {
    guard(|| {
        handle(t, "timer")?.timer.shutdown();
        Ok(0)
    })
}

/// Shuts the timer down and frees it. NULL is ignored. Not from inside one of its callbacks.
#[no_mangle]
pub extern "C" fn osdkit_timer_free(t: *mut osdkit_timer) {
    free_handle(t, |b| b.timer.shutdown());
}
