//! `osdkit bench osd`: load a running cluster like `rados bench`. `write` keeps `depth`
//! `writefull`s of `block_size` bytes in flight for the given seconds (objects
//! `benchmark_data_<host>_<pid>_object<N>`), then deletes them, or with `no_cleanup` leaves them
//! and writes `benchmark_last_metadata` so `seq` (in order) and `rand` (random picks) can read
//! them back. Every object starts with a header (magic + object index) followed by a fixed
//! pattern; every read is checked for length and content, a mismatch counts as an error.

use super::client::ClusterClient;
use crate::client::objecter::Objecter;
use crate::types::osd_op::{MOsdOpReply, OsdOp};
use crate::{Error, Result};
use bytes::{Bytes, BytesMut};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The object `write --no-cleanup` leaves for `seq` and `rand`.
pub const METADATA_OBJECT: &str = "benchmark_last_metadata";
const MAGIC: &[u8; 8] = b"OSDKBNCH";
const HEADER: usize = 16;
const MB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write,
    Seq,
    Rand,
    /// Deletes what the last `write --no-cleanup` left, like `rados -p POOL cleanup`.
    Cleanup,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Write => "write",
            Mode::Seq => "seq",
            Mode::Rand => "rand",
            Mode::Cleanup => "cleanup",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "write" => Ok(Mode::Write),
            "seq" => Ok(Mode::Seq),
            "rand" => Ok(Mode::Rand),
            "cleanup" => Ok(Mode::Cleanup),
            _ => Err(Error::inval(format!("unknown mode '{s}': write, seq, rand or cleanup"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOpts {
    pub pool: String,
    pub seconds: u64,
    pub mode: Mode,
    pub block_size: u64,
    pub depth: usize,
    pub no_cleanup: bool,
    pub json: bool,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub mode: &'static str,
    pub seconds: f64,
    pub ops: u64,
    pub errors: u64,
    pub block_size: u64,
    pub depth: usize,
    pub iops: f64,
    pub mb_per_sec: f64,
    pub stddev_iops: f64,
    pub max_iops: f64,
    pub min_iops: f64,
    pub avg_latency: f64,
    pub stddev_latency: f64,
    pub p50_latency: f64,
    pub p99_latency: f64,
    pub min_latency: f64,
    pub max_latency: f64,
    pub objects_removed: u64,
    pub cleanup_errors: u64,
    pub object_prefix: String,
    pub first_errors: Vec<String>,
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode,
            "seconds": self.seconds,
            "ops": self.ops,
            "errors": self.errors,
            "block_size": self.block_size,
            "depth": self.depth,
            "iops": self.iops,
            "mb_per_sec": self.mb_per_sec,
            "stddev_iops": self.stddev_iops,
            "max_iops": self.max_iops,
            "min_iops": self.min_iops,
            "avg_latency": self.avg_latency,
            "stddev_latency": self.stddev_latency,
            "p50_latency": self.p50_latency,
            "p99_latency": self.p99_latency,
            "min_latency": self.min_latency,
            "max_latency": self.max_latency,
            "objects_removed": self.objects_removed,
            "cleanup_errors": self.cleanup_errors,
            "object_prefix": self.object_prefix,
            "first_errors": self.first_errors,
        })
    }

    fn print_text(&self) {
        if self.mode == "cleanup" {
            println!("Object prefix:          {}", self.object_prefix);
            println!("Objects removed:        {}", self.objects_removed);
            println!("Total time run:         {:.6}", self.seconds);
            if self.cleanup_errors > 0 {
                println!("Clean up errors:        {}", self.cleanup_errors);
            }
            return;
        }
        let w = if self.mode == "write" { "writes" } else { "reads" };
        println!("Total time run:         {:.6}", self.seconds);
        println!("Total {w} made:      {}", self.ops);
        println!(
            "{} size:             {}",
            if w == "writes" { "Write" } else { "Read" },
            self.block_size
        );
        println!("Bandwidth (MB/sec):     {:.3}", self.mb_per_sec);
        println!("Average IOPS:           {:.0}", self.iops);
        println!("Stddev IOPS:            {:.3}", self.stddev_iops);
        println!("Max IOPS:               {:.0}", self.max_iops);
        println!("Min IOPS:               {:.0}", self.min_iops);
        println!("Average Latency(s):     {:.7}", self.avg_latency);
        println!("Stddev Latency(s):      {:.7}", self.stddev_latency);
        println!("Max latency(s):         {:.7}", self.max_latency);
        println!("Min latency(s):         {:.7}", self.min_latency);
        println!("p50 latency(s):         {:.7}", self.p50_latency);
        println!("p99 latency(s):         {:.7}", self.p99_latency);
        println!("Errors:                 {}", self.errors);
        if self.mode == "write" && self.objects_removed > 0 {
            println!("Cleaning up (deleting benchmark objects)");
            println!(
                "Clean up completed and total clean up time :{} objects removed",
                self.objects_removed
            );
        }
        if self.cleanup_errors > 0 {
            println!("Clean up errors:        {}", self.cleanup_errors);
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn object_name(prefix: &str, i: u64) -> String {
    format!("{prefix}_object{i}")
}

/// The fixed part of every object: a byte pattern, the header space left for `header_for`.
fn pattern(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect()
}

fn header_for(i: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&i.to_le_bytes());
    h
}

/// The data of object `i`: `base` under the object's header, written into `reuse` when that
/// is the buffer of an earlier op (`base` under another header), which saves copying `base`.
fn object_data(base: &[u8], i: u64, reuse: Option<BytesMut>) -> Bytes {
    let mut v = match reuse {
        Some(b) if b.len() == base.len() => b,
        _ => BytesMut::from(base),
    };
    let h = header_for(i);
    let n = HEADER.min(v.len());
    v[..n].copy_from_slice(&h[..n]);
    v.freeze()
}

/// Checks a read of object `i`: its length and content.
fn check_read(base: &[u8], i: u64, data: &[u8]) -> std::result::Result<(), String> {
    if data.len() != base.len() {
        return Err(format!("object{i}: read {} bytes, expected {}", data.len(), base.len()));
    }
    let h = header_for(i);
    let n = HEADER.min(base.len());
    if data[..n] != h[..n] {
        return Err(format!(
            "object{i}: header mismatch (not the object written as index {i})"
        ));
    }
    if data[n..] != base[n..] {
        return Err(format!("object{i}: content mismatch after the header"));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    Delete,
}

/// Which object comes next.
enum Gen {
    /// 0, 1, 2, ... up to `limit` (exclusive) if any.
    Seq { n: u64, limit: Option<u64> },
    /// Uniform picks among `0..objects` (xorshift64).
    Rand { rng: u64, objects: u64 },
}

impl Gen {
    fn next(&mut self) -> Option<u64> {
        match self {
            Gen::Seq { n, limit } => {
                if limit.is_some_and(|l| *n >= l) {
                    return None;
                }
                *n += 1;
                Some(*n - 1)
            }
            Gen::Rand { rng, objects } => {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                Some(*rng % *objects)
            }
        }
    }
}

#[derive(Default)]
struct St {
    in_flight: usize,
    started: u64,
    finished: u64,
    errors: u64,
    lats: Vec<f64>,
    last_lat: Option<f64>,
    first_errors: Vec<String>,
}

/// One phase's state, shared with the completions: a completion that succeeded starts the
/// next op itself (no hop through the main thread), so `depth` stays in flight.
struct Shared {
    st: Mutex<St>,
    cv: Condvar,
    gen: Mutex<Gen>,
    dry: AtomicBool,
    end: Option<Instant>,
    depth: usize,
    objecter: Objecter,
    pool: i64,
    prefix: String,
    kind: Kind,
    base: Arc<Vec<u8>>,
    /// Data buffers of finished writes, for the next ones (`object_data`).
    spare: Mutex<Vec<BytesMut>>,
}

struct Phase {
    elapsed: f64,
    finished: u64,
    errors: u64,
    lats: Vec<f64>,
    per_sec: Vec<f64>,
    first_errors: Vec<String>,
}

fn fail(sh: &Shared, msg: String) {
    let mut st = sh.st.lock();
    st.errors += 1;
    if st.first_errors.len() < 5 {
        st.first_errors.push(msg);
    }
}

impl Shared {
    /// Still starting ops: the time is not up and the objects not exhausted.
    fn open(&self) -> bool {
        !self.dry.load(Ordering::Acquire) && self.end.is_none_or(|e| Instant::now() < e)
    }

    /// Starts one op on the next object, in a slot already counted in `in_flight`; false when
    /// there is none.
    fn start_in_slot(self: &Arc<Self>) -> bool {
        let Some(i) = self.gen.lock().next() else {
            self.dry.store(true, Ordering::Release);
            return false;
        };
        self.st.lock().started += 1;
        let oid = object_name(&self.prefix, i);
        let mut data = None;
        let ops = match self.kind {
            Kind::Write => {
                let d = object_data(&self.base, i, self.spare.lock().pop());
                data = Some(d.clone());
                vec![OsdOp::writefull(d)]
            }
            Kind::Read => vec![OsdOp::read(0, self.base.len() as u64)],
            Kind::Delete => vec![OsdOp::delete()],
        };
        let sh = self.clone();
        let t0 = Instant::now();
        let done = Box::new(move |r: Result<MOsdOpReply>| {
            // By the reply the request is gone from the messenger and the objecter, so
            // this is the buffer's last reference (unless the op was sent twice).
            if let Some(b) = data.and_then(|d| d.try_into_mut().ok()) {
                sh.spare.lock().push(b);
            }
            sh.complete(i, t0, r)
        });
        self.objecter.submit(self.pool, &oid, "", ops, done);
        true
    }

    /// Starts one op on the next object; false when there is none.
    fn start_one(self: &Arc<Self>) -> bool {
        self.st.lock().in_flight += 1;
        if self.start_in_slot() {
            return true;
        }
        self.st.lock().in_flight -= 1;
        false
    }

    fn complete(self: &Arc<Self>, i: u64, t0: Instant, r: Result<MOsdOpReply>) {
        let lat = t0.elapsed().as_secs_f64();
        let kind = self.kind;
        let verdict = match r {
            Err(e) => Err(format!("object{i}: {e}")),
            Ok(r) if kind == Kind::Delete && r.result == -libc::ENOENT => Ok(()),
            Ok(r) if r.result < 0 => Err(format!("object{i}: {}", crate::common::error::strerror(-r.result))),
            Ok(r) if kind == Kind::Read => match r.ops.first() {
                Some(op) => check_read(&self.base, i, &op.outdata),
                None => Err(format!("object{i}: reply without its op")),
            },
            Ok(_) => Ok(()),
        };
        let ok = verdict.is_ok();
        if let Err(m) = verdict {
            fail(self, m);
        }
        // Whether this op's slot passes to the next op is decided under the lock, so the main
        // thread never sees the phase empty while a completion is about to start another op.
        let keep_slot = {
            let mut st = self.st.lock();
            st.finished += 1;
            st.lats.push(lat);
            st.last_lat = Some(lat);
            // A failed op may have failed synchronously inside `submit`: leave the refill to
            // the main thread then, rather than recursing.
            let keep = ok && self.open();
            if !keep {
                st.in_flight -= 1;
            }
            keep
        };
        if keep_slot {
            if self.start_in_slot() {
                return;
            }
            self.st.lock().in_flight -= 1;
        }
        self.cv.notify_all();
    }
}

/// Runs ops on the objects `gen` yields, `depth` in flight, until `gen` runs dry or `limit`
/// passes; then waits for what is in flight. With `print`, a rados-bench line a second.
#[allow(clippy::too_many_arguments)]
fn run_phase(
    obj: &Objecter,
    pool: i64,
    prefix: &str,
    kind: Kind,
    depth: usize,
    base: &Arc<Vec<u8>>,
    limit: Option<Duration>,
    gen: Gen,
    print: bool,
) -> Phase {
    let start = Instant::now();
    let sh = Arc::new(Shared {
        st: Mutex::new(St::default()),
        cv: Condvar::new(),
        gen: Mutex::new(gen),
        dry: AtomicBool::new(false),
        end: limit.map(|l| start + l),
        depth,
        objecter: obj.clone(),
        pool,
        prefix: prefix.to_string(),
        kind,
        base: base.clone(),
        spare: Mutex::new(Vec::new()),
    });
    let bs = base.len() as f64;
    let mut next_tick = start + Duration::from_secs(1);
    let mut sec = 0u64;
    let mut last_finished = 0u64;
    let mut per_sec = Vec::new();
    if print {
        println!("  sec Cur ops   started  finished  avg MB/s  cur MB/s last lat(s)  avg lat(s)");
    }
    loop {
        if sh.open() {
            let room = sh.depth.saturating_sub(sh.st.lock().in_flight);
            for _ in 0..room {
                if !sh.start_one() {
                    break;
                }
            }
        }
        let mut st = sh.st.lock();
        let open = sh.open();
        if !open && st.in_flight == 0 {
            break;
        }
        if !open || st.in_flight >= sh.depth {
            let wake = match sh.end {
                Some(e) if open => next_tick.min(e),
                _ => next_tick,
            };
            sh.cv.wait_until(&mut st, wake);
        }
        let now = Instant::now();
        if now >= next_tick {
            let f = st.finished;
            per_sec.push((f - last_finished) as f64);
            if print {
                let el = now.duration_since(start).as_secs_f64();
                let avg_lat = if st.lats.is_empty() {
                    0.0
                } else {
                    st.lats.iter().sum::<f64>() / st.lats.len() as f64
                };
                let last = st.last_lat.map_or("-".to_string(), |l| format!("{l:.6}"));
                println!(
                    "{:>5} {:>7} {:>9} {:>9} {:>9.3} {:>9.3} {:>11} {:>11.6}",
                    sec + 1,
                    st.in_flight,
                    st.started,
                    f,
                    f as f64 * bs / MB / el,
                    (f - last_finished) as f64 * bs / MB,
                    last,
                    avg_lat
                );
            }
            last_finished = f;
            sec += 1;
            next_tick += Duration::from_secs(1);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let st = std::mem::take(&mut *sh.st.lock());
    // The partial last second, scaled, if it was long enough to say something.
    let tail = elapsed - sec as f64;
    if tail > 0.2 || per_sec.is_empty() {
        per_sec.push((st.finished - last_finished) as f64 / tail.max(1e-9));
    }
    Phase {
        elapsed,
        finished: st.finished,
        errors: st.errors,
        lats: st.lats,
        per_sec,
        first_errors: st.first_errors,
    }
}

fn mean_stddev(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
    (m, var.sqrt())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report_of(o: &BenchOpts, block_size: u64, prefix: &str, mut p: Phase) -> Report {
    p.lats.sort_by(f64::total_cmp);
    let (avg_lat, sd_lat) = mean_stddev(&p.lats);
    let (_, sd_iops) = mean_stddev(&p.per_sec);
    let ok = p.finished - p.errors.min(p.finished);
    let el = p.elapsed.max(1e-9);
    Report {
        mode: o.mode.name(),
        seconds: p.elapsed,
        ops: p.finished,
        errors: p.errors,
        block_size,
        depth: o.depth,
        iops: p.finished as f64 / el,
        mb_per_sec: ok as f64 * block_size as f64 / MB / el,
        stddev_iops: sd_iops,
        max_iops: p.per_sec.iter().copied().fold(0.0, f64::max),
        min_iops: p.per_sec.iter().copied().reduce(f64::min).unwrap_or(0.0),
        avg_latency: avg_lat,
        stddev_latency: sd_lat,
        p50_latency: percentile(&p.lats, 50.0),
        p99_latency: percentile(&p.lats, 99.0),
        min_latency: p.lats.first().copied().unwrap_or(0.0),
        max_latency: p.lats.last().copied().unwrap_or(0.0),
        objects_removed: 0,
        cleanup_errors: 0,
        object_prefix: prefix.to_string(),
        first_errors: p.first_errors,
    }
}

/// What `benchmark_last_metadata` says the last `write --no-cleanup` left: (prefix, objects,
/// object size).
fn last_metadata(obj: &Objecter, pool: i64, pool_name: &str) -> Result<(String, u64, u64)> {
    let r = obj
        .op(pool, METADATA_OBJECT, vec![OsdOp::read(0, 1 << 16)])
        .map_err(|e| {
            if e.errno == libc::ENOENT {
                Error::noent(format!(
                    "no {METADATA_OBJECT} in pool '{pool_name}': run `osdkit bench osd ... write --no-cleanup` first"
                ))
            } else {
                Error::new(e.errno, format!("reading {METADATA_OBJECT}: {}", e.msg))
            }
        })?;
    let data = r.ops.first().map(|op| op.outdata.clone()).unwrap_or_default();
    let meta: Value = serde_json::from_slice(&data)
        .map_err(|e| Error::inval(format!("{METADATA_OBJECT} is not benchmark metadata: {e}")))?;
    match (
        meta["prefix"].as_str(),
        meta["objects"].as_u64(),
        meta["object_size"].as_u64(),
    ) {
        (Some(prefix), Some(objects), Some(bs)) => Ok((prefix.to_string(), objects, bs)),
        _ => Err(Error::inval(format!(
            "{METADATA_OBJECT} lacks prefix/objects/object_size: {meta}"
        ))),
    }
}

/// Deletes objects 0..count of `prefix`, `depth` at a time, counting into `rep`.
fn delete_objects(obj: &Objecter, pool: i64, prefix: &str, count: u64, depth: usize, rep: &mut Report) {
    let p = run_phase(
        obj,
        pool,
        prefix,
        Kind::Delete,
        depth,
        &Arc::new(Vec::new()),
        None,
        Gen::Seq {
            n: 0,
            limit: Some(count),
        },
        false,
    );
    rep.objects_removed += p.finished - p.errors;
    rep.cleanup_errors += p.errors;
    rep.first_errors.extend(p.first_errors);
}

/// `cleanup`: deletes what `benchmark_last_metadata` lists, then that object (kept when
/// something was left, so a second cleanup can finish the job).
fn cleanup(obj: &Objecter, pool: i64, o: &BenchOpts) -> Result<Report> {
    let (prefix, objects, bs) = last_metadata(obj, pool, &o.pool)?;
    let start = Instant::now();
    let mut rep = Report {
        mode: o.mode.name(),
        block_size: bs,
        depth: o.depth,
        object_prefix: prefix.clone(),
        ..Default::default()
    };
    delete_objects(obj, pool, &prefix, objects, o.depth, &mut rep);
    if rep.cleanup_errors == 0 {
        match obj.op(pool, METADATA_OBJECT, vec![OsdOp::delete()]) {
            Ok(r) if r.result < 0 && r.result != -libc::ENOENT => {
                rep.cleanup_errors += 1;
                rep.first_errors
                    .push(format!("deleting {METADATA_OBJECT}: errno {}", -r.result));
            }
            Ok(_) => {}
            Err(e) => {
                rep.cleanup_errors += 1;
                rep.first_errors.push(format!("deleting {METADATA_OBJECT}: {}", e.msg));
            }
        }
    }
    rep.seconds = start.elapsed().as_secs_f64();
    Ok(rep)
}

/// Runs the benchmark against the cluster of `conf`.
pub fn run(conf: &Path, o: &BenchOpts) -> Result<Report> {
    if o.depth == 0 {
        return Err(Error::inval("-t must be at least 1"));
    }
    if o.seconds == 0 {
        return Err(Error::inval("SECONDS must be at least 1"));
    }
    if o.block_size == 0 || o.block_size > 64 << 20 {
        return Err(Error::inval("-b must be between 1 byte and 64 MiB"));
    }
    let c = ClusterClient::connect(conf)?;
    let map = c.monc().osdmap();
    let pool = map
        .pool_by_name(&o.pool)
        .map(|p| p.id)
        .ok_or_else(|| Error::noent(format!("pool '{}' does not exist", o.pool)))?;
    let limit = Some(Duration::from_secs(o.seconds));
    match o.mode {
        Mode::Write => {
            let prefix = format!("benchmark_data_{}_{}", hostname(), std::process::id());
            let bs = o.block_size;
            let base = Arc::new(pattern(bs as usize));
            if !o.json {
                println!(
                    "Maintaining {} concurrent writes of {bs} bytes to objects of size {bs} for up to {} seconds or 0 objects",
                    o.depth, o.seconds
                );
                println!("Object prefix: {prefix}");
            }
            let p = run_phase(
                c.objecter(),
                pool,
                &prefix,
                Kind::Write,
                o.depth,
                &base,
                limit,
                Gen::Seq { n: 0, limit: None },
                !o.json,
            );
            let written = p.finished;
            let mut rep = report_of(o, bs, &prefix, p);
            if o.no_cleanup {
                let meta = json!({"prefix": prefix, "objects": written, "object_size": bs});
                c.objecter()
                    .op(
                        pool,
                        METADATA_OBJECT,
                        vec![OsdOp::writefull(Bytes::from(meta.to_string()))],
                    )
                    .map_err(|e| Error::new(e.errno, format!("writing {METADATA_OBJECT}: {}", e.msg)))?;
            } else {
                delete_objects(c.objecter(), pool, &prefix, written, o.depth, &mut rep);
            }
            Ok(rep)
        }
        Mode::Cleanup => cleanup(c.objecter(), pool, o),
        Mode::Seq | Mode::Rand => {
            let (prefix, objects, bs) = last_metadata(c.objecter(), pool, &o.pool)?;
            if objects == 0 {
                return Err(Error::inval(format!(
                    "{METADATA_OBJECT}: the last write benchmark left no objects"
                )));
            }
            let base = Arc::new(pattern(bs as usize));
            let gen = if o.mode == Mode::Rand {
                let r = crate::msgr::addr::random_nonce;
                Gen::Rand {
                    rng: (u64::from(r()) << 32) | u64::from(r()) | 1,
                    objects,
                }
            } else {
                Gen::Seq {
                    n: 0,
                    limit: Some(objects),
                }
            };
            let p = run_phase(
                c.objecter(),
                pool,
                &prefix,
                Kind::Read,
                o.depth,
                &base,
                limit,
                gen,
                !o.json,
            );
            Ok(report_of(o, bs, &prefix, p))
        }
    }
}

/// The command: prints the report (text or one JSON object); 0 when every op succeeded,
/// EIO when some failed, the errno when the run could not be made.
pub fn cli(conf: &Path, o: &BenchOpts) -> i32 {
    match run(conf, o) {
        Ok(rep) => {
            if o.json {
                super::conventions::print_json(&rep.to_json());
            } else {
                rep.print_text();
            }
            for e in &rep.first_errors {
                eprintln!("osdkit bench osd: {e}");
            }
            if rep.errors > 0 || rep.cleanup_errors > 0 {
                eprintln!(
                    "osdkit bench osd: {} of {} ops failed{}",
                    rep.errors,
                    rep.ops,
                    if rep.cleanup_errors > 0 {
                        format!(", {} deletes failed in clean up", rep.cleanup_errors)
                    } else {
                        String::new()
                    }
                );
                // The ops' own errnos vary; a run with failed ops is an I/O error as a whole.
                libc::EIO
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("osdkit bench osd: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let base = pattern(4096);
        let d = object_data(&base, 7, None);
        assert!(check_read(&base, 7, &d).is_ok());
        assert!(check_read(&base, 8, &d).is_err());
        assert!(check_read(&base, 7, &d[..100]).is_err());
        let mut bad = d.to_vec();
        bad[2000] ^= 1;
        assert!(check_read(&base, 7, &bad).is_err());
        let small = pattern(5);
        assert!(check_read(&small, 3, &object_data(&small, 3, None)).is_ok());
    }

    #[test]
    fn a_reused_buffer_holds_the_new_objects_data() {
        let base = pattern(4096);
        let first = object_data(&base, 7, None);
        let reused = object_data(&base, 9, Some(first.try_into_mut().expect("sole owner")));
        assert!(check_read(&base, 9, &reused).is_ok());
        // A buffer of another size is not reused.
        let other = object_data(&base, 4, Some(BytesMut::from(&b"short"[..])));
        assert!(check_read(&base, 4, &other).is_ok());
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(mean_stddev(&[2.0, 2.0]).1, 0.0);
    }
}
