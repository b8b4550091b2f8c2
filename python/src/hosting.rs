//! `Osd` and `Monitor`: one OSD or monitor hosted in the Python process
//! (`osdkit::hosting::instance::HostedDaemon`), made from an id, a conf file and options.
//! Its `on_active` / `on_shutdown` callbacks and the completions of `Osd.aio_*` run on the
//! daemon's own `osdkit-py-cb` thread, never on a library thread.

use crate::dispatch::{self, Dispatcher};
use crate::{callable, duration, os_error};
use osdkit::hosting::instance::{HostedDaemon as Hosted, InstanceArgs, InstanceCallbacks, InstanceState};
use osdkit::types::osd_op::{MOsdOpReply, OsdOp};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;
use std::sync::Arc;

fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, String)>> {
    let mut v = Vec::new();
    if let Some(kw) = kwargs {
        for (k, val) in kw.iter() {
            let k: String = k.extract()?;
            let s = if let Ok(b) = val.extract::<bool>() {
                b.to_string()
            } else {
                val.str()?.to_string()
            };
            v.push((k, s));
        }
    }
    Ok(v)
}

fn args(
    id: String,
    conf: Option<PathBuf>,
    cluster: Option<String>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<InstanceArgs> {
    Ok(InstanceArgs {
        id,
        conf,
        cluster: cluster.unwrap_or_default(),
        options: options(kwargs)?,
        hosted_set: None,
        store: None,
    })
}

/// What `Osd` and `Monitor` share: a daemon hosted in this process. ``start()`` returns
/// once it runs (an OSD: its boot sent); ``wait_active(timeout)`` waits for it to be active (an
/// OSD: up in the map). As a context manager it is started on entry (if not yet) and stopped on
/// exit. Errors are ``OSError`` with Ceph's errno (``FileExistsError`` when the process
/// already hosts one of that name).
#[pyclass(module = "osdkit._native", subclass, frozen)]
pub struct HostedDaemon {
    d: Arc<Hosted>,
    /// Where its Python callbacks run.
    disp: Arc<Dispatcher>,
}

impl HostedDaemon {
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.d.shutdown();
        self.join(py, None).map(drop)
    }

    /// Makes the daemon with `make`, its callbacks (Python callables or None) run on a new
    /// dispatcher thread.
    fn make(
        on_active: Option<Bound<'_, PyAny>>,
        on_shutdown: Option<Bound<'_, PyAny>>,
        make: impl FnOnce(InstanceCallbacks) -> osdkit::Result<Hosted>,
    ) -> PyResult<HostedDaemon> {
        let disp = Dispatcher::start()?;
        let cb = |f: Option<Bound<'_, PyAny>>| -> PyResult<Option<Arc<dyn Fn() + Send + Sync>>> {
            let Some(f) = f.filter(|f| !f.is_none()) else {
                return Ok(None);
            };
            let f = Arc::new(callable(f)?);
            let w = Arc::downgrade(&disp);
            Ok(Some(Arc::new(move || {
                let Some(d) = w.upgrade() else { return };
                let f = f.clone();
                d.send(Box::new(move |py: Python<'_>| {
                    if let Err(e) = f.call0(py) {
                        e.write_unraisable(py, None);
                    }
                }));
            })))
        };
        let cbs = InstanceCallbacks {
            on_active: cb(on_active)?,
            on_shutdown: cb(on_shutdown)?,
        };
        let d = make(cbs).map_err(os_error)?;
        Ok(HostedDaemon { d: Arc::new(d), disp })
    }

    /// Submits `ops` to this OSD's queue; `done(py, reply)` gives the callback's arguments,
    /// and `callback(result, error)` runs on the dispatcher.
    fn submit(
        &self,
        pool: &str,
        oid: &str,
        ops: Vec<OsdOp>,
        callback: Bound<'_, PyAny>,
        done: fn(Python<'_>, &MOsdOpReply) -> Py<PyAny>,
    ) -> PyResult<()> {
        let cb = callable(callback)?;
        let w = Arc::downgrade(&self.disp);
        self.d.submit(
            pool,
            oid,
            ops,
            Box::new(move |r| {
                let Some(d) = w.upgrade() else { return };
                d.send(Box::new(move |py: Python<'_>| {
                    let args = match r {
                        Ok(reply) => (done(py, &reply), py.None()),
                        Err(e) => (py.None(), os_error(e).into_value(py).into_any()),
                    };
                    if let Err(e) = cb.call1(py, args) {
                        e.write_unraisable(py, None);
                    }
                }));
            }),
        );
        Ok(())
    }
}

