//! `Messenger`, `Connection` and `Message`: the messenger from Python.
//!
//! The binding adds one dispatcher to the tail of the messenger's chain. On `ms_dispatch` it
//! either queues the message for `recv()` / iteration (no Python involved), or, when a callable
//! was given to `on_message` / `on_event`, hands a job to this messenger's own callback thread
//! (`osdkit-py-cb`) and waits for it, as Ceph's `ms_dispatch` waits for its dispatcher: messages
//! and connection events reach Python in the order the messenger delivers them, and the
//! dispatch throttle keeps its meaning. `ms_dispatch` never attaches to the interpreter.
//!
//! Payloads: a `bytes` given to `Message` is handed to the socket without a copy (the segment
//! keeps the Python object alive); a received segment becomes `bytes` (one copy) the first time
//! Python reads it, and sending a received message again (`reply(m)`, forwarding) copies nothing.

use crate::dispatch::{self, Closable, Dispatcher, Job, SLICE};
use crate::{callable, duration, os_error};
use bytes::Bytes;
use crossbeam_channel::bounded;
use osdkit::common::entity::{EntityName, EntityType};
use osdkit::common::formatter::{render, Format};
use osdkit::msgr::addr::EntityAddr;
use osdkit::msgr::connection::{ConnStatus, ConnectionRef};
use osdkit::msgr::dispatcher::Dispatcher as MsDispatcher;
use osdkit::msgr::event_queue::{EventQueue, MsgrEvent};
use osdkit::msgr::message::Message as RMessage;
use osdkit::msgr::messenger::Messenger as RMessenger;
use osdkit::msgr::policy::Policy;
use parking_lot::Mutex;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const POLICIES: &str = "lossy_client, lossless_client, lossless_peer, lossless_peer_reuse, stateful_server, \
                        stateless_server";

fn policy(name: &str) -> PyResult<Policy> {
    Ok(match name {
        "lossy_client" => Policy::lossy_client(),
        "lossless_client" => Policy::lossless_client(),
        "lossless_peer" => Policy::lossless_peer(),
        "lossless_peer_reuse" => Policy::lossless_peer_reuse(),
        "stateful_server" => Policy::stateful_server(),
        "stateless_server" => Policy::stateless_server(),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown policy '{other}' (one of {POLICIES})"
            )))
        }
    })
}

fn entity_type(s: &str) -> PyResult<EntityType> {
    s.parse::<EntityType>()
        .map_err(|_| PyValueError::new_err(format!("unknown peer type '{s}' (mon, mds, osd, client, mgr)")))
}

/// `CEPH_ENTITY_TYPE_*` as its name; an unknown value as `type0x..`.
fn type_name(wire: u8) -> String {
    [
        EntityType::Mon,
        EntityType::Mds,
        EntityType::Osd,
        EntityType::Client,
        EntityType::Mgr,
    ]
    .into_iter()
    .find(|t| t.wire_value() == wire)
    .map_or_else(|| format!("type{wire:#04x}"), |t| t.as_str().to_string())
}

fn parse_addr(s: &str) -> PyResult<EntityAddr> {
    s.parse::<EntityAddr>().map_err(|e| PyValueError::new_err(e.msg))
}

/// An int argument in `0..=max`, as ValueError otherwise (not OverflowError).
fn uint(what: &str, v: i128, max: u64) -> PyResult<u64> {
    if v < 0 || v > i128::from(max) {
        return Err(PyValueError::new_err(format!("{what} must be in 0..={max}, not {v}")));
    }
    Ok(v as u64)
}

fn closed_error() -> PyErr {
    PyRuntimeError::new_err("the messenger is closed")
}

/// One payload segment: the bytes the messenger sends, and the Python `bytes` for them, made
/// on first access when they came from the wire.
struct Seg {
    bytes: Bytes,
    obj: PyOnceLock<Py<PyBytes>>,
}

impl Seg {
    fn from_rust(bytes: Bytes) -> Seg {
        Seg {
            bytes,
            obj: PyOnceLock::new(),
        }
    }

