//! `Cluster` and `Client`: a monitor and OSDs hosted in this process (`osdkit::hosting`),
//! and the object client (`osdkit::client::Rados`) for them.
//!
//! Every blocking call runs detached from the interpreter on a helper thread and is waited for
//! in 100 ms slices (Ctrl-C raises KeyboardInterrupt; the op itself goes on). Errors are
//! `OSError(errno, message)`, so Python picks the subclass (`FileNotFoundError` for ENOENT,
//! `FileExistsError` for EEXIST, ...). `Client.operate_async` callbacks run on the client's own
//! `osdkit-py-cb` thread, never on a library thread.
//!
//! Ops for `operate` are tuples whose first item names the op:
//! `("write_full", data)`, `("write", offset, data)`, `("append", data)`,
//! `("create", exclusive)`, `("truncate", size)`, `("zero", offset, length)`, `("remove",)`,
//! `("setxattr", name, value)`, `("rmxattr", name)`, `("cmpxattr", name, value)` (equal, as
//! strings: -ECANCELED otherwise), `("omap_set", {key: value})`, `("omap_rm", [keys])`,
//! `("read", offset=0, length=0)` (length 0: to the end), `("stat",)`, `("getxattr", name)`,
//! `("getxattrs",)`, `("omap_get", [keys] | None)`, `("omap_get_vals", start_after, max)`. The result has one item per op: None for a
//! write, `bytes` for `read` / `getxattr`, `(size, mtime)` for `stat`, a dict for `getxattrs`
//! and `omap_get`.

use crate::dispatch::{self, Closable, Dispatcher};
use crate::{callable, os_error};
use bytes::Bytes;
use osdkit::client::Rados as RClient;
use osdkit::hosting::cluster::MiniCluster;
use osdkit::types::osd_op::ObjectStat;
use osdkit::types::osd_op::{self as ops, decode_omap_vals, MOsdOpReply, OsdOp};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

fn closed(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!("the {what} is closed"))
}

/// Runs a fallible library call detached and interruptible; its error as OSError.
fn blocking<T: Send + 'static>(py: Python<'_>, f: impl FnOnce() -> osdkit::Result<T> + Send + 'static) -> PyResult<T> {
    dispatch::run_interruptible(py, f)?.map_err(os_error)
}

struct ClusterInner {
    c: Arc<MiniCluster>,
    closed: AtomicBool,
    disp: Arc<Dispatcher>,
}

impl Closable for ClusterInner {
    fn begin_close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }
    fn finish_close(&self) {
        self.c.shutdown();
        self.disp.close();
        self.disp.join();
    }
    fn dispatcher(&self) -> &Dispatcher {
        &self.disp
    }
}

/// `Cluster(dir, osds=3, store="mem")`: a monitor and `osds` OSDs in this process, with the
/// pool `data` (32 PGs, size 1) served when the constructor returns.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

impl Cluster {
    fn cluster(&self) -> PyResult<Arc<MiniCluster>> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed("cluster"));
        }
        Ok(self.inner.c.clone())
    }
}

