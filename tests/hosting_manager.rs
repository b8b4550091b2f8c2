//! `osdkit manager` as real processes: a monitor process, a manager process hosting four
//! `kv` OSDs started through its admin socket (also by the real `ceph --admin-daemon`); bad
//! requests answered with `ERROR:` while the others keep serving; `kill -9` of the manager and
//! a restart that restores every instance it was told to run, data intact; `osd stop` taking
//! one out of the restored set.

use osdkit::asok::client::AdminSocketClient;
use osdkit::client::Rados;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_osdkit");

mod common;
use common::free_port;

fn osdkit(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ask(asok: &Path, words: &str) -> osdkit::Result<String> {
    let w: Vec<String> = words.split(' ').map(String::from).collect();
    let r = AdminSocketClient::new(asok)
        .with_timeout(Duration::from_secs(60))
        .run_words(&w, Some("json"))?;
    // Ceph's error reply: "ERROR: (errno) text".
    if let Some(rest) = r.strip_prefix("ERROR: (") {
        let (n, text) = rest.split_once(')').unwrap();
        return Err(osdkit::Error::new(n.parse().unwrap(), text.trim().to_string()));
    }
    Ok(r)
}

fn pid(dir: &Path, name: &str) -> i32 {
    std::fs::read_to_string(dir.join(format!("run/{name}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_all_active(asok: &Path, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = ask(asok, "osd status") {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            let osds = v["osds"].as_array().unwrap();
            if osds.len() == n && osds.iter().all(|o| o["state"] == "active" && o["up"] == true) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{n} instances not active: {:?}",
            ask(asok, "osd status")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// DIR/osdkit.conf for a monitor, a manager and its OSDs under DIR: `global` lines added to
/// `[global]`, `osd` (with `{p}` for DIR) to `[osd]`; osd.7 cannot start (a bad public_addr).
fn write_conf(d: &Path, global: &str, osd: &str) -> PathBuf {
    let p = d.display().to_string();
    let conf = d.join("osdkit.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nmon_host = v2:127.0.0.1:{}\nrun_dir = {p}/run\nlog_file = {p}/$name.log\n\
             osd_manager_data = {p}/$name\n{global}[mon]\nmon_data = {p}/mon.$id\n[osd]\n{}\
             [osd.7]\npublic_addr = not-an-address\n",
            free_port(),
            osd.replace("{p}", &p),
        ),
    )
    .unwrap();
    conf
}

struct Killer(Vec<PathBuf>);
impl Drop for Killer {
    fn drop(&mut self) {
        for p in &self.0 {
            if let Ok(s) = std::fs::read_to_string(p) {
                if let Ok(pid) = s.trim().parse::<i32>() {
                    // SAFETY: kill(2) on a pid read from our own pid file.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

#[test]
fn manager_hosts_restores_and_refuses_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let conf = write_conf(d, "", "osd_objectstore = kv\nosd_data = {p}/$name\n");
    let c = conf.to_str().unwrap();
    let _k = Killer(vec![d.join("run/mon.a.pid"), d.join("run/client.manager-a.pid")]);
    assert!(osdkit(&["mon", "-c", c, "-i", "a"]).status.success());
    for id in ["0", "1", "2", "3", "7"] {
        assert!(osdkit(&["osd", "create", "-c", c, id]).status.success());
    }
    let out = osdkit(&["manager", "-c", c, "-i", "a"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let asok = d.join("run/ceph-client.manager-a.asok");

    for id in 0..3 {
        assert_eq!(
            ask(&asok, &format!("osd start {id}")).unwrap(),
            format!("osd.{id} started")
        );
    }
    // The real ceph CLI drives the manager's socket too.
    if which("ceph") || std::env::var("OSDKIT_REQUIRE_CEPH").as_deref() == Ok("1") {
        let o = Command::new("ceph")
            .args(["--admin-daemon", asok.to_str().unwrap(), "osd", "start", "3"])
            .output()
            .expect("the ceph CLI (OSDKIT_REQUIRE_CEPH=1)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        ask(&asok, "osd start 3").unwrap();
    }
    assert!(ask(&asok, "osd start 1").unwrap().contains("already running"));
    wait_all_active(&asok, 4);

    // Bad requests: ERROR with why; nothing else disturbed.
    let e = ask(&asok, "osd stop 9").unwrap_err();
    assert_eq!(e.errno, libc::ENOENT, "{e}");
    let e = ask(&asok, "osd start 7").unwrap_err();
    assert_eq!(e.errno, libc::EINVAL, "{e}");
    let s7: serde_json::Value = serde_json::from_str(&ask(&asok, "osd status 7").unwrap()).unwrap();
    assert_eq!(s7["state"], "failed");
    assert!(s7["last_error"].as_str().unwrap().contains("public_addr"), "{s7}");
    assert!(ask(&asok, "osd start x").is_err());
    // An id the monitor does not know (never `osd create`d) is refused, as Ceph's monitor
    // ignores its boot.
    let e = ask(&asok, "osd start 5").unwrap_err();
    assert_eq!(e.errno, libc::ENOENT, "{e}");
    assert!(e.msg.contains("osd.5 does not exist in the osdmap"), "{e}");

    let rados = Rados::connect_with_conf("client.admin", &conf).unwrap();
    // osd_manager_shared_messengers (the default): the four OSDs are identities on one set
    // of messengers: one IP and port in the map, a nonce each.
    let st: serde_json::Value = serde_json::from_str(&ask(&asok, "osd status").unwrap()).unwrap();
    let set = st["shared_messengers"].as_str().expect("shared messengers").to_string();
    let (_, dump) = rados
        .mon_command(&serde_json::json!({"prefix": "osd dump", "format": "json"}))
        .unwrap();
    let dump: serde_json::Value = serde_json::from_slice(&dump).unwrap();
    let addrs: Vec<String> = dump["osds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["up"] == 1)
        .map(|o| o["public_addr"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(addrs.len(), 4, "{dump}");
    let sock = |a: &str| a.rsplit_once('/').unwrap().0.to_string();
    assert!(addrs.iter().all(|a| sock(a) == sock(&set)), "{addrs:?} vs {set}");
    let nonces: std::collections::HashSet<&str> = addrs.iter().map(|a| a.rsplit_once('/').unwrap().1).collect();
    assert_eq!(nonces.len(), 4, "{addrs:?}");
    rados.pool_create("data", 16, 2).unwrap();
    let io = rados.ioctx("data").unwrap();
    for i in 0..40 {
        io.write_full(&format!("o{i}"), format!("value {i}").as_bytes())
            .unwrap();
    }

    // kill -9 of the manager; started again, it brings back the four it was told to run.
    // SAFETY: kill(2) on the manager's pid from its pid file.
    assert_eq!(unsafe { libc::kill(pid(d, "client.manager-a"), libc::SIGKILL) }, 0);
    std::thread::sleep(Duration::from_millis(200));
    let out = osdkit(&["manager", "-c", c, "-i", "a"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st = wait_all_active(&asok, 4);
    let ids: Vec<i64> = st["osds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 3], "osd.7 never started, so it is not restored");
    for i in 0..40 {
        assert_eq!(
            &io.read(&format!("o{i}"), 0, 0).unwrap()[..],
            format!("value {i}").as_bytes()
        );
    }

    // restart counts; stop takes an instance out of the set a restarted manager restores.
    ask(&asok, "osd restart 2").unwrap();
    let s2: serde_json::Value = serde_json::from_str(&ask(&asok, "osd status 2").unwrap()).unwrap();
    assert_eq!(s2["restarts"], 1);
    assert_eq!(ask(&asok, "osd stop 3").unwrap(), "osd.3 stopped");
    wait_all_active(&asok, 3);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid(d, "client.manager-a"), libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.join("run/client.manager-a.pid").exists() {
        assert!(Instant::now() < deadline, "the manager did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(osdkit(&["manager", "-c", c, "-i", "a"]).status.success());
    let st = wait_all_active(&asok, 3);
    assert_eq!(st["osds"].as_array().unwrap().len(), 3);
    let ls = ask(&asok, "osd ls").unwrap();
    assert_eq!(ls.replace(char::is_whitespace, ""), "[0,1,2]");
    rados.shutdown();
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).exists()))
        .unwrap_or(false)
}

fn status_of(asok: &Path) -> serde_json::Value {
    serde_json::from_str(&ask(asok, "status").unwrap()).unwrap()
}

fn wait_for(what: &str, secs: u64, f: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

#[test]
fn supervisors_restart_what_vanished_and_outlive_the_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // This manager gives each OSD messengers of its own (the other test covers the shared
    // set, the default).
    let conf = write_conf(
        d,
        "supervise_status_interval = 0.2\nsupervise_start_interval = 0.2\nsupervise_restart_burst = 3\n\
         osd_manager_shared_messengers = false\n",
        "osd_objectstore = mem\n",
    );
    let c = conf.to_str().unwrap();
    let run = |n: &str| d.join(format!("run/{n}"));
    let _k = Killer(vec![
        run("mon.a.pid"),
        run("client.manager-a.pid"),
        run("client.supervise-0.pid"),
        run("client.supervise-1.pid"),
        run("client.supervise-7.pid"),
    ]);
    assert!(osdkit(&["mon", "-c", c, "-i", "a"]).status.success());
    for id in ["0", "1", "7"] {
        assert!(osdkit(&["osd", "create", "-c", c, id]).status.success());
    }
    assert!(osdkit(&["manager", "-c", c, "-i", "a"]).status.success());
    let asok = run("ceph-client.manager-a.asok");
    for id in ["0", "1"] {
        let o = osdkit(&["supervise", "-c", c, "-i", id]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let st = wait_all_active(&asok, 2);
    assert!(st["shared_messengers"].is_null(), "{st}");
    // A supervisor whose OSD cannot start gives up after its tries; its parent says why.
    let o = osdkit(&["supervise", "-c", c, "-i", "7"]);
    assert_eq!(o.status.code(), Some(libc::EINVAL));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("public_addr"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s7: serde_json::Value = serde_json::from_str(&ask(&asok, "osd status 7").unwrap()).unwrap();
    assert_eq!(
        (s7["state"].as_str(), s7["restarts"].as_u64()),
        (Some("failed"), Some(2)),
        "three tries: {s7}"
    );
    ask(&asok, "osd stop 7").unwrap();

    // An instance that vanished from the manager is started again by its supervisor.
    let sup1 = run("ceph-client.supervise-1.asok");
    ask(&asok, "osd stop 1").unwrap();
    wait_for("osd.1 restarted", 30, || {
        let s = status_of(&sup1);
        s["restarts"] == 1 && s["state"] == "active"
    });
    assert!(status_of(&sup1)["last_restart_reason"]
        .as_str()
        .unwrap()
        .contains("does not host"));
    wait_all_active(&asok, 2);

    // The manager killed: the supervisors notice and say so, and keep asking.
    let sup0 = run("ceph-client.supervise-0.asok");
    // SAFETY: kill(2) on the manager's pid from its pid file.
    assert_eq!(unsafe { libc::kill(pid(d, "client.manager-a"), libc::SIGKILL) }, 0);
    let detect = wait_for("a supervisor to see the manager gone", 30, || {
        status_of(&sup0)["manager_reachable"] == false
    });
    eprintln!("supervisor noticed the dead manager after {detect:?} (status every 0.2 s)");
    let checks = status_of(&sup0)["checks"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let later = status_of(&sup0)["checks"].as_u64().unwrap();
    assert!(
        later > checks && later - checks <= 5,
        "retries at the interval, no busy loop: {checks} -> {later}"
    );
    // Started again, the manager restores both; the supervisors see them active again.
    assert!(osdkit(&["manager", "-c", c, "-i", "a"]).status.success());
    wait_all_active(&asok, 2);
    wait_for("both supervisors to see the manager back", 30, || {
        [&sup0, &sup1]
            .iter()
            .all(|s| status_of(s)["manager_reachable"] == true && status_of(s)["state"] == "active")
    });

    // SIGTERM stops a supervisor and leaves its OSD running.
    // SAFETY: kill(2) on the supervisor's pid from its pid file.
    assert_eq!(unsafe { libc::kill(pid(d, "client.supervise-0"), libc::SIGTERM) }, 0);
    wait_for("supervisor 0 to exit", 30, || !run("client.supervise-0.pid").exists());
    std::thread::sleep(Duration::from_millis(300));
    wait_all_active(&asok, 2);
}
