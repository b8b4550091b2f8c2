//! `Context`: one daemon entity (config, log, perf counters, admin socket), with admin commands
//! implemented in Python.

use crate::dispatch::{self, Closable, Dispatcher, Job};
use crate::finisher::Finisher;
use crate::perf::PerfCounters;
use crate::throttle::Throttle;
use crate::timer::SafeTimer;
use crate::{callable, os_error};
use crossbeam_channel::{bounded, RecvTimeoutError};
use osdkit::asok::{AdminSocketHook, Request};
use osdkit::common::perf::PerfCountersBuilder;
use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the admin socket waits for a Python handler before answering ETIMEDOUT; the
/// dispatcher may be busy with another callback, so this is generous.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct CtxInner {
    pub(crate) ctx: osdkit::Context,
    disp: Arc<Dispatcher>,
    /// Commands registered from Python, by descriptor as given, so `close()` can drop their
    /// handlers and an unregister from inside a handler knows what it removes.
    cmds: Mutex<HashMap<String, u64>>,
    closed: AtomicBool,
}

impl Closable for CtxInner {
    fn begin_close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    fn finish_close(&self) {
        // The dispatcher stays up until the socket is down, so a call in flight gets its answer.
        self.ctx.shutdown();
        let ids: Vec<u64> = self.cmds.lock().drain().map(|(_, id)| id).collect();
        for id in ids {
            self.ctx.admin_socket().unregister_command(id);
        }
        self.disp.close();
        self.disp.join();
    }

    fn dispatcher(&self) -> &Dispatcher {
        &self.disp
    }
}

/// An admin command whose handler is a Python callable.
struct PyHook {
    handler: Arc<Py<PyAny>>,
    disp: Arc<Dispatcher>,
}

impl AdminSocketHook for PyHook {
    fn call(&self, req: &Request<'_>) -> osdkit::Result<String> {
        let args = serde_json::to_string(req.args).map_err(|e| osdkit::Error::inval(e.to_string()))?;
        if self.disp.is_current() {
            // An in-process `admin_command` from one of this context's own handlers: queueing
            // would wait for ourselves, and this thread may run Python anyway.
            return Python::try_attach(|py| call_handler(py, &self.handler, &args)).unwrap_or_else(|| Err(gone()));
        }
        let (tx, rx) = bounded(1);
        let handler = self.handler.clone();
        let job: Job = Box::new(move |py| {
            let _ = tx.send(call_handler(py, &handler, &args));
        });
        if !self.disp.send(job) {
            return Err(gone());
        }
        match rx.recv_timeout(HOOK_TIMEOUT) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(osdkit::Error::new(
                libc::ETIMEDOUT,
                format!(
                    "python handler for '{}' did not answer within {} s",
                    req.prefix,
                    HOOK_TIMEOUT.as_secs()
                ),
            )),
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
}

fn gone() -> osdkit::Error {
    osdkit::Error::new(libc::ESHUTDOWN, "the context is closing")
}

/// Calls a handler with the request's arguments as a dict: a str reply goes out as-is,
/// anything else as JSON; an exception becomes an error reply.
fn call_handler(py: Python<'_>, handler: &Py<PyAny>, args: &str) -> osdkit::Result<String> {
    let run = || -> PyResult<String> {
        let json = py.import("json")?;
        let args = json.call_method1("loads", (args,))?;
        let res = handler.bind(py).call1((args,))?;
        if res.is_instance_of::<PyString>() {
            res.extract()
        } else {
            json.call_method1("dumps", (res,))?.extract()
        }
    };
    run().map_err(|e| exception_to_error(py, &e))
}

/// `errno` from the exception when it has an int one (OSError and friends), else EINVAL; the
/// message names the exception type as Python prints it.
fn exception_to_error(py: Python<'_>, e: &PyErr) -> osdkit::Error {
    let v = e.value(py);
    let errno = v
        .getattr("errno")
        .ok()
        .filter(|x| !x.is_instance_of::<PyBool>())
        .and_then(|x| x.extract::<i32>().ok())
        .filter(|n| *n != 0)
        .unwrap_or(libc::EINVAL);
    let ty = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let text = v.str().map(|s| s.to_string()).unwrap_or_default();
    osdkit::Error::new(errno, format!("{ty}: {text}"))
}

/// Option values as Ceph's config parser wants them: bools as `true`/`false`, the rest by
/// `str()` (so paths, ints and floats all work).
fn option_value(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.into());
    }
    v.str()?.extract()
}