#[pymethods]
impl Cluster {
    #[new]
    #[pyo3(signature = (dir, osds = 3, store = "mem", size = 1, options = None))]
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        osds: usize,
        store: &str,
        size: u32,
        options: Option<BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let store = store.to_string();
        let opts: Vec<(String, String)> = options.unwrap_or_default().into_iter().collect();
        let c = blocking(py, move || {
            let o: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            MiniCluster::start_opts(&dir, osds, &store, size, None, &o)
        })?;
        let inner = Arc::new(ClusterInner {
            c: Arc::new(c),
            closed: AtomicBool::new(false),
            disp: Dispatcher::start()?,
        });
        dispatch::register(inner.clone());
        Ok(Cluster { inner })
    }

    /// The monitor's address (what `Client` takes), e.g. `v2:127.0.0.1:40123/0`.
    #[getter]
    fn mon_addr(&self) -> PyResult<String> {
        Ok(self.cluster()?.mon_addr())
    }

    /// Each OSD's address by id; None for a stopped one.
    #[getter]
    fn osd_addrs(&self) -> PyResult<Vec<Option<String>>> {
        Ok(self.cluster()?.osd_addrs())
    }

    /// The data directory.
    #[getter]
    fn dir(&self) -> PyResult<String> {
        Ok(self.cluster()?.dir().to_string_lossy().into_owned())
    }

    /// Stops `osd.<id>` (its store is unmounted). ValueError-like OSError(EINVAL) for an
    /// unknown id, FileNotFoundError if it is already stopped.
    fn stop_osd(&self, py: Python<'_>, id: i32) -> PyResult<()> {
        let c = self.cluster()?;
        blocking(py, move || c.stop_osd(id))
    }

    /// Stops `osd.<id>` as a crash would: no mark-me-down, so the monitor learns of it from
    /// the other OSDs' heartbeats after `osd_heartbeat_grace`. Errors as `stop_osd`.
    fn kill_osd(&self, py: Python<'_>, id: i32) -> PyResult<()> {
        let c = self.cluster()?;
        blocking(py, move || c.kill_osd(id))
    }

    /// Waits until every PG has its full acting set and none is peering or recovering;
    /// TimeoutError (ETIMEDOUT) after `timeout` seconds.
    #[pyo3(signature = (timeout = 60.0))]
    fn wait_for_clean(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let c = self.cluster()?;
        let t = std::time::Duration::from_secs_f64(timeout.clamp(0.0, 86_400.0));
        blocking(py, move || c.wait_for_clean(t))
    }

    /// The monitor's OSD map as a dict (`epoch`, `osds` with `up`/`in`, `pools`), as
    /// `osd dump --format json` shows it.
    fn osdmap<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.cluster()?.osdmap().to_json().to_string();
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Scrubs PG `pgid` ("1.a"; None: every PG) on its primary, comparing the copies of its
    /// acting set (presence, size, version, xattrs; with `deep`, data and omap digests too).
    /// Returns one report dict per PG: `pgid`, `deep`, `osds`, `objects`, `errors` and
    /// `inconsistents` (each object that differs, with every OSD's view and errors).
    #[pyo3(signature = (pgid = None, deep = false, timeout = 60.0))]
    fn scrub<'py>(
        &self,
        py: Python<'py>,
        pgid: Option<String>,
        deep: bool,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.cluster()?;
        let t = std::time::Duration::from_secs_f64(timeout.clamp(0.0, 86_400.0));
        let text = blocking(py, move || {
            let pg = pgid.map(|p| p.parse::<osdkit::types::placement::PgId>()).transpose()?;
            let reports = c.scrub(pg, deep, t)?;
            Ok(serde_json::Value::Array(reports.iter().map(|r| r.to_json()).collect()).to_string())
        })?;
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Starts a stopped `osd.<id>` again on the same store (same directory for `kv`) and waits
    /// until it is up and serving. FileExistsError if it is running.
    fn start_osd(&self, py: Python<'_>, id: i32) -> PyResult<()> {
        let c = self.cluster()?;
        blocking(py, move || c.start_osd(id))
    }

    /// Stops the OSDs and the monitor and joins their threads. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        dispatch::close_now(py, &(self.inner.clone() as Arc<dyn Closable>))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
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
        if self.closed() {
            return "<osdkit.Cluster closed>".into();
        }
        format!(
            "<osdkit.Cluster mon {} osds {}>",
            self.inner.c.mon_addr(),
            self.inner.c.num_osds()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        dispatch::close_on_drop(self.inner.clone());
    }
}

struct ClientInner {
    c: Arc<RClient>,
    closed: AtomicBool,
    disp: Arc<Dispatcher>,
}

impl Closable for ClientInner {
    fn begin_close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }
    fn finish_close(&self) {
        // Ops in flight fail with ESHUTDOWN; their callbacks are queued before the dispatcher
        // stops, so each still runs.
        self.c.shutdown();
        self.disp.close();
        self.disp.join();
    }
    fn dispatcher(&self) -> &Dispatcher {
        &self.disp
    }
}

/// What an op's result becomes in Python.
#[derive(Clone, Copy)]
enum Out {
    Nothing,
    Data,
    Stat,
    Omap,
}

fn data_arg(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Bytes> {
    let b: PyBackedBytes = v
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be bytes or bytearray")))?;
    Ok(Bytes::from_owner(b))
}

fn omap_arg(v: &Bound<'_, PyAny>) -> PyResult<BTreeMap<String, Bytes>> {
    let d = v
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err("omap values must be a dict of str to bytes"))?;
    let mut m = BTreeMap::new();
    for (k, v) in d.iter() {
        let k: String = k.extract().map_err(|_| PyTypeError::new_err("omap keys must be str"))?;
        m.insert(k, data_arg(&v, "an omap value")?);
    }
    Ok(m)
}

