//! `osdkit_messenger_*`, `osdkit_connection_*`, `osdkit_message_*`, `osdkit_event_*`: the
//! messenger (DESIGN.md §2) for C.
//!
//! Each `osdkit_messenger` registers one Rust dispatcher ([`CDispatch`]) on its messenger; it
//! holds the C dispatchers in the order they were added and, last, the pull-style event queue
//! when it is enabled. Everything they are given runs on the messenger's own threads with no
//! lock of ours held.

use super::asok::osdkit_drop_cb;
use super::context::osdkit_context;
use super::{cstr, guard, guard_void, handle, out, set_last_error, to_c_string, UserData};
use crate::common::entity::EntityType;
use crate::common::error::Error;
use crate::common::formatter::{render, Format};
use crate::msgr::addr::EntityAddr;
use crate::msgr::connection::ConnectionRef;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// `nonce` for `osdkit_messenger_new`: choose a random nonce (what every daemon but a monitor
/// does). Any value in 0..=UINT32_MAX is used as given (monitors use 0).
pub const OSDKIT_NONCE_RANDOM: i64 = -1;

/// Policies for `osdkit_messenger_set_policy` (Ceph's `Messenger::Policy` constructors).
/// Lossy client: a fault closes the session (RESET event), nothing is replayed.
pub const OSDKIT_POLICY_LOSSY_CLIENT: c_int = 1;
/// Lossless client: reconnects after a fault, replays what the peer did not acknowledge.
pub const OSDKIT_POLICY_LOSSLESS_CLIENT: c_int = 2;
/// Lossless peer (the default): as lossless client, between daemons.
pub const OSDKIT_POLICY_LOSSLESS_PEER: c_int = 3;
/// Lossless peer that keeps a faulted session waiting (standby) instead of reconnecting at once.
pub const OSDKIT_POLICY_LOSSLESS_PEER_REUSE: c_int = 4;
/// Server side of lossless clients: keeps their sessions for them to reconnect.
pub const OSDKIT_POLICY_STATEFUL_SERVER: c_int = 5;
/// Server side of lossy clients.
pub const OSDKIT_POLICY_STATELESS_SERVER: c_int = 6;

/// Entity types (Ceph's `CEPH_ENTITY_TYPE_*`), as `osdkit_connection_peer_type` returns them.
pub const OSDKIT_ENTITY_TYPE_MON: c_int = 0x01;
pub const OSDKIT_ENTITY_TYPE_MDS: c_int = 0x02;
pub const OSDKIT_ENTITY_TYPE_OSD: c_int = 0x04;
pub const OSDKIT_ENTITY_TYPE_CLIENT: c_int = 0x08;
pub const OSDKIT_ENTITY_TYPE_MGR: c_int = 0x10;

/// Message priorities (Ceph's `CEPH_MSG_PRIO_*`). At or above LOW the dispatch queue serves
/// them strictly by priority; below, by token buckets. New messages get DEFAULT.
pub const OSDKIT_MSG_PRIO_LOW: u16 = 64;
pub const OSDKIT_MSG_PRIO_DEFAULT: u16 = 127;
pub const OSDKIT_MSG_PRIO_HIGH: u16 = 196;
pub const OSDKIT_MSG_PRIO_HIGHEST: u16 = 255;

/// `on_message` results. HANDLED (and any value other than PASS): the message is the
/// callee's. PASS: not for this dispatcher; the library keeps the message and offers it to
/// the next one.
pub const OSDKIT_DISPATCH_HANDLED: c_int = 0;
pub const OSDKIT_DISPATCH_PASS: c_int = 1;

/// `osdkit_event.kind`.
pub const OSDKIT_EVENT_NONE: c_int = 0;
/// A message no dispatcher handled; `msg` is set, `conn` is the connection it arrived on
/// (NULL for a message the messenger sent to itself).
pub const OSDKIT_EVENT_MESSAGE: c_int = 1;
/// An outgoing connection completed its handshake (also after a lossless reconnect).
pub const OSDKIT_EVENT_CONNECT: c_int = 2;
/// An incoming connection completed its handshake.
pub const OSDKIT_EVENT_ACCEPT: c_int = 3;
/// A lossy connection faulted and was closed: messages queued on it were dropped.
pub const OSDKIT_EVENT_RESET: c_int = 4;
/// The peer reset the session (it restarted): messages may have been lost.
pub const OSDKIT_EVENT_REMOTE_RESET: c_int = 5;
/// The peer refused the connection (nothing listening).
pub const OSDKIT_EVENT_REFUSED: c_int = 6;