    fn from_py(py: Python<'_>, what: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Seg> {
        let Some(v) = v.filter(|v| !v.is_none()) else {
            return Ok(Seg::from_rust(Bytes::new()));
        };
        if let Ok(b) = v.cast::<PyBytes>() {
            let seg = Seg::from_rust(Bytes::from_owner(PyBackedBytes::from(b.clone())));
            let _ = seg.obj.set(py, b.clone().unbind());
            Ok(seg)
        } else if let Ok(b) = v.cast::<PyByteArray>() {
            // A bytearray can change after this call: take a copy now.
            Ok(Seg::from_rust(Bytes::from(b.to_vec())))
        } else {
            Err(PyTypeError::new_err(format!(
                "{what} must be bytes or bytearray, not {}",
                v.get_type().name()?
            )))
        }
    }

    fn get<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.obj
            .get_or_init(py, || PyBytes::new(py, &self.bytes).unbind())
            .bind(py)
            .clone()
    }
}

/// `Message(type, front=b"", data=b"", middle=b"", priority=127, tid=0)`: immutable; can be
/// sent any number of times. A received message has `.connection` (None when it was sent to
/// self) and `.seq`.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Message {
    ty: u16,
    priority: u16,
    tid: u64,
    seq: u64,
    front: Seg,
    middle: Seg,
    data: Seg,
    conn: Option<Py<Connection>>,
}

impl Message {
    fn from_rust(py: Python<'_>, mut m: RMessage) -> PyResult<Message> {
        let conn = match m.conn.take() {
            Some(c) => Some(Py::new(py, Connection { c })?),
            None => None,
        };
        Ok(Message {
            ty: m.ty,
            priority: m.priority,
            tid: m.tid,
            seq: m.seq,
            front: Seg::from_rust(std::mem::take(&mut m.front)),
            middle: Seg::from_rust(std::mem::take(&mut m.middle)),
            data: Seg::from_rust(std::mem::take(&mut m.data)),
            conn,
        })
        // `m` drops here, returning its policy-throttle share.
    }

    /// A new library message sharing this one's segments (no copy).
    fn to_rust(&self) -> RMessage {
        let mut m = RMessage::new(self.ty, self.front.bytes.clone())
            .with_data(self.data.bytes.clone())
            .with_priority(self.priority)
            .with_tid(self.tid);
        m.middle = self.middle.bytes.clone();
        m
    }
}

#[pymethods]
impl Message {
    #[new]
    #[pyo3(signature = (r#type, front = None, data = None, middle = None, priority = 127, tid = 0))]
    fn new(
        py: Python<'_>,
        r#type: i128,
        front: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyAny>>,
        middle: Option<&Bound<'_, PyAny>>,
        priority: i128,
        tid: i128,
    ) -> PyResult<Self> {
        Ok(Message {
            ty: uint("type", r#type, u64::from(u16::MAX))? as u16,
            priority: uint("priority", priority, u64::from(u16::MAX))? as u16,
            tid: uint("tid", tid, u64::MAX)?,
            seq: 0,
            front: Seg::from_py(py, "front", front)?,
            middle: Seg::from_py(py, "middle", middle)?,
            data: Seg::from_py(py, "data", data)?,
            conn: None,
        })
    }

    #[getter]
    fn r#type(&self) -> u16 {
        self.ty
    }

    #[getter]
    fn priority(&self) -> u16 {
        self.priority
    }

    #[getter]
    fn tid(&self) -> u64 {
        self.tid
    }

    /// The session sequence number it arrived with (0 for a message made here or sent to self).
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    #[getter]
    fn front<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.front.get(py)
    }

    #[getter]
    fn middle<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.middle.get(py)
    }

    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.data.get(py)
    }

    /// The connection it arrived on; None for a message made here or sent to self.
    #[getter]
    fn connection(&self, py: Python<'_>) -> Option<Py<Connection>> {
        self.conn.as_ref().map(|c| c.clone_ref(py))
    }

    /// Sends `msg` back on the connection this message arrived on; a `msg` whose tid is 0 goes
    /// out with this message's tid. OSError(ENOTCONN) when there is no connection (sent to
    /// self) or it is closed.
    fn reply(&self, py: Python<'_>, msg: &Bound<'_, Message>) -> PyResult<()> {
        let Some(c) = &self.conn else {
            return Err(PyOSError::new_err((
                libc::ENOTCONN,
                "this message has no connection to reply on (it was sent to self)",
            )));
        };
        let mut m = msg.get().to_rust();
        if m.tid == 0 {
            m.tid = self.tid;
        }
        c.bind(py).get().c.send_message(m).map_err(os_error)
    }

    fn __repr__(&self) -> String {
        format!(
            "<osdkit.Message type={:#06x} tid={} priority={} front={} middle={} data={}>",
            self.ty,
            self.tid,
            self.priority,
            self.front.bytes.len(),
            self.middle.bytes.len(),
            self.data.bytes.len()
        )
    }
}

