//! The log: entries are queued to a `log` thread that writes the file (or stderr) and keeps a
//! ring of recent entries. Per-subsystem levels follow Ceph's `debug_ms = 1/5` form: an entry at
//! level L is written when L <= the first number and kept in the ring when L <= the second;
//! `log dump` (and a panic) writes the ring out.
//!
//! The `log` crate's macros feed it through a process-wide bridge that forwards to the most
//! recently started context's log; the module path picks the subsystem (`osdkit::asok::*` → `asok`).

use super::subsys::{self, SUBSYSTEMS};
use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One log line before formatting.
#[derive(Debug, Clone)]
pub struct Entry {
    pub stamp: SystemTime,
    pub thread: String,
    pub subsys: usize,
    pub prio: i32,
    pub msg: String,
}

enum Cmd {
    Entry(Entry),
    Flush(Sender<()>),
    Reopen(Sender<Result<(), String>>),
    Dump(Sender<()>),
    Stop,
}

/// Where entries go; changed by `config set log_file` and friends.
#[derive(Debug, Clone, Default)]
pub struct LogTarget {
    /// Empty: no file.
    pub file: String,
    pub to_stderr: bool,
    pub err_to_stderr: bool,
    pub max_recent: usize,
}

pub struct Log {
    levels: Vec<(AtomicI32, AtomicI32)>,
    /// Highest gather level of any subsystem, so most calls are refused with one load.
    max_gather: AtomicI32,
    tx: Sender<Cmd>,
    rx: Mutex<Option<Receiver<Cmd>>>,
    target: Arc<Mutex<LogTarget>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    running: AtomicBool,
    dropped: AtomicUsize,
}

/// Ceph's `log_max_new`: producers wait when this many entries are queued.
const QUEUE_MAX: usize = 10_000;

impl Log {
    pub fn new(target: LogTarget) -> Arc<Log> {
        let (tx, rx) = bounded(QUEUE_MAX);
        let log = Log {
            levels: SUBSYSTEMS
                .iter()
                .map(|(_, l, g)| (AtomicI32::new(*l), AtomicI32::new(*g)))
                .collect(),
            max_gather: AtomicI32::new(0),
            tx,
            rx: Mutex::new(Some(rx)),
            target: Arc::new(Mutex::new(target)),
            thread: Mutex::new(None),
            running: AtomicBool::new(false),
            dropped: AtomicUsize::new(0),
        };
        log.recompute_max();
        Arc::new(log)
    }

    fn recompute_max(&self) {
        let m = self
            .levels
            .iter()
            .map(|(l, g)| l.load(Ordering::Relaxed).max(g.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(0);
        self.max_gather.store(m, Ordering::Relaxed);
    }

    pub fn set_level(&self, subsys: usize, log: i32, gather: i32) {
        if let Some((l, g)) = self.levels.get(subsys) {
            l.store(log, Ordering::Relaxed);
            g.store(gather, Ordering::Relaxed);
            self.recompute_max();
        }
    }

    pub fn levels(&self, subsys: usize) -> (i32, i32) {
        self.levels
            .get(subsys)
            .map(|(l, g)| (l.load(Ordering::Relaxed), g.load(Ordering::Relaxed)))
            .unwrap_or((0, 0))
    }

    /// True when an entry at `prio` would be written or kept; cheap enough for hot paths.
    #[inline]
    pub fn should_gather(&self, subsys: usize, prio: i32) -> bool {
        if prio > self.max_gather.load(Ordering::Relaxed) {
            return false;
        }
        let (l, g) = self.levels(subsys);
        prio <= l.max(g)
    }

    pub fn set_target(&self, f: impl FnOnce(&mut LogTarget)) {
        f(&mut self.target.lock());
    }

    pub fn target(&self) -> LogTarget {
        self.target.lock().clone()
    }

    /// Starts the `log` thread (idempotent).
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let Some(rx) = self.rx.lock().take() else { return Ok(()) };
        let target = self.target.clone();
        let levels: Weak<Log> = Arc::downgrade(self);
        let h = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || log_thread(rx, target, levels))?;
        *self.thread.lock() = Some(h);
        self.running.store(true, Ordering::Release);
        Ok(())
    }