/// One op tuple as an `OsdOp` and what its result is.
fn parse_op(t: &Bound<'_, PyAny>) -> PyResult<(OsdOp, Out)> {
    let t = t
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("each op must be a tuple like ('write_full', b'...')"))?;
    if t.is_empty() {
        return Err(PyValueError::new_err("an op tuple needs its name first"));
    }
    let name: String = t.get_item(0)?.extract()?;
    let n = t.len() - 1;
    let arity = |lo: usize, hi: usize| -> PyResult<()> {
        if n < lo || n > hi {
            return Err(PyValueError::new_err(format!(
                "op '{name}' takes {lo}..={hi} arguments, not {n}"
            )));
        }
        Ok(())
    };
    let arg = |i: usize| t.get_item(i + 1);
    let r = match name.as_str() {
        "write_full" => {
            arity(1, 1)?;
            (OsdOp::writefull(data_arg(&arg(0)?, "data")?), Out::Nothing)
        }
        "write" => {
            arity(2, 2)?;
            (
                OsdOp::write(arg(0)?.extract()?, data_arg(&arg(1)?, "data")?),
                Out::Nothing,
            )
        }
        "append" => {
            arity(1, 1)?;
            (OsdOp::append(data_arg(&arg(0)?, "data")?), Out::Nothing)
        }
        "create" => {
            arity(0, 1)?;
            let excl = if n == 1 { arg(0)?.is_truthy()? } else { false };
            (OsdOp::create(excl), Out::Nothing)
        }
        "truncate" => {
            arity(1, 1)?;
            (OsdOp::truncate(arg(0)?.extract()?), Out::Nothing)
        }
        "zero" => {
            arity(2, 2)?;
            (OsdOp::zero(arg(0)?.extract()?, arg(1)?.extract()?), Out::Nothing)
        }
        "remove" => {
            arity(0, 0)?;
            (OsdOp::delete(), Out::Nothing)
        }
        "setxattr" => {
            arity(2, 2)?;
            let k: String = arg(0)?.extract()?;
            (OsdOp::setxattr(k, data_arg(&arg(1)?, "value")?), Out::Nothing)
        }
        "rmxattr" => {
            arity(1, 1)?;
            (OsdOp::rmxattr(arg(0)?.extract::<String>()?), Out::Nothing)
        }
        "cmpxattr" => {
            arity(2, 2)?;
            let k: String = arg(0)?.extract()?;
            let v = data_arg(&arg(1)?, "value")?;
            (
                OsdOp::cmpxattr(k, ops::CEPH_OSD_CMPXATTR_OP_EQ, ops::CEPH_OSD_CMPXATTR_MODE_STRING, v),
                Out::Nothing,
            )
        }
        "omap_set" => {
            arity(1, 1)?;
            (OsdOp::omap_set_vals(&omap_arg(&arg(0)?)?), Out::Nothing)
        }
        "omap_rm" => {
            arity(1, 1)?;
            (OsdOp::omap_rm_keys(arg(0)?.extract()?), Out::Nothing)
        }
        "read" => {
            arity(0, 2)?;
            let off: u64 = if n >= 1 { arg(0)?.extract()? } else { 0 };
            let len: u64 = if n >= 2 { arg(1)?.extract()? } else { 0 };
            (OsdOp::read(off, len), Out::Data)
        }
        "stat" => {
            arity(0, 0)?;
            (OsdOp::stat(), Out::Stat)
        }
        "getxattr" => {
            arity(1, 1)?;
            (OsdOp::getxattr(arg(0)?.extract::<String>()?), Out::Data)
        }
        "getxattrs" => {
            arity(0, 0)?;
            (OsdOp::getxattrs(), Out::Omap)
        }
        "omap_get" => {
            arity(0, 1)?;
            let keys: Option<Vec<String>> = if n == 1 { arg(0)?.extract()? } else { None };
            match keys {
                Some(k) => (OsdOp::omap_get_vals_by_keys(k), Out::Omap),
                None => (OsdOp::omap_get_vals("", 0), Out::Omap),
            }
        }
        "omap_get_vals" => {
            arity(2, 2)?;
            let after: String = arg(0)?.extract()?;
            let max: u64 = arg(1)?.extract()?;
            (OsdOp::omap_get_vals(after, max), Out::Omap)
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown op '{other}' (write_full, write, append, create, truncate, zero, remove, setxattr, \
                 rmxattr, cmpxattr, omap_set, omap_rm, read, stat, getxattr, getxattrs, omap_get, omap_get_vals)"
            )))
        }
    };
    Ok(r)
}

