//! Perf counters with Ceph's types, JSON shapes and reset rules (reference §2).
//!
//! Updates are lock-free: counters and averages are striped over cache-padded atomics picked
//! by a per-thread index, so two cores bumping the same counter do not bounce one cache line.
//! Readers sum the stripes. Plain gauges (`add_u64`, `add_time`) keep a single cell so `set`
//! means what it says.

use super::formatter::FVal;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const PERFCOUNTER_NONE: u8 = 0;
pub const PERFCOUNTER_TIME: u8 = 0x1;
pub const PERFCOUNTER_U64: u8 = 0x2;
pub const PERFCOUNTER_LONGRUNAVG: u8 = 0x4;
pub const PERFCOUNTER_COUNTER: u8 = 0x8;
pub const PERFCOUNTER_HISTOGRAM: u8 = 0x10;

/// Ceph's `PerfCountersBuilder::PRIO_*`.
pub const PRIO_CRITICAL: i32 = 10;
pub const PRIO_INTERESTING: i32 = 8;
pub const PRIO_USEFUL: i32 = 5;
pub const PRIO_UNINTERESTING: i32 = 2;
pub const PRIO_DEBUGONLY: i32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleType {
    Linear,
    Log2,
}

/// One axis of a 2-D histogram (Ceph's `PerfHistogramCommon::axis_config_d`).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub name: String,
    pub scale: ScaleType,
    pub min: i64,
    pub quant_size: i64,
    pub buckets: usize,
}

impl Axis {
    pub fn new(name: &str, scale: ScaleType, min: i64, quant_size: i64, buckets: usize) -> Self {
        Axis {
            name: name.into(),
            scale,
            min,
            quant_size: quant_size.max(1),
            buckets: buckets.max(3),
        }
    }
    fn quants(&self, i: usize) -> i64 {
        match self.scale {
            ScaleType::Linear => i as i64,
            ScaleType::Log2 if i == 0 => 0,
            ScaleType::Log2 => 1i64 << (i - 1).min(62),
        }
    }
    fn bucket(&self, value: i64) -> usize {
        if value < self.min {
            return 0;
        }
        let v = (value - self.min) / self.quant_size;
        for i in 1..self.buckets - 1 {
            if v < self.quants(i) {
                return i;
            }
        }
        self.buckets - 1
    }
    fn to_fval(&self) -> FVal {
        let mut ranges = Vec::with_capacity(self.buckets);
        for i in 0..self.buckets {
            let lo = self.min + self.quants(i.saturating_sub(1)) * self.quant_size;
            let hi = self.min + self.quants(i) * self.quant_size - 1;
            let r = if i == 0 {
                FVal::obj().with("max", FVal::I64(self.min - 1))
            } else if i == self.buckets - 1 {
                FVal::obj().with("min", FVal::I64(lo))
            } else {
                FVal::obj().with("min", FVal::I64(lo)).with("max", FVal::I64(hi))
            };
            ranges.push(r);
        }
        FVal::obj()
            .with("name", FVal::str(&self.name))
            .with("min", FVal::I64(self.min))
            .with("quant_size", FVal::I64(self.quant_size))
            .with("buckets", FVal::U64(self.buckets as u64))
            .with(
                "scale_type",
                FVal::str(match self.scale {
                    ScaleType::Linear => "linear",
                    ScaleType::Log2 => "log2",
                }),
            )
            .with("ranges", FVal::Arr(ranges))
    }
}

#[derive(Debug, Clone)]
pub struct CounterDef {
    pub name: String,
    pub description: String,
    pub nick: String,
    pub prio: i32,
    pub unit: Unit,
    pub ty: u8,
    axes: Option<(Axis, Axis)>,
}

