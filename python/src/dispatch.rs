//! The binding's own threads: where Python callables run, and how objects close.
//!
//! Library threads (`admin_socket`, `safe_timer`, `finisher`) never take the GIL: they hand a
//! job to the owning object's dispatcher thread (`osdkit-py-cb`), which runs it attached. A
//! library thread stuck behind the GIL would stall the daemon's own work, and one that tries to
//! attach while the interpreter finalizes hangs or crashes (ffi-anchors §3).

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

pub(crate) const THREAD_NAME: &str = "osdkit-py-cb";

/// Longest wait without looking at signals, so Ctrl-C is noticed promptly.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

pub(crate) type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// One callback thread and its queue.
pub(crate) struct Dispatcher {
    tx: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
}

impl Dispatcher {
    pub(crate) fn start() -> PyResult<Arc<Dispatcher>> {
        let (tx, rx) = unbounded::<Job>();
        let h = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(rx))?;
        Ok(Arc::new(Dispatcher {
            tx: Mutex::new(Some(tx)),
            thread_id: h.thread().id(),
            thread: Mutex::new(Some(h)),
        }))
    }

    /// Queues a job; false (the job dropped unrun) once the dispatcher is closed.
    pub(crate) fn send(&self, job: Job) -> bool {
        // Sent outside the lock: a refused job is dropped here, and dropping a Python object can
        // run arbitrary code that may come back to this dispatcher.
        let tx = self.tx.lock().clone();
        match tx {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    pub(crate) fn is_current(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Refuses new jobs; the thread runs what is already queued, then exits.
    pub(crate) fn close(&self) {
        let tx = self.tx.lock().take();
        drop(tx);
    }

    /// Waits for the thread to exit (after `close`). Never waits for itself.
    pub(crate) fn join(&self) {
        if self.is_current() {
            return;
        }
        let h = self.thread.lock().take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }
}

fn run(rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        // `try_attach` refuses once the interpreter is finalizing; the job is then dropped, which
        // also releases a library thread waiting for it.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Python::try_attach(job)));
        if r.is_err() {
            eprintln!("osdkit: a callback job panicked; the dispatcher goes on");
        }
    }
}

/// Something with library threads and a dispatcher that `close()` must stop.
pub(crate) trait Closable: Send + Sync {
    /// Marks the object closed and does the part that cannot block. False if it already was.
    fn begin_close(&self) -> bool;
    /// Stops the library object, then the dispatcher. Runs detached from the interpreter and
    /// never on the object's own dispatcher thread.
    fn finish_close(&self);
    fn dispatcher(&self) -> &Dispatcher;
}

/// `close()` for Python: returns once everything stopped, waiting detached and in slices
/// (Ctrl-C raises, and the close goes on in the background). From a callback on the object's
/// own dispatcher it returns at once, since waiting would wait for the caller itself; the
/// blocking part then finishes on a helper thread right after the callback returns.
pub(crate) fn close_now(py: Python<'_>, obj: &Arc<dyn Closable>) -> PyResult<()> {
    if !obj.begin_close() {
        return Ok(());
    }
    let o = obj.clone();
    if obj.dispatcher().is_current() {
        spawn_reaper(move || o.finish_close());
        Ok(())
    } else {
        run_interruptible(py, move || o.finish_close())
    }
}

/// For `Drop`: a destructor runs attached and must not block on threads that need the GIL.
pub(crate) fn close_on_drop(obj: Arc<dyn Closable>) {
    if obj.begin_close() {
        spawn_reaper(move || obj.finish_close());
    }
}

fn spawn_reaper(f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name("osdkit-py-reap".into()).spawn(f) {
        eprintln!("osdkit: cannot start a thread to finish closing: {e}");
    }
}

static LIVE: Mutex<Vec<Weak<dyn Closable>>> = Mutex::new(Vec::new());

/// Remembers `obj` so `close_all` (run from `atexit`) can stop it.
pub(crate) fn register(obj: Arc<dyn Closable>) {
    let mut live = LIVE.lock();
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(&obj));
}

/// Closes every live object, newest first, so helpers made from a context go before it.
#[pyfunction]
#[pyo3(name = "_close_all")]
pub(crate) fn close_all(py: Python<'_>) -> PyResult<()> {
    let objs: Vec<Arc<dyn Closable>> = LIVE.lock().drain(..).filter_map(|w| w.upgrade()).collect();
    for o in objs.iter().rev() {
        close_now(py, o)?;
    }
    Ok(())
}

/// Runs `f` on a helper thread and waits for it in slices, detached, checking signals between
/// slices: socket round trips and in-process admin commands can take seconds.
pub(crate) fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = bounded(1);
    std::thread::Builder::new()
        .name("osdkit-py-req".into())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    loop {
        match py.detach(|| rx.recv_timeout(SLICE)) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err("osdkit request thread panicked"));
            }
        }
    }
}