/// A daemon entity: `Context("osd.0", conf=None, run_dir=..., debug_ms=5)`.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Context {
    pub(crate) inner: Arc<CtxInner>,
}

impl Context {
    fn check_open(&self) -> PyResult<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("the context is closed"));
        }
        Ok(())
    }
}

#[pymethods]
impl Context {
    #[new]
    #[pyo3(signature = (name, conf = None, **options))]
    fn new(name: &str, conf: Option<PathBuf>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let ctx = osdkit::Context::new(name, conf.as_deref()).map_err(os_error)?;
        if let Some(opts) = options {
            for (k, v) in opts.iter() {
                let key: String = k.extract()?;
                ctx.set_option(&key, &option_value(&v)?).map_err(os_error)?;
            }
        }
        let inner = Arc::new(CtxInner {
            ctx,
            disp: Dispatcher::start()?,
            cmds: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        dispatch::register(inner.clone());
        Ok(Context { inner })
    }

    /// Starts the log, the admin socket (when `admin_socket` resolves to a path) and the
    /// service thread. A closed context cannot start again.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            // The core's start() is a silent no-op on a context that was started and shut down.
            return Err(os_error(osdkit::Error::inval("the context was closed; make a new one")));
        }
        let ctx = &self.inner.ctx;
        py.detach(|| ctx.start()).map_err(os_error)
    }

    /// Stops the context and joins its callback thread. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        dispatch::close_now(py, &(self.inner.clone() as Arc<dyn Closable>))
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        {
            let me = slf.get();
            if me.inner.closed.load(Ordering::Acquire) || !me.inner.ctx.is_started() {
                me.start(slf.py())?;
            }
        }
        Ok(slf)
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

    #[getter]
    fn name(&self) -> String {
        self.inner.ctx.name().to_string()
    }

    /// The admin socket's path once started, else None.
    #[getter]
    fn asok_path(&self) -> Option<String> {
        self.inner.ctx.asok_path().map(|p| p.to_string_lossy().into_owned())
    }

    fn set_option(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.ctx.set_option(key, &option_value(value)?).map_err(os_error)
    }

    fn get_option(&self, key: &str) -> PyResult<String> {
        self.inner.ctx.conf().get_val_str(key).map_err(os_error)
    }

    /// Adds an admin command. `handler(args: dict)` runs on this context's callback thread;
    /// a str result is the reply as-is, anything else is sent as JSON, and an exception
    /// becomes `ERROR: (errno) ...` (errno from the exception when it has one, else EINVAL).
    fn register_command(&self, descriptor: &str, help: &str, handler: Bound<'_, PyAny>) -> PyResult<()> {
        self.check_open()?;
        let hook = PyHook {
            handler: Arc::new(callable(handler)?),
            disp: self.inner.disp.clone(),
        };
        let id = self
            .inner
            .ctx
            .register_command(descriptor, help, Arc::new(hook))
            .map_err(os_error)?;
        self.inner.cmds.lock().insert(descriptor.to_string(), id);
        Ok(())
    }

