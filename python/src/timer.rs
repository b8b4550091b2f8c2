//! `SafeTimer` with Python callbacks.
//!
//! The library's `safe_timer` thread only queues a job for the dispatcher and goes on: if it
//! waited for Python, a callback calling `cancel_event` (which waits for the timer's callback in
//! flight) would deadlock. The callables live here, keyed by the id Python sees, so an event
//! that already fired but whose callable has not started yet can still be cancelled, and
//! `shutdown()` guarantees nothing more runs.

use crate::dispatch::{self, Closable, Dispatcher};
use crate::{callable, duration};
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

struct Event {
    lib_id: u64,
    cb: Py<PyAny>,
}

/// What the library's callbacks reach: never the library timer itself, so they hold no cycle.
struct Shared {
    disp: Arc<Dispatcher>,
    /// Events that will still run: present until their callable starts or they are cancelled.
    events: Mutex<HashMap<u64, Event>>,
}

impl Shared {
    fn fire(&self, py: Python<'_>, key: u64) {
        let ev = self.events.lock().remove(&key);
        if let Some(ev) = ev {
            if let Err(e) = ev.cb.call0(py) {
                e.write_unraisable(py, Some(ev.cb.bind(py)));
            }
        }
    }
}

pub(crate) struct TimerInner {
    timer: osdkit::timer::SafeTimer,
    shared: Arc<Shared>,
    next_key: AtomicU64,
    closed: AtomicBool,
}

impl Closable for TimerInner {
    fn begin_close(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Jobs already queued find their event gone and run nothing.
        let evs = std::mem::take(&mut *self.shared.events.lock());
        drop(evs);
        true
    }

    fn finish_close(&self) {
        self.timer.shutdown();
        self.shared.disp.close();
        self.shared.disp.join();
    }

    fn dispatcher(&self) -> &Dispatcher {
        &self.shared.disp
    }
}

/// `SafeTimer(name, ctx=None)`, started on construction. Callbacks run in deadline order (equal
/// deadlines in the order added) on the timer's callback thread.
#[pyclass(frozen, module = "osdkit._native")]
pub struct SafeTimer {
    inner: Arc<TimerInner>,
}

impl SafeTimer {
    pub(crate) fn create(name: &str, ctx: Option<&osdkit::Context>) -> PyResult<SafeTimer> {
        let timer = match ctx {
            Some(c) => c.new_timer(name),
            None => osdkit::timer::SafeTimer::new(name, None),
        };
        timer.init()?;
        let disp = match Dispatcher::start() {
            Ok(d) => d,
            Err(e) => {
                timer.shutdown();
                return Err(e);
            }
        };
        let inner = Arc::new(TimerInner {
            timer,
            shared: Arc::new(Shared {
                disp,
                events: Mutex::new(HashMap::new()),
            }),
            next_key: AtomicU64::new(1),
            closed: AtomicBool::new(false),
        });
        dispatch::register(inner.clone());
        Ok(SafeTimer { inner })
    }
}

#[pymethods]
impl SafeTimer {
    #[new]
    #[pyo3(signature = (name, ctx = None))]
    fn new(name: &str, ctx: Option<&Bound<'_, crate::context::Context>>) -> PyResult<Self> {
        Self::create(name, ctx.map(|c| &c.get().inner.ctx))
    }

    /// Schedules `fn()` after `seconds`; returns an id for `cancel_event`.
    fn add_event_after(&self, seconds: f64, r#fn: Bound<'_, PyAny>) -> PyResult<u64> {
        let d = duration("seconds", seconds)?;
        let cb = callable(r#fn)?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("the timer is shut down"));
        }
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let shared = self.inner.shared.clone();
        // Held across the library call so the event is on record before its job can look.
        let mut events = self.inner.shared.events.lock();
        let lib_id = self.inner.timer.add_event_after(d, move || {
            let disp = shared.disp.clone();
            disp.send(Box::new(move |py| shared.fire(py, key)));
        });
        match lib_id {
            Some(lib_id) => {
                events.insert(key, Event { lib_id, cb });
                Ok(key)
            }
            None => {
                drop(events);
                Err(PyRuntimeError::new_err("the timer is shut down"))
            }
        }
    }

    /// True if the event was still going to run and now will not.
    fn cancel_event(&self, id: u64) -> bool {
        let ev = self.inner.shared.events.lock().remove(&id);
        match ev {
            Some(ev) => {
                // False from the library just means it already fired; its job will skip it.
                self.inner.timer.cancel_event(ev.lib_id);
                true
            }
            None => false,
        }
    }

    fn cancel_all_events(&self) {
        let evs = {
            let mut events = self.inner.shared.events.lock();
            self.inner.timer.cancel_all_events();
            std::mem::take(&mut *events)
        };
        drop(evs);
    }

    /// Events that will still run.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.shared.events.lock().len()
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.timer.name().to_string()
    }

    /// Cancels everything, stops the timer and joins its threads. Nothing runs afterwards.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        self.close(py)
    }

    /// Same as `shutdown()`. Idempotent.
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
        format!("<osdkit.SafeTimer {}>", self.inner.timer.name())
    }
}

impl Drop for SafeTimer {
    fn drop(&mut self) {
        dispatch::close_on_drop(self.inner.clone());
    }
}
