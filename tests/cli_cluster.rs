//! The `osdkit` command as a user runs it: `vstart` starts a monitor and OSD processes, the
//! object, pool and status commands work against them, `stop` leaves no process behind. Every
//! test stops its cluster even when it fails (a guard runs `osdkit stop`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn osdkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_osdkit"))
}

fn run(args: &[&str]) -> Output {
    let out = osdkit().args(args).stdin(Stdio::null()).output().unwrap();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and insists on exit 0; returns stdout.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.status.code(), Some(0), "osdkit {args:?} failed: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn ok_json(args: &[&str]) -> Value {
    let s = ok(args);
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("osdkit {args:?}: not one JSON object ({e}): {s}"))
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

/// Stops the cluster in `dir` when dropped, whatever happened.
struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(dir: &Path, extra: &[&str]) -> (Cluster, Value) {
        let d = dir.to_str().unwrap();
        let mut args = vec!["vstart", "--dir", d, "--json"];
        args.extend_from_slice(extra);
        let c = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("osdkit.conf").to_str().unwrap().to_string(),
        };
        let v = ok_json(&args);
        (c, v)
    }
    fn args<'a>(&'a self, cmd: &'a [&'a str]) -> Vec<&'a str> {
        let mut a = cmd.to_vec();
        a.extend_from_slice(&["-c", &self.conf]);
        a
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = osdkit()
            .args(["stop", "--dir", self.dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn status_pids(c: &Cluster) -> Vec<i32> {
    let st = ok_json(&c.args(&["status", "--json"]));
    st["osds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["pid"].as_i64().unwrap() as i32)
        .collect()
}

#[test]
fn vstart_objects_pools_status_and_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let (c, summary) = Cluster::start(&dir, &["--osds", "3"]);
    assert_eq!(summary["num_up_osds"], 3, "{summary}");
    assert_eq!(summary["pool"]["name"], "data", "{summary}");
    assert_eq!(summary["pool"]["pg_num"], 32, "{summary}");
    assert!(Path::new(&c.conf).exists());
    let conf_text = std::fs::read_to_string(&c.conf).unwrap();
    assert!(conf_text.contains("mon_host = v2:127.0.0.1:"), "{conf_text}");

    // status --json: three OSDs, each up and in, with a live pid and an address.
    let st = ok_json(&c.args(&["status", "--json"]));
    let osds = st["osds"].as_array().unwrap();
    assert_eq!(osds.len(), 3, "{st}");
    let mut pids = Vec::new();
    for (i, o) in osds.iter().enumerate() {
        assert_eq!(o["id"], i, "{st}");
        assert_eq!(o["up"], true, "{st}");
        assert_eq!(o["in"], true, "{st}");
        assert!(o["addr"].as_str().unwrap().starts_with("v2:127.0.0.1:"), "{st}");
        let pid = o["pid"].as_i64().unwrap_or_else(|| panic!("no pid for osd.{i}: {st}")) as i32;
        assert!(alive(pid), "osd.{i} pid {pid} is not a live process");
        pids.push(pid);
    }
    let mon_pid = summary["mon_pid"].as_i64().unwrap() as i32;
    assert!(alive(mon_pid));
    pids.push(mon_pid);
    let text = ok(&c.args(&["status"]));
    assert!(
        text.contains("3 osds: 3 up, 3 in") && text.contains("HEALTH_OK"),
        "{text}"
    );

    // Ceph's conventions: -f json-pretty (one object, indented), -f json the same as --json,
    // the config from OSDKIT_CONF when -c is not given, a daemon's admin socket by its name.
    let pretty = ok(&c.args(&["status", "-f", "json-pretty"]));
    assert!(pretty.contains("\n  \""), "not indented: {pretty}");
    let pv: Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(pv["osds"].as_array().map(Vec::len), Some(3), "{pv}");
    assert_eq!(ok_json(&c.args(&["status", "-f", "json"]))["osds"], pv["osds"]);
    let o = run(&c.args(&["status", "-f", "xml"]));
    assert_eq!(o.status.code(), Some(2), "bad usage: {}", stderr(&o));
    let o = osdkit()
        .args(["status", "--json"])
        .env("OSDKIT_CONF", &c.conf)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ev: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ev["osds"].as_array().map(Vec::len), Some(3), "{ev}");
    let o = osdkit()
        .args(["status"])
        .env("OSDKIT_CONF", "/nonexistent/osdkit.conf")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(libc::ENOENT), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&ok(&["daemon", "osd.1", "-c", &c.conf, "-f", "json", "version"])).unwrap();
    assert!(v["version"].is_string(), "{v}");
    let o = run(&["daemon", "osd.1", "-c", &c.conf, "no", "such", "command"]);
    assert_eq!(o.status.code(), Some(libc::EINVAL), "{}", stderr(&o));

    // put a file, get it back identical; through stdin and stdout too.
    let input = tmp.path().join("in.bin");
    let data: Vec<u8> = (0..(5u32 << 20) + 12345)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();
    ok(&c.args(&["put", "-p", "data", "big", input.to_str().unwrap()]));
    let output = tmp.path().join("out.bin");
    ok(&c.args(&["get", "-p", "data", "big", output.to_str().unwrap()]));
    assert!(std::fs::read(&output).unwrap() == data, "object read back differs");
    let mut put = osdkit()
        .args(c.args(&["put", "-p", "data", "small", "-"]))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    put.stdin.take().unwrap().write_all(b"hello osdkit\n").unwrap();
    assert!(put.wait().unwrap().success());
    assert_eq!(ok(&c.args(&["get", "-p", "data", "small", "-"])), "hello osdkit\n");

    // stat: size and mtime.
    let s = ok_json(&c.args(&["stat", "-p", "data", "big", "--json"]));
    assert_eq!(s["size"], data.len(), "{s}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - s["mtime_secs"].as_f64().unwrap()).abs() < 120.0, "{s}");
    let s = ok(&c.args(&["stat", "-p", "data", "small"]));
    assert!(
        s.starts_with("data/small mtime ") && s.trim_end().ends_with("size 13"),
        "{s}"
    );

    // ls: one name a line.
    assert_eq!(ok(&c.args(&["ls", "-p", "data"])), "big\nsmall\n");

    // rm, then the object is gone: a clear message naming it and the errno, which is the exit
    // status.
    ok(&c.args(&["rm", "-p", "data", "small"]));
    assert_eq!(ok(&c.args(&["ls", "-p", "data"])), "big\n");
    let o = run(&c.args(&["stat", "-p", "data", "small"]));
    assert_eq!(o.status.code(), Some(libc::ENOENT));
    let e = stderr(&o);
    assert!(e.contains("'small'") && e.contains("No such file or directory"), "{e}");
    let o = run(&c.args(&["get", "-p", "data", "small", output.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(libc::ENOENT));
    assert!(
        std::fs::read(&output).unwrap() == data,
        "a failed get must not touch the file"
    );
    let o = run(&c.args(&["ls", "-p", "nosuchpool"]));
    assert_eq!(o.status.code(), Some(libc::ENOENT));
    assert!(stderr(&o).contains("nosuchpool"), "{}", stderr(&o));

    // Pools: create, ls, rm, with errno text on failure.
    ok(&c.args(&["pool", "create", "p2", "--pg-num", "8", "--size", "2"]));
    let o = run(&c.args(&["pool", "create", "p2"]));
    assert_eq!(o.status.code(), Some(libc::EEXIST));
    assert!(stderr(&o).contains("File exists"), "{}", stderr(&o));
    let ls = ok_json(&c.args(&["pool", "ls", "--json"]));
    assert_eq!(ls["pools"], serde_json::json!(["data", "p2"]), "{ls}");
    // The new pool serves objects at once.
    ok(&c.args(&["put", "-p", "p2", "o", input.to_str().unwrap()]));
    assert_eq!(ok(&c.args(&["ls", "-p", "p2"])), "o\n");
    ok(&c.args(&["pool", "rm", "p2"]));
    assert_eq!(ok(&c.args(&["pool", "ls"])), "data\n");
    let o = run(&c.args(&["pool", "rm", "p2"]));
    assert_eq!(o.status.code(), Some(libc::ENOENT));
    assert!(stderr(&o).contains("No such file or directory"), "{}", stderr(&o));
    assert_eq!(status_pids(&c).len(), 3);

    // A second vstart in the same directory refuses while the cluster runs.
    let o = run(&["vstart", "--dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(libc::EEXIST));
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));

    // stop: every daemon gone, nothing the user needs removed.
    let stopped = ok_json(&["stop", "--dir", dir.to_str().unwrap(), "--json"]);
    assert_eq!(stopped["stopped"].as_array().unwrap().len(), 4, "{stopped}");
    for p in &pids {
        assert!(!alive(*p), "pid {p} still running after stop");
    }
    for f in ["osdkit.conf", "mon.a", "mon.a.log", "osd.0.log", "osd.2.log"] {
        assert!(dir.join(f).exists(), "stop removed {f}");
    }
    assert!(input.exists() && output.exists());
    assert!(!dir.join("run/osd.0.pid").exists(), "a clean stop removes the pid file");
    assert!(ok(&["stop", "--dir", dir.to_str().unwrap()]).contains("no daemons running"));
    // The client commands now fail with a reason, in bounded time: at worst after waiting
    // CONNECT_TIMEOUT for the monitor's first map (a refused connection fails at once). The
    // bound leaves room for a loaded machine; it is there to catch a wait that retries or
    // never gives up.
    let t0 = Instant::now();
    let o = run(&c.args(&["ls", "-p", "data"]));
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(libc::ETIMEDOUT));
    assert!(stderr(&o).contains("monitor"), "{}", stderr(&o));
    let bound = osdkit::client::rados::CONNECT_TIMEOUT * 3;
    assert!(took < bound, "ls without a monitor took {took:?} (bound {bound:?})");
}

#[test]
fn kv_cluster_keeps_objects_across_stop_and_vstart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kv");
    let (c, v) = Cluster::start(&dir, &["--osds", "2", "--store", "kv", "--size", "1"]);
    assert_eq!(v["num_up_osds"], 2, "{v}");
    let input = tmp.path().join("in");
    std::fs::write(&input, b"durable bytes").unwrap();
    ok(&c.args(&["put", "-p", "data", "keep", input.to_str().unwrap()]));
    ok(&["stop", "--dir", dir.to_str().unwrap()]);
    // The monitor's map and the OSDs' kv stores are still there: start again, read back.
    let (c, _) = Cluster::start(&dir, &["--osds", "2", "--store", "kv"]);
    assert_eq!(ok(&c.args(&["get", "-p", "data", "keep", "-"])), "durable bytes");
    assert_eq!(ok(&c.args(&["ls", "-p", "data"])), "keep\n");
    let pids = status_pids(&c);
    assert!(pids.iter().all(|p| alive(*p)));
    // An OSD that cannot take its SIGTERM (stopped) is killed after the grace period, with a
    // message; its stale pid file goes, nothing else.
    // SAFETY: SIGSTOP to a daemon of this test's cluster.
    assert_eq!(unsafe { libc::kill(pids[1], libc::SIGSTOP) }, 0);
    let o = run(&["stop", "--dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Progress goes to stderr.
    let said = stderr(&o);
    assert!(said.contains("osd.1") && said.contains("SIGKILL"), "{said}");
    assert!(pids.iter().all(|p| !alive(*p)));
    assert!(!dir.join("run/osd.1.pid").exists());
    assert!(dir.join("osd.1").is_dir(), "the killed OSD's store stays");
}

#[test]
fn daemons_report_bad_config_and_stop_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run_dir = d.join("run");
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text.replace("RUN", run_dir.to_str().unwrap())).unwrap();
        p.to_str().unwrap().to_string()
    };

    let o = run(&["osd", "-c", d.join("missing.conf").to_str().unwrap(), "-i", "0"]);
    assert_eq!(o.status.code(), Some(libc::ENOENT));
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));

    let no_mon = write("nomon.conf", "[global]\nrun_dir = RUN\nlog_file = \n");
    let o = run(&["osd", "-c", &no_mon, "-i", "0"]);
    assert_eq!(o.status.code(), Some(libc::EINVAL));
    assert!(stderr(&o).contains("mon_host is not set"), "{}", stderr(&o));
    assert!(!run_dir.join("osd.0.pid").exists(), "a failed start leaves no pid file");

    let bad_store = write(
        "store.conf",
        "[global]\nrun_dir = RUN\nmon_host = v2:127.0.0.1:1\n[osd]\nosd_objectstore = tape\n",
    );
    let o = run(&["osd", "-c", &bad_store, "-i", "0"]);
    assert_eq!(o.status.code(), Some(libc::EINVAL));
    assert!(stderr(&o).contains("osd_objectstore"), "{}", stderr(&o));

    let o = run(&["osd", "-c", &no_mon, "-i", "zero"]);
    assert_eq!(o.status.code(), Some(libc::EINVAL));
    assert!(stderr(&o).contains("'zero'"), "{}", stderr(&o));

    // A monitor in the foreground (-f) serves its admin socket and stops cleanly on SIGTERM.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mon_conf = write(
        "mon.conf",
        &format!(
            "[global]\nrun_dir = RUN\nmon_host = v2:127.0.0.1:{port}\nlog_file = {}/$name.log\n[mon]\nmon_data = {}/mon.$id\n",
            d.display(),
            d.display()
        ),
    );
    let mut child = osdkit()
        .args(["mon", "-c", &mon_conf, "-i", "x", "-f"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the child we spawned; no memory involved.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let guard = Kill(child.id() as i32);
    // In the foreground nobody waits for "ready": poll until the monitor's commands answer.
    let asok = run_dir.join("ceph-mon.x.asok");
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        let o = run(&["daemon", asok.to_str().unwrap(), "status"]);
        if o.status.success() {
            break String::from_utf8(o.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "the monitor never answered: {}", stderr(&o));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.contains("\"epoch\""), "{st}");
    assert!(run_dir.join("mon.x.pid").exists());
    // A second monitor with the same pid file fails and says why.
    let o = run(&["mon", "-c", &mon_conf, "-i", "x"]);
    assert_eq!(o.status.code(), Some(libc::EEXIST));
    assert!(stderr(&o).contains("locked by pid"), "{}", stderr(&o));
    // SAFETY: SIGTERM to the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the monitor did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard);
    assert_eq!(status.code(), Some(0));
    assert!(!asok.exists() && !run_dir.join("mon.x.pid").exists());
    assert!(d.join("mon.x").is_dir(), "the monitor's store stays");
}

#[test]
fn vstart_manager_hosts_every_osd_in_one_process_kept_by_supervisors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let (c, v) = Cluster::start(&dir, &["--osds", "3", "--size", "2", "--store", "kv", "--manager"]);
    assert_eq!(v["num_up_osds"], 3, "{v}");
    assert_eq!(v["manager"], true);
    let st = ok_json(&c.args(&["status", "--json"]));
    let osds = st["osds"].as_array().unwrap();
    let manager_pid = osds[0]["pid"].as_i64().unwrap();
    assert!(
        osds.iter()
            .all(|o| o["pid"] == manager_pid && o["host"] == "client.manager-a"),
        "{st}"
    );
    let plain = ok(&c.args(&["status"]));
    assert!(plain.contains("(in client.manager-a)"), "{plain}");
    let input = tmp.path().join("in");
    std::fs::write(&input, b"in a manager").unwrap();
    ok(&c.args(&["put", "-p", "data", "obj", input.to_str().unwrap()]));
    // One supervisor per OSD, each watching its instance.
    let sup = dir.join("run/ceph-client.supervise-1.asok");
    let s: Value = serde_json::from_str(&ok(&["daemon", sup.to_str().unwrap(), "-f", "json", "status"])).unwrap();
    assert_eq!(s["osd"], 1, "{s}");
    // stop takes down the manager, the supervisors and the monitor: no process left.
    let pids: Vec<i32> = ["client.manager-a", "client.supervise-0", "mon.a"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(dir.join(format!("run/{n}.pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    ok(&["stop", "--dir", dir.to_str().unwrap()]);
    assert!(pids.iter().all(|p| !alive(*p)));
    // Started again (kv): the data is there.
    let (c, _) = Cluster::start(&dir, &["--osds", "3", "--size", "2", "--store", "kv", "--manager"]);
    assert_eq!(ok(&c.args(&["get", "-p", "data", "obj", "-"])), "in a manager");
}

#[test]
fn an_osd_marked_down_too_often_ends_its_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("md");
    let (c, _) = Cluster::start(
        &dir,
        &[
            "--osds",
            "3",
            "-o",
            "osd_max_markdown_count=1",
            "-o",
            "osd_heartbeat_interval=1",
        ],
    );
    let pid = status_pids(&c)[1];
    let up = |id: usize| ok_json(&c.args(&["status", "--json"]))["osds"][id]["up"] == true;
    // Once is forgiven: it boots again.
    ok(&c.args(&["osd", "down", "1"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::sleep(Duration::from_millis(200));
    while !up(1) {
        assert!(Instant::now() < deadline, "osd.1 did not boot again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(alive(pid));
    // Twice within osd_max_markdown_period: it gives up and its process ends.
    ok(&c.args(&["osd", "down", "1"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(Instant::now() < deadline, "osd.1 (pid {pid}) still running");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("osd.1.log")).unwrap();
    assert!(log.contains("osd_max_markdown_count"), "{log}");
    assert!(!up(1) && up(0) && up(2));
}
