//! A context end to end: config through the admin socket reaching observers and the log,
//! `config diff`/`unset`, log dump/reopen, perf counters, and the `osdkit daemon` command.

use osdkit::asok::client::AdminSocketClient;
use osdkit::common::perf::PerfCountersBuilder;
use osdkit::common::subsys;
use osdkit::Context;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn started(dir: &Path, name: &str) -> Context {
    let ctx = Context::new(name, None).unwrap();
    ctx.set_option("run_dir", dir.to_str().unwrap()).unwrap();
    ctx.set_option("log_file", dir.join("$name.log").to_str().unwrap())
        .unwrap();
    ctx.start().unwrap();
    ctx
}

fn ask(c: &AdminSocketClient, v: Value) -> Value {
    let r = c.request(&v).unwrap();
    serde_json::from_str(&r).unwrap_or_else(|e| panic!("{v} -> {r}: {e}"))
}

#[test]
fn config_set_get_diff_unset_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.0");
    let c = AdminSocketClient::new(ctx.asok_path().unwrap());
    let ms = subsys::index_of("ms").unwrap();
    assert_eq!(
        ask(&c, json!({"prefix": "config get", "var": "debug_ms"})),
        json!({"debug_ms": "0/0"})
    );
    assert!(!ctx.log().should_gather(ms, 5));

    let set = ask(&c, json!({"prefix": "config set", "var": "debug_ms", "val": ["5"]}));
    // The log observes debug_*: no "(not observed...)" suffix.
    assert_eq!(set, json!({"success": "debug_ms = '5/5' "}));
    assert_eq!(
        ask(&c, json!({"prefix": "config get", "var": "debug_ms"})),
        json!({"debug_ms": "5/5"})
    );
    assert!(ctx.log().should_gather(ms, 5), "observer applied the new level");
    let diff = ask(&c, json!({"prefix": "config diff"}));
    assert_eq!(diff["diff"]["debug_ms"]["override"], "5/5");
    assert_eq!(diff["diff"]["debug_ms"]["final"], "5/5");
    assert_eq!(diff["diff"]["debug_ms"]["default"], "0/0");

    let unobserved = ask(
        &c,
        json!({"prefix": "config set", "var": "osd_op_num_shards", "val": ["4"]}),
    );
    assert!(unobserved["success"]
        .as_str()
        .unwrap()
        .contains("(not observed, change may require restart)"));

    assert_eq!(ask(&c, json!({"prefix": "config unset", "var": "debug_ms"})), json!({}));
    assert_eq!(
        ask(&c, json!({"prefix": "config get", "var": "debug_ms"})),
        json!({"debug_ms": "0/0"})
    );
    assert!(!ctx.log().should_gather(ms, 5));

    let err = c
        .request(&json!({"prefix": "config get", "var": "no_such_option"}))
        .unwrap();
    assert!(err.starts_with("ERROR: (2) No such file or directory\n"), "{err}");
    let err = c
        .request(&json!({"prefix": "config set", "var": "debug_ms", "val": ["x/y"]}))
        .unwrap();
    assert!(err.starts_with("ERROR: (22) Invalid argument\n"), "{err}");

    let show = ask(&c, json!({"prefix": "config show"}));
    assert_eq!(show["name"], "osd.0");
    assert_eq!(show["cluster"], "ceph");
    assert_eq!(show["admin_socket"], ctx.asok_path().unwrap().to_str().unwrap());
    let help = ask(&c, json!({"prefix": "config help", "var": "ms_async_op_threads"}));
    assert_eq!(help["default"], json!(3));
    ask(&c, json!({"prefix": "injectargs", "injected_args": ["--debug_osd 7"]}));
    assert_eq!(ctx.conf().get_str("debug_osd"), "7/7");
    ctx.shutdown();
}

