//! `osdkit_message_*`: building and reading messages from C (type, priority, tid, the front,
//! middle and data segments), with data lent without a copy (`osdkit_message_set_data_borrowed`).

use super::connection::{new_conn, osdkit_connection};
use super::{bytes_arg, free_handle, guard, handle, out, take_handle};
use crate::common::error::Error;
use crate::msgr::message::Message;
use bytes::Bytes;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Releases a buffer given to `osdkit_message_set_data_borrowed`: called exactly once with its
/// `user`, when no message uses the buffer any more. This is a destructor, not an event: it
/// may run on any thread (the one freeing the last message, a `msgr-worker-N` after the bytes
/// were written, `ms_dispatch`). The messenger drops messages outside its session locks, but
/// keep the contract narrow all the same: only release the buffer (free, munmap, drop a
/// reference), do not call osdkit and do not block.
pub type osdkit_data_free_cb = Option<extern "C" fn(user: *mut c_void)>;

/// A message: a type, a priority, a transaction id and three payload segments (front, middle,
/// data). Not thread-safe: one thread at a time (it may move between threads).
pub struct osdkit_message {
    pub(super) m: Message,
}

/// A C buffer lent to a message's data segment; `free_fn(user)` when the last `Bytes` using it
/// is dropped.
struct CBuffer {
    ptr: *const u8,
    len: usize,
    free_fn: osdkit_data_free_cb,
    user: *mut c_void,
}

// SAFETY: the header requires the buffer to stay valid and unchanged until free_fn, from any
// thread, and free_fn to be callable from any thread; the library only reads the bytes.
unsafe impl Send for CBuffer {}

impl AsRef<[u8]> for CBuffer {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: non-NULL (checked at creation when len > 0), `len` readable bytes that stay
        // valid and unchanged until free_fn is called, which is in our Drop.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for CBuffer {
    fn drop(&mut self) {
        if let Some(f) = self.free_fn.take() {
            let user = self.user;
            if catch_unwind(AssertUnwindSafe(|| f(user))).is_err() {
                log::error!(target: "ms", "a C data free callback unwound");
            }
        }
    }
}

/// A copy of `len` bytes at `buf` (NULL allowed when `len` is 0).
fn copy_in(buf: *const c_void, len: usize, what: &str) -> Result<Bytes, Error> {
    bytes_arg(buf, len, what).map(Bytes::copy_from_slice)
}

fn msg_mut<'a>(p: *mut osdkit_message) -> Result<&'a mut osdkit_message, Error> {
    // SAFETY: non-NULL message handles come from this library (Box::into_raw) and stay valid
    // until osdkit_message_free or until consumed by a send; the header says a message is used
    // by one thread at a time, so this is the only reference during the call.
    unsafe { p.as_mut() }.ok_or_else(|| Error::inval("msg is NULL"))
}

/// Takes back a message handle (consumed by a send). NULL gives None.
pub(super) fn take_msg(p: *mut osdkit_message) -> Option<Message> {
    take_handle(p).map(|b| b.m)
}

/// What goes on the wire for `m`: its type, priority, tid, versions and segments (moved, not
/// copied). Receive-side state (sequence number, connection, throttle shares) is left behind,
/// so a received message can be sent on.
pub(super) fn outgoing(mut m: Message) -> Message {
    let mut o = Message::new(m.ty, std::mem::take(&mut m.front));
    o.middle = std::mem::take(&mut m.middle);
    o.data = std::mem::take(&mut m.data);
    o.priority = m.priority;
    o.tid = m.tid;
    o.version = m.version;
    o.compat_version = m.compat_version;
    o
}

/// A new message of type `msg_type` (Ceph's `CEPH_MSG_*` numbering; application types are
/// free to choose), priority OSDKIT_MSG_PRIO_DEFAULT, tid 0, empty segments. Returns 0 or
/// -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_new(msg_type: u16, out_msg: *mut *mut osdkit_message) -> c_int {
    guard(|| {
        if out_msg.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let b = Box::new(osdkit_message {
            m: Message::new(msg_type, Bytes::new()),
        });
        out(out_msg, Box::into_raw(b), "out")?;
        Ok(0)
    })
}

/// Frees a message (its borrowed data is released when no sent copy uses it any more). NULL is
/// ignored. Not for a message already consumed by a send.
#[no_mangle]
pub extern "C" fn osdkit_message_free(msg: *mut osdkit_message) {
    free_handle(msg, |_| {});
}

/// Sets the message type (e.g. to send a received message back as a reply, without copying its
/// payload). Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_set_type(msg: *mut osdkit_message, msg_type: u16) -> c_int {
    guard(|| {
        msg_mut(msg)?.m.ty = msg_type;
        Ok(0)
    })
}

/// A new message with the same type, priority, tid and segments (shared, not copied: a
/// borrowed data buffer is released only when both are gone), without the connection, in
/// `*out_msg`. For sending one payload to several peers. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_clone(msg: *const osdkit_message, out_msg: *mut *mut osdkit_message) -> c_int {
    guard(|| {
        let m = handle(msg, "msg")?;
        if out_msg.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let b = Box::new(osdkit_message {
            m: m.m.clone_for_send(),
        });
        out(out_msg, Box::into_raw(b), "out")?;
        Ok(0)
    })
}

/// Sets the priority (OSDKIT_MSG_PRIO_*, 0..255 in practice). Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_set_priority(msg: *mut osdkit_message, priority: u16) -> c_int {
    guard(|| {
        msg_mut(msg)?.m.priority = priority;
        Ok(0)
    })
}

