//! `osdkit._native`: the Python face of osdkit.
//!
//! Threading contract, for every class here:
//! - library threads never run Python code; callables run on the owning object's dispatcher
//!   thread, `osdkit-py-cb`, one per Context / SafeTimer / Finisher / Messenger;
//! - every call that can block releases the GIL, and long waits are cut into 100 ms slices
//!   with a signal check between them, so Ctrl-C works;
//! - `close()` stops the library object, then joins the dispatcher; from inside one of the
//!   object's own callbacks it returns at once and the rest finishes right after the callback.

mod client;
mod context;
mod dispatch;
mod finisher;
mod hosting;
mod msgr;
mod perf;
mod throttle;
mod timer;

use osdkit::asok::client::AdminSocketClient;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::path::PathBuf;
use std::time::Duration;

/// Long enough for a Python admin handler, which the daemon waits up to 30 s for.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// An osdkit error as Python's `OSError(errno, message)`; Python picks the subclass
/// (`FileNotFoundError` for ENOENT, ...).
pub(crate) fn os_error(e: osdkit::Error) -> PyErr {
    PyOSError::new_err((e.errno, e.msg))
}

/// Seconds from Python as a `Duration`, refusing negative, NaN and infinite values.
pub(crate) fn duration(what: &str, seconds: f64) -> PyResult<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a finite number of seconds >= 0, not {seconds}"
        )));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Checks that `f` can be called, so a bad argument fails at registration, not later on a
/// callback thread where nobody sees the error.
pub(crate) fn callable(f: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if !f.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "expected a callable, got {}",
            f.get_type().name()?
        )));
    }
    Ok(f.unbind())
}

/// The osdkit version string.
#[pyfunction]
fn version() -> &'static str {
    osdkit::VERSION
}

/// Sends one request to an admin socket; returns the reply text (which may be an `ERROR:`
/// reply, as `ceph daemon` prints it). `request` is a dict (sent as JSON) or raw JSON text.
#[pyfunction]
fn asok_request(py: Python<'_>, path: PathBuf, request: &Bound<'_, PyAny>) -> PyResult<String> {
    let raw: Vec<u8> = if let Ok(s) = request.cast::<PyString>() {
        s.extract::<String>()?.into_bytes()
    } else if request.is_instance_of::<PyDict>() {
        let s: String = py.import("json")?.call_method1("dumps", (request,))?.extract()?;
        s.into_bytes()
    } else {
        return Err(PyTypeError::new_err(format!(
            "request must be a dict or a str, not {}",
            request.get_type().name()?
        )));
    };
    let reply = dispatch::run_interruptible(py, move || {
        AdminSocketClient::new(path)
            .with_timeout(CLIENT_TIMEOUT)
            .request_raw(&raw)
    })?
    .map_err(os_error)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// What `ceph daemon PATH WORDS...` does: matches the words against the daemon's command
/// descriptions, sends the request and returns the reply text.
#[pyfunction]
#[pyo3(signature = (path, *words, format = None))]
fn admin_command(py: Python<'_>, path: PathBuf, words: Vec<String>, format: Option<String>) -> PyResult<String> {
    dispatch::run_interruptible(py, move || {
        AdminSocketClient::new(path)
            .with_timeout(CLIENT_TIMEOUT)
            .run_words(&words, format.as_deref())
    })?
    .map_err(os_error)
}

/// The calling thread's OS-level name as Rust sees it (`threading` calls foreign threads
/// "Dummy-N"); lets tests check where callbacks run.
#[pyfunction]
#[pyo3(name = "_current_thread_name")]
fn current_thread_name() -> Option<String> {
    std::thread::current().name().map(String::from)
}

/// Native part of the `osdkit` package; import the classes from `osdkit`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", osdkit::VERSION)?;
    m.add_class::<context::Context>()?;
    m.add_class::<perf::PerfCounters>()?;
    m.add_class::<timer::SafeTimer>()?;
    m.add_class::<finisher::Finisher>()?;
    m.add_class::<throttle::Throttle>()?;
    m.add_class::<msgr::Messenger>()?;
    m.add_class::<msgr::Connection>()?;
    m.add_class::<msgr::Message>()?;
    m.add_class::<msgr::MessageIterator>()?;
    m.add_class::<client::Cluster>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<hosting::HostedDaemon>()?;
    m.add_class::<hosting::Osd>()?;
    m.add_class::<hosting::Monitor>()?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(asok_request, m)?)?;
    m.add_function(wrap_pyfunction!(admin_command, m)?)?;
    m.add_function(wrap_pyfunction!(current_thread_name, m)?)?;
    m.add_function(wrap_pyfunction!(dispatch::close_all, m)?)?;
    Ok(())
}
