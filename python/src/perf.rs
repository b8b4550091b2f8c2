//! `PerfCounters`: a logger in a context's `perf dump`, addressed by counter name.

use crate::duration;
use osdkit::common::perf::{PerfCounters as Counters, PerfCountersCollection};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Made by `Context.perf_counters`. Time counters hold nanoseconds. Dropping or closing it
/// removes the logger from `perf dump`.
#[pyclass(frozen, module = "osdkit._native")]
pub struct PerfCounters {
    pc: Arc<Counters>,
    coll: Arc<PerfCountersCollection>,
    closed: AtomicBool,
}

impl PerfCounters {
    pub(crate) fn new(pc: Arc<Counters>, coll: Arc<PerfCountersCollection>) -> Self {
        PerfCounters {
            pc,
            coll,
            closed: AtomicBool::new(false),
        }
    }

    fn idx(&self, name: &str) -> PyResult<usize> {
        self.pc
            .index_of(name)
            .ok_or_else(|| PyKeyError::new_err(name.to_string()))
    }
}

#[pymethods]
impl PerfCounters {
    #[getter]
    fn name(&self) -> String {
        self.pc.name().to_string()
    }

    #[pyo3(signature = (name, v = 1))]
    fn inc(&self, name: &str, v: u64) -> PyResult<()> {
        self.pc.inc(self.idx(name)?, v);
        Ok(())
    }

    #[pyo3(signature = (name, v = 1))]
    fn dec(&self, name: &str, v: u64) -> PyResult<()> {
        self.pc.dec(self.idx(name)?, v);
        Ok(())
    }

    fn set(&self, name: &str, v: u64) -> PyResult<()> {
        self.pc.set(self.idx(name)?, v);
        Ok(())
    }

    /// Adds `seconds` to a time counter or time average.
    fn tinc(&self, name: &str, seconds: f64) -> PyResult<()> {
        self.pc.tinc(self.idx(name)?, duration("seconds", seconds)?);
        Ok(())
    }

    fn get(&self, name: &str) -> PyResult<u64> {
        Ok(self.pc.get(self.idx(name)?))
    }

    /// `(sum, count)` of an average counter.
    fn read_avg(&self, name: &str) -> PyResult<(u64, u64)> {
        Ok(self.pc.read_avg(self.idx(name)?))
    }

    /// Removes the logger from `perf dump`. Idempotent.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.coll.remove(&self.pc);
        }
    }

    fn __repr__(&self) -> String {
        format!("<osdkit.PerfCounters {}>", self.pc.name())
    }
}

impl Drop for PerfCounters {
    fn drop(&mut self) {
        self.close();
    }
}
