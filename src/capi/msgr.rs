//! `osdkit_messenger_*`, `osdkit_connection_*`, `osdkit_message_*`, `osdkit_event_*`: the
//! messenger for C.
//!
//! Each `osdkit_messenger` registers one Rust dispatcher ([`CDispatch`]) on its messenger; it
//! holds the C dispatchers in the order they were added and, last, the pull-style event queue
//! when it is enabled. Everything they are given runs on the messenger's own threads with no
//! lock of ours held.

use super::asok::osdkit_drop_cb;
use super::connection::{new_conn, osdkit_connection, osdkit_connection_free};
use super::context::osdkit_context;
use super::message::{osdkit_message, outgoing, take_msg};
use super::{cstr, free_handle, guard, guard_void, handle, out, to_c_string, write_str, UserData};
use crate::common::entity::EntityType;
use crate::common::error::Error;
use crate::common::formatter::{render, Format};
use crate::msgr::addr::EntityAddr;
use crate::msgr::connection::ConnectionRef;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::event_queue::{EventQueue, MsgrEvent};
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use parking_lot::{Mutex, RwLock};
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
            let c = c.clone();
            q.push(match kind {
                OSDKIT_EVENT_CONNECT => MsgrEvent::Connect(c),
                OSDKIT_EVENT_ACCEPT => MsgrEvent::Accept(c),
                OSDKIT_EVENT_RESET => MsgrEvent::Reset(c),
                OSDKIT_EVENT_REMOTE_RESET => MsgrEvent::RemoteReset(c),
                _ => MsgrEvent::Refused(c),
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
            q.push(MsgrEvent::Message(m));
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
        let (kind, msg, conn) = match q.next(timeout)? {
            MsgrEvent::Message(m) => {
                let conn = m.conn.clone();
                (OSDKIT_EVENT_MESSAGE, Some(m), conn)
            }
            MsgrEvent::Connect(c) => (OSDKIT_EVENT_CONNECT, None, Some(c)),
            MsgrEvent::Accept(c) => (OSDKIT_EVENT_ACCEPT, None, Some(c)),
            MsgrEvent::Reset(c) => (OSDKIT_EVENT_RESET, None, Some(c)),
            MsgrEvent::RemoteReset(c) => (OSDKIT_EVENT_REMOTE_RESET, None, Some(c)),
            MsgrEvent::Refused(c) => (OSDKIT_EVENT_REFUSED, None, Some(c)),
        };
        let e = osdkit_event {
            kind,
            msg: msg.map_or(std::ptr::null_mut(), |m| Box::into_raw(Box::new(osdkit_message { m }))),
            conn: conn.map_or(std::ptr::null_mut(), new_conn),
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
/// `drop` callbacks run here (or, when this or an earlier shutdown was called from inside a
/// callback, on one of the messenger's threads right after that callback returns). Connection and message handles stay valid and must still be
/// freed. NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_messenger_free(m: *mut osdkit_messenger) {
    free_handle(m, stop);
}
