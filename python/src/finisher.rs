//! `Finisher` with Python completions.
//!
//! The library's worker hands each completion to the dispatcher and waits for it to finish,
//! so completions keep their FIFO order and `wait_for_empty` covers the Python callables too.

use crate::dispatch::{self, Closable, Dispatcher, Job, SLICE};
use crate::{callable, duration};
use crossbeam_channel::bounded;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct FinInner {
    fin: Arc<osdkit::finisher::Finisher>,
    disp: Arc<Dispatcher>,
    closed: AtomicBool,
}

impl Closable for FinInner {
    fn begin_close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    fn finish_close(&self) {
        // The worker finishes its current batch through the dispatcher, so that goes second.
        self.fin.stop();
        self.disp.close();
        self.disp.join();
    }

    fn dispatcher(&self) -> &Dispatcher {
        &self.disp
    }
}

/// `Finisher(name, ctx=None)`, started on construction: runs `fn(r)` completions in order on
/// its callback thread.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Finisher {
    inner: Arc<FinInner>,
}

impl Finisher {
    pub(crate) fn create(name: &str, ctx: Option<&osdkit::Context>) -> PyResult<Finisher> {
        let fin = match ctx {
            Some(c) => c.new_finisher(name),
            None => osdkit::finisher::Finisher::new(name, "finisher", None),
        };
        fin.start()?;
        let disp = match Dispatcher::start() {
            Ok(d) => d,
            Err(e) => {
                fin.stop();
                return Err(e);
            }
        };
        let inner = Arc::new(FinInner {
            fin,
            disp,
            closed: AtomicBool::new(false),
        });
        dispatch::register(inner.clone());
        Ok(Finisher { inner })
    }
}

#[pymethods]
impl Finisher {
    #[new]
    #[pyo3(signature = (name, ctx = None))]
    fn new(name: &str, ctx: Option<&Bound<'_, crate::context::Context>>) -> PyResult<Self> {
        Self::create(name, ctx.map(|c| &c.get().inner.ctx))
    }

    /// Queues `fn(r)` behind everything queued before it.
    #[pyo3(signature = (r#fn, r = 0))]
    fn queue(&self, r#fn: Bound<'_, PyAny>, r: i32) -> PyResult<()> {
        let cb = callable(r#fn)?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("the finisher is stopped"));
        }
        let disp = self.inner.disp.clone();
        self.inner.fin.queue(
            move |r| {
                let (done_tx, done_rx) = bounded::<()>(1);
                let job: Job = Box::new(move |py| {
                    if let Err(e) = cb.call1(py, (r,)) {
                        e.write_unraisable(py, Some(cb.bind(py)));
                    }
                    drop(cb);
                    let _ = done_tx.send(());
                });
                // A job dropped unrun (dispatcher closing) drops `done_tx` too, which ends the
                // wait as well.
                if disp.send(job) {
                    let _ = done_rx.recv();
                }
            },
            r,
        );
        Ok(())
    }

    /// Waits until everything queued so far has run (Python callables included). True if it
    /// emptied within `timeout` (None: wait as long as it takes). From one of this finisher's
    /// own completions it returns True at once, since waiting would wait for itself.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_empty(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.inner.disp.is_current() {
            return Ok(true);
        }
        let deadline = match timeout {
            Some(t) => Some(Instant::now().checked_add(duration("timeout", t)?)),
            None => None,
        };
        let fin = &self.inner.fin;
        loop {
            let slice = match deadline {
                Some(Some(d)) => d.saturating_duration_since(Instant::now()).min(SLICE),
                _ => SLICE,
            };
            if py.detach(|| fin.wait_for_empty_timeout(slice)) {
                return Ok(true);
            }
            if matches!(deadline, Some(Some(d)) if Instant::now() >= d) {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.fin.name().to_string()
    }

    /// Stops after the batch in progress (what is still queued never runs) and joins the
    /// threads. Same as `close()`.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.close(py)
    }

    /// Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        dispatch::close_now(py, &(self.inner.clone() as Arc<dyn Closable>))
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
        format!("<osdkit.Finisher {}>", self.inner.fin.name())
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        dispatch::close_on_drop(self.inner.clone());
    }
}