/// A messenger (Ceph's AsyncMessenger): msgr2 sessions with peers, worker threads
/// (`msgr-worker-N`), the `ms_dispatch` and `ms_local` threads, dispatchers and policies.
/// All its functions may be called from any thread.
pub struct osdkit_messenger {
    m: Messenger,
    run: Mutex<Run>,
    disp: Arc<CDispatch>,
}

/// A reference to one session with a peer. Each handle is owned by whoever received it and is
/// released with `osdkit_connection_free`; several handles may name the same connection. The
/// handle stays valid after the connection closes (sends then fail with -ENOTCONN) and after
/// its messenger is freed. Its functions may be called from any thread.
pub struct osdkit_connection {
    c: ConnectionRef,
}

/// A message: a type, a priority, a transaction id and three payload segments (front, middle,
/// data). Not thread-safe: one thread at a time (it may move between threads).
pub struct osdkit_message {
    m: Message,
}

/// One event from `osdkit_messenger_next_event`. `msg` and `conn` (either may be NULL) are
/// owned by the event: release both with `osdkit_event_clear`, or take one over by copying the
/// pointer and setting the field to NULL before clearing.
#[repr(C)]
pub struct osdkit_event {
    /// OSDKIT_EVENT_*.
    pub kind: c_int,
    /// OSDKIT_EVENT_MESSAGE: the message; otherwise NULL.
    pub msg: *mut osdkit_message,
    /// The connection the event is about (for a message: the one it arrived on, NULL for a
    /// message sent to self).
    pub conn: *mut osdkit_connection,
}

/// A message for a dispatcher. `msg` is handed over: return OSDKIT_DISPATCH_HANDLED (or any
/// value but PASS) and it is yours, to free with `osdkit_message_free` from any thread, at
/// any time; return OSDKIT_DISPATCH_PASS and it stays the library's (do not free it or use it
/// after returning), offered to the next dispatcher, then to the event queue.
pub type osdkit_message_cb = Option<extern "C" fn(user: *mut c_void, msg: *mut osdkit_message) -> c_int>;

/// A connection event. `conn` is borrowed for the call only; `osdkit_connection_clone` it to
/// keep it.
pub type osdkit_connection_cb = Option<extern "C" fn(user: *mut c_void, conn: *const osdkit_connection)>;

/// Fast dispatch: may a message of `msg_type` go to `on_fast_message`? Nonzero: yes. Must
/// answer the same for the same type every time (it can be asked twice per message) and not
/// block.
pub type osdkit_can_fast_dispatch_cb = Option<extern "C" fn(user: *mut c_void, msg_type: u16) -> c_int>;

/// Fast dispatch of a claimed message; `msg` is handed over (free it with
/// `osdkit_message_free`).
pub type osdkit_fast_message_cb = Option<extern "C" fn(user: *mut c_void, msg: *mut osdkit_message)>;

/// Releases a buffer given to `osdkit_message_set_data_borrowed`: called exactly once with its
/// `user`, when no message uses the buffer any more. This is a destructor, not an event: it
/// may run on any thread (the one freeing the last message, a `msgr-worker-N` after the bytes
/// were written, `ms_dispatch`). The messenger drops messages outside its session locks, but
/// keep the contract narrow all the same: only release the buffer (free, munmap, drop a
/// reference), do not call osdkit and do not block.
pub type osdkit_data_free_cb = Option<extern "C" fn(user: *mut c_void)>;

