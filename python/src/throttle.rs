//! `Throttle`: Ceph's FIFO-fair counting throttle, blocking with the GIL released.

use crate::dispatch::SLICE;
use crate::duration;
use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `Throttle(name, max, ctx=None)`; max 0 means unlimited.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Throttle {
    t: Arc<osdkit::common::throttle::Throttle>,
}

impl Throttle {
    pub(crate) fn create(name: &str, max: u64, ctx: Option<&osdkit::Context>) -> Throttle {
        let t = match ctx {
            Some(c) => c.new_throttle(name, max),
            None => osdkit::common::throttle::Throttle::new(name, max, None),
        };
        Throttle { t }
    }
}

#[pymethods]
impl Throttle {
    #[new]
    #[pyo3(signature = (name, max, ctx = None))]
    fn new(name: &str, max: u64, ctx: Option<&Bound<'_, crate::context::Context>>) -> Self {
        Self::create(name, max, ctx.map(|c| &c.get().inner.ctx))
    }

    /// Takes `c` units, waiting (in FIFO order, GIL released) while there is no room. True if
    /// it had to wait. With `timeout` (seconds) it raises TimeoutError after that long, having
    /// taken nothing and left the queue.
    #[pyo3(signature = (c = 1, timeout = None))]
    fn get(&self, py: Python<'_>, c: u64, timeout: Option<f64>) -> PyResult<bool> {
        let limit = timeout.map(|t| duration("timeout", t)).transpose()?;
        let deadline = limit.and_then(|d| Instant::now().checked_add(d));
        let slice = limit.map_or(SLICE, |d| d.min(SLICE)).max(Duration::from_millis(1));
        let t = &self.t;
        let mut interrupted: Option<PyErr> = None;
        let got = py.detach(|| {
            // Checked every slice, outside the throttle's lock; the place in the queue is kept.
            let mut keep_waiting = || {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
                match Python::try_attach(|py| py.check_signals()) {
                    Some(Err(e)) => {
                        interrupted = Some(e);
                        false
                    }
                    _ => true,
                }
            };
            t.get_interruptible(c, slice, &mut keep_waiting)
        });
        match (got, interrupted) {
            (Some(waited), _) => Ok(waited),
            (None, Some(e)) => Err(e),
            (None, None) => Err(PyTimeoutError::new_err(format!(
                "throttle '{}': no room for {c} within {} s",
                t.name(),
                limit.unwrap_or_default().as_secs_f64()
            ))),
        }
    }

    /// Takes `c` units only if that needs no waiting and nobody is queued.
    #[pyo3(signature = (c = 1))]
    fn get_or_fail(&self, c: u64) -> bool {
        self.t.get_or_fail(c)
    }

    /// Adds `c` without waiting, even past max. Returns the new count.
    #[pyo3(signature = (c = 1))]
    fn take(&self, c: u64) -> u64 {
        self.t.take(c)
    }

    /// Returns `c` units and wakes the head waiter. Returns the new count.
    #[pyo3(signature = (c = 1))]
    fn put(&self, c: u64) -> u64 {
        self.t.put(c)
    }

    fn reset_max(&self, m: u64) {
        self.t.reset_max(m)
    }

    #[getter]
    fn current(&self) -> u64 {
        self.t.get_current()
    }

    #[getter]
    fn max(&self) -> u64 {
        self.t.get_max()
    }

    /// Number of blocked `get` calls.
    #[getter]
    fn waiters(&self) -> usize {
        self.t.waiters()
    }

    #[getter]
    fn name(&self) -> String {
        self.t.name().to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<osdkit.Throttle {} {}/{}>",
            self.t.name(),
            self.t.get_current(),
            self.t.get_max()
        )
    }
}