    pub fn submit(&self, subsys: usize, prio: i32, msg: String) {
        let e = Entry {
            stamp: SystemTime::now(),
            thread: std::thread::current().name().unwrap_or("?").to_string(),
            subsys,
            prio,
            msg,
        };
        if !self.running.load(Ordering::Acquire) {
            // Before start (or after stop) nothing drains the queue: errors still reach stderr.
            if prio <= 0 && self.target.lock().err_to_stderr {
                eprintln!("{}", format_entry(&e));
            }
            return;
        }
        if self.tx.send_timeout(Cmd::Entry(e), Duration::from_secs(1)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn roundtrip<T>(&self, mk: impl FnOnce(Sender<T>) -> Cmd) -> Option<T> {
        if !self.running.load(Ordering::Acquire) {
            return None;
        }
        let (tx, rx) = bounded(1);
        self.tx.send(mk(tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// Waits until everything queued so far is written.
    pub fn flush(&self) {
        self.roundtrip(Cmd::Flush);
    }

    /// Reopens the log file (after rotation, on SIGHUP or `log reopen`).
    pub fn reopen(&self) -> Result<(), String> {
        self.roundtrip(Cmd::Reopen).unwrap_or(Ok(()))
    }

    /// Writes the in-memory ring of recent entries to the log.
    pub fn dump_recent(&self) {
        self.roundtrip(Cmd::Dump);
    }

    /// Entries lost because the queue stayed full for a second.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        if self.running.swap(false, Ordering::AcqRel) {
            let _ = self.tx.send(Cmd::Stop);
            if let Some(h) = self.thread.lock().take() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `2026-11-23T18:39:10.123456+0000`, computed without a date crate (civil-from-days).
pub fn format_stamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

pub fn format_entry(e: &Entry) -> String {
    let name = SUBSYSTEMS.get(e.subsys).map(|s| s.0).unwrap_or("none");
    format!(
        "{} {} {:>2} {}: {}",
        format_stamp(e.stamp),
        e.thread,
        e.prio,
        name,
        e.msg
    )
}

struct Sink {
    file: Option<File>,
    path: String,
}

impl Sink {
    fn open(path: &str) -> Result<Sink, String> {
        if path.is_empty() {
            return Ok(Sink {
                file: None,
                path: String::new(),
            });
        }
        let p = PathBuf::from(path);
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| format!("cannot open log file {path}: {e}"))?;
        Ok(Sink {
            file: Some(f),
            path: path.to_string(),
        })
    }
}

fn log_thread(rx: Receiver<Cmd>, target: Arc<Mutex<LogTarget>>, log: Weak<Log>) {
    let mut recent: VecDeque<Entry> = VecDeque::new();
    let initial = target.lock().clone();
    let mut sink = Sink::open(&initial.file).unwrap_or_else(|e| {
        eprintln!("{e}");
        Sink {
            file: None,
            path: initial.file.clone(),
        }
    });
    let mut buf = String::new();
    let write_out = |sink: &mut Sink, buf: &mut String, to_stderr: bool| {
        if buf.is_empty() {
            return;
        }
        if let Some(f) = sink.file.as_mut() {
            let _ = f.write_all(buf.as_bytes());
        }
        if to_stderr {
            let _ = std::io::stderr().write_all(buf.as_bytes());
        }
        buf.clear();
    };
    while let Ok(cmd) = rx.recv() {
        let t = target.lock().clone();
        if t.file != sink.path {
            write_out(&mut sink, &mut buf, t.to_stderr);
            match Sink::open(&t.file) {
                Ok(s) => sink = s,
                Err(e) => eprintln!("{e}"),
            }
        }
        let mut next = Some(cmd);
        // Drain what is queued before touching the file: one write per burst.
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Entry(e) => {
                    let (lvl, gather) = log.upgrade().map(|l| l.levels(e.subsys)).unwrap_or((0, 0));
                    if e.prio <= lvl {
                        buf.push_str(&format_entry(&e));
                        buf.push('\n');
                    }
                    if e.prio <= gather && t.max_recent > 0 {
                        if recent.len() >= t.max_recent {
                            recent.pop_front();
                        }
                        recent.push_back(e);
                    }
                }
                Cmd::Flush(ack) => {
                    write_out(&mut sink, &mut buf, t.to_stderr);
                    if let Some(f) = sink.file.as_mut() {
                        let _ = f.flush();
                    }
                    let _ = ack.send(());
                }
                Cmd::Reopen(ack) => {
                    write_out(&mut sink, &mut buf, t.to_stderr);
                    let r = Sink::open(&t.file).map(|s| sink = s);
                    let _ = ack.send(r);
                }
                Cmd::Dump(ack) => {
                    write_out(&mut sink, &mut buf, t.to_stderr);
                    buf.push_str("--- begin dump of recent events ---\n");
                    for e in &recent {
                        buf.push_str(&format_entry(e));
                        buf.push('\n');
                    }
                    buf.push_str("--- logging levels ---\n");
                    if let Some(l) = log.upgrade() {
                        for (i, (name, _, _)) in SUBSYSTEMS.iter().enumerate() {
                            let (a, b) = l.levels(i);
                            buf.push_str(&format!("  {a:>2}/{b:>2} {name}\n"));
                        }
                    }
                    buf.push_str(&format!("  max_recent {:>9}\n", t.max_recent));
                    buf.push_str(&format!("  log_file {}\n", t.file));
                    buf.push_str("--- end dump of recent events ---\n");
                    write_out(&mut sink, &mut buf, t.to_stderr);
                    let _ = ack.send(());
                }
                Cmd::Stop => {
                    write_out(&mut sink, &mut buf, t.to_stderr);
                    return;
                }
            }
            if buf.len() < 64 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        write_out(&mut sink, &mut buf, t.to_stderr);
    }
}

// ---- the `log` crate bridge -------------------------------------------------------------------

static ACTIVE: RwLock<Option<Weak<Log>>> = RwLock::new(None);

struct Bridge;

/// Maps a `log` target (usually a module path) to a subsystem.
pub fn subsys_for_target(target: &str) -> usize {
    if let Some(i) = subsys::index_of(target) {
        return i;
    }
    const MAP: &[(&str, &str)] = &[
        ("::asok", "asok"),
        ("::msgr", "ms"),
        ("::timer", "timer"),
        ("::finisher", "finisher"),
        ("::throttle", "throttle"),
        ("::perf", "perfcounter"),
        ("::osd", "osd"),
        ("::mon", "mon"),
        ("::mds", "mds"),
        ("::client", "client"),
        ("::context", "context"),
        ("::config", "context"),
    ];
    MAP.iter()
        .find(|(k, _)| target.contains(k))
        .and_then(|(_, s)| subsys::index_of(s))
        .unwrap_or(0)
}

/// Ceph levels for `log` levels: errors always (-1), warnings at 0, info 1, debug 5, trace 20.
pub fn prio_for_level(l: log::Level) -> i32 {
    match l {
        log::Level::Error => -1,
        log::Level::Warn => 0,
        log::Level::Info => 1,
        log::Level::Debug => 5,
        log::Level::Trace => 20,
    }
}

thread_local! {
    /// The log of the context this thread works for, when the process hosts several.
    static THREAD_LOG: std::cell::RefCell<Option<Weak<Log>>> = const { std::cell::RefCell::new(None) };
}

/// The log a `log` macro on this thread goes to: the thread's context's (see
/// [`ThreadBuilder`], [`ThreadLogScope`]), else the last context started.
fn active() -> Option<Arc<Log>> {
    THREAD_LOG
        .with(|l| l.borrow().as_ref().and_then(Weak::upgrade))
        .or_else(|| ACTIVE.read().as_ref().and_then(|w| w.upgrade()))
}

/// While alive, `log` macros on this thread (and threads it starts with [`ThreadBuilder`])
/// go to `log`: set around the start of one daemon among several in a process.
pub struct ThreadLogScope {
    prev: Option<Weak<Log>>,
}

impl ThreadLogScope {
    pub fn enter(log: &Arc<Log>) -> ThreadLogScope {
        let prev = THREAD_LOG.with(|l| l.replace(Some(Arc::downgrade(log))));
        ThreadLogScope { prev }
    }
}

impl Drop for ThreadLogScope {
    fn drop(&mut self) {
        let prev = self.prev.take();
        THREAD_LOG.with(|l| *l.borrow_mut() = prev);
    }
}

/// `std::thread::Builder` for the library's threads: the new thread logs where the thread
/// starting it does, so each of several daemons hosted in one process keeps its own log.
pub struct ThreadBuilder(std::thread::Builder);

impl Default for ThreadBuilder {
    fn default() -> Self {
        ThreadBuilder(std::thread::Builder::new())
    }
}

impl ThreadBuilder {
    pub fn new() -> ThreadBuilder {
        ThreadBuilder::default()
    }
    pub fn name(self, name: String) -> ThreadBuilder {
        ThreadBuilder(self.0.name(name))
    }
    pub fn spawn<F, T>(self, f: F) -> std::io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let log = THREAD_LOG.with(|l| l.borrow().clone());
        self.0.spawn(move || {
            THREAD_LOG.with(|l| *l.borrow_mut() = log);
            f()
        })
    }
}

impl log::Log for Bridge {
    fn enabled(&self, m: &log::Metadata) -> bool {
        active().is_some_and(|l| l.should_gather(subsys_for_target(m.target()), prio_for_level(m.level())))
    }
    fn log(&self, r: &log::Record) {
        let sub = subsys_for_target(r.target());
        let prio = prio_for_level(r.level());
        match active() {
            Some(l) if l.should_gather(sub, prio) => l.submit(sub, prio, r.args().to_string()),
            Some(_) => {}
            None if prio <= 0 => eprintln!("{}: {}", r.level(), r.args()),
            None => {}
        }
    }
    fn flush(&self) {
        if let Some(l) = active() {
            l.flush();
        }
    }
}

/// Makes `log` the target of the `log` crate's macros in this process.
pub fn install_bridge(log: &Arc<Log>) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if log::set_boxed_logger(Box::new(Bridge)).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Ceph dumps recent events on a crash: do the same, then the default report.
            if let Some(l) = active() {
                l.submit(0, -1, format!("panic: {info}"));
                l.dump_recent();
            }
            prev(info);
        }));
    });
    *ACTIVE.write() = Some(Arc::downgrade(log));
}

