//! `osdkit_connection_*`: a session with a peer, for C. Handles are references: several may
//! name one connection, each released with `osdkit_connection_free`.

use super::message::{osdkit_message, outgoing, take_msg};
use super::{free_handle, guard, guard_i64, handle, out, write_str};
use crate::common::error::Error;
use crate::msgr::connection::ConnectionRef;
use std::ffi::{c_char, c_int};

/// A reference to one session with a peer. Each handle is owned by whoever received it and is
/// released with `osdkit_connection_free`; several handles may name the same connection. The
/// handle stays valid after the connection closes (sends then fail with -ENOTCONN) and after
/// its messenger is freed. Its functions may be called from any thread.
pub struct osdkit_connection {
    pub(super) c: ConnectionRef,
}

pub(super) fn new_conn(c: ConnectionRef) -> *mut osdkit_connection {
    Box::into_raw(Box::new(osdkit_connection { c }))
}

/// Queues `msg` on the connection; the owning worker thread frames and writes it (a lossless
/// session replays it after a fault until the peer acknowledges it). `msg` is consumed in
/// every case, also on failure. A received message may be sent on as it is (its payload is
/// not copied). Returns 0, -ENOTCONN (the connection was marked down, or a lossy session
/// faulted) or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_connection_send(conn: *const osdkit_connection, msg: *mut osdkit_message) -> c_int {
    let owned = take_msg(msg);
    guard(move || {
        let c = handle(conn, "conn")?;
        let msg = owned.ok_or_else(|| Error::inval("msg is NULL"))?;
        c.c.send_message(outgoing(msg))?;
        Ok(0)
    })
}

/// Asks for a KEEPALIVE2 to be sent on the connection. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_connection_send_keepalive(conn: *const osdkit_connection) -> c_int {
    guard(|| {
        handle(conn, "conn")?.c.send_keepalive();
        Ok(0)
    })
}

/// Closes the connection (Ceph's `mark_down`): queued messages are dropped, no RESET event is
/// delivered; later sends fail with -ENOTCONN. The handle stays valid. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_connection_mark_down(conn: *const osdkit_connection) -> c_int {
    guard(|| {
        handle(conn, "conn")?.c.mark_down();
        Ok(0)
    })
}

/// 1 if the session is open (handshake done, not faulted or closed), 0 if not, -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_connection_is_connected(conn: *const osdkit_connection) -> c_int {
    guard(|| Ok(c_int::from(handle(conn, "conn")?.c.is_connected())))
}

/// The connection's id: unique in the process and positive; -EINVAL for a NULL handle.
#[no_mangle]
pub extern "C" fn osdkit_connection_id(conn: *const osdkit_connection) -> i64 {
    guard_i64(|| i64::try_from(handle(conn, "conn")?.c.id()).map_err(|_| Error::new(libc::EOVERFLOW, "connection id")))
}

/// The peer's entity type, OSDKIT_ENTITY_TYPE_* (for an incoming connection, what the peer
/// announced), or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_connection_peer_type(conn: *const osdkit_connection) -> c_int {
    guard(|| Ok(c_int::from(handle(conn, "conn")?.c.peer_type())))
}

/// Copies the peer's address (`"v2:127.0.0.1:6800/1234"`: the address connected to, or the
/// one an incoming peer announced) NUL-terminated into `buf` of `len` bytes. Returns its
/// length, -ERANGE (nothing written; 128 bytes always suffice) or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_connection_peer_addr(conn: *const osdkit_connection, buf: *mut c_char, len: usize) -> c_int {
    guard(|| {
        let c = handle(conn, "conn")?;
        write_str(&c.c.peer_addr().to_string(), buf, len)
    })
}

/// A new handle to the same connection (to keep one a callback only lent). Returns 0 or
/// -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_connection_clone(
    conn: *const osdkit_connection,
    out_conn: *mut *mut osdkit_connection,
) -> c_int {
    guard(|| {
        let c = handle(conn, "conn")?;
        if out_conn.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        out(out_conn, new_conn(c.c.clone()), "out")?;
        Ok(0)
    })
}

/// Releases a connection handle (the connection itself stays open: close it with
/// `osdkit_connection_mark_down`). NULL is ignored. Never on a handle a callback lent.
#[no_mangle]
pub extern "C" fn osdkit_connection_free(conn: *mut osdkit_connection) {
    free_handle(conn, |_| {});
}