    /// Removes a command (waiting for a call of it in flight). From inside a handler it
    /// returns at once and the removal completes when the handler has answered.
    fn unregister_command(&self, py: Python<'_>, descriptor: &str) -> PyResult<bool> {
        let asok = self.inner.ctx.admin_socket().clone();
        let ours = self.inner.cmds.lock().remove(descriptor);
        if let (Some(id), true) = (ours, self.inner.disp.is_current()) {
            // The admin socket thread may be waiting for this very handler: waiting for the
            // call to end here would never finish.
            std::thread::Builder::new()
                .name("osdkit-py-unreg".into())
                .spawn(move || {
                    asok.unregister_command(id);
                })?;
            Ok(true)
        } else {
            let desc = descriptor.to_string();
            dispatch::run_interruptible(py, move || match ours {
                Some(id) => asok.unregister_command(id),
                None => asok.unregister_descriptor(&desc),
            })
        }
    }

    /// Runs an admin command in-process: `admin_command("config get", var="debug_ms")`.
    /// Raises OSError(errno, message) on an error reply.
    #[pyo3(signature = (prefix, **args))]
    fn admin_command(&self, py: Python<'_>, prefix: &str, args: Option<&Bound<'_, PyDict>>) -> PyResult<String> {
        let req = PyDict::new(py);
        req.set_item("prefix", prefix)?;
        if let Some(a) = args {
            req.update(a.as_mapping())?;
        }
        let text: String = py.import("json")?.call_method1("dumps", (req,))?.extract()?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let r = if self.inner.disp.is_current() {
            let asok = self.inner.ctx.admin_socket();
            py.detach(|| asok.execute_json(&v))
        } else {
            let ctx = self.inner.ctx.clone();
            dispatch::run_interruptible(py, move || ctx.admin_socket().execute_json(&v))?
        };
        r.map_err(os_error)
    }

    /// Makes a logger shown in `perf dump`: counters are (name, kind, description) with kind
    /// one of u64, u64_counter, u64_avg, time, time_avg.
    fn perf_counters(&self, name: &str, counters: Vec<(String, String, String)>) -> PyResult<PerfCounters> {
        let mut b = PerfCountersBuilder::new(name);
        let mut seen = HashSet::new();
        for (cname, kind, desc) in &counters {
            if !seen.insert(cname.as_str()) {
                return Err(PyValueError::new_err(format!("counter '{cname}' given twice")));
            }
            match kind.as_str() {
                "u64" => b.add_u64(cname, desc),
                "u64_counter" => b.add_u64_counter(cname, desc),
                "u64_avg" => b.add_u64_avg(cname, desc),
                "time" => b.add_time(cname, desc),
                "time_avg" => b.add_time_avg(cname, desc),
                other => {
                    return Err(PyValueError::new_err(format!(
                        "counter '{cname}': unknown kind '{other}' (u64, u64_counter, u64_avg, time, time_avg)"
                    )))
                }
            };
        }
        let pc = b.build();
        let coll = self.inner.ctx.perf().clone();
        coll.add(&pc);
        Ok(PerfCounters::new(pc, coll))
    }

    /// A started SafeTimer whose counters appear in this context's `perf dump`.
    fn timer(&self, name: &str) -> PyResult<SafeTimer> {
        SafeTimer::create(name, Some(&self.inner.ctx))
    }

    /// A started Finisher whose counters appear in this context's `perf dump`.
    fn finisher(&self, name: &str) -> PyResult<Finisher> {
        Finisher::create(name, Some(&self.inner.ctx))
    }

    fn throttle(&self, name: &str, max: u64) -> Throttle {
        Throttle::create(name, max, Some(&self.inner.ctx))
    }

    /// Writes `msg` to the context's log at `level` for subsystem `subsys` (`ms`, `osd`, ...),
    /// if that level is gathered.
    fn log(&self, py: Python<'_>, subsys: &str, level: i32, msg: String) -> PyResult<()> {
        let idx = osdkit::common::subsys::index_of(subsys)
            .ok_or_else(|| PyValueError::new_err(format!("unknown log subsystem '{subsys}'")))?;
        let log = self.inner.ctx.log();
        if log.should_gather(idx, level) {
            // A full queue makes submit wait (up to a second).
            py.detach(|| log.submit(idx, level, msg));
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("<osdkit.Context {}>", self.inner.ctx.name())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        dispatch::close_on_drop(self.inner.clone());
    }
}