/// A dispatcher's callbacks; any of them may be NULL (not interested). The library copies the
/// struct at registration.
///
/// Threads: `on_message` and the five connection events run on the messenger's `ms_dispatch`
/// thread, one call at a time (never concurrently with each other, for all the dispatchers of
/// a messenger), in the order the messenger queued them (a connection's events in order with
/// its messages). `on_fast_message` (and `can_fast_dispatch`) run inline on the receiving
/// `msgr-worker-N` thread (or `ms_local` for messages sent to self), concurrently with
/// `ms_dispatch` and with each other; they must not block. No callback runs while the library
/// holds an internal lock: each may call any osdkit function, including
/// `osdkit_messenger_shutdown` and `osdkit_messenger_free` of its own messenger (which then do
/// not wait for the callback that called them).
///
/// Messages go to the dispatchers in chain order (`osdkit_messenger_add_dispatcher` appends,
/// `_add_dispatcher_head` prepends) until one handles them, then to the event queue if it is
/// enabled; a message nobody takes is dropped with a warning in the log. Every dispatcher
/// sees every connection event, and so does the event queue.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct osdkit_dispatcher_ops {
    pub on_message: osdkit_message_cb,
    pub on_connect: osdkit_connection_cb,
    pub on_accept: osdkit_connection_cb,
    pub on_reset: osdkit_connection_cb,
    pub on_remote_reset: osdkit_connection_cb,
    pub on_refused: osdkit_connection_cb,
    /// Fast dispatch is used only when both of these are set.
    pub can_fast_dispatch: osdkit_can_fast_dispatch_cb,
    pub on_fast_message: osdkit_fast_message_cb,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    New,
    Running,
    Stopped,
}

struct CDispatcher {
    ops: osdkit_dispatcher_ops,
    user: UserData,
}

impl CDispatcher {
    fn claims_fast(&self, ty: u16) -> bool {
        match (self.ops.can_fast_dispatch, self.ops.on_fast_message) {
            (Some(can), Some(_)) => can(self.user.user, ty) != 0,
            _ => false,
        }
    }
}

/// One queued event of the pull-style queue.
struct Pending {
    kind: c_int,
    msg: Option<Message>,
    conn: Option<ConnectionRef>,
}

#[derive(Default)]
struct EventQueue {
    st: Mutex<EventState>,
    cv: Condvar,
}

#[derive(Default)]
struct EventState {
    q: VecDeque<Pending>,
    closed: bool,
}

impl EventQueue {
    fn push(&self, p: Pending) {
        let mut st = self.st.lock();
        if st.closed {
            drop(st);
            // Dropped outside our lock: a message may hold a C buffer whose release runs now.
            drop(p);
            return;
        }
        st.q.push_back(p);
        drop(st);
        self.cv.notify_one();
    }

    /// Wakes every waiter with ESHUTDOWN and discards what is queued.
    fn close(&self) {
        let items = {
            let mut st = self.st.lock();
            st.closed = true;
            std::mem::take(&mut st.q)
        };
        self.cv.notify_all();
        drop(items);
    }

    fn next(&self, timeout: Option<Duration>) -> Result<Pending, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.st.lock();
        loop {
            if st.closed {
                return Err(Error::new(libc::ESHUTDOWN, "the messenger is shut down"));
            }
            if let Some(p) = st.q.pop_front() {
                return Ok(p);
            }
            match deadline {
                None => self.cv.wait(&mut st),
                Some(d) => {
                    if Instant::now() >= d {
                        return Err(Error::new(libc::ETIMEDOUT, "no event before the timeout"));
                    }
                    let _ = self.cv.wait_until(&mut st, d);
                }
            }
        }
    }
}

/// The Rust dispatcher of an `osdkit_messenger`: its C dispatchers, then the event queue.
#[derive(Default)]
struct CDispatch {
    list: RwLock<Arc<Vec<Arc<CDispatcher>>>>,
    events: OnceLock<Arc<EventQueue>>,
}

impl CDispatch {
    /// Callbacks run on this snapshot, with no lock held.
    fn snapshot(&self) -> Arc<Vec<Arc<CDispatcher>>> {
        self.list.read().clone()
    }

    fn add(&self, d: CDispatcher, head: bool) {
        let mut l = self.list.write();
        let mut v = (**l).clone();
        if head {
            v.insert(0, Arc::new(d));
        } else {
            v.push(Arc::new(d));
        }
        *l = Arc::new(v);
    }

    fn conn_event(&self, kind: c_int, c: &ConnectionRef) {
        let view = osdkit_connection { c: c.clone() };
        for d in self.snapshot().iter() {
            let cb = match kind {
                OSDKIT_EVENT_CONNECT => d.ops.on_connect,
                OSDKIT_EVENT_ACCEPT => d.ops.on_accept,
                OSDKIT_EVENT_RESET => d.ops.on_reset,
                OSDKIT_EVENT_REMOTE_RESET => d.ops.on_remote_reset,
                _ => d.ops.on_refused,
            };
            if let Some(cb) = cb {
                cb(d.user.user, &view);
            }
        }
        if let Some(q) = self.events.get() {
            q.push(Pending {
                kind,
                msg: None,
                conn: Some(c.clone()),
            });
        }
    }
}

