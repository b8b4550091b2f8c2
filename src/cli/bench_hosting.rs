//! `osdkit bench hosting`: what hosting daemons in one process costs. A monitor hosted in this
//! process; one OSD instance started and stopped STARTS times (start-to-active and stop times:
//! median, p90, min, max); then N instances at once for each N asked (threads, sockets and
//! resident memory per instance, from `/proc/self`), in both messenger modes: each instance
//! with messengers of its own, and all on one shared set (an OSD manager's default,
//! `osd_manager_shared_messengers`). Each instance has its admin socket and its log either way.

use crate::hosting::instance::{HostedDaemon, InstanceArgs, InstanceCallbacks};
use crate::osd::hosted_set::HostedSet;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct HostingBenchOpts {
    /// How many start/stop rounds of one instance.
    pub starts: usize,
    /// Instance counts to measure the footprint at.
    pub counts: Vec<usize>,
    /// `osd_objectstore` of the instances.
    pub store: String,
    pub json: bool,
}

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The id of the `osdkit osd` process the footprints are compared with.
const OSD_PROCESS_ID: usize = 999;

/// Threads, sockets and resident KiB of this process.
fn footprint() -> Result<(u64, u64, u64)> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|e| Error::io(e, "reading /proc/self/task"))?
        .count() as u64;
    let sockets = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::io(e, "reading /proc/self/fd"))?
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")))
        .count() as u64;
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| Error::io(e, "reading /proc/self/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Ok((threads, sockets, rss))
}

/// This process's threads by name, digits at the end dropped (`msgr-worker-3` counts as
/// `msgr-worker-`): what each instance's threads are.
fn threads_by_name() -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
            *m.entry(c.trim().trim_end_matches(|c: char| c.is_ascii_digit()).to_string())
                .or_insert(0) += 1;
        }
    }
    m
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn stats(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.total_cmp(b));
    json!({
        "median_ms": pct(&v, 0.5), "p90_ms": pct(&v, 0.9),
        "min_ms": v[0], "max_ms": v[v.len() - 1], "n": v.len(),
    })
}

fn osd(conf: &Path, id: usize, store: &str, msgrs: Option<&Arc<HostedSet>>) -> Result<HostedDaemon> {
    HostedDaemon::osd(
        InstanceArgs {
            options: vec![("osd_objectstore".into(), store.into())],
            hosted_set: msgrs.cloned(),
            ..InstanceArgs::new(id.to_string(), conf)
        },
        InstanceCallbacks::default(),
    )
}

/// The set an OSD manager would make: its own context's, on loopback.
fn shared_set(conf: &Path) -> Result<(crate::Context, Arc<HostedSet>)> {
    let ctx = crate::Context::new("client.bench-hosting", Some(conf))?;
    let set = HostedSet::start(
        &ctx,
        "osd.bench-hosting",
        "127.0.0.1:0".parse().expect("an address"),
        None,
    )?;
    Ok((ctx, Arc::new(set)))
}

fn write_conf(dir: &Path) -> Result<PathBuf> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::io(e, "picking a port"))?
        .port();
    let conf = dir.join("osdkit.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "[global]\nmon_host = v2:127.0.0.1:{port}\nrun_dir = {d}/run\nlog_file = {d}/$name.log\n\
             [mon]\nmon_data = {d}/$name\n[osd]\nosd_data = {d}/$name\n"
        ),
    )
    .map_err(|e| Error::io(e, format!("writing {}", conf.display())))?;
    Ok(conf)
}