impl CounterDef {
    fn striped(&self) -> bool {
        // Plain gauges are set, not only added to: one cell keeps `set` exact.
        self.ty & (PERFCOUNTER_COUNTER | PERFCOUNTER_LONGRUNAVG) != 0
    }
    fn is_avg(&self) -> bool {
        self.ty & PERFCOUNTER_LONGRUNAVG != 0
    }
    fn is_time(&self) -> bool {
        self.ty & PERFCOUNTER_TIME != 0
    }
    fn is_hist(&self) -> bool {
        self.ty & PERFCOUNTER_HISTOGRAM != 0
    }
}

#[derive(Default)]
struct Cell {
    sum: AtomicU64,
    count: AtomicU64,
    count2: AtomicU64,
}

const STRIPES: usize = 8;

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static IDX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    IDX.with(|i| *i)
}

struct Slot {
    cells: Box<[CachePadded<Cell>]>,
    hist: Option<Box<[AtomicU64]>>,
}

/// A named set of counters (Ceph's `PerfCounters`, one "logger" in `perf dump`).
pub struct PerfCounters {
    name: String,
    defs: Vec<CounterDef>,
    slots: Vec<Slot>,
}

impl std::fmt::Debug for PerfCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfCounters").field("name", &self.name).finish()
    }
}