impl Dispatcher for CDispatch {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        self.snapshot().iter().any(|d| d.claims_fast(m.ty))
    }

    fn ms_fast_dispatch(&self, m: Message) {
        let list = self.snapshot();
        match list.iter().find(|d| d.claims_fast(m.ty)) {
            Some(d) => {
                if let Some(cb) = d.ops.on_fast_message {
                    cb(d.user.user, Box::into_raw(Box::new(osdkit_message { m })));
                }
            }
            None => log::error!(
                target: "ms",
                "message type {} was claimed for fast dispatch and then refused by every can_fast_dispatch; dropped",
                m.ty
            ),
        }
    }

    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        let mut m = m;
        for d in self.snapshot().iter() {
            let Some(cb) = d.ops.on_message else { continue };
            let p = Box::into_raw(Box::new(osdkit_message { m }));
            if cb(d.user.user, p) != OSDKIT_DISPATCH_PASS {
                return None;
            }
            // SAFETY: PASS means the callee neither freed nor kept `p` (header contract), so it
            // is still the Box made above and ours to take back, once.
            m = unsafe { Box::from_raw(p) }.m;
        }
        if let Some(q) = self.events.get() {
            let conn = m.conn.clone();
            q.push(Pending {
                kind: OSDKIT_EVENT_MESSAGE,
                msg: Some(m),
                conn,
            });
            return None;
        }
        Some(m)
    }

    fn ms_handle_connect(&self, c: &ConnectionRef) {
        self.conn_event(OSDKIT_EVENT_CONNECT, c);
    }
    fn ms_handle_accept(&self, c: &ConnectionRef) {
        self.conn_event(OSDKIT_EVENT_ACCEPT, c);
    }
    fn ms_handle_reset(&self, c: &ConnectionRef) -> bool {
        self.conn_event(OSDKIT_EVENT_RESET, c);
        false
    }
    fn ms_handle_remote_reset(&self, c: &ConnectionRef) {
        self.conn_event(OSDKIT_EVENT_REMOTE_RESET, c);
    }
    fn ms_handle_refused(&self, c: &ConnectionRef) -> bool {
        self.conn_event(OSDKIT_EVENT_REFUSED, c);
        false
    }
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

fn shutdown_err() -> Error {
    Error::new(libc::ESHUTDOWN, "the messenger is shut down")
}

fn policy_of(p: c_int) -> Result<Policy, Error> {
    Ok(match p {
        OSDKIT_POLICY_LOSSY_CLIENT => Policy::lossy_client(),
        OSDKIT_POLICY_LOSSLESS_CLIENT => Policy::lossless_client(),
        OSDKIT_POLICY_LOSSLESS_PEER => Policy::lossless_peer(),
        OSDKIT_POLICY_LOSSLESS_PEER_REUSE => Policy::lossless_peer_reuse(),
        OSDKIT_POLICY_STATEFUL_SERVER => Policy::stateful_server(),
        OSDKIT_POLICY_STATELESS_SERVER => Policy::stateless_server(),
        _ => return Err(Error::inval(format!("{p} is not an OSDKIT_POLICY_* value"))),
    })
}

fn parse_addr(p: *const c_char, what: &str) -> Result<EntityAddr, Error> {
    cstr(p, what)?.parse()
}

/// Copies `s` NUL-terminated into `buf` of `len` bytes; returns its length, or -ERANGE (then
/// nothing is written).
fn write_str(s: &str, buf: *mut c_char, len: usize) -> Result<c_int, Error> {
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

/// A copy of `len` bytes at `buf` (NULL allowed when `len` is 0).
fn copy_in(buf: *const c_void, len: usize, what: &str) -> Result<Bytes, Error> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    if buf.is_null() {
        return Err(Error::inval(format!("{what} is NULL with length {len}")));
    }
    if len > isize::MAX as usize {
        return Err(Error::inval(format!("{what} length {len} is too large")));
    }
    // SAFETY: non-NULL, `len` readable bytes for the duration of the call (caller contract),
    // len <= isize::MAX; copied before returning.
    Ok(Bytes::copy_from_slice(unsafe {
        std::slice::from_raw_parts(buf.cast::<u8>(), len)
    }))
}