impl Drop for HostedDaemon {
    fn drop(&mut self) {
        // Not joined: its queued callbacks need the GIL, which the dropping thread holds.
        self.disp.close();
    }
}

#[pymethods]
impl HostedDaemon {
    /// ``osd.N`` or ``mon.ID``.
    #[getter]
    fn name(&self) -> String {
        self.d.name().to_string()
    }
    /// ``new``, ``starting``, ``booting``, ``active``, ``stopping``, ``stopped`` or ``failed``.
    #[getter]
    fn state(&self) -> &'static str {
        self.d.state().0.name()
    }
    /// Why it failed (``None`` unless ``state == "failed"``).
    #[getter]
    fn why(&self) -> Option<String> {
        match self.d.state().0 {
            InstanceState::Failed(w) => Some(w),
            _ => None,
        }
    }
    /// Its admin socket while it runs (``$run_dir/$cluster-$name.asok``).
    #[getter]
    fn asok_path(&self) -> Option<String> {
        self.d.asok_path().map(|p| p.to_string_lossy().into_owned())
    }
    /// Its public address while it runs (``v2:IP:PORT/NONCE``; a monitor's is what
    /// ``mon_host`` names).
    #[getter]
    fn addr(&self) -> Option<String> {
        self.d.addr()
    }
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let d = self.d.clone();
        dispatch::run_interruptible(py, move || d.start())?.map_err(os_error)
    }
    /// Waits until active; ``TimeoutError``, or ``OSError`` saying why it stopped instead.
    #[pyo3(signature = (timeout=30.0))]
    fn wait_active(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let t = duration("timeout", timeout)?;
        let d = self.d.clone();
        dispatch::run_interruptible(py, move || d.wait_active(t))?.map_err(os_error)
    }
    /// Begins stopping (an OSD marks itself down first); returns at once.
    fn shutdown(&self) {
        self.d.shutdown();
    }
    /// Waits until stopped or failed; returns that state. ``TimeoutError`` after ``timeout``.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<String> {
        let t = timeout.map(|t| duration("timeout", t)).transpose()?;
        let d = self.d.clone();
        let s = dispatch::run_interruptible(py, move || d.join(t))?.map_err(os_error)?;
        Ok(s.name().to_string())
    }
    /// Stops it and waits.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)
    }
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        if slf.get().d.state().0 == InstanceState::New {
            slf.get().start(slf.py())?;
        }
        Ok(slf)
    }
    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }
    fn __repr__(slf: Bound<'_, Self>) -> PyResult<String> {
        let d = &slf.get().d;
        Ok(format!(
            "<osdkit.{} {} {}>",
            slf.get_type().name()?,
            d.name(),
            d.state().0.name()
        ))
    }
}

/// An OSD hosted in this process: ``Osd(id, conf=PATH, cluster="ceph", on_active=None,
/// on_shutdown=None, **options)`` (see ``HostedDaemon``). ``on_active()`` runs when the map
/// shows it up; ``on_shutdown()`` when it stops on its own (not through ``shutdown``/``close``).
#[pyclass(module = "osdkit._native", extends = HostedDaemon, frozen)]
pub struct Osd;

#[pymethods]
impl Osd {
    #[new]
    #[pyo3(signature = (id, conf=None, cluster=None, on_active=None, on_shutdown=None, **kwargs))]
    fn new(
        id: i32,
        conf: Option<PathBuf>,
        cluster: Option<String>,
        on_active: Option<Bound<'_, PyAny>>,
        on_shutdown: Option<Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let a = args(id.to_string(), conf, cluster, kwargs)?;
        let h = HostedDaemon::make(on_active, on_shutdown, |cbs| Hosted::osd(a, cbs))?;
        Ok(PyClassInitializer::from(h).add_subclass(Osd))
    }

    /// ``read`` without waiting: ``oncomplete(data, None)`` or ``oncomplete(None, OSError)``
    /// runs on the daemon's callback thread.
    #[pyo3(signature = (pool, oid, oncomplete, length=8192, offset=0))]
    fn aio_read(
        slf: &Bound<'_, Self>,
        pool: String,
        oid: String,
        oncomplete: Bound<'_, PyAny>,
        length: u64,
        offset: u64,
    ) -> PyResult<()> {
        let op = OsdOp::read(offset, length.max(1));
        slf.as_super().get().submit(&pool, &oid, vec![op], oncomplete, |py, r| {
            let data = r.ops.first().map(|o| &o.outdata[..]).unwrap_or(&[]);
            PyBytes::new(py, data).into_any().unbind()
        })
    }

