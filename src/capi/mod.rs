//! The C ABI. `include/osdkit.h` is generated from these files by
//! `scripts/gen-header.sh` (a pinned cbindgen) and committed.
//!
//! Conventions: names `osdkit_<area>_<verb>`; opaque handles from `_new`, released by `_free`;
//! fallible calls return 0 or a negative errno and leave a message for `osdkit_last_error()`;
//! every pointer is checked; every export runs inside a panic boundary.

#![allow(non_camel_case_types)]
// These functions are C entry points: C callers cannot see `unsafe`, and each pointer's
// contract is written in the header and checked (NULL) before use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod aio;
pub mod asok;
pub mod cluster;
pub mod connection;
pub mod context;
pub mod finisher;
pub mod hosting;
pub mod message;
pub mod msgr;
pub mod perf;
pub mod rados;
pub mod rados_op;
pub mod throttle;
pub mod timer;

use crate::common::error::Error;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Version of the library these declarations describe; `osdkit_version()` is the run-time one.
pub const OSDKIT_VERSION_MAJOR: u32 = 0;
pub const OSDKIT_VERSION_MINOR: u32 = 1;
pub const OSDKIT_VERSION_PATCH: u32 = 0;

/// Returned when a Rust panic was caught at the boundary (`ENOTRECOVERABLE`).
pub const OSDKIT_EPANIC: c_int = 131;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Runs `f` inside the panic boundary: `Ok(n)` → n, `Err(e)` → `-errno` with the message kept
/// for `osdkit_last_error`, a panic → `-OSDKIT_EPANIC`.
pub(crate) fn guard(f: impl FnOnce() -> Result<c_int, Error>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            -e.errno
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(&format!("internal error (panic): {what}"));
            -OSDKIT_EPANIC
        }
    }
}

/// `guard` for a reading returned as C's `int64_t`: the value, or a negative errno.
pub(crate) fn guard_i64(f: impl FnOnce() -> Result<i64, Error>) -> i64 {
    let mut v = 0;
    let r = guard(|| {
        v = f()?;
        Ok(0)
    });
    if r < 0 {
        i64::from(r)
    } else {
        v
    }
}

/// For `void` exports: runs `f`, swallowing a panic (it cannot be reported).
pub(crate) fn guard_void(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        set_last_error("internal error (panic)");
    }
}

/// A borrowed C string argument: NULL or bad UTF-8 is `-EINVAL` naming the argument.
pub(crate) fn cstr<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::inval(format!("{what} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string that lives for the call (the header
    // says so for every `const char *` argument); NULL was excluded above.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::inval(format!("{what} is not valid UTF-8")))
}

pub(crate) fn opt_cstr<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        cstr(p, what).map(Some)
    }
}

/// A NULL-terminated array of option names and values (`{"name", "value", ..., NULL}`);
/// NULL is none. `-EINVAL` for a name without a value.
pub(crate) fn options_arg(options: *const *const c_char) -> Result<Vec<(String, String)>, Error> {
    let mut opts = Vec::new();
    if options.is_null() {
        return Ok(opts);
    }
    let mut i = 0;
    loop {
        // SAFETY: the caller passes a NULL-terminated array of C strings; we read entries until
        // the first NULL, one at a time, and never past it.
        let k = unsafe { *options.add(i) };
        if k.is_null() {
            return Ok(opts);
        }
        // SAFETY: as above; `k` was not the terminator, so the array goes on.
        let v = unsafe { *options.add(i + 1) };
        if v.is_null() {
            return Err(Error::inval(format!("option {} has no value", cstr(k, "option")?)));
        }
        opts.push((cstr(k, "option")?.to_string(), cstr(v, "value")?.to_string()));
        i += 2;
    }
}

/// Borrows a handle argument: NULL is `-EINVAL`.
pub(crate) fn handle<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: non-NULL handles come from this library's `_new` functions and stay valid until
    // the matching `_free`; using one after `_free` is the caller's bug, as in any C API.
    unsafe { p.as_ref() }.ok_or_else(|| Error::inval(format!("{what} is NULL")))
}