/// One session with a peer, from `Messenger.connect()`, `Message.connection` or an event.
/// Connections compare equal when they are the same session.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Connection {
    c: ConnectionRef,
}

#[pymethods]
impl Connection {
    /// Queues `msg` for the peer. OSError(ENOTCONN) once the connection is closed (marked down,
    /// a lossy session that faulted, or its messenger closed).
    fn send(&self, msg: &Bound<'_, Message>) -> PyResult<()> {
        self.c.send_message(msg.get().to_rust()).map_err(os_error)
    }

    /// Closes the connection: what is queued is dropped and no reset event is delivered.
    fn mark_down(&self) {
        self.c.mark_down()
    }

    fn send_keepalive(&self) {
        self.c.send_keepalive()
    }

    #[getter]
    fn id(&self) -> u64 {
        self.c.id()
    }

    #[getter]
    fn peer_addr(&self) -> String {
        self.c.peer_addr().to_string()
    }

    /// `mon`, `mds`, `osd`, `client` or `mgr`.
    #[getter]
    fn peer_type(&self) -> String {
        type_name(self.c.peer_type())
    }

    #[getter]
    fn is_connected(&self) -> bool {
        self.c.is_connected()
    }

    /// `connecting`, `open`, `standby` or `closed`.
    #[getter]
    fn state(&self) -> &'static str {
        match self.c.status() {
            ConnStatus::Connecting => "connecting",
            ConnStatus::Open => "open",
            ConnStatus::Standby => "standby",
            ConnStatus::Closed => "closed",
        }
    }

    /// The connection's policy name (`lossless_peer`, `lossy_client`, ...).
    #[getter]
    fn policy(&self) -> &'static str {
        self.c.policy().name()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Connection>()
            .is_ok_and(|o| Arc::ptr_eq(&o.get().c, &self.c))
    }

    fn __hash__(&self) -> u64 {
        self.c.id()
    }

    fn __repr__(&self) -> String {
        format!(
            "<osdkit.Connection {} {} {} {}>",
            self.c.id(),
            type_name(self.c.peer_type()),
            self.c.peer_addr(),
            self.state()
        )
    }
}