/// Sets the transaction id. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_set_tid(msg: *mut osdkit_message, tid: u64) -> c_int {
    guard(|| {
        msg_mut(msg)?.m.tid = tid;
        Ok(0)
    })
}

/// Sets the front segment (small headers) to a copy of `len` bytes at `buf` (NULL allowed
/// when `len` is 0). Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_set_front(msg: *mut osdkit_message, buf: *const c_void, len: usize) -> c_int {
    guard(|| {
        let m = msg_mut(msg)?;
        m.m.front = copy_in(buf, len, "buf")?;
        Ok(0)
    })
}

/// Sets the middle segment to a copy of `len` bytes at `buf`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_set_middle(msg: *mut osdkit_message, buf: *const c_void, len: usize) -> c_int {
    guard(|| {
        let m = msg_mut(msg)?;
        m.m.middle = copy_in(buf, len, "buf")?;
        Ok(0)
    })
}

/// Sets the data segment (bulk data) to a copy of `len` bytes at `buf`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_set_data(msg: *mut osdkit_message, buf: *const c_void, len: usize) -> c_int {
    guard(|| {
        let m = msg_mut(msg)?;
        m.m.data = copy_in(buf, len, "buf")?;
        Ok(0)
    })
}

/// Sets the data segment to the `len` bytes at `buf` without copying them: the library reads
/// them in place (up to the socket) and calls `free_fn(user)` exactly once when nothing uses
/// them any more — after the message (and every copy the messenger made of it, e.g. a
/// lossless session's until acknowledged) is gone; see `osdkit_data_free_cb` for where it
/// runs. The buffer must stay valid and unchanged until then. `free_fn` may be NULL only for
/// memory that outlives every message (static storage). Data set before is released.
/// Returns 0 or -EINVAL (then `free_fn` is not called and the buffer stays the caller's).
#[no_mangle]
pub extern "C" fn osdkit_message_set_data_borrowed(
    msg: *mut osdkit_message,
    buf: *const c_void,
    len: usize,
    free_fn: osdkit_data_free_cb,
    user: *mut c_void,
) -> c_int {
    guard(|| {
        let m = msg_mut(msg)?;
        if buf.is_null() && len > 0 {
            return Err(Error::inval(format!("buf is NULL with length {len}")));
        }
        if len > isize::MAX as usize {
            return Err(Error::inval(format!("length {len} is too large")));
        }
        let owner = CBuffer {
            ptr: buf.cast::<u8>(),
            len,
            free_fn,
            user,
        };
        m.m.data = Bytes::from_owner(owner);
        Ok(0)
    })
}

/// The message type, or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_type(msg: *const osdkit_message) -> c_int {
    guard(|| Ok(c_int::from(handle(msg, "msg")?.m.ty)))
}

/// The priority, or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_priority(msg: *const osdkit_message) -> c_int {
    guard(|| Ok(c_int::from(handle(msg, "msg")?.m.priority)))
}

/// The transaction id, in `*tid_out`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_tid(msg: *const osdkit_message, tid_out: *mut u64) -> c_int {
    guard(|| {
        let m = handle(msg, "msg")?;
        out(tid_out, m.m.tid, "tid_out")?;
        Ok(0)
    })
}

fn segment(
    msg: *const osdkit_message,
    ptr_out: *mut *const u8,
    len_out: *mut usize,
    pick: fn(&Message) -> &Bytes,
) -> c_int {
    guard(|| {
        let m = handle(msg, "msg")?;
        if ptr_out.is_null() || len_out.is_null() {
            return Err(Error::inval("ptr_out or len_out is NULL"));
        }
        let b = pick(&m.m);
        let p = if b.is_empty() { std::ptr::null() } else { b.as_ptr() };
        out(ptr_out, p, "ptr_out")?;
        out(len_out, b.len(), "len_out")?;
        Ok(0)
    })
}

/// Lends the front segment: `*ptr_out` (NULL when empty) and `*len_out`, valid until the
/// message is freed, consumed by a send, or its front is set again. Not copied. Returns 0 or
/// -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_front(
    msg: *const osdkit_message,
    ptr_out: *mut *const u8,
    len_out: *mut usize,
) -> c_int {
    segment(msg, ptr_out, len_out, |m| &m.front)
}

/// Lends the middle segment, as `osdkit_message_front`.
#[no_mangle]
pub extern "C" fn osdkit_message_middle(
    msg: *const osdkit_message,
    ptr_out: *mut *const u8,
    len_out: *mut usize,
) -> c_int {
    segment(msg, ptr_out, len_out, |m| &m.middle)
}

/// Lends the data segment, as `osdkit_message_front` (a received data segment is the bytes
/// as read from the socket; a borrowed one is the caller's buffer itself).
#[no_mangle]
pub extern "C" fn osdkit_message_data(
    msg: *const osdkit_message,
    ptr_out: *mut *const u8,
    len_out: *mut usize,
) -> c_int {
    segment(msg, ptr_out, len_out, |m| &m.data)
}

/// A new handle to the connection a received message arrived on (to reply on), in
/// `*out_conn`. Returns 0, -ENOENT (a message made locally or sent to self has none) or
/// -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_message_connection(
    msg: *const osdkit_message,
    out_conn: *mut *mut osdkit_connection,
) -> c_int {
    guard(|| {
        let m = handle(msg, "msg")?;
        if out_conn.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let c =
            m.m.conn
                .clone()
                .ok_or_else(|| Error::noent("the message did not arrive on a connection"))?;
        out(out_conn, new_conn(c), "out")?;
        Ok(0)
    })
}