    /// ``write`` without waiting: ``oncomplete(None, None)`` once committed on every
    /// replica, or ``oncomplete(None, OSError)``.
    #[pyo3(signature = (pool, oid, data, oncomplete, offset=0))]
    fn aio_write(
        slf: &Bound<'_, Self>,
        pool: String,
        oid: String,
        data: PyBackedBytes,
        oncomplete: Bound<'_, PyAny>,
        offset: u64,
    ) -> PyResult<()> {
        let op = OsdOp::write(offset, bytes::Bytes::copy_from_slice(&data));
        slf.as_super()
            .get()
            .submit(&pool, &oid, vec![op], oncomplete, |py, _| py.None())
    }

    /// ``truncate`` without waiting; ``oncomplete`` as for ``aio_write``.
    fn aio_truncate(
        slf: &Bound<'_, Self>,
        pool: String,
        oid: String,
        size: u64,
        oncomplete: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        slf.as_super()
            .get()
            .submit(&pool, &oid, vec![OsdOp::truncate(size)], oncomplete, |py, _| py.None())
    }

    /// Up to ``length`` bytes from ``offset`` of ``oid`` in ``pool``, read on this OSD without
    /// a network hop (its own op queue). ``OSError``: ``ENXIO`` when it is not the object's
    /// primary, ``ENODEV`` unless active, ``ENOENT`` for no such object.
    #[pyo3(signature = (pool, oid, length=8192, offset=0))]
    fn read<'py>(
        slf: &Bound<'py, Self>,
        pool: String,
        oid: String,
        length: u64,
        offset: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let d = slf.as_super().get().d.clone();
        let b = dispatch::run_interruptible(slf.py(), move || d.read(&pool, &oid, offset, length.max(1)))?
            .map_err(os_error)?;
        Ok(PyBytes::new(slf.py(), &b))
    }

    /// Writes ``data`` at ``offset`` of ``oid`` on this OSD without a network hop; returns once
    /// it is committed on every replica.
    #[pyo3(signature = (pool, oid, data, offset=0))]
    fn write(slf: &Bound<'_, Self>, pool: String, oid: String, data: PyBackedBytes, offset: u64) -> PyResult<()> {
        let d = slf.as_super().get().d.clone();
        dispatch::run_interruptible(slf.py(), move || d.write(&pool, &oid, offset, &data))?.map_err(os_error)
    }

    /// Sets the size of ``oid`` on this OSD without a network hop.
    fn truncate(slf: &Bound<'_, Self>, pool: String, oid: String, size: u64) -> PyResult<()> {
        let d = slf.as_super().get().d.clone();
        dispatch::run_interruptible(slf.py(), move || d.truncate(&pool, &oid, size))?.map_err(os_error)
    }
}

/// A monitor hosted in this process: ``Monitor(id, conf=PATH, cluster="ceph", on_active=None,
/// on_shutdown=None, **options)``; it binds the first address of ``mon_host`` and keeps its
/// store in ``mon_data``.
#[pyclass(module = "osdkit._native", extends = HostedDaemon, frozen)]
pub struct Monitor;

#[pymethods]
impl Monitor {
    #[new]
    #[pyo3(signature = (id, conf=None, cluster=None, on_active=None, on_shutdown=None, **kwargs))]
    fn new(
        id: String,
        conf: Option<PathBuf>,
        cluster: Option<String>,
        on_active: Option<Bound<'_, PyAny>>,
        on_shutdown: Option<Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let a = args(id, conf, cluster, kwargs)?;
        let h = HostedDaemon::make(on_active, on_shutdown, |cbs| Hosted::mon(a, cbs))?;
        Ok(PyClassInitializer::from(h).add_subclass(Monitor))
    }

    /// Runs one monitor command (a JSON object with a ``prefix``, as ``ceph`` sends them,
    /// e.g. ``{"prefix": "osd create", "id": 0}``, which an OSD needs before it boots) on
    /// this monitor; returns ``(ret, outbuf, outs)`` like ``Rados.mon_command``.
    fn command(slf: &Bound<'_, Self>, cmd: String) -> PyResult<(i32, Py<PyBytes>, String)> {
        let d = slf.as_super().get().d.clone();
        let r = dispatch::run_interruptible(slf.py(), move || d.with_mon(|m| m.command(&cmd)))?;
        let (ret, outs, out) =
            r.ok_or_else(|| os_error(osdkit::Error::new(libc::ENODEV, "the monitor is not running")))?;
        Ok((ret, PyBytes::new(slf.py(), &out).unbind(), outs))
    }
}