#[test]
fn log_dump_and_reopen_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.1");
    let c = AdminSocketClient::new(ctx.asok_path().unwrap());
    let logf = dir.path().join("osd.1.log");
    // Gathered at level 5 for `osd` (default 1/5) but not written: only `log dump` shows it.
    let osd = subsys::index_of("osd").unwrap();
    ctx.log().submit(osd, 5, "only in memory".into());
    ctx.log().submit(osd, 1, "in the file".into());
    ask(&c, json!({"prefix": "log flush"}));
    let text = std::fs::read_to_string(&logf).unwrap();
    assert!(text.contains("in the file") && !text.contains("only in memory"));
    ask(&c, json!({"prefix": "log dump"}));
    let text = std::fs::read_to_string(&logf).unwrap();
    assert!(text.contains("--- begin dump of recent events ---") && text.contains("only in memory"));

    std::fs::rename(&logf, dir.path().join("osd.1.log.1")).unwrap();
    ask(&c, json!({"prefix": "log reopen"}));
    ctx.log().submit(osd, 0, "after rotation".into());
    ask(&c, json!({"prefix": "log flush"}));
    assert!(std::fs::read_to_string(&logf).unwrap().contains("after rotation"));

    // Changing log_file at run time moves the log.
    let other = dir.path().join("moved.log");
    ctx.set_option("log_file", other.to_str().unwrap()).unwrap();
    ctx.log().submit(osd, 0, "in the new file".into());
    ask(&c, json!({"prefix": "log flush"}));
    assert!(std::fs::read_to_string(&other).unwrap().contains("in the new file"));
    ctx.shutdown();
}

#[test]
fn perf_dump_schema_reset_and_the_runtime_counters() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.2");
    let c = AdminSocketClient::new(ctx.asok_path().unwrap());
    let mut b = PerfCountersBuilder::new("osd");
    let op_w = b.add_u64_counter("op_w", "client writes");
    let lat = b.add_time_avg("op_w_latency", "write latency");
    let pc = b.build();
    ctx.perf().add(&pc);
    pc.inc(op_w, 3);
    pc.tinc(lat, std::time::Duration::from_millis(2));
    let th = ctx.new_throttle("msgr_dispatch_throttler-client", 100);
    th.get(10, 0);
    let fin = ctx.new_finisher("test");
    fin.start().unwrap();
    fin.queue(|_| {}, 0);
    fin.wait_for_empty();

    let d = ask(&c, json!({"prefix": "perf dump"}));
    assert_eq!(d["osd"]["op_w"], 3);
    assert_eq!(d["osd"]["op_w_latency"]["avgcount"], 1);
    assert_eq!(d["osd"]["op_w_latency"]["sum"].as_f64().unwrap(), 0.002);
    assert_eq!(d["throttle-msgr_dispatch_throttler-client"]["val"], 10);
    assert_eq!(d["throttle-msgr_dispatch_throttler-client"]["max"], 100);
    assert_eq!(d["finisher-test"]["queue_len"], 0);
    assert_eq!(d["finisher-test"]["complete_latency"]["avgcount"], 1);
    let one = ask(&c, json!({"prefix": "perf dump", "logger": "osd", "counter": "op_w"}));
    assert_eq!(one, json!({"osd": {"op_w": 3}}));
    let s = ask(&c, json!({"prefix": "perf schema"}));
    assert_eq!(s["osd"]["op_w"]["type"], 10);
    assert_eq!(s["osd"]["op_w_latency"]["type"], 5);
    assert_eq!(
        ask(&c, json!({"prefix": "perf reset", "var": "osd"})),
        json!({"success": "perf reset osd"})
    );
    assert_eq!(pc.get(op_w), 0);
    assert_eq!(
        ask(&c, json!({"prefix": "perf reset", "var": "nope"})),
        json!({"error": "Not find: nope"})
    );

    // A finisher dropped by its owner leaves perf dump.
    fin.stop();
    drop(fin);
    assert!(ask(&c, json!({"prefix": "perf dump"})).get("finisher-test").is_none());
    ctx.shutdown();
}