/// Forgets `log` as the bridge target if it is the current one.
pub fn uninstall_bridge(log: &Arc<Log>) {
    let mut a = ACTIVE.write();
    if a.as_ref()
        .and_then(|w| w.upgrade())
        .is_some_and(|cur| Arc::ptr_eq(&cur, log))
    {
        *a = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_utc_civil_time() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_459_150_123_456);
        assert_eq!(format_stamp(t), "2026-11-23T18:39:10.123456+0000");
        assert_eq!(format_stamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000+0000");
    }

    #[test]
    fn levels_route_to_file_and_ring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let log = Log::new(LogTarget {
            file: path.to_string_lossy().into(),
            to_stderr: false,
            err_to_stderr: false,
            max_recent: 3,
        });
        let ms = subsys::index_of("ms").unwrap();
        log.set_level(ms, 1, 10);
        log.start().unwrap();
        assert!(log.should_gather(ms, 10));
        assert!(!log.should_gather(ms, 11));
        log.submit(ms, 1, "written".into());
        log.submit(ms, 5, "ring only A".into());
        log.submit(ms, 5, "ring only B".into());
        log.submit(ms, 5, "ring only C".into());
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(" 1 ms: written"), "{text}");
        assert!(!text.contains("ring only"));
        log.dump_recent();
        let text = std::fs::read_to_string(&path).unwrap();
        let dump = text.split("--- begin dump of recent events ---").nth(1).unwrap();
        // The ring keeps the last 3 gathered entries only.
        assert!(!dump.contains("written") && dump.contains("ring only A") && dump.contains("ring only C"));
        assert!(dump.contains(" 1/10 ms"));

        // Rotation: move the file away, reopen, and new lines land in a fresh file.
        std::fs::rename(&path, dir.path().join("x.log.1")).unwrap();
        log.reopen().unwrap();
        log.submit(ms, 0, "after reopen".into());
        log.flush();
        assert!(std::fs::read_to_string(&path).unwrap().contains("after reopen"));
        log.stop();
    }

    #[test]
    fn targets_map_to_subsystems() {
        assert_eq!(
            subsys_for_target("osdkit::asok::server"),
            subsys::index_of("asok").unwrap()
        );
        assert_eq!(subsys_for_target("ms"), subsys::index_of("ms").unwrap());
        assert_eq!(subsys_for_target("other_crate"), 0);
    }
}