/// What the library's dispatcher and the Python object share; never the library messenger
/// itself (the dispatcher lives in its chain).
struct Shared {
    disp: Arc<Dispatcher>,
    on_message: Mutex<Option<Arc<Py<PyAny>>>>,
    on_event: Mutex<Option<Arc<Py<PyAny>>>>,
    /// Messages for `recv()` while no `on_message` callable is set (the core messenger's
    /// pull-style queue); closed, and emptied, at close.
    queue: EventQueue,
    closed: AtomicBool,
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs `job` on the callback thread and waits for it to finish (or to be dropped unrun,
    /// when the dispatcher is closing). Only ever called on library threads.
    fn run_and_wait(&self, job: impl FnOnce(Python<'_>) + Send + 'static) {
        let (done_tx, done_rx) = bounded::<()>(1);
        let job: Job = Box::new(move |py| {
            job(py);
            let _ = done_tx.send(());
        });
        if self.disp.send(job) {
            let _ = done_rx.recv();
        }
    }

    /// An event for `on_event`; true if a callable took it.
    fn event(self: &Arc<Self>, kind: &'static str, c: &ConnectionRef) -> bool {
        let cb = self.on_event.lock().clone();
        let Some(cb) = cb else {
            return false;
        };
        if self.is_closed() {
            return false;
        }
        let me = self.clone();
        let c = c.clone();
        self.run_and_wait(move |py| {
            if !me.is_closed() {
                let r = Py::new(py, Connection { c }).and_then(|conn| cb.call1(py, (kind, conn)));
                if let Err(e) = r {
                    e.write_unraisable(py, Some(cb.bind(py)));
                }
            }
            drop(cb);
        });
        true
    }
}

/// The binding's dispatcher in the library's chain: runs on `ms_dispatch`, never attaches.
struct PyDispatcher {
    shared: Arc<Shared>,
}

impl MsDispatcher for PyDispatcher {
    fn ms_dispatch(&self, m: RMessage) -> Option<RMessage> {
        let sh = &self.shared;
        if sh.is_closed() {
            return None;
        }
        let cb = sh.on_message.lock().clone();
        match cb {
            Some(cb) => {
                let me = sh.clone();
                sh.run_and_wait(move |py| {
                    if !me.is_closed() {
                        let r = Message::from_rust(py, m).and_then(|pm| cb.call1(py, (pm,)));
                        if let Err(e) = r {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    }
                    drop(cb);
                });
            }
            None => {
                sh.queue.push(MsgrEvent::Message(m));
            }
        }
        None
    }
    fn ms_handle_connect(&self, c: &ConnectionRef) {
        self.shared.event("connect", c);
    }
    fn ms_handle_accept(&self, c: &ConnectionRef) {
        self.shared.event("accept", c);
    }
    fn ms_handle_reset(&self, c: &ConnectionRef) -> bool {
        self.shared.event("reset", c)
    }
    fn ms_handle_remote_reset(&self, c: &ConnectionRef) {
        self.shared.event("remote_reset", c);
    }
    fn ms_handle_refused(&self, c: &ConnectionRef) -> bool {
        self.shared.event("refused", c)
    }
}

pub(crate) struct MsgrInner {
    msgr: RMessenger,
    shared: Arc<Shared>,
    started: AtomicBool,
    /// Held by `start()` and by the shutdown, so a start racing a close cannot spawn threads
    /// after the shutdown has run (the library's `start()` would).
    lifecycle: Mutex<()>,
}

impl Closable for MsgrInner {
    fn begin_close(&self) -> bool {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Jobs already queued see `closed` and call nothing. Dropped outside the locks: a
        // callable's destructor may come back here.
        let cbs = (self.shared.on_message.lock().take(), self.shared.on_event.lock().take());
        drop(cbs);
        // Wakes every `recv()` at once.
        self.shared.queue.close();
        true
    }

    fn finish_close(&self) {
        // `ms_dispatch` may be waiting for a job on the callback thread, so that one stops last.
        {
            let _life = self.lifecycle.lock();
            self.msgr.shutdown();
        }
        self.shared.disp.close();
        self.shared.disp.join();
    }

    fn dispatcher(&self) -> &Dispatcher {
        &self.shared.disp
    }
}

impl MsgrInner {
    fn check_open(&self) -> PyResult<()> {
        if self.shared.is_closed() {
            return Err(closed_error());
        }
        Ok(())
    }

    /// The next queued message, waiting detached in slices; None once the messenger is closed.
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<RMessage>> {
        if self.shared.disp.is_current() {
            return Err(PyRuntimeError::new_err(
                "recv() from one of this messenger's own callbacks would wait for itself",
            ));
        }
        let limit = timeout.map(|t| duration("timeout", t)).transpose()?;
        let deadline = limit.and_then(|d| Instant::now().checked_add(d));
        let queue = &self.shared.queue;
        loop {
            if self.shared.is_closed() {
                return Ok(None);
            }
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
                None => SLICE,
            };
            match py.detach(|| queue.next(Some(slice))) {
                Ok(_) if self.shared.is_closed() => return Ok(None),
                Ok(MsgrEvent::Message(m)) => return Ok(Some(m)),
                // Only messages are queued here (connection events go to `on_event`).
                Ok(_) => continue,
                Err(e) if e.errno == libc::ESHUTDOWN => return Ok(None),
                Err(_) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(PyTimeoutError::new_err(format!(
                            "no message within {} s",
                            limit.unwrap_or_default().as_secs_f64()
                        )));
                    }
                    py.check_signals()?;
                }
            }
        }
    }
}

/// `Messenger(ctx, name, nonce=None, policy="lossless_peer")`: bind (optional), start, then
/// connect and send. Received messages go to `on_message` when a callable is set, else to
/// `recv()` / iteration.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Messenger {
    inner: Arc<MsgrInner>,
    /// Keeps the context (config, perf counters) alive as long as the messenger.
    _ctx: Py<crate::context::Context>,
}