#[test]
fn config_file_sections_and_metavariables() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ceph.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\n  run dir = {}\n  debug ms = 1/5\n[osd]\n  debug_osd = 10\n[osd.3]\n  debug osd = 20\n  log file = $run_dir/$cluster-$name.log\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let ctx = Context::new("osd.3", Some(&conf)).unwrap();
    assert_eq!(ctx.conf().get_str("debug_osd"), "20/20");
    assert_eq!(ctx.conf().get_str("debug_ms"), "1/5");
    let want = dir.path().join("ceph-osd.3.log");
    assert_eq!(ctx.conf().get_str("log_file"), want.to_str().unwrap());
    ctx.start().unwrap();
    assert_eq!(ctx.asok_path().unwrap(), dir.path().join("ceph-osd.3.asok"));
    ctx.shutdown();
    assert!(want.exists());
    let other = Context::new("osd.4", Some(&conf)).unwrap();
    assert_eq!(other.conf().get_str("debug_osd"), "10/10");
    assert_eq!(
        Context::new("osd.4", Some(&dir.path().join("missing.conf")))
            .unwrap_err()
            .errno,
        libc::ENOENT
    );
    // A library client gets no admin socket unless one is configured (Ceph's rule).
    let client = Context::new("client.admin", None).unwrap();
    client.start().unwrap();
    assert!(client.asok_path().is_none());
    client.shutdown();
}

#[test]
fn osdkit_daemon_command_matches_words_like_ceph() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.5");
    let path = ctx.asok_path().unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_osdkit"))
            .arg("daemon")
            .arg(&path)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["config", "set", "debug_ms", "3"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = run(&["config", "get", "debug_ms"]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"debug_ms": "3/3"}));
    let (code, out, _) = run(&["-f", "json", "perf", "dump"]);
    assert_eq!(code, Some(0));
    assert!(!out.contains("\n    "), "compact json asked for: {out}");
    // The exit status is the errno: of the words that match nothing, of the daemon's ERROR:
    // reply, of the socket that is gone.
    let (code, _, err) = run(&["no", "such", "command"]);
    assert_eq!(code, Some(libc::EINVAL));
    assert!(err.contains("matches no command"), "{err}");
    let (code, out, _) = run(&["config", "get", "nope"]);
    assert!(out.starts_with("ERROR: (2)"), "{out}");
    assert_eq!(code, Some(libc::ENOENT));
    ctx.shutdown();
    let (code, _, err) = run(&["version"]);
    assert_eq!(code, Some(libc::ENOENT));
    assert!(err.contains("is a daemon running"), "{err}");
}

#[test]
fn osdkit_demo_runs_and_reports() {
    let o = Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["demo", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ops"], 2000);
    assert_eq!(v["timer_ticks_fired"], 4);
    assert_eq!(v["echo_reply"], "hello");
    assert_eq!(v["debug_ms_after_config_set"], "5/5");
    assert!(v["admin_commands"].as_u64().unwrap() > 20);
    assert_eq!(
        v["msgr_stream_msgs"], 20000,
        "the messenger part ran (it fails unless all came back in order)"
    );
    assert_eq!(
        v["msgr_dump_connections"], 1,
        "messenger dump on the admin socket saw the session"
    );
    assert!(v["msgr_addr"].as_str().unwrap().starts_with("v2:127.0.0.1:"));
    assert!(v["msgr_pingpong_p50_us"].as_u64().unwrap() > 0);
    assert_eq!(
        v["cluster_osds_up"], 3,
        "the embedded cluster: a monitor and three OSDs"
    );
    assert_eq!(v["cluster_objects_verified"], 4000, "every object read back intact");
    assert_eq!(v["cluster_objects_listed"], 4000);
    assert!(v["cluster_write_iops"].as_u64().unwrap() > 0);
    assert_eq!(
        v["cluster_scrubbed_objects"], 4000,
        "a deep scrub of every PG after the recovery"
    );
    assert_eq!(v["cluster_inconsistent_objects"], 0);
}

#[test]
fn a_shut_down_context_cannot_be_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = started(dir.path(), "osd.6");
    ctx.shutdown();
    assert_eq!(ctx.start().unwrap_err().errno, libc::EINVAL);
}
