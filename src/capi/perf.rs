//! `osdkit_perf_*`: perf counters defined from C, shown in the context's `perf dump`.

use super::context::osdkit_context;
use super::{cstr, free_handle, guard, handle, opt_cstr, take_handle};
use crate::common::error::Error;
use crate::common::perf::{PerfCounters, PerfCountersBuilder, PerfCountersCollection, Unit};
use std::ffi::{c_char, c_int};
use std::sync::{Arc, Weak};

/// Counter type flags, as Ceph's `perfcounter_type_d`.
pub const OSDKIT_PERFCOUNTER_TIME: u32 = 0x1;
pub const OSDKIT_PERFCOUNTER_U64: u32 = 0x2;
pub const OSDKIT_PERFCOUNTER_LONGRUNAVG: u32 = 0x4;
pub const OSDKIT_PERFCOUNTER_COUNTER: u32 = 0x8;
/// Units.
pub const OSDKIT_UNIT_NONE: c_int = 0;
pub const OSDKIT_UNIT_BYTES: c_int = 1;

/// Counters being declared, before `osdkit_perf_create` consumes them. Not thread-safe: one
/// thread at a time (it may move between threads).
pub struct osdkit_perf_builder {
    b: PerfCountersBuilder,
}

/// A set of perf counters shown in its context's `perf dump`. Updates are atomic: its
/// functions may be called from any thread, concurrently; `osdkit_perf_free` last.
pub struct osdkit_perf {
    pc: Arc<PerfCounters>,
    coll: Weak<PerfCountersCollection>,
}

/// Starts a set of counters (a "logger" in `perf dump`) called `name`. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_perf_builder_new(name: *const c_char, out_b: *mut *mut osdkit_perf_builder) -> c_int {
    guard(|| {
        let name = cstr(name, "name")?;
        if name.is_empty() {
            return Err(Error::inval("name is empty"));
        }
        if out_b.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        super::out(
            out_b,
            Box::into_raw(Box::new(osdkit_perf_builder {
                b: PerfCountersBuilder::new(name),
            })),
            "out",
        )?;
        Ok(0)
    })
}

/// Adds a counter. `type` is one of: U64 (gauge), U64|COUNTER, U64|LONGRUNAVG, TIME,
/// TIME|LONGRUNAVG. `nick` may be NULL; `prio` is Ceph's 0..10; `unit` OSDKIT_UNIT_*.
/// `*idx_out` (may be NULL) gets the index to pass to `osdkit_perf_inc` and friends (indices
/// are given in the order counters are added, from 0). Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_perf_builder_add(
    b: *mut osdkit_perf_builder,
    r#type: u32,
    name: *const c_char,
    desc: *const c_char,
    nick: *const c_char,
    prio: c_int,
    unit: c_int,
    idx_out: *mut u32,
) -> c_int {
    guard(|| {
        if b.is_null() {
            return Err(Error::inval("builder is NULL"));
        }
        // SAFETY: non-NULL builder from osdkit_perf_builder_new; builders are single-threaded
        // objects (header contract), so this exclusive borrow is the only one.
        let b = unsafe { &mut *b };
        let name = cstr(name, "name")?;
        let desc = cstr(desc, "desc")?;
        let valid = [
            OSDKIT_PERFCOUNTER_U64,
            OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_COUNTER,
            OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_LONGRUNAVG,
            OSDKIT_PERFCOUNTER_TIME,
            OSDKIT_PERFCOUNTER_TIME | OSDKIT_PERFCOUNTER_LONGRUNAVG,
        ];
        if !valid.contains(&r#type) {
            return Err(Error::inval(
                format!("counter type {type} is not a supported combination", type = r#type),
            ));
        }
        if name.is_empty() {
            return Err(Error::inval("counter name is empty"));
        }
        let unit = match unit {
            OSDKIT_UNIT_NONE => Unit::None,
            OSDKIT_UNIT_BYTES => Unit::Bytes,
            u => {
                return Err(Error::inval(format!(
                    "unit {u} is not OSDKIT_UNIT_NONE or OSDKIT_UNIT_BYTES"
                )))
            }
        };
        let idx = b.b.add(r#type as u8, name, desc);
        b.b.prio(prio).unit(unit);
        if let Some(n) = opt_cstr(nick, "nick")? {
            b.b.nick(n);
        }
        if !idx_out.is_null() {
            super::out(idx_out, idx as u32, "idx_out")?;
        }
        Ok(0)
    })
}

/// Frees a builder that was not passed to `osdkit_perf_create`. NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_perf_builder_free(b: *mut osdkit_perf_builder) {
    free_handle(b, |_| {});
}

/// Builds the counters and adds them to `ctx`'s `perf dump`. Consumes `b` whatever the result.
/// The counters are safe to update from any thread. Returns 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn osdkit_perf_create(
    ctx: *mut osdkit_context,
    b: *mut osdkit_perf_builder,
    out_pc: *mut *mut osdkit_perf,
) -> c_int {
    let Some(builder) = take_handle(b) else {
        return guard(|| Err(Error::inval("builder is NULL")));
    };
    guard(|| {
        let c = handle(ctx, "ctx")?;
        if out_pc.is_null() {
            return Err(Error::inval("out is NULL"));
        }
        let pc = builder.b.build();
        c.ctx.perf().add(&pc);
        let h = osdkit_perf {
            pc,
            coll: Arc::downgrade(c.ctx.perf()),
        };
        super::out(out_pc, Box::into_raw(Box::new(h)), "out")?;
        Ok(0)
    })
}