fn msg_mut<'a>(p: *mut osdkit_message) -> Result<&'a mut osdkit_message, Error> {
    // SAFETY: non-NULL message handles come from this library (Box::into_raw) and stay valid
    // until osdkit_message_free or until consumed by a send; the header says a message is used
    // by one thread at a time, so this is the only reference during the call.
    unsafe { p.as_mut() }.ok_or_else(|| Error::inval("msg is NULL"))
}

/// Takes back a message handle (consumed by a send). NULL gives None.
fn take_msg(p: *mut osdkit_message) -> Option<Message> {
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` came from this library (Box::into_raw) and the caller hands it over (header
    // contract for every consuming call); it is not used again.
    Some(unsafe { Box::from_raw(p) }.m)
}

/// What goes on the wire for `m`: its type, priority, tid, versions and segments (moved, not
/// copied). Receive-side state (sequence number, connection, throttle shares) is left behind,
/// so a received message can be sent on.
fn outgoing(mut m: Message) -> Message {
    let mut o = Message::new(m.ty, std::mem::take(&mut m.front));
    o.middle = std::mem::take(&mut m.middle);
    o.data = std::mem::take(&mut m.data);
    o.priority = m.priority;
    o.tid = m.tid;
    o.version = m.version;
    o.compat_version = m.compat_version;
    o
}

fn new_conn(c: ConnectionRef) -> *mut osdkit_connection {
    Box::into_raw(Box::new(osdkit_connection { c }))
}

// ------------------------------------------------------------------------------------------
// Messenger

/// Creates a messenger for entity `name` (`"osd.0"`, `"client.admin"`; it need not be the
/// context's own name) using `ctx`'s configuration (`ms_async_op_threads`,
/// `ms_inject_socket_failures`, `ms_bind_port_min/max`, ...). `nonce` is OSDKIT_NONCE_RANDOM
/// (-1) for a random nonce, or a value in 0..=UINT32_MAX. The default policy is lossless peer.
/// Nothing runs until `osdkit_messenger_start`. The messenger keeps what it needs of `ctx`, so
/// the context may be freed first. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_messenger_new(
    ctx: *mut osdkit_context,
    name: *const c_char,
    nonce: i64,
    out_msgr: *mut *mut osdkit_messenger,
) -> c_int {
    guard(|| {
        let c = handle(ctx, "ctx")?;
        let name = cstr(name, "name")?;
        if out_msgr.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let nonce = match nonce {
            OSDKIT_NONCE_RANDOM => None,
            n => Some(u32::try_from(n).map_err(|_| {
                Error::inval(format!(
                    "nonce {n} is neither OSDKIT_NONCE_RANDOM nor in 0..=UINT32_MAX"
                ))
            })?),
        };
        let m = Messenger::new(&c.ctx, name, nonce)?;
        let disp = Arc::new(CDispatch::default());
        m.add_dispatcher_tail(disp.clone());
        let b = Box::new(osdkit_messenger {
            m,
            run: Mutex::new(Run::New),
            disp,
        });
        out(out_msgr, Box::into_raw(b), "out")?;
        Ok(0)
    })
}

/// Binds the listening socket to `addr`, `"IP:PORT"` or `"v2:IP:PORT"` (`"127.0.0.1:0"`: any
/// free port; IPv6 as `"[::1]:0"`). Before start only. Returns 0, -EINVAL (bad address, NULL,
/// already started), -ESHUTDOWN, or the socket's errno (-EADDRINUSE, ...).
#[no_mangle]
pub extern "C" fn osdkit_messenger_bind(m: *mut osdkit_messenger, addr: *const c_char) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let a = parse_addr(addr, "addr")?;
        let sa = a.addr.ok_or_else(|| Error::inval("addr has no IP address"))?;
        let run = m.run.lock();
        match *run {
            Run::New => {}
            Run::Running => return Err(Error::inval("bind before osdkit_messenger_start")),
            Run::Stopped => return Err(shutdown_err()),
        }
        m.m.bind(sa)?;
        Ok(0)
    })
}

/// Binds to the first free port of `ms_bind_port_min..=ms_bind_port_max` on `ip`
/// (`"127.0.0.1"`, `"::1"`, `"0.0.0.0"`). Before start only. Returns 0, -EINVAL, -ESHUTDOWN or
/// -EADDRINUSE (no free port).
#[no_mangle]
pub extern "C" fn osdkit_messenger_bind_port_range(m: *mut osdkit_messenger, ip: *const c_char) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let s = cstr(ip, "ip")?;
        let ip: std::net::IpAddr = s
            .parse()
            .map_err(|_| Error::inval(format!("'{s}' is not an IP address")))?;
        let run = m.run.lock();
        match *run {
            Run::New => {}
            Run::Running => return Err(Error::inval("bind before osdkit_messenger_start")),
            Run::Stopped => return Err(shutdown_err()),
        }
        m.m.bind_port_range(ip)?;
        Ok(0)
    })
}

/// Copies the address peers connect to, e.g. `"v2:127.0.0.1:6800/1234"` (what
/// `osdkit_messenger_connect` takes), NUL-terminated into `buf` of `len` bytes. Returns its
/// length (without the NUL), -ENOENT (not bound), -ERANGE (`len` too small; nothing written;
/// 128 bytes always suffice) or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_messenger_get_addr(m: *const osdkit_messenger, buf: *mut c_char, len: usize) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let a =
            m.m.my_addrs()
                .first()
                .copied()
                .ok_or_else(|| Error::noent("the messenger is not bound"))?;
        write_str(&a.to_string(), buf, len)
    })
}

/// Sets the policy (OSDKIT_POLICY_*) for peers of type `peer_type` (`"mon"`, `"mds"`, `"osd"`,
/// `"client"`, `"mgr"`). Applies to sessions opened afterwards; set it before start. Returns 0
/// or -EINVAL (unknown type or policy).
#[no_mangle]
pub extern "C" fn osdkit_messenger_set_policy(
    m: *mut osdkit_messenger,
    peer_type: *const c_char,
    policy: c_int,
) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let ty: EntityType = cstr(peer_type, "peer_type")?.parse()?;
        m.m.set_policy(ty, policy_of(policy)?);
        Ok(0)
    })
}

/// Sets the policy (OSDKIT_POLICY_*) for peer types without their own. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_messenger_set_default_policy(m: *mut osdkit_messenger, policy: c_int) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        m.m.set_default_policy(policy_of(policy)?);
        Ok(0)
    })
}

fn add_dispatcher(
    m: *mut osdkit_messenger,
    ops: *const osdkit_dispatcher_ops,
    user: *mut c_void,
    drop: osdkit_drop_cb,
    head: bool,
) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let ops = *handle(ops, "ops")?;
        // From here `drop(user)` is the library's to call: on failure below, and otherwise
        // when the messenger is freed.
        let d = CDispatcher {
            ops,
            user: UserData::new(user, drop),
        };
        if *m.run.lock() == Run::Stopped {
            return Err(shutdown_err());
        }
        m.disp.add(d, head);
        Ok(0)
    })
}

/// Adds a dispatcher at the end of the chain: `ops` (copied) are called with `user` on the
/// threads `osdkit_dispatcher_ops` describes. `drop(user)` (may be NULL) is called exactly
/// once, after the last callback, when the messenger is freed (on the thread freeing it; when
/// freed from inside a callback, on one of the messenger's threads after that callback returns). Add dispatchers before start so that no
/// event is missed (adding later is allowed). Returns 0, -EINVAL (then `drop` is not called
/// and `user` stays the caller's) or -ESHUTDOWN (then `drop` is called at once).
#[no_mangle]
pub extern "C" fn osdkit_messenger_add_dispatcher(
    m: *mut osdkit_messenger,
    ops: *const osdkit_dispatcher_ops,
    user: *mut c_void,
    drop: osdkit_drop_cb,
) -> c_int {
    add_dispatcher(m, ops, user, drop, false)
}

/// As `osdkit_messenger_add_dispatcher`, at the head of the chain (tried first).
#[no_mangle]
pub extern "C" fn osdkit_messenger_add_dispatcher_head(
    m: *mut osdkit_messenger,
    ops: *const osdkit_dispatcher_ops,
    user: *mut c_void,
    drop: osdkit_drop_cb,
) -> c_int {
    add_dispatcher(m, ops, user, drop, true)
}

/// Turns on the pull-style event queue: connection events, and messages no dispatcher
/// handled, wait there for `osdkit_messenger_next_event`. Before start only; a second call
/// does nothing. Returns 0, -EINVAL (already started) or -ESHUTDOWN.
#[no_mangle]
pub extern "C" fn osdkit_messenger_enable_event_queue(m: *mut osdkit_messenger) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        match *m.run.lock() {
            Run::New => {}
            Run::Running => return Err(Error::inval("enable the event queue before osdkit_messenger_start")),
            Run::Stopped => return Err(shutdown_err()),
        }
        m.disp.events.get_or_init(Default::default);
        Ok(0)
    })
}

/// Waits up to `timeout_ms` (0: do not wait; < 0: no limit) for the next event of the queue
/// and moves it into `*ev` (overwritten without being read: clear it first if it held one).
/// May be called from several threads at once (each event goes to one of them).
/// Returns 0, -ETIMEDOUT, -ESHUTDOWN (the messenger was shut down: also wakes the threads
/// waiting here; events still queued are discarded) or -EINVAL (NULL, or the queue was not
/// enabled). On failure `*ev` is not touched. Do not free the messenger while another thread
/// may still call this: shut it down, join those threads, then free.
#[no_mangle]
pub extern "C" fn osdkit_messenger_next_event(
    m: *mut osdkit_messenger,
    timeout_ms: c_int,
    ev: *mut osdkit_event,
) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        if ev.is_null() {
            return Err(Error::inval("ev is NULL"));
        }
        let q = m
            .disp
            .events
            .get()
            .cloned()
            .ok_or_else(|| Error::inval("the event queue is not enabled (osdkit_messenger_enable_event_queue)"))?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let p = q.next(timeout)?;
        let e = osdkit_event {
            kind: p.kind,
            msg: p
                .msg
                .map_or(std::ptr::null_mut(), |m| Box::into_raw(Box::new(osdkit_message { m }))),
            conn: p.conn.map_or(std::ptr::null_mut(), new_conn),
        };
        out(ev, e, "ev")?;
        Ok(0)
    })
}

/// Releases what `*ev` owns (its message and connection handles, where not NULL), and sets it
/// to OSDKIT_EVENT_NONE with both pointers NULL. NULL is ignored; clearing twice is harmless.
#[no_mangle]
pub extern "C" fn osdkit_event_clear(ev: *mut osdkit_event) {
    if ev.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: non-NULL, points to an osdkit_event the caller owns (header contract); its
        // handles are ours (from next_event) or NULL.
        let e = unsafe { &mut *ev };
        let msg = std::mem::replace(&mut e.msg, std::ptr::null_mut());
        let conn = std::mem::replace(&mut e.conn, std::ptr::null_mut());
        e.kind = OSDKIT_EVENT_NONE;
        drop(take_msg(msg));
        osdkit_connection_free(conn);
    });
}

/// Starts the worker threads, the listener (if bound) and the dispatch threads. A second call
/// does nothing. Returns 0, -ESHUTDOWN (a messenger cannot be restarted) or an errno.
#[no_mangle]
pub extern "C" fn osdkit_messenger_start(m: *mut osdkit_messenger) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let mut run = m.run.lock();
        match *run {
            Run::New => {}
            Run::Running => return Ok(0),
            Run::Stopped => return Err(shutdown_err()),
        }
        m.m.start()?;
        *run = Run::Running;
        Ok(0)
    })
}

/// The session to the peer at `addr` (`"v2:127.0.0.1:6800/1234"`, as `osdkit_messenger_get_addr`
/// prints it) of type `peer_type` (`"osd"`, ...; it chooses the policy): opened on first use
/// (the handshake runs in the background: CONNECT event when done), the same session
/// afterwards while it is open. Messages may be sent at once; they queue until the handshake
/// completes. `*out_conn` gets a new handle (free it with `osdkit_connection_free`).
/// Returns 0, -EINVAL (bad argument, or not started) or -ESHUTDOWN.
#[no_mangle]
pub extern "C" fn osdkit_messenger_connect(
    m: *mut osdkit_messenger,
    peer_type: *const c_char,
    addr: *const c_char,
    out_conn: *mut *mut osdkit_connection,
) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let ty: EntityType = cstr(peer_type, "peer_type")?.parse()?;
        let a = parse_addr(addr, "addr")?;
        if out_conn.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        match *m.run.lock() {
            Run::New => return Err(Error::inval("osdkit_messenger_start the messenger before connecting")),
            Run::Running => {}
            Run::Stopped => return Err(shutdown_err()),
        }
        let c = m.m.connect_to(ty, &a).map_err(|e| {
            if *m.run.lock() == Run::Stopped {
                shutdown_err()
            } else {
                e
            }
        })?;
        out(out_conn, new_conn(c), "out")?;
        Ok(0)
    })
}

/// Delivers `msg` to this messenger's own dispatchers through the `ms_local` thread, without a
/// socket (fast dispatchers on `ms_local`, the others on `ms_dispatch`; the message has no
/// connection). `msg` is consumed in every case. Returns 0, -EINVAL or -ESHUTDOWN.
#[no_mangle]
pub extern "C" fn osdkit_messenger_send_to_self(m: *mut osdkit_messenger, msg: *mut osdkit_message) -> c_int {
    let owned = take_msg(msg);
    guard(move || {
        let m = handle(m, "msgr")?;
        let msg = owned.ok_or_else(|| Error::inval("msg is NULL"))?;
        if *m.run.lock() == Run::Stopped {
            return Err(shutdown_err());
        }
        m.m.send_to_self(outgoing(msg));
        Ok(0)
    })
}

/// Closes the outgoing session to `addr`, if there is one: queued messages are dropped, no
/// RESET event is delivered. Handles to it stay valid; sends on them fail with -ENOTCONN.
/// Returns 0 (also when there was no such session) or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_messenger_mark_down(m: *mut osdkit_messenger, addr: *const c_char) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        let a = parse_addr(addr, "addr")?;
        m.m.mark_down(&a);
        Ok(0)
    })
}

/// Closes every session, incoming and outgoing, as `osdkit_connection_mark_down` does.
/// Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_messenger_mark_down_all(m: *mut osdkit_messenger) -> c_int {
    guard(|| {
        handle(m, "msgr")?.m.mark_down_all();
        Ok(0)
    })
}

/// The messenger's sessions as JSON (`{"name":..,"addrs":[..],"connections":[{"id":..,
/// "peer_addr":..,"state":..,"policy":..,...}]}`, what the admin socket shows), in `*json_out`
/// (free with `osdkit_string_free`). Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_messenger_dump_connections(m: *const osdkit_messenger, json_out: *mut *mut c_char) -> c_int {
    guard(|| {
        let m = handle(m, "msgr")?;
        if json_out.is_null() {
            return Err(Error::inval("json_out is NULL"));
        }
        let s = render(&m.m.dump_connections(), Format::Json);
        out(json_out, to_c_string(s.as_bytes()), "json_out")?;
        Ok(0)
    })
}

fn stop(m: &osdkit_messenger) {
    *m.run.lock() = Run::Stopped;
    if let Some(q) = m.disp.events.get() {
        q.close();
    }
    m.m.shutdown();
}

/// Stops the messenger: closes every session, discards queued messages and events, stops the
/// threads and waits for callbacks in flight (unless called from inside one: then it does not
/// wait for that one). Threads blocked in `osdkit_messenger_next_event` return -ESHUTDOWN.
/// Idempotent; the messenger cannot be started again. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_messenger_shutdown(m: *mut osdkit_messenger) -> c_int {
    guard(|| {
        stop(handle(m, "msgr")?);
        Ok(0)
    })
}

/// Shuts the messenger down (see `osdkit_messenger_shutdown`) and frees it; the dispatchers'
/// `drop` callbacks run here (or, when called from inside a callback, on one of the
/// messenger's threads right after that callback returns). Connection and message handles stay valid and must still be
/// freed. NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_messenger_free(m: *mut osdkit_messenger) {
    if m.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: `m` came from osdkit_messenger_new (Box::into_raw) and is freed once (contract).
        let b = unsafe { Box::from_raw(m) };
        stop(&b);
        drop(b);
    });
}

// ------------------------------------------------------------------------------------------
// Connections

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

/// The connection's id, unique in the process and never 0 (0 for a NULL handle).
#[no_mangle]
pub extern "C" fn osdkit_connection_id(conn: *const osdkit_connection) -> u64 {
    let mut id = 0;
    guard_void(|| match handle(conn, "conn") {
        Ok(c) => id = c.c.id(),
        Err(e) => set_last_error(&e.msg),
    });
    id
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
    if conn.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: `conn` came from this library (Box::into_raw in new_conn) and is freed once
        // (contract); lent handles are never passed here (contract).
        drop(unsafe { Box::from_raw(conn) });
    });
}

// ------------------------------------------------------------------------------------------
// Messages

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
    if msg.is_null() {
        return;
    }
    guard_void(|| drop(take_msg(msg)));
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
