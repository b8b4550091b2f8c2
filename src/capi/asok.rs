//! `osdkit_asok_*`: admin socket commands implemented in C, and requests to any admin socket.

use super::context::osdkit_context;
use super::{cstr, guard, handle, out, to_c_string, UserData};
use crate::asok::client::AdminSocketClient;
use crate::asok::Request;
use crate::common::error::Error;
use crate::common::formatter::Format;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

/// Where a command callback puts its reply (or its error text when it returns < 0). Lent to
/// the callback for that call only, on the `admin_socket` thread: do not keep it or pass it
/// to another thread.
pub struct osdkit_asok_reply {
    data: Vec<u8>,
}

/// An admin socket command implemented in C.
///
/// Called on the `admin_socket` thread for requests arriving on the socket, or on the thread
/// calling `osdkit_asok_execute`; so calls are concurrent only if the application itself calls
/// `osdkit_asok_execute` from several threads. `prefix`, `args_json` (the request's named
/// arguments as one JSON object, e.g. `{"msg":"hello"}`), `format` (`"json"` or `"json-pretty"`)
/// and `reply` are borrowed for the call only. Return >= 0 for success (the reply is what
/// `osdkit_asok_reply_set` stored, possibly empty) or a negative errno (the reply text becomes
/// the reason after Ceph's `ERROR: (errno) ...` header). No library lock is held during the call;
/// the callback may call any osdkit function except freeing this context.
pub type osdkit_asok_cb = Option<
    extern "C" fn(
        user: *mut c_void,
        prefix: *const c_char,
        args_json: *const c_char,
        format: *const c_char,
        reply: *mut osdkit_asok_reply,
    ) -> c_int,
>;

/// Drop callback for `user`: called exactly once, after the last call of the callback, when
/// the command is unregistered or its context freed. May be NULL.
pub type osdkit_drop_cb = Option<extern "C" fn(user: *mut c_void)>;

struct CHook {
    cb: extern "C" fn(*mut c_void, *const c_char, *const c_char, *const c_char, *mut osdkit_asok_reply) -> c_int,
    user: UserData,
}

impl crate::asok::AdminSocketHook for CHook {
    fn call(&self, req: &Request<'_>) -> crate::Result<String> {
        let prefix = CString::new(req.prefix).map_err(|_| Error::inval("prefix has a NUL"))?;
        let args = CString::new(serde_json::Value::Object(req.args.clone()).to_string())
            .map_err(|_| Error::inval("arguments have a NUL"))?;
        let format = CString::new(if req.format == Format::Json {
            "json"
        } else {
            "json-pretty"
        })
        .unwrap_or_default();
        let mut reply = osdkit_asok_reply { data: Vec::new() };
        let r = (self.cb)(
            self.user.user,
            prefix.as_ptr(),
            args.as_ptr(),
            format.as_ptr(),
            &mut reply,
        );
        let text = String::from_utf8_lossy(&reply.data).into_owned();
        if r < 0 {
            Err(Error::new(-r, text))
        } else {
            Ok(text)
        }
    }
}

/// Stores `len` bytes of `data` as the command's reply (copied; replaces an earlier one).
/// Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_asok_reply_set(reply: *mut osdkit_asok_reply, data: *const c_char, len: usize) -> c_int {
    guard(|| {
        if reply.is_null() || (data.is_null() && len > 0) {
            return Err(Error::inval("reply or data is NULL"));
        }
        let bytes = if len == 0 {
            &[][..]
        } else {
            // SAFETY: `data` is non-NULL and points to `len` readable bytes (caller contract).
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }
        };
        // SAFETY: `reply` is the pointer the library passed to the running callback; it lives
        // until the callback returns, and only that callback touches it.
        unsafe { (*reply).data = bytes.to_vec() };
        Ok(0)
    })
}