fn with_counter(p: *const osdkit_perf, idx: u32, f: impl FnOnce(&PerfCounters, usize)) -> c_int {
    guard(|| {
        let p = handle(p, "perf")?;
        if idx as usize >= p.pc.len() {
            return Err(Error::inval(format!(
                "counter index {idx} out of range (have {})",
                p.pc.len()
            )));
        }
        f(&p.pc, idx as usize);
        Ok(0)
    })
}

/// Adds `v` to a counter or gauge, or records a sample of a u64 average. Lock-free.
#[no_mangle]
pub extern "C" fn osdkit_perf_inc(p: *const osdkit_perf, idx: u32, v: u64) -> c_int {
    with_counter(p, idx, |pc, i| pc.inc(i, v))
}

/// Subtracts `v` from a counter or gauge (ignored on averages).
#[no_mangle]
pub extern "C" fn osdkit_perf_dec(p: *const osdkit_perf, idx: u32, v: u64) -> c_int {
    with_counter(p, idx, |pc, i| pc.dec(i, v))
}

/// Sets a value.
#[no_mangle]
pub extern "C" fn osdkit_perf_set(p: *const osdkit_perf, idx: u32, v: u64) -> c_int {
    with_counter(p, idx, |pc, i| pc.set(i, v))
}

/// Adds `ns` nanoseconds to a time counter, or records one sample of a time average.
#[no_mangle]
pub extern "C" fn osdkit_perf_tinc_ns(p: *const osdkit_perf, idx: u32, ns: u64) -> c_int {
    with_counter(p, idx, |pc, i| pc.inc(i, ns))
}

/// Reads a counter's value (for averages: the sum; see `osdkit_perf_read_avg`).
#[no_mangle]
pub extern "C" fn osdkit_perf_get(p: *const osdkit_perf, idx: u32, v_out: *mut u64) -> c_int {
    if v_out.is_null() {
        return guard(|| Err(Error::inval("v_out is NULL")));
    }
    let mut v = 0;
    let r = with_counter(p, idx, |pc, i| v = pc.get(i));
    if r == 0 {
        // SAFETY: checked non-NULL above; caller provides room for one u64.
        unsafe { *v_out = v };
    }
    r
}

/// Reads an average as a consistent (sum, count) pair.
#[no_mangle]
pub extern "C" fn osdkit_perf_read_avg(
    p: *const osdkit_perf,
    idx: u32,
    sum_out: *mut u64,
    count_out: *mut u64,
) -> c_int {
    if sum_out.is_null() || count_out.is_null() {
        return guard(|| Err(Error::inval("sum_out or count_out is NULL")));
    }
    let mut v = (0, 0);
    let r = with_counter(p, idx, |pc, i| v = pc.read_avg(i));
    if r == 0 {
        // SAFETY: both checked non-NULL above; caller provides room for one u64 each.
        unsafe {
            *sum_out = v.0;
            *count_out = v.1;
        }
    }
    r
}

/// Removes the counters from their context's `perf dump` and frees them. NULL is ignored.
#[no_mangle]
pub extern "C" fn osdkit_perf_free(p: *mut osdkit_perf) {
    free_handle(p, |b| {
        if let Some(c) = b.coll.upgrade() {
            c.remove(&b.pc);
        }
    });
}