fn parse_ops(list: &Bound<'_, PyAny>) -> PyResult<(Vec<OsdOp>, Vec<Out>)> {
    let mut ops = Vec::new();
    let mut outs = Vec::new();
    for item in list.try_iter()? {
        let (op, out) = parse_op(&item?)?;
        ops.push(op);
        outs.push(out);
    }
    if ops.is_empty() {
        return Err(PyValueError::new_err("operate needs at least one op"));
    }
    Ok((ops, outs))
}

fn stat_tuple<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let st = ObjectStat::decode(b).map_err(os_error)?;
    let mtime = st.mtime.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    Ok((st.size, mtime).into_pyobject(py)?.into_any())
}

fn omap_dict<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let vals =
        decode_omap_vals(b).map_err(|e| os_error(osdkit::Error::new(libc::EIO, format!("bad omap reply: {e:?}"))))?;
    let d = PyDict::new(py);
    for (k, v) in vals {
        d.set_item(k, PyBytes::new(py, &v))?;
    }
    Ok(d.into_any())
}

fn results<'py>(py: Python<'py>, r: &MOsdOpReply, outs: &[Out]) -> PyResult<Bound<'py, PyList>> {
    let l = PyList::empty(py);
    for (op, out) in r.ops.iter().zip(outs) {
        match out {
            Out::Nothing => l.append(py.None())?,
            Out::Data => l.append(PyBytes::new(py, &op.outdata))?,
            Out::Stat => l.append(stat_tuple(py, &op.outdata)?)?,
            Out::Omap => l.append(omap_dict(py, &op.outdata)?)?,
        }
    }
    Ok(l)
}

/// `Client(mon_addr, name="client.admin")`: connects to the monitor and waits for its map.
#[pyclass(frozen, module = "osdkit._native")]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl Client {
    fn client(&self) -> PyResult<Arc<RClient>> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed("client"));
        }
        Ok(self.inner.c.clone())
    }
}

