//! `osdkit_finisher_*`: Ceph's Finisher for C.

use super::asok::osdkit_drop_cb;
use super::context::osdkit_context;
use super::{cstr, free_handle, guard, handle, UserData};
use crate::common::error::Error;
use crate::finisher::Finisher;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

/// A Finisher: one thread (`finisher`) completing queued callbacks in FIFO order. Its functions
/// may be called from any thread, concurrently; `osdkit_finisher_free` last.
pub struct osdkit_finisher {
    f: Arc<Finisher>,
}

/// A queued completion, called with the `r` it was queued with, on the finisher thread, one
/// at a time in queue order. No library lock is held during the call.
pub type osdkit_finisher_cb = Option<extern "C" fn(user: *mut c_void, r: c_int)>;

/// Creates and starts a finisher. `ctx` may be NULL; with a context its counters appear in
/// `perf dump` as `finisher-<name>`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_finisher_new(
    ctx: *mut osdkit_context,
    name: *const c_char,
    out_finisher: *mut *mut osdkit_finisher,
) -> c_int {
    guard(|| {
        let name = cstr(name, "name")?;
        if out_finisher.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let f = if ctx.is_null() {
            Finisher::new(name, "finisher", None)
        } else {
            handle(ctx, "ctx")?.ctx.new_finisher(name)
        };
        f.start().map_err(|e| Error::io(e, "starting finisher thread"))?;
        super::out(out_finisher, Box::into_raw(Box::new(osdkit_finisher { f })), "out")?;
        Ok(0)
    })
}

/// Queues `cb(user, r)`. `drop(user)` (may be NULL) is called once after the callback ran, or
/// when the finisher stops with it still queued. Returns 0, -EINVAL (then `drop` is not called
/// and `user` stays the caller's) or -ESHUTDOWN (finisher stopped: `drop` is called at once).
#[no_mangle]
pub extern "C" fn osdkit_finisher_queue(
    f: *mut osdkit_finisher,
    cb: osdkit_finisher_cb,
    user: *mut c_void,
    drop: osdkit_drop_cb,
    r: c_int,
) -> c_int {
    guard(|| {
        let f = handle(f, "finisher")?;
        let cb = cb.ok_or_else(|| Error::inval("cb is NULL"))?;
        let ud = UserData::new(user, drop);
        if f.f.is_stopped() {
            return Err(Error::new(
                libc::ESHUTDOWN,
                format!("finisher {} is stopped", f.f.name()),
            ));
        }
        f.f.queue(
            move |r| {
                let ud = ud;
                cb(ud.user, r);
            },
            r,
        );
        Ok(0)
    })
}

/// Blocks until the queue is empty and no callback is running. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_finisher_wait_for_empty(f: *mut osdkit_finisher) -> c_int {
    guard(|| {
        handle(f, "finisher")?.f.wait_for_empty();
        Ok(0)
    })
}

/// Stops the thread. Callbacks the worker already took run; those queued after are dropped
/// (their `drop` called) unrun, as in Ceph: call wait_for_empty first to drain. Idempotent.
#[no_mangle]
pub extern "C" fn osdkit_finisher_stop(f: *mut osdkit_finisher) -> c_int {
    guard(|| {
        handle(f, "finisher")?.f.stop();
        Ok(0)
    })
}

/// Stops and frees the finisher. NULL is ignored. Not from inside one of its callbacks.
#[no_mangle]
pub extern "C" fn osdkit_finisher_free(f: *mut osdkit_finisher) {
    free_handle(f, |b| b.f.stop());
}