#[pymethods]
impl Messenger {
    #[new]
    #[pyo3(signature = (ctx, name, nonce = None, policy = "lossless_peer"))]
    fn new(ctx: &Bound<'_, crate::context::Context>, name: &str, nonce: Option<i128>, policy: &str) -> PyResult<Self> {
        name.parse::<EntityName>().map_err(|e| PyValueError::new_err(e.msg))?;
        let nonce = nonce
            .map(|n| uint("nonce", n, u64::from(u32::MAX)).map(|n| n as u32))
            .transpose()?;
        let default_policy = self::policy(policy)?;
        let msgr = RMessenger::new(&ctx.get().inner.ctx, name, nonce).map_err(os_error)?;
        msgr.set_default_policy(default_policy);
        let shared = Arc::new(Shared {
            disp: Dispatcher::start()?,
            on_message: Mutex::new(None),
            on_event: Mutex::new(None),
            queue: EventQueue::new(),
            closed: AtomicBool::new(false),
        });
        msgr.add_dispatcher_tail(Arc::new(PyDispatcher { shared: shared.clone() }));
        let inner = Arc::new(MsgrInner {
            msgr,
            shared,
            started: AtomicBool::new(false),
            lifecycle: Mutex::new(()),
        });
        dispatch::register(inner.clone());
        Ok(Messenger {
            inner,
            _ctx: ctx.clone().unbind(),
        })
    }