/// Writes an out-parameter after checking it.
pub(crate) fn out<T>(p: *mut T, v: T, what: &str) -> Result<(), Error> {
    if p.is_null() {
        return Err(Error::inval(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller provides space for one T (header contract).
    unsafe { p.write(v) };
    Ok(())
}

/// Takes back a handle the caller hands over (a `_free`, or a call that consumes it): None for
/// NULL.
pub(crate) fn take_handle<T>(p: *mut T) -> Option<Box<T>> {
    // SAFETY: non-NULL handles come from this library's `Box::into_raw` and the header makes
    // every `_free` and consuming call the handle's last use, so it is taken back exactly once.
    (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
}

/// A handle's `_free`: NULL is ignored; otherwise `finish` runs on it (stopping its threads)
/// inside the panic boundary, and then it is dropped.
pub(crate) fn free_handle<T>(p: *mut T, finish: impl FnOnce(&T)) {
    guard_void(|| {
        if let Some(b) = take_handle(p) {
            finish(&b);
        }
    });
}

/// Copies `s` NUL-terminated into `buf` of `len` bytes; returns its length, or -ERANGE (then
/// nothing is written) naming the size needed.
pub(crate) fn write_str(s: &str, buf: *mut c_char, len: usize) -> Result<c_int, Error> {
    if buf.is_null() {
        return Err(Error::inval("buf is NULL"));
    }
    if s.len() + 1 > len {
        return Err(Error::new(libc::ERANGE, format!("'{s}' needs {} bytes", s.len() + 1)));
    }
    // SAFETY: `buf` is non-NULL with room for `len` bytes (caller contract) and we write
    // s.len() + 1 <= len bytes; `s` is our own memory, so the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    Ok(s.len() as c_int)
}

/// A borrowed byte argument: NULL is allowed only with `len` 0.
pub(crate) fn bytes_arg<'a>(p: *const c_void, len: usize, what: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::inval(format!("{what} is NULL with length {len}")));
    }
    if len > isize::MAX as usize {
        return Err(Error::inval(format!("{what} length {len} is too large")));
    }
    // SAFETY: non-NULL, `len` <= isize::MAX readable bytes living for the call (header
    // contract).
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// Hands a Rust string to C; freed with `osdkit_string_free`.
pub(crate) fn to_c_string(s: &[u8]) -> *mut c_char {
    let v: Vec<u8> = s.iter().map(|b| if *b == 0 { b' ' } else { *b }).collect();
    CString::new(v).unwrap_or_default().into_raw()
}

/// A caller's pointer (a buffer or an out-parameter to fill when an async call completes, a
/// callback's user pointer) carried to the library thread that completes the call.
pub(crate) struct SendPtr<T>(pub *mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

// SAFETY: the header makes the caller keep what these point to valid until the call
// completes, and lets the library write it (or pass it back) from its own threads; the
// library touches it only once, when the call completes.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above; the pointer value is shared, what it points to is written once.
unsafe impl<T> Sync for SendPtr<T> {}

/// A user callback's context and its optional `drop`, called exactly once when the library no
/// longer needs `user`.
pub(crate) struct UserData {
    pub user: *mut c_void,
    drop: parking_lot::Mutex<Option<extern "C" fn(*mut c_void)>>,
}

impl UserData {
    pub fn new(user: *mut c_void, drop: Option<extern "C" fn(*mut c_void)>) -> Self {
        UserData {
            user,
            drop: parking_lot::Mutex::new(drop),
        }
    }
    /// Forgets the drop callback: `user` goes back to the caller (failed registration).
    pub fn disarm(&self) {
        *self.drop.lock() = None;
    }
}

// SAFETY: the header requires that `user` may be used from the library's threads (each
// callback's thread is documented); the library never dereferences it, only passes it back.
unsafe impl Send for UserData {}
// SAFETY: as above; the library shares the pointer value only.
unsafe impl Sync for UserData {}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(d) = self.drop.get_mut().take() {
            let user = self.user;
            if catch_unwind(AssertUnwindSafe(|| d(user))).is_err() {
                log::error!(target: "context", "a C drop callback unwound");
            }
        }
    }
}

/// The library's version, e.g. "0.1.0". Static storage; never freed.
#[no_mangle]
pub extern "C" fn osdkit_version() -> *const c_char {
    static V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// The message of the last failed call on this thread ("" if none). Valid until the next
/// failing call on the same thread.
#[no_mangle]
pub extern "C" fn osdkit_last_error() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// Frees a string this library returned (NULL is ignored).
#[no_mangle]
pub extern "C" fn osdkit_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from `to_c_string` (CString::into_raw) and is freed once (contract).
        drop(unsafe { CString::from_raw(s) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_match_cargo() {
        let v: Vec<u32> = env!("CARGO_PKG_VERSION")
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(
            v,
            vec![OSDKIT_VERSION_MAJOR, OSDKIT_VERSION_MINOR, OSDKIT_VERSION_PATCH]
        );
        // SAFETY: static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(osdkit_version()) }.to_str().unwrap();
        assert_eq!(s, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn guard_turns_errors_and_panics_into_codes() {
        assert_eq!(guard(|| Ok(3)), 3);
        assert_eq!(guard(|| Err(Error::noent("gone"))), -libc::ENOENT);
        // SAFETY: thread-local string, read before any other call on this thread.
        let msg = unsafe { CStr::from_ptr(osdkit_last_error()) }
            .to_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("gone"), "{msg}");
        assert_eq!(guard(|| panic!("inner")), -OSDKIT_EPANIC);
        assert_eq!(cstr(std::ptr::null(), "name").unwrap_err().errno, libc::EINVAL);
    }
}
