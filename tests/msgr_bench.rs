//! `osdkit bench msgr`: the command really starts a server process, runs the load and counts
//! what came back. These check the plumbing and the counts, not the speed (benchmarks are for
//! that: benches/msgr.sh).

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["bench", "msgr", "--json", "--seconds", "1"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "osdkit bench msgr {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn assert_clean(v: &Value) {
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    for k in ["lost", "duplicated", "reordered"] {
        assert_eq!(v[k], 0, "{k} in {v}");
    }
    assert!(v["p50_us"].as_f64().unwrap() > 0.0 && v["p99_us"].as_f64().unwrap() >= v["p50_us"].as_f64().unwrap());
}

#[test]
fn pingpong_over_the_messenger_and_raw_tcp() {
    for transport in ["msgr", "tcp"] {
        let v = bench(&["--mode", "pingpong", "--size", "4K", "--transport", transport]);
        assert_clean(&v);
        assert_eq!(v["transport"], transport);
        assert_eq!(v["mode"], "pingpong");
        assert_eq!(v["size"], 4096);
        assert_eq!(v["bytes"].as_u64().unwrap(), v["messages"].as_u64().unwrap() * 4096);
    }
}

#[test]
fn stream_over_several_connections_with_injected_faults_loses_nothing() {
    let v = bench(&[
        "--mode",
        "stream",
        "--depth",
        "32",
        "--conns",
        "4",
        "--inject-socket-failures",
        "50",
    ]);
    assert_clean(&v);
    assert_eq!(v["conns"], 4);
    assert!(
        v["injected_failures"].as_u64().unwrap() > 0,
        "faults were injected: {v}"
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let o = Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["bench", "msgr", "--depth", "0", "--seconds", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(libc::EINVAL));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--depth"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["bench", "msgr", "--size", "lots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "clap refuses a bad size");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a size"));
}