    /// Listens on `addr` (`"127.0.0.1:0"`: any free port); before `start()`. Returns the
    /// address peers connect to, like `v2:127.0.0.1:41234/2837465`.
    #[pyo3(signature = (addr = "127.0.0.1:0"))]
    fn bind(&self, py: Python<'_>, addr: &str) -> PyResult<String> {
        self.inner.check_open()?;
        if self.inner.started.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("bind() must come before start()"));
        }
        let sa: SocketAddr = match addr.parse() {
            Ok(sa) => sa,
            Err(_) => parse_addr(addr)?
                .addr
                .ok_or_else(|| PyValueError::new_err(format!("'{addr}' has no IP address")))?,
        };
        let msgr = &self.inner.msgr;
        let a = py.detach(|| msgr.bind(sa)).map_err(os_error)?;
        Ok(a.to_string())
    }

    /// The address bound, or None.
    #[getter]
    fn addr(&self) -> Option<String> {
        self.inner.msgr.my_addrs().first().map(|a| a.to_string())
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.msgr.name().to_string()
    }

    #[getter]
    fn nonce(&self) -> u32 {
        self.inner.msgr.nonce()
    }

    /// The policy for peers of `peer_type` (`mon`, `mds`, `osd`, `client`, `mgr`); for
    /// connections made after this call.
    fn set_policy(&self, peer_type: &str, policy: &str) -> PyResult<()> {
        let t = entity_type(peer_type)?;
        self.inner.msgr.set_policy(t, self::policy(policy)?);
        Ok(())
    }

    /// The policy for peer types without their own.
    fn set_default_policy(&self, policy: &str) -> PyResult<()> {
        self.inner.msgr.set_default_policy(self::policy(policy)?);
        Ok(())
    }

    /// Starts the workers and the dispatch threads. Idempotent.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| {
            let _life = inner.lifecycle.lock();
            inner.check_open()?;
            inner.msgr.start().map_err(os_error)?;
            inner.started.store(true, Ordering::Release);
            Ok(())
        })
    }

    /// The session to `addr` (a peer of `peer_type`): opened on first use, reused after. It
    /// connects in the background; messages sent meanwhile are queued.
    #[pyo3(signature = (addr, peer_type = "osd"))]
    fn connect(&self, addr: &str, peer_type: &str) -> PyResult<Connection> {
        let a = parse_addr(addr)?;
        let t = entity_type(peer_type)?;
        self.inner.check_open()?;
        if !self.inner.started.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("start() the messenger before connecting"));
        }
        let c = self.inner.msgr.connect_to(t, &a).map_err(os_error)?;
        Ok(Connection { c })
    }

    /// Delivers `msg` to this messenger itself (through `ms_local`, no socket); it arrives
    /// with `connection` None.
    fn send_to_self(&self, msg: &Bound<'_, Message>) -> PyResult<()> {
        self.inner.check_open()?;
        self.inner.msgr.send_to_self(msg.get().to_rust());
        Ok(())
    }

    /// Closes the outgoing session to `addr`, if there is one.
    fn mark_down(&self, addr: &str) -> PyResult<()> {
        let a = parse_addr(addr)?;
        self.inner.msgr.mark_down(&a);
        Ok(())
    }

    /// Closes every connection.
    fn mark_down_all(&self) {
        self.inner.msgr.mark_down_all()
    }

    /// The open connections as the admin socket's `messenger connections` lists them: dicts
    /// with id, peer_addr, peer_type (the wire number), state, policy, outgoing, queued,
    /// unacked, out_seq, in_seq.
    fn connections<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = render(&self.inner.msgr.dump_connections(), Format::Json);
        let v = py.import("json")?.call_method1("loads", (text,))?;
        v.get_item("connections")
    }

    /// Sets the callable `fn(msg)` run on this messenger's callback thread for every message
    /// received from then on (None: back to `recv()`). Returns `fn`, so it works as a
    /// decorator. The messenger's dispatch waits for it, as in Ceph: keep it short.
    fn on_message<'py>(&self, r#fn: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.set_callback(&self.inner.shared.on_message, &r#fn)?;
        Ok(r#fn)
    }

    /// Sets the callable `fn(kind, conn)` for connection events, kind one of `connect`,
    /// `accept`, `reset`, `remote_reset`, `refused`; delivered in order with the messages, on
    /// the callback thread. None removes it. Returns `fn`.
    fn on_event<'py>(&self, r#fn: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.set_callback(&self.inner.shared.on_event, &r#fn)?;
        Ok(r#fn)
    }

    /// The next received message (while no `on_message` callable is set). Waits up to
    /// `timeout` seconds (None: for ever), then raises TimeoutError; RuntimeError once closed.
    #[pyo3(signature = (timeout = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Message> {
        match self.inner.recv(py, timeout)? {
            Some(m) => Message::from_rust(py, m),
            None => Err(closed_error()),
        }
    }

    /// An iterator over received messages; each step waits up to `timeout` seconds (None: for
    /// ever) and raises TimeoutError after that. It ends when the messenger is closed.
    #[pyo3(signature = (timeout = None))]
    fn messages(&self, timeout: Option<f64>) -> PyResult<MessageIterator> {
        if let Some(t) = timeout {
            duration("timeout", t)?;
        }
        Ok(MessageIterator {
            inner: self.inner.clone(),
            timeout,
        })
    }

    fn __iter__(&self) -> MessageIterator {
        MessageIterator {
            inner: self.inner.clone(),
            timeout: None,
        }
    }

    /// Stops the messenger, drops what is queued and joins its threads. Same as `close()`.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        self.close(py)
    }

    /// Stops the messenger and joins its threads; nothing is called back afterwards, and
    /// connections refuse to send. Idempotent. From inside one of its callbacks it returns at
    /// once and the rest finishes right after the callback.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        dispatch::close_now(py, &(self.inner.clone() as Arc<dyn Closable>))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let addr = self
            .inner
            .msgr
            .my_addrs()
            .first()
            .map_or_else(|| "unbound".to_string(), |a| a.to_string());
        format!("<osdkit.Messenger {} {addr}>", self.inner.msgr.name())
    }
}

impl Messenger {
    fn set_callback(&self, slot: &Mutex<Option<Arc<Py<PyAny>>>>, f: &Bound<'_, PyAny>) -> PyResult<()> {
        let new = if f.is_none() {
            None
        } else {
            Some(Arc::new(callable(f.clone())?))
        };
        self.inner.check_open()?;
        // The old callable drops outside the lock.
        let old = std::mem::replace(&mut *slot.lock(), new);
        drop(old);
        if self.inner.shared.is_closed() {
            // Closed meanwhile: begin_close may have emptied the slot before we filled it.
            let late = slot.lock().take();
            drop(late);
        }
        Ok(())
    }
}

impl Drop for Messenger {
    fn drop(&mut self) {
        dispatch::close_on_drop(self.inner.clone());
    }
}

/// From `Messenger.messages()` or `iter(messenger)`.
#[pyclass(frozen, module = "osdkit._native")]
pub struct MessageIterator {
    inner: Arc<MsgrInner>,
    timeout: Option<f64>,
}

#[pymethods]
impl MessageIterator {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Message>> {
        match self.inner.recv(py, self.timeout)? {
            Some(m) => Ok(Some(Message::from_rust(py, m)?)),
            None => Ok(None),
        }
    }
}