impl PerfCounters {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn len(&self) -> usize {
        self.defs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }
    pub fn defs(&self) -> &[CounterDef] {
        &self.defs
    }
    /// Index of a counter by name (for the C and Python faces; Rust callers keep the index).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.name == name)
    }

    #[inline]
    fn cell(&self, idx: usize) -> Option<(&CounterDef, &Cell)> {
        let def = self.defs.get(idx)?;
        let slot = &self.slots[idx];
        let cell = if def.striped() {
            &slot.cells[stripe_index()]
        } else {
            &slot.cells[0]
        };
        Some((def, cell))
    }

    #[inline]
    fn add_sample(cell: &Cell, amt: u64, avg: bool) {
        // Order matters for `read_avg`: sum, then count, then count2 (Ceph's protocol).
        cell.sum.fetch_add(amt, Ordering::AcqRel);
        if avg {
            cell.count.fetch_add(1, Ordering::AcqRel);
            cell.count2.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Adds `amt` (a counter, gauge or u64 average sample). Out-of-range indices are ignored.
    #[inline]
    pub fn inc(&self, idx: usize, amt: u64) {
        if let Some((def, cell)) = self.cell(idx) {
            if !def.is_hist() {
                Self::add_sample(cell, amt, def.is_avg());
            }
        }
    }

    /// Subtracts from a gauge or counter; ignored on averages (Ceph asserts).
    #[inline]
    pub fn dec(&self, idx: usize, amt: u64) {
        if let Some((def, cell)) = self.cell(idx) {
            if !def.is_avg() && !def.is_hist() {
                cell.sum.fetch_sub(amt, Ordering::AcqRel);
            }
        }
    }

    /// Sets a value. On a striped counter the other stripes are cleared first.
    pub fn set(&self, idx: usize, v: u64) {
        let Some(def) = self.defs.get(idx) else { return };
        if def.is_hist() {
            return;
        }
        let slot = &self.slots[idx];
        for c in slot.cells.iter().skip(1) {
            c.sum.store(0, Ordering::Release);
        }
        slot.cells[0].sum.store(v, Ordering::Release);
    }

    pub fn get(&self, idx: usize) -> u64 {
        match self.slots.get(idx) {
            Some(slot) => slot
                .cells
                .iter()
                .fold(0u64, |a, c| a.wrapping_add(c.sum.load(Ordering::Acquire))),
            None => 0,
        }
    }

    /// Adds a duration to a time counter or a time average sample.
    #[inline]
    pub fn tinc(&self, idx: usize, d: Duration) {
        self.inc(idx, d.as_nanos().min(u64::MAX as u128) as u64)
    }

    pub fn tset(&self, idx: usize, d: Duration) {
        self.set(idx, d.as_nanos().min(u64::MAX as u128) as u64)
    }

    pub fn tget(&self, idx: usize) -> Duration {
        Duration::from_nanos(self.get(idx))
    }

    /// A consistent `(sum, count)` pair of an average, read without locks.
    pub fn read_avg(&self, idx: usize) -> (u64, u64) {
        let Some(slot) = self.slots.get(idx) else { return (0, 0) };
        let (mut sum, mut count) = (0u64, 0u64);
        for c in slot.cells.iter() {
            loop {
                let a = c.count2.load(Ordering::Acquire);
                let s = c.sum.load(Ordering::Acquire);
                let b = c.count.load(Ordering::Acquire);
                if a == b {
                    sum = sum.wrapping_add(s);
                    count += b;
                    break;
                }
                std::hint::spin_loop();
            }
        }
        (sum, count)
    }

    /// Counts one sample in a 2-D histogram.
    pub fn hinc(&self, idx: usize, x: i64, y: i64) {
        let Some(def) = self.defs.get(idx) else { return };
        let (Some((ax, ay)), Some(h)) = (&def.axes, &self.slots[idx].hist) else {
            return;
        };
        let i = ax.bucket(x) * ay.buckets + ay.bucket(y);
        h[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Ceph's reset: everything but plain u64 gauges goes to zero; histograms are cleared.
    pub fn reset(&self) {
        for (def, slot) in self.defs.iter().zip(&self.slots) {
            if def.ty == PERFCOUNTER_U64 {
                continue;
            }
            for c in slot.cells.iter() {
                c.sum.store(0, Ordering::Release);
                c.count.store(0, Ordering::Release);
                c.count2.store(0, Ordering::Release);
            }
            if let Some(h) = &slot.hist {
                h.iter().for_each(|b| b.store(0, Ordering::Relaxed));
            }
        }
    }

    fn dump_counter(&self, idx: usize) -> FVal {
        let def = &self.defs[idx];
        if def.is_avg() {
            let (sum, count) = self.read_avg(idx);
            if def.is_time() {
                let avg = sum.checked_div(count).unwrap_or(0);
                FVal::obj()
                    .with("avgcount", FVal::U64(count))
                    .with("sum", FVal::time_ns(sum))
                    .with("avgtime", FVal::time_ns(avg))
            } else {
                FVal::obj()
                    .with("avgcount", FVal::U64(count))
                    .with("sum", FVal::U64(sum))
            }
        } else if def.is_time() {
            FVal::time_ns(self.get(idx))
        } else {
            FVal::U64(self.get(idx))
        }
    }

    /// This logger's `perf dump` object (histograms excluded), optionally one counter only.
    pub fn dump(&self, counter: Option<&str>) -> FVal {
        let mut o = FVal::obj();
        for (i, def) in self.defs.iter().enumerate() {
            if def.is_hist() || counter.is_some_and(|c| c != def.name) {
                continue;
            }
            o.push(def.name.clone(), self.dump_counter(i));
        }
        o
    }

    pub fn dump_histograms(&self, counter: Option<&str>) -> FVal {
        let mut o = FVal::obj();
        for (i, def) in self.defs.iter().enumerate() {
            let (Some((ax, ay)), Some(h)) = (&def.axes, &self.slots[i].hist) else {
                continue;
            };
            if counter.is_some_and(|c| c != def.name) {
                continue;
            }
            let values = (0..ax.buckets)
                .map(|x| {
                    FVal::Arr(
                        (0..ay.buckets)
                            .map(|y| FVal::U64(h[x * ay.buckets + y].load(Ordering::Relaxed)))
                            .collect(),
                    )
                })
                .collect();
            o.push(
                def.name.clone(),
                FVal::obj()
                    .with("axes", FVal::Arr(vec![ax.to_fval(), ay.to_fval()]))
                    .with("values", FVal::Arr(values)),
            );
        }
        o
    }

    pub fn schema(&self, histograms: bool) -> FVal {
        let mut o = FVal::obj();
        for def in &self.defs {
            if def.is_hist() != histograms {
                continue;
            }
            let value_type = match (def.is_hist(), def.is_avg(), def.is_time()) {
                (true, _, true) => "real-2d-histogram",
                (true, _, false) => "integer-2d-histogram",
                (false, true, true) => "real-integer-pair",
                (false, true, false) => "integer-integer-pair",
                (false, false, true) => "real",
                (false, false, false) => "integer",
            };
            o.push(
                def.name.clone(),
                FVal::obj()
                    .with("type", FVal::U64(def.ty as u64))
                    .with(
                        "metric_type",
                        FVal::str(if def.ty & PERFCOUNTER_COUNTER != 0 {
                            "counter"
                        } else {
                            "gauge"
                        }),
                    )
                    .with("value_type", FVal::str(value_type))
                    .with("description", FVal::str(&def.description))
                    .with("nick", FVal::str(&def.nick))
                    .with("priority", FVal::I64(def.prio.clamp(0, 10) as i64))
                    .with(
                        "units",
                        FVal::str(match def.unit {
                            Unit::None => "none",
                            Unit::Bytes => "bytes",
                        }),
                    ),
            );
        }
        o
    }
}

/// Builds a `PerfCounters`; each `add_*` returns the counter's index.
pub struct PerfCountersBuilder {
    name: String,
    defs: Vec<CounterDef>,
    default_prio: i32,
}

impl PerfCountersBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        PerfCountersBuilder {
            name: name.into(),
            defs: Vec::new(),
            default_prio: PRIO_USEFUL,
        }
    }
    pub fn set_prio_default(&mut self, prio: i32) -> &mut Self {
        self.default_prio = prio;
        self
    }
    /// Adds a counter of raw Ceph type flags; the typed helpers below are the usual way in.
    pub fn add(&mut self, ty: u8, name: &str, desc: &str) -> usize {
        self.defs.push(CounterDef {
            name: name.to_string(),
            description: desc.to_string(),
            nick: String::new(),
            prio: self.default_prio,
            unit: Unit::None,
            ty,
            axes: None,
        });
        self.defs.len() - 1
    }
    pub fn add_u64(&mut self, name: &str, desc: &str) -> usize {
        self.add(PERFCOUNTER_U64, name, desc)
    }
    pub fn add_u64_counter(&mut self, name: &str, desc: &str) -> usize {
        self.add(PERFCOUNTER_U64 | PERFCOUNTER_COUNTER, name, desc)
    }
    pub fn add_u64_avg(&mut self, name: &str, desc: &str) -> usize {
        self.add(PERFCOUNTER_U64 | PERFCOUNTER_LONGRUNAVG, name, desc)
    }
    pub fn add_time(&mut self, name: &str, desc: &str) -> usize {
        self.add(PERFCOUNTER_TIME, name, desc)
    }
    pub fn add_time_avg(&mut self, name: &str, desc: &str) -> usize {
        self.add(PERFCOUNTER_TIME | PERFCOUNTER_LONGRUNAVG, name, desc)
    }
    pub fn add_u64_counter_histogram(&mut self, name: &str, desc: &str, x: Axis, y: Axis) -> usize {
        let i = self.add(
            PERFCOUNTER_U64 | PERFCOUNTER_COUNTER | PERFCOUNTER_HISTOGRAM,
            name,
            desc,
        );
        self.defs[i].axes = Some((x, y));
        i
    }
    /// Sets the nick, priority and unit of the counter added last.
    pub fn nick(&mut self, nick: &str) -> &mut Self {
        if let Some(d) = self.defs.last_mut() {
            d.nick = nick.to_string();
        }
        self
    }
    pub fn prio(&mut self, prio: i32) -> &mut Self {
        if let Some(d) = self.defs.last_mut() {
            d.prio = prio;
        }
        self
    }
    pub fn unit(&mut self, unit: Unit) -> &mut Self {
        if let Some(d) = self.defs.last_mut() {
            d.unit = unit;
        }
        self
    }
    pub fn build(self) -> Arc<PerfCounters> {
        let slots = self
            .defs
            .iter()
            .map(|d| Slot {
                cells: (0..if d.striped() { STRIPES } else { 1 })
                    .map(|_| CachePadded::new(Cell::default()))
                    .collect(),
                hist: d
                    .axes
                    .as_ref()
                    .map(|(x, y)| (0..x.buckets * y.buckets).map(|_| AtomicU64::new(0)).collect()),
            })
            .collect();
        Arc::new(PerfCounters {
            name: self.name,
            defs: self.defs,
            slots,
        })
    }
}

/// Every logger of one context: what `perf dump`, `perf schema` and `perf reset` walk.
#[derive(Default)]
pub struct PerfCountersCollection {
    loggers: Mutex<BTreeMap<String, Arc<PerfCounters>>>,
}

impl PerfCountersCollection {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a logger. A second logger with a taken name is renamed `<name>-<address>` (Ceph's
    /// rule); the name it is filed under is returned.
    pub fn add(&self, pc: &Arc<PerfCounters>) -> String {
        let mut l = self.loggers.lock();
        let mut name = pc.name.clone();
        if l.contains_key(&name) {
            name = format!("{}-{:p}", pc.name, Arc::as_ptr(pc));
        }
        l.insert(name.clone(), pc.clone());
        name
    }

    pub fn remove(&self, pc: &Arc<PerfCounters>) {
        self.loggers.lock().retain(|_, v| !Arc::ptr_eq(v, pc));
    }

    pub fn get(&self, name: &str) -> Option<Arc<PerfCounters>> {
        self.loggers.lock().get(name).cloned()
    }

    fn snapshot(&self) -> Vec<(String, Arc<PerfCounters>)> {
        self.loggers
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `perf dump [logger] [counter]`.
    pub fn dump(&self, logger: Option<&str>, counter: Option<&str>) -> FVal {
        let mut o = FVal::obj();
        for (name, pc) in self.snapshot() {
            if logger.is_some_and(|l| l != name) {
                continue;
            }
            let d = pc.dump(counter);
            if counter.is_some() && matches!(&d, FVal::Obj(m) if m.is_empty()) {
                continue;
            }
            o.push(name, d);
        }
        o
    }

    /// `perf histogram dump [logger] [counter]`.
    pub fn dump_histograms(&self, logger: Option<&str>, counter: Option<&str>) -> FVal {
        let mut o = FVal::obj();
        for (name, pc) in self.snapshot() {
            if logger.is_some_and(|l| l != name) {
                continue;
            }
            let d = pc.dump_histograms(counter);
            if !matches!(&d, FVal::Obj(m) if m.is_empty()) {
                o.push(name, d);
            }
        }
        o
    }

    /// `perf schema` (or `perf histogram schema` with `histograms`).
    pub fn schema(&self, histograms: bool) -> FVal {
        let mut o = FVal::obj();
        for (name, pc) in self.snapshot() {
            let s = pc.schema(histograms);
            if !histograms || !matches!(&s, FVal::Obj(m) if m.is_empty()) {
                o.push(name, s);
            }
        }
        o
    }

    /// `perf reset all|<logger>`: false when no such logger.
    pub fn reset(&self, which: &str) -> bool {
        if which == "all" {
            self.snapshot().iter().for_each(|(_, pc)| pc.reset());
            return true;
        }
        match self.get(which) {
            Some(pc) => {
                pc.reset();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::formatter::{render, Format};

    fn sample() -> (Arc<PerfCounters>, [usize; 6]) {
        let mut b = PerfCountersBuilder::new("test");
        let c = b.add_u64_counter("ops", "operations");
        b.nick("ops").prio(PRIO_CRITICAL);
        let g = b.add_u64("queue_len", "queued");
        let a = b.add_u64_avg("bytes_avg", "bytes per op");
        b.unit(Unit::Bytes);
        let t = b.add_time("busy", "busy time");
        let ta = b.add_time_avg("lat", "latency");
        let h = b.add_u64_counter_histogram(
            "lat_hist",
            "latency x size",
            Axis::new("lat", ScaleType::Log2, 0, 1000, 8),
            Axis::new("size", ScaleType::Linear, 0, 512, 4),
        );
        (b.build(), [c, g, a, t, ta, h])
    }

    #[test]
    fn counters_dump_in_ceph_shape() {
        let (pc, [c, g, a, t, ta, h]) = sample();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        pc.inc(c, 1);
                        pc.tinc(ta, Duration::from_micros(2));
                    }
                });
            }
        });
        pc.set(g, 7);
        pc.inc(a, 10);
        pc.inc(a, 30);
        pc.tinc(t, Duration::from_millis(1500));
        pc.hinc(h, 2500, 100);
        assert_eq!(pc.get(c), 4000);
        assert_eq!(pc.read_avg(ta), (4000 * 2000, 4000));
        let dump = render(&pc.dump(None), Format::Json);
        assert_eq!(
            dump,
            "{\"ops\":4000,\"queue_len\":7,\"bytes_avg\":{\"avgcount\":2,\"sum\":40},\"busy\":1.500000000,\
             \"lat\":{\"avgcount\":4000,\"sum\":0.008000000,\"avgtime\":0.000002000}}"
        );
        let hd: serde_json::Value = serde_json::from_str(&render(&pc.dump_histograms(None), Format::Json)).unwrap();
        // 2500 / 1000 = 2 quanta → log2 bucket 3 ([2,4)); 100 → linear bucket 1.
        assert_eq!(hd["lat_hist"]["values"][3][1], 1);
        assert_eq!(hd["lat_hist"]["axes"][0]["ranges"][0]["max"], -1);

        pc.reset();
        assert_eq!(pc.get(c), 0);
        assert_eq!(pc.get(g), 7, "plain gauges survive perf reset");
        assert_eq!(pc.read_avg(ta), (0, 0));
    }

    #[test]
    fn schema_types_match_ceph() {
        let (pc, _) = sample();
        let s: serde_json::Value = serde_json::from_str(&render(&pc.schema(false), Format::Json)).unwrap();
        assert_eq!(s["ops"]["type"], 10);
        assert_eq!(s["ops"]["metric_type"], "counter");
        assert_eq!(s["ops"]["priority"], 10);
        assert_eq!(s["queue_len"]["type"], 2);
        assert_eq!(s["bytes_avg"]["type"], 6);
        assert_eq!(s["bytes_avg"]["units"], "bytes");
        assert_eq!(s["busy"]["type"], 1);
        assert_eq!(s["lat"]["type"], 5);
        assert_eq!(s["lat"]["metric_type"], "gauge");
        assert_eq!(s["lat"]["value_type"], "real-integer-pair");
        assert!(s.get("lat_hist").is_none());
        let hs: serde_json::Value = serde_json::from_str(&render(&pc.schema(true), Format::Json)).unwrap();
        assert_eq!(hs["lat_hist"]["type"], 26);
    }

    #[test]
    fn collection_filters_renames_and_resets() {
        let coll = PerfCountersCollection::new();
        let (a, _) = sample();
        let (b, _) = sample();
        assert_eq!(coll.add(&a), "test");
        let bname = coll.add(&b);
        assert!(bname.starts_with("test-0x"), "{bname}");
        a.inc(0, 5);
        let d: serde_json::Value =
            serde_json::from_str(&render(&coll.dump(Some("test"), Some("ops")), Format::Json)).unwrap();
        assert_eq!(d, serde_json::json!({"test": {"ops": 5}}));
        assert!(coll.reset("test"));
        assert!(!coll.reset("nope"));
        assert_eq!(a.get(0), 0);
        coll.remove(&b);
        assert!(coll.get(&bname).is_none());
    }
}
