//! `osdkit_completion_*` and `osdkit_ioctx_aio_*`: async object calls and the completion
//! objects that report them, as librados' `rados_completion_t` and `rados_aio_*`.
//!
//! A completion is made by the caller, handed to exactly one async call, and released by the
//! caller whenever it likes (the library keeps its own reference until the call completes).
//! When the call completes the library stores the return value, runs the callback (if any) on
//! its own thread, then marks the completion complete and wakes `osdkit_completion_wait`.

use super::rados::{check_read_len, copy_out, io_oid, osdkit_ioctx, write_stat};
use super::{bytes_arg, guard, guard_void, handle, out, SendPtr, OSDKIT_EPANIC};
use crate::common::error::Error;
use crate::types::osd_op::{MOsdOpReply, ObjectStat, OsdOp};
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Called once when the async call a completion was given to completes
/// (`rados_callback_t`), with the completion and the `user` pointer given at its creation. It
/// runs on a library thread: the `msgr-worker-N` thread that received the reply, the
/// `objecter_timer` thread for a timeout, or the thread calling `osdkit_rados_shutdown` for
/// calls still in flight then (-ESHUTDOWN). Callbacks may run concurrently with each other.
/// Inside, `osdkit_completion_get_return_value` has the result; the callback must not block,
/// must not wait on its own completion and must not shut down the cluster handle. It may
/// release the completion. No library lock is held while it runs.
pub type osdkit_callback_t = Option<extern "C" fn(comp: *mut osdkit_completion, user: *mut c_void)>;

/// The result of one async call (librados' `rados_completion_t`). Thread-safe: it may be
/// waited on and polled from any thread.
pub struct osdkit_completion {
    st: Mutex<CompletionState>,
    cv: Condvar,
    cb: osdkit_callback_t,
    user: SendPtr<c_void>,
}

#[derive(Default)]
struct CompletionState {
    /// Given to a call; a completion reports one call only.
    armed: bool,
    rval: Option<c_int>,
    /// The callback has returned.
    complete: bool,
}

impl osdkit_completion {
    /// Stores the call's result, runs the callback, then wakes the waiters.
    pub(crate) fn finish(self: Arc<Self>, rval: c_int) {
        self.st.lock().rval = Some(rval);
        if let Some(cb) = self.cb {
            let me = Arc::as_ptr(&self).cast_mut();
            let user = self.user;
            if catch_unwind(AssertUnwindSafe(|| cb(me, user.0))).is_err() {
                log::error!(target: "client", "a C completion callback unwound");
            }
        }
        self.st.lock().complete = true;
        self.cv.notify_all();
    }
}

/// Takes a library reference on completion `c` for one call; -EINVAL if it is NULL or was
/// already given to a call.
pub(crate) fn arm(c: *mut osdkit_completion) -> Result<Arc<osdkit_completion>, Error> {
    let h = handle(c.cast_const(), "completion")?;
    let mut st = h.st.lock();
    if st.armed {
        return Err(Error::inval(
            "the completion was already given to a call (make one per call)",
        ));
    }
    st.armed = true;
    // SAFETY: `c` came from `Arc::into_raw` in `osdkit_completion_create` and the caller's
    // reference is live (it is not released before this call returns, per the header), so
    // the count is at least one; the new reference is owned by the returned Arc.
    unsafe {
        Arc::increment_strong_count(c.cast_const());
        Ok(Arc::from_raw(c.cast_const()))
    }
}

/// Sends `ops` on `oid` with completion `comp`; `on_reply` turns a successful reply into the
/// return value (it runs on the completing thread).
pub(crate) fn submit(
    io: &osdkit_ioctx,
    oid: &str,
    comp: *mut osdkit_completion,
    ops: Vec<OsdOp>,
    on_reply: impl FnOnce(&MOsdOpReply) -> c_int + Send + 'static,
    on_error: impl FnOnce(c_int) + Send + 'static,
) -> Result<c_int, Error> {
    let comp = arm(comp)?;
    io.io().aio_operate(
        oid,
        ops,
        Box::new(move |r| {
            let rval = match r {
                Ok(reply) => catch_unwind(AssertUnwindSafe(|| on_reply(&reply))).unwrap_or(-OSDKIT_EPANIC),
                Err(e) => {
                    let _ = catch_unwind(AssertUnwindSafe(|| on_error(-e.errno)));
                    -e.errno
                }
            };
            comp.finish(rval);
        }),
    );
    Ok(0)
}

// ------------------------------------------------------------------------------------------
// Completions

/// Makes a completion (`rados_aio_create_completion2`); `cb` (may be NULL) runs when the call
/// it is given to completes, with `user`. Release with `osdkit_completion_release`. Returns 0
/// or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_completion_create(
    cb: osdkit_callback_t,
    user: *mut c_void,
    out_comp: *mut *mut osdkit_completion,
) -> c_int {
    guard(|| {
        let c = Arc::new(osdkit_completion {
            st: Mutex::new(CompletionState::default()),
            cv: Condvar::new(),
            cb,
            user: SendPtr(user),
        });
        if out_comp.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        out(out_comp, Arc::into_raw(c).cast_mut(), "out")?;
        Ok(0)
    })
}

/// Waits until the call completed and its callback returned (`rados_aio_wait_for_complete`).
/// Returns 0, or -EINVAL (NULL, or the completion was never given to a call).
#[no_mangle]
pub extern "C" fn osdkit_completion_wait(c: *mut osdkit_completion) -> c_int {
    wait(c, None)
}

/// As `osdkit_completion_wait`, for at most `timeout_ms`: -ETIMEDOUT if it has not completed
/// by then.
#[no_mangle]
pub extern "C" fn osdkit_completion_wait_timeout(c: *mut osdkit_completion, timeout_ms: u32) -> c_int {
    wait(c, Some(Duration::from_millis(u64::from(timeout_ms))))
}

