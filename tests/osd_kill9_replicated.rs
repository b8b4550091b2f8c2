//! Replication at the process level: `osdkit vstart --osds 3 --store kv --size 2`, a write
//! load, and each OSD process in turn killed with SIGKILL. The monitor must mark it down from
//! the other OSDs' reports (a killed process sends no mark-me-down) within the grace and a
//! few seconds, writes must go on at the new primaries, and after the OSD's restart the
//! cluster must serve every acknowledged write with its last acknowledged content.

mod common;

use common::{osdkit_ok, wait_for, StopCluster};
use osdkit::client::Rados;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GRACE: u64 = 4;

fn pid_of(dir: &Path, name: &str) -> i32 {
    std::fs::read_to_string(dir.join(format!("run/{name}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn kill9_each_osd_of_a_replicated_cluster_in_turn_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap().to_string();
    osdkit_ok(&["vstart", "--dir", &d, "--osds", "3", "--store", "kv", "--size", "2"]);
    let _stop = StopCluster(d.clone());
    // Restart the cluster with a short grace (the monitor applies it too).
    osdkit_ok(&["stop", "--dir", &d]);
    let conf_path = dir.join("osdkit.conf");
    let conf = conf_path.to_str().unwrap().to_string();
    let mut text = std::fs::read_to_string(&conf_path).unwrap();
    text = text.replacen(
        "[global]\n",
        &format!("[global]\n\tosd_heartbeat_interval = 1\n\tosd_heartbeat_grace = {GRACE}\n\tmon_osd_down_out_interval = 0\n"),
        1,
    );
    std::fs::write(&conf_path, text).unwrap();
    osdkit_ok(&["mon", "-c", &conf, "-i", "a"]);
    for i in 0..3 {
        osdkit_ok(&["osd", "-c", &conf, "-i", &i.to_string()]);
    }
    let mon = std::fs::read_to_string(&conf_path)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("mon_host = ").map(str::to_string))
        .unwrap();
    let client = Arc::new(Rados::connect(&mon, "client.kill9r").unwrap());
    let up = |id: i32| client.objecter().osdmap().osd(id).is_some_and(|o| o.up);
    wait_for("three OSDs up", 30, || (0..3).all(up));

    let load = common::SeqWriters::start(&client, "t", 3, 25);
    let progress = || load.progress();
    wait_for("writes", 30, || load.acked.lock().len() >= 30);
    for victim in 0..3 {
        let name = format!("osd.{victim}");
        let pid = pid_of(&dir, &name);
        let t0 = Instant::now();
        // SAFETY: kill(2) on an OSD process this test started; no memory involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        wait_for("the killed OSD marked down", 60, || !up(victim));
        let took = t0.elapsed();
        eprintln!(
            "osd.{victim} (pid {pid}) SIGKILLed: marked down after {:.2} s (interval 1 s, grace {GRACE} s)",
            took.as_secs_f64()
        );
        assert!(took <= Duration::from_secs(GRACE + 12), "marked down after {took:?}");
        let before = progress();
        wait_for("writes with the OSD down", 30, || progress() > before + 60);
        osdkit_ok(&["osd", "-c", &conf, "-i", &victim.to_string()]);
        wait_for("the OSD up again", 30, || up(victim));
        let before = progress();
        wait_for("writes after its return", 30, || progress() > before + 60);
        wait_clean(&conf);
        // Every copy compared, the writers still going: `pg deep-scrub` exits EIO on any
        // inconsistency.
        let out: serde_json::Value =
            serde_json::from_str(&osdkit_ok(&["pg", "deep-scrub", "-c", &conf, "--json"])).unwrap();
        assert_eq!(
            (out["pgs"].as_u64(), out["errors"].as_u64()),
            (Some(32), Some(0)),
            "{out}"
        );
        eprintln!(
            "osd.{victim} back: clean; deep scrub of {} objects found no inconsistency",
            out["objects"]
        );
    }
    let acked = load.acked.lock().len();
    load.finish_and_check(&client);
    // The operator's commands: out moves PGs away, in brings them back, down is undone by
    // the running OSD booting again.
    osdkit_ok(&["osd", "out", "-c", &conf, "2"]);
    wait_for("osd.2 out of every acting set", 30, || {
        pg_dump(&conf)
            .iter()
            .all(|p| p["state"] == "active+clean" && !p["acting"].as_array().unwrap().contains(&serde_json::json!(2)))
    });
    osdkit_ok(&["osd", "in", "-c", &conf, "osd.2"]);
    wait_for("osd.2 back in some acting set", 30, || {
        pg_dump(&conf)
            .iter()
            .any(|p| p["acting"].as_array().unwrap().contains(&serde_json::json!(2)))
    });
    wait_clean(&conf);
    let said = osdkit_ok(&["osd", "down", "-c", &conf, "1"]);
    assert!(said.contains("marked down osd.1"), "{said}");
    wait_for("osd.1 up again by itself", 30, || up(1));
    wait_clean(&conf);
    let stat: serde_json::Value = serde_json::from_str(&osdkit_ok(&["pg", "stat", "-c", &conf, "--json"])).unwrap();
    assert_eq!(stat["num_objects"].as_u64(), Some(acked as u64), "{stat}");
    osdkit_ok(&["pg", "deep-scrub", "-c", &conf]);
    client.shutdown();
}

fn pg_dump(conf: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&osdkit_ok(&["pg", "dump", "-c", conf, "--json"])).unwrap();
    v["pg_stats"].as_array().unwrap().clone()
}

/// Until `osdkit pg stat` shows all 32 PGs active+clean.
fn wait_clean(conf: &str) {
    wait_for("32 PGs active+clean", 60, || {
        let stat: serde_json::Value = serde_json::from_str(&osdkit_ok(&["pg", "stat", "-c", conf, "--json"])).unwrap();
        stat["num_pg_by_state"] == serde_json::json!([{"name": "active+clean", "num": 32}])
    });
}