/// Runs the benchmark in a scratch directory (removed at the end) and prints the results.
pub fn run(o: &HostingBenchOpts) -> Result<Value> {
    if o.starts == 0 || o.counts.is_empty() || o.counts.contains(&0) {
        return Err(Error::inval("--starts and every --instances count must be at least 1"));
    }
    let dir = std::env::temp_dir().join(format!("osdkit-bench-hosting-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(e, format!("creating {}", dir.display())))?;
    let r = run_in(o, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_in(o: &HostingBenchOpts, dir: &Path) -> Result<Value> {
    let conf = write_conf(dir)?;
    let mon = HostedDaemon::mon(InstanceArgs::new("a", &conf), InstanceCallbacks::default())?;
    mon.start()?;
    mon.wait_active(ACTIVE_TIMEOUT)?;
    // An OSD must exist in the map before it boots (`osd create`); osd.999 is the process
    // measured by `osd_process_threads`.
    let most = o.counts.iter().copied().max().unwrap_or(0).max(1);
    for id in (0..most).chain([OSD_PROCESS_ID]) {
        let (r, rs, _) = mon
            .with_mon(|m| m.command(&format!(r#"{{"prefix": "osd create", "id": {id}}}"#)))
            .ok_or_else(|| Error::new(libc::ENODEV, "the monitor stopped"))?;
        if r < 0 {
            return Err(Error::new(-r, format!("osd create {id}: {rs}")));
        }
    }

    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for i in 0..o.starts {
        let d = osd(&conf, 0, &o.store, None)?;
        let t0 = Instant::now();
        d.start()?;
        d.wait_active(ACTIVE_TIMEOUT)?;
        starts.push(t0.elapsed().as_secs_f64() * 1e3);
        let t1 = Instant::now();
        d.shutdown();
        d.join(Some(ACTIVE_TIMEOUT))?;
        stops.push(t1.elapsed().as_secs_f64() * 1e3);
        eprintln!("start {} of {}: {:.1} ms to active", i + 1, o.starts, starts[i]);
    }

    let mut per_count = Vec::new();
    for (&n, shared) in o.counts.iter().flat_map(|n| [(n, false), (n, true)]) {
        let before = footprint()?;
        let t0 = Instant::now();
        // The set's own threads and sockets count: they are what the instances run on.
        let set = if shared { Some(shared_set(&conf)?) } else { None };
        let msgrs = set.as_ref().map(|(_, s)| s);
        let all = (0..n)
            .map(|i| osd(&conf, i, &o.store, msgrs))
            .collect::<Result<Vec<_>>>()?;
        for d in &all {
            d.start()?;
        }
        for d in &all {
            d.wait_active(ACTIVE_TIMEOUT)?;
        }
        let all_active = t0.elapsed().as_secs_f64() * 1e3;
        let after = footprint()?;
        let names = threads_by_name();
        let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / n as f64;
        per_count.push(json!({
            "instances": n,
            "messengers": if shared { "shared" } else { "own" },
            "all_active_ms": all_active,
            "threads_per_instance": per(after.0, before.0),
            "sockets_per_instance": per(after.1, before.1),
            "rss_kib_per_instance": per(after.2, before.2),
            "process_threads": after.0,
            "process_threads_by_name": names,
        }));
        eprintln!(
            "{n} instances, {} messengers: active in {all_active:.0} ms",
            if shared { "shared" } else { "own" }
        );
        for d in &all {
            d.shutdown();
        }
        for d in &all {
            d.join(Some(ACTIVE_TIMEOUT))?;
        }
        if let Some((_, s)) = set {
            s.shutdown();
        }
    }
    let process = osd_process_threads(&conf, &o.store);
    mon.shutdown();
    mon.join(Some(ACTIVE_TIMEOUT))?;
    Ok(json!({
        "store": o.store,
        "start_to_active": stats(starts),
        "stop": stats(stops),
        "footprint": per_count,
        "osd_process_threads": process?,
    }))
}

/// The threads of one `osdkit osd` process (this executable) of the same conf, once it is up:
/// what hosting many OSDs in one process is to be compared with.
fn osd_process_threads(conf: &Path, store: &str) -> Result<u64> {
    let exe = std::env::current_exe().map_err(|e| Error::io(e, "finding this executable"))?;
    let id = OSD_PROCESS_ID.to_string();
    let mut text = std::fs::read_to_string(conf).map_err(|e| Error::io(e, format!("reading {}", conf.display())))?;
    text.push_str(&format!("[osd.{id}]\nosd_objectstore = {store}\n"));
    std::fs::write(conf, text).map_err(|e| Error::io(e, format!("writing {}", conf.display())))?;
    let mut child = std::process::Command::new(exe)
        .args(["osd", "-c", &conf.to_string_lossy(), "-i", &id, "-f"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::io(e, "starting an osdkit osd process"))?;
    let r = (|| {
        let rados = crate::client::Rados::connect_with_conf("client.admin", conf)?;
        let t0 = Instant::now();
        while !rados.osdmap().is_up(OSD_PROCESS_ID as i32) {
            if t0.elapsed() > ACTIVE_TIMEOUT {
                return Err(Error::new(libc::ETIMEDOUT, "the osdkit osd process did not come up"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        rados.shutdown();
        let n = std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .map_err(|e| Error::io(e, "reading the osd process's threads"))?
            .count() as u64;
        Ok(n)
    })();
    let _ = child.kill();
    let _ = child.wait();
    r
}

/// `osdkit bench hosting`: the exit code.
pub fn cli(o: &HostingBenchOpts) -> i32 {
    match run(o) {
        Ok(v) => {
            if o.json {
                println!("{v}");
            } else {
                let s = &v["start_to_active"];
                println!(
                    "start to active ({} starts, {} store): median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms",
                    s["n"],
                    o.store,
                    s["median_ms"].as_f64().unwrap_or(0.0),
                    s["p90_ms"].as_f64().unwrap_or(0.0),
                    s["min_ms"].as_f64().unwrap_or(0.0),
                    s["max_ms"].as_f64().unwrap_or(0.0)
                );
                let p = &v["stop"];
                println!(
                    "stop (mark-me-down included): median {:.1} ms",
                    p["median_ms"].as_f64().unwrap_or(0.0)
                );
                println!(
                    "| instances | messengers | all active | threads / instance | sockets / instance | RSS / instance | process threads |"
                );
                println!("|---|---|---|---|---|---|---|");
                for f in v["footprint"].as_array().into_iter().flatten() {
                    println!(
                        "| {} | {} | {:.0} ms | {:.1} | {:.1} | {:.0} KiB | {} |",
                        f["instances"],
                        f["messengers"].as_str().unwrap_or(""),
                        f["all_active_ms"].as_f64().unwrap_or(0.0),
                        f["threads_per_instance"].as_f64().unwrap_or(0.0),
                        f["sockets_per_instance"].as_f64().unwrap_or(0.0),
                        f["rss_kib_per_instance"].as_f64().unwrap_or(0.0),
                        f["process_threads"]
                    );
                }
                println!(
                    "one osdkit osd process: {} threads (process threads above include this bench's monitor)",
                    v["osd_process_threads"]
                );
            }
            0
        }
        Err(e) => {
            eprintln!("osdkit bench hosting: {e}");
            e.exit_code()
        }
    }
}
