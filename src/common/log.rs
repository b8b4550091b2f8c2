//! The log: entries are queued to the `log` thread, which writes the file (or stderr) and keeps
//! a ring of recent entries. One `log` thread serves every `Log` of the process (each with its
//! own queue, file and ring): a process hosting many daemons has one, not one each. Per-subsystem levels follow Ceph's `debug_ms = 1/5` form: an entry at
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
    /// Written out, the queue is dropped; acked once done.
    Stop(Sender<()>),
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

    /// Has the process's `log` thread serve this log (started if need be; idempotent).
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let mut rx = self.rx.lock();
        let Some(r) = rx.take() else { return Ok(()) };
        let w = Writer::new(r, self.target.clone(), Arc::downgrade(self));
        if let Err(b) = writer::add(w) {
            let (e, w) = *b;
            *rx = Some(w.rx);
            return Err(e);
        }
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

    /// Writes out what is queued and stops serving this log.
    pub fn stop(&self) {
        if self.running.swap(false, Ordering::AcqRel) {
            let (tx, rx) = bounded(1);
            if self.tx.send(Cmd::Stop(tx)).is_ok() && !writer::on_writer() {
                let _ = rx.recv_timeout(Duration::from_secs(10));
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

/// What the `log` thread keeps for one `Log`: its queue, file, pending text and ring.
struct Writer {
    rx: Receiver<Cmd>,
    target: Arc<Mutex<LogTarget>>,
    log: Weak<Log>,
    recent: VecDeque<Entry>,
    sink: Sink,
    buf: String,
}

impl Writer {
    fn new(rx: Receiver<Cmd>, target: Arc<Mutex<LogTarget>>, log: Weak<Log>) -> Writer {
        let initial = target.lock().clone();
        let sink = Sink::open(&initial.file).unwrap_or_else(|e| {
            eprintln!("{e}");
            Sink {
                file: None,
                path: initial.file.clone(),
            }
        });
        Writer {
            rx,
            target,
            log,
            recent: VecDeque::new(),
            sink,
            buf: String::new(),
        }
    }

    fn write_out(&mut self, to_stderr: bool) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(f) = self.sink.file.as_mut() {
            let _ = f.write_all(self.buf.as_bytes());
        }
        if to_stderr {
            let _ = std::io::stderr().write_all(self.buf.as_bytes());
        }
        self.buf.clear();
    }

    /// Handles `cmd` and what is queued behind it (one write per burst, up to 64 KiB). False
    /// once the log stopped.
    fn handle(&mut self, cmd: Cmd) -> bool {
        let t = self.target.lock().clone();
        if t.file != self.sink.path {
            self.write_out(t.to_stderr);
            match Sink::open(&t.file) {
                Ok(s) => self.sink = s,
                Err(e) => eprintln!("{e}"),
            }
        }
        let mut next = Some(cmd);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Entry(e) => {
                    let (lvl, gather) = self.log.upgrade().map(|l| l.levels(e.subsys)).unwrap_or((0, 0));
                    if e.prio <= lvl {
                        self.buf.push_str(&format_entry(&e));
                        self.buf.push('\n');
                    }
                    if e.prio <= gather && t.max_recent > 0 {
                        if self.recent.len() >= t.max_recent {
                            self.recent.pop_front();
                        }
                        self.recent.push_back(e);
                    }
                }
                Cmd::Flush(ack) => {
                    self.write_out(t.to_stderr);
                    if let Some(f) = self.sink.file.as_mut() {
                        let _ = f.flush();
                    }
                    let _ = ack.send(());
                }
                Cmd::Reopen(ack) => {
                    self.write_out(t.to_stderr);
                    let r = Sink::open(&t.file).map(|s| self.sink = s);
                    let _ = ack.send(r);
                }
                Cmd::Dump(ack) => {
                    self.write_out(t.to_stderr);
                    self.buf.push_str("--- begin dump of recent events ---\n");
                    for e in &self.recent {
                        self.buf.push_str(&format_entry(e));
                        self.buf.push('\n');
                    }
                    self.buf.push_str("--- logging levels ---\n");
                    if let Some(l) = self.log.upgrade() {
                        for (i, (name, _, _)) in SUBSYSTEMS.iter().enumerate() {
                            let (a, b) = l.levels(i);
                            self.buf.push_str(&format!("  {a:>2}/{b:>2} {name}\n"));
                        }
                    }
                    self.buf.push_str(&format!("  max_recent {:>9}\n", t.max_recent));
                    self.buf.push_str(&format!("  log_file {}\n", t.file));
                    self.buf.push_str("--- end dump of recent events ---\n");
                    self.write_out(t.to_stderr);
                    let _ = ack.send(());
                }
                Cmd::Stop(ack) => {
                    self.write_out(t.to_stderr);
                    let _ = ack.send(());
                    return false;
                }
            }
            if self.buf.len() < 64 * 1024 {
                next = self.rx.try_recv().ok();
            }
        }
        self.write_out(t.to_stderr);
        true
    }
}

/// The process's `log` thread: it waits on every served log's queue at once (and on a channel
/// that brings new ones), started by the first log and ending after the last.
mod writer {
    use super::Writer;
    use crossbeam_channel::{unbounded, Receiver, Select, Sender};
    use parking_lot::Mutex;

    /// Where new logs are sent to the running thread.
    static ADD: Mutex<Option<Sender<Writer>>> = Mutex::new(None);

    /// On error the writer comes back, so that the log can be started again later.
    pub(super) fn add(w: Writer) -> Result<(), Box<(std::io::Error, Writer)>> {
        let mut add = ADD.lock();
        let w = match add.as_ref() {
            Some(tx) => match tx.send(w) {
                Ok(()) => return Ok(()),
                Err(e) => e.0,
            },
            None => w,
        };
        let (tx, rx) = unbounded();
        let spawned = std::thread::Builder::new().name("log".into()).spawn(move || run(rx));
        if let Err(e) = spawned {
            return Err(Box::new((e, w)));
        }
        tx.send(w).expect("the new thread holds the receiver");
        *add = Some(tx);
        Ok(())
    }

    thread_local! {
        static ON_WRITER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// True on the `log` thread itself (which must not wait for itself).
    pub(super) fn on_writer() -> bool {
        ON_WRITER.with(|f| f.get())
    }

    fn run(new: Receiver<Writer>) {
        ON_WRITER.with(|f| f.set(true));
        let mut ws: Vec<Writer> = Vec::new();
        loop {
            if ws.is_empty() {
                // Under the lock, so no log is added to a thread that is leaving.
                let mut add = ADD.lock();
                match new.try_recv() {
                    Ok(w) => ws.push(w),
                    Err(_) => {
                        *add = None;
                        return;
                    }
                }
            }
            let mut sel = Select::new();
            sel.recv(&new);
            for w in &ws {
                sel.recv(&w.rx);
            }
            let op = sel.select();
            let i = op.index();
            if i == 0 {
                if let Ok(w) = op.recv(&new) {
                    ws.push(w);
                }
                continue;
            }
            let keep = match op.recv(&ws[i - 1].rx) {
                Ok(cmd) => ws[i - 1].handle(cmd),
                // Every sender gone: the `Log` was dropped.
                Err(_) => false,
            };
            if !keep {
                let mut w = ws.swap_remove(i - 1);
                let to_stderr = w.target.lock().to_stderr;
                w.write_out(to_stderr);
            }
        }
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