/// Registers `descriptor` (Ceph form: `"echo name=msg,type=CephString"`) with `help` (empty
/// hides it from `help`) on the context's admin socket, before or after start. On success the
/// library owns `user` and calls `drop(user)` once when done with it; on failure `drop` is not
/// called. Returns 0, -EEXIST (same descriptor already registered) or -EINVAL (bad descriptor).
#[no_mangle]
pub extern "C" fn osdkit_asok_register(
    ctx: *mut osdkit_context,
    descriptor: *const c_char,
    help: *const c_char,
    cb: osdkit_asok_cb,
    user: *mut c_void,
    drop: osdkit_drop_cb,
) -> c_int {
    guard(|| {
        let c = handle(ctx, "ctx")?;
        let cb = cb.ok_or_else(|| Error::inval("cb is NULL"))?;
        let desc = cstr(descriptor, "descriptor")?;
        let help = if help.is_null() { "" } else { cstr(help, "help")? };
        let hook = Arc::new(CHook {
            cb,
            user: UserData::new(user, drop),
        });
        match c.ctx.register_command(desc, help, hook.clone()) {
            Ok(_) => Ok(0),
            Err(e) => {
                // On failure `user` stays the caller's: the header promises no drop call.
                hook.user.disarm();
                Err(e)
            }
        }
    })
}

/// Unregisters the command registered with exactly `descriptor`, waiting for a call in flight
/// (unless called from inside that call). Returns 0 or -ENOENT.
#[no_mangle]
pub extern "C" fn osdkit_asok_unregister(ctx: *mut osdkit_context, descriptor: *const c_char) -> c_int {
    guard(|| {
        let c = handle(ctx, "ctx")?;
        let d = cstr(descriptor, "descriptor")?;
        if c.ctx.admin_socket().unregister_descriptor(d) {
            Ok(0)
        } else {
            Err(Error::noent(format!("no command '{d}'")))
        }
    })
}

/// Runs one admin command in-process (`json` as sent on the socket, e.g.
/// `{"prefix":"perf dump"}`), without the socket. `*reply_out` gets the reply payload (an
/// `ERROR: ...` text on failure), freed with `osdkit_string_free`. Returns 0, or the command's
/// negative errno.
#[no_mangle]
pub extern "C" fn osdkit_asok_execute(
    ctx: *mut osdkit_context,
    json: *const c_char,
    reply_out: *mut *mut c_char,
) -> c_int {
    guard(|| {
        let c = handle(ctx, "ctx")?;
        let j = cstr(json, "json")?;
        if reply_out.is_null() {
            return Err(Error::inval("reply_out is NULL"));
        }
        let result = serde_json::from_str::<serde_json::Value>(j)
            .map_err(|_| Error::inval("invalid json"))
            .and_then(|v| c.ctx.admin_socket().execute_json(&v));
        let (text, r) = match result {
            Ok(s) => (s, 0),
            Err(e) => (crate::asok::error_reply(&e), -e.errno),
        };
        out(reply_out, to_c_string(text.as_bytes()), "reply_out")?;
        Ok(r)
    })
}

/// Sends `json` to the admin socket at `path` (any Ceph or osdkit daemon) and returns the reply
/// in `*reply_out` (free with `osdkit_string_free`). Blocks up to 5 s each way.
/// Returns 0, -ENOENT/-ECONNREFUSED (nothing there), -ETIMEDOUT, or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_asok_client_request(
    path: *const c_char,
    json: *const c_char,
    reply_out: *mut *mut c_char,
) -> c_int {
    guard(|| {
        let p = cstr(path, "path")?;
        let j = cstr(json, "json")?;
        if reply_out.is_null() {
            return Err(Error::inval("reply_out is NULL"));
        }
        let raw = AdminSocketClient::new(p).request_raw(j.as_bytes()).map_err(|e| {
            if e.errno == libc::EAGAIN {
                Error::new(libc::ETIMEDOUT, e.msg)
            } else {
                e
            }
        })?;
        out(reply_out, to_c_string(&raw), "reply_out")?;
        Ok(0)
    })
}