impl Client {
    /// The Python object of a connected client: its callback thread started, registered for
    /// the close at exit.
    fn wrap(c: RClient) -> PyResult<Client> {
        let inner = Arc::new(ClientInner {
            c: Arc::new(c),
            closed: AtomicBool::new(false),
            disp: Dispatcher::start()?,
        });
        dispatch::register(inner.clone());
        Ok(Client { inner })
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (mon_addr, name = "client.admin"))]
    fn new(py: Python<'_>, mon_addr: &str, name: &str) -> PyResult<Self> {
        let (addr, name) = (mon_addr.to_string(), name.to_string());
        Client::wrap(blocking(py, move || RClient::connect(&addr, &name))?)
    }

    /// A client configured from `conffile` (its `mon_host`, `rados_osd_op_timeout`, ... for
    /// `name`), as `rados_conf_read_file` and `rados_connect` do.
    #[staticmethod]
    #[pyo3(signature = (conffile, name = "client.admin"))]
    fn from_conf(py: Python<'_>, conffile: PathBuf, name: &str) -> PyResult<Self> {
        let name = name.to_string();
        Client::wrap(blocking(py, move || RClient::connect_with_conf(&name, &conffile))?)
    }

    /// A monitor command (one JSON object, as `ceph` sends it): its status text and output;
    /// OSError with the monitor's errno when it fails.
    fn mon_command<'py>(&self, py: Python<'py>, cmd: String) -> PyResult<(String, Bound<'py, PyBytes>)> {
        let c = self.client()?;
        let v: serde_json::Value =
            serde_json::from_str(&cmd).map_err(|e| PyValueError::new_err(format!("the command is not JSON: {e}")))?;
        let (rs, out) = blocking(py, move || c.mon_command(&v))?;
        Ok((rs, PyBytes::new(py, &out)))
    }

    /// Creates pool `name` (`pg_num`, `size`: 0 for the monitor's default) and waits until
    /// this client's map has it. OSError EEXIST if it exists.
    #[pyo3(signature = (name, pg_num=0, size=0))]
    fn pool_create(&self, py: Python<'_>, name: String, pg_num: u32, size: u32) -> PyResult<()> {
        let c = self.client()?;
        blocking(py, move || c.pool_create(&name, pg_num, size).map(drop))
    }

    /// Removes pool `name` and its objects, and waits until this client's map has it gone.
    fn pool_delete(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let c = self.client()?;
        blocking(py, move || c.pool_delete(&name).map(drop))
    }

    /// Writes object `oid` of `pool` whole (creating it, replacing its data).
    fn put(&self, py: Python<'_>, pool: String, oid: String, data: PyBackedBytes) -> PyResult<()> {
        let c = self.client()?;
        blocking(py, move || c.put(&pool, &oid, &data))
    }

    /// The object's data. FileNotFoundError if it (or the pool) does not exist.
    fn get<'py>(&self, py: Python<'py>, pool: String, oid: String) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.client()?;
        let b = blocking(py, move || c.get(&pool, &oid))?;
        Ok(PyBytes::new(py, &b))
    }

    /// `(size, mtime)`, mtime in seconds since the epoch (float).
    fn stat(&self, py: Python<'_>, pool: String, oid: String) -> PyResult<(u64, f64)> {
        let c = self.client()?;
        let st = blocking(py, move || c.stat(&pool, &oid))?;
        let mtime = st.mtime.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        Ok((st.size, mtime))
    }

    /// Removes the object. FileNotFoundError if it does not exist.
    fn remove(&self, py: Python<'_>, pool: String, oid: String) -> PyResult<()> {
        let c = self.client()?;
        blocking(py, move || c.remove(&pool, &oid))
    }

    /// Every object name in `pool`, sorted.
    fn list(&self, py: Python<'_>, pool: String) -> PyResult<Vec<String>> {
        let c = self.client()?;
        blocking(py, move || c.list(&pool))
    }

    /// Sets xattr `name` (creating the object).
    fn setxattr(&self, py: Python<'_>, pool: String, oid: String, name: String, value: PyBackedBytes) -> PyResult<()> {
        let c = self.client()?;
        blocking(py, move || c.setxattr(&pool, &oid, &name, &value))
    }

    /// The xattr's value; OSError(ENODATA) if the object has no such xattr.
    fn getxattr<'py>(&self, py: Python<'py>, pool: String, oid: String, name: String) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.client()?;
        let b = blocking(py, move || c.getxattr(&pool, &oid, &name))?;
        Ok(PyBytes::new(py, &b))
    }

    /// Sets omap entries from a dict of str to bytes (creating the object), in one request.
    fn omap_set(&self, py: Python<'_>, pool: String, oid: String, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let c = self.client()?;
        let m = omap_arg(values)?;
        blocking(py, move || c.omap_set(&pool, &oid, &m))
    }

    /// The omap entries for `keys` that exist, or all of them with `keys=None`, as a dict.
    #[pyo3(signature = (pool, oid, keys = None))]
    fn omap_get<'py>(
        &self,
        py: Python<'py>,
        pool: String,
        oid: String,
        keys: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.client()?;
        let vals = blocking(py, move || c.omap_get(&pool, &oid, keys.as_deref()))?;
        let d = PyDict::new(py);
        for (k, v) in vals {
            d.set_item(k, PyBytes::new(py, &v))?;
        }
        Ok(d)
    }

    /// Several ops (tuples, see the module docs) on one object as one request: all apply or
    /// none does. Returns one result per op; raises OSError with the first failing op's errno.
    fn operate<'py>(
        &self,
        py: Python<'py>,
        pool: String,
        oid: String,
        ops: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let c = self.client()?;
        let (ops, outs) = parse_ops(ops)?;
        let r = blocking(py, move || c.operate(&pool, &oid, ops))?;
        results(py, &r, &outs)
    }

    /// As `operate`, without waiting: `callback(result, error)` runs later on this client's
    /// `osdkit-py-cb` thread, with the results list and None, or None and the OSError.
    fn operate_async(
        &self,
        pool: String,
        oid: String,
        ops: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let c = self.client()?;
        let cb = callable(callback)?;
        let (ops, outs) = parse_ops(ops)?;
        let disp = Arc::downgrade(&self.inner.disp);
        c.submit_async(
            &pool,
            &oid,
            ops,
            Box::new(move |r| {
                let Some(d) = disp.upgrade() else { return };
                d.send(Box::new(move |py: Python<'_>| {
                    let args = match r {
                        Ok(reply) => match results(py, &reply, &outs) {
                            Ok(l) => (l.into_any().unbind(), py.None()),
                            Err(e) => (py.None(), e.into_value(py).into_any()),
                        },
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

    /// Fails ops in flight (their callbacks get OSError(ESHUTDOWN)), stops the client and
    /// joins its threads. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        dispatch::close_now(py, &(self.inner.clone() as Arc<dyn Closable>))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
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
        format!("<osdkit.Client{}>", if self.closed() { " closed" } else { "" })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        dispatch::close_on_drop(self.inner.clone());
    }
}