fn wait(c: *mut osdkit_completion, timeout: Option<Duration>) -> c_int {
    guard(|| {
        let h = handle(c.cast_const(), "completion")?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = h.st.lock();
        if !st.armed {
            return Err(Error::inval("the completion was not given to any call"));
        }
        while !st.complete {
            match deadline {
                None => h.cv.wait(&mut st),
                Some(d) => {
                    if h.cv.wait_until(&mut st, d).timed_out() && !st.complete {
                        return Err(Error::new(libc::ETIMEDOUT, "the call has not completed yet"));
                    }
                }
            }
        }
        Ok(0)
    })
}

/// 1 once the call completed and its callback returned, else 0 (`rados_aio_is_complete`);
/// -EINVAL for NULL.
#[no_mangle]
pub extern "C" fn osdkit_completion_is_complete(c: *mut osdkit_completion) -> c_int {
    guard(|| Ok(c_int::from(handle(c.cast_const(), "completion")?.st.lock().complete)))
}

/// The call's return value (`rados_aio_get_return_value`): 0 or a negative errno, or for a
/// read the number of bytes read. -EINPROGRESS before the call completed (it is set before
/// the callback runs); -EINVAL for NULL.
#[no_mangle]
pub extern "C" fn osdkit_completion_get_return_value(c: *mut osdkit_completion) -> c_int {
    guard(|| {
        handle(c.cast_const(), "completion")?
            .st
            .lock()
            .rval
            .ok_or_else(|| Error::new(libc::EINPROGRESS, "the call has not completed"))
    })
}

/// Drops the caller's reference (`rados_aio_release`); the library keeps its own until the
/// call completes, so this may come before that. NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_completion_release(c: *mut osdkit_completion) {
    if c.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: `c` came from `Arc::into_raw` in `osdkit_completion_create` and this is the
        // caller's one release of that reference (header contract).
        drop(unsafe { Arc::from_raw(c.cast_const()) });
    });
}

// ------------------------------------------------------------------------------------------
// Async object calls

fn aio_write_op(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    comp: *mut osdkit_completion,
    op: impl FnOnce(Bytes) -> OsdOp,
    buf: *const c_void,
    len: usize,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        let data = Bytes::copy_from_slice(bytes_arg(buf, len, "buf")?);
        submit(io, oid, comp, vec![op(data)], |_| 0, |_| {})
    })
}

/// Writes `len` bytes at `buf` at offset `off` of object `oid` (`rados_aio_write`). The data
/// is copied before this returns. Each `osdkit_ioctx_aio_*` returns 0 once the call is sent
/// (then `comp` completes exactly once), or a negative errno without touching `comp`: -EINVAL
/// for a bad argument or a completion already used.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_aio_write(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    comp: *mut osdkit_completion,
    buf: *const c_void,
    len: usize,
    off: u64,
) -> c_int {
    aio_write_op(io, oid, comp, |d| OsdOp::write(off, d), buf, len)
}

/// Replaces object `oid`'s data (`rados_aio_write_full`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_aio_write_full(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    comp: *mut osdkit_completion,
    buf: *const c_void,
    len: usize,
) -> c_int {
    aio_write_op(io, oid, comp, OsdOp::writefull, buf, len)
}

/// Appends to object `oid` (`rados_aio_append`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_aio_append(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    comp: *mut osdkit_completion,
    buf: *const c_void,
    len: usize,
) -> c_int {
    aio_write_op(io, oid, comp, OsdOp::append, buf, len)
}

/// Reads up to `len` bytes from offset `off` of object `oid` into `buf` (`rados_aio_read`).
/// `buf` must stay valid until the completion completes; its return value is the number of
/// bytes read.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_aio_read(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    comp: *mut osdkit_completion,
    buf: *mut c_void,
    len: usize,
    off: u64,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        check_read_len(buf, len)?;
        let dst = SendPtr(buf);
        submit(
            io,
            oid,
            comp,
            vec![OsdOp::read(off, len as u64)],
            move |r| {
                let dst = dst;
                match r.ops.first() {
                    Some(op) if len > 0 => copy_out(&op.outdata, dst.0, len),
                    _ => 0,
                }
            },
            |_| {},
        )
    })
}

/// Size and modification time of object `oid` (`rados_aio_stat`), written when the
/// completion completes successfully; the out-pointers may be NULL and must stay valid until
/// then.
#[no_mangle]
pub extern "C" fn osdkit_ioctx_aio_stat(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    comp: *mut osdkit_completion,
    psize: *mut u64,
    pmtime_sec: *mut i64,
    pmtime_nsec: *mut u32,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        let (size, sec, nsec) = (SendPtr(psize), SendPtr(pmtime_sec), SendPtr(pmtime_nsec));
        submit(
            io,
            oid,
            comp,
            vec![OsdOp::stat()],
            move |r| {
                let (size, sec, nsec) = (size, sec, nsec);
                match r.ops.first().map(|op| ObjectStat::decode(&op.outdata)) {
                    Some(Ok(st)) => {
                        write_stat(&st, size.0, sec.0, nsec.0);
                        0
                    }
                    _ => -libc::EIO,
                }
            },
            |_| {},
        )
    })
}

/// Removes object `oid` (`rados_aio_remove`).
#[no_mangle]
pub extern "C" fn osdkit_ioctx_aio_remove(
    io: *const osdkit_ioctx,
    oid: *const c_char,
    comp: *mut osdkit_completion,
) -> c_int {
    guard(|| {
        let (io, oid) = io_oid(io, oid)?;
        submit(io, oid, comp, vec![OsdOp::delete()], |_| 0, |_| {})
    })
}
