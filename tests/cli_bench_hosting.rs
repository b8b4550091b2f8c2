//! `osdkit bench hosting`: runs end to end (a monitor and OSD instances hosted in the bench's
//! own process) and reports start-to-active times and per-instance footprints that add up.

use std::process::Command;

#[test]
fn bench_hosting_reports_start_times_and_footprints() {
    let out = Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["bench", "hosting", "--starts", "3", "--instances", "1,3", "-f", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["start_to_active"];
    assert_eq!(s["n"], 3);
    let (min, med, max) = (
        s["min_ms"].as_f64().unwrap(),
        s["median_ms"].as_f64().unwrap(),
        s["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= med && med <= max, "{s}");
    let f = v["footprint"].as_array().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[1]["instances"], 3);
    // Each instance has its own messengers and queues: threads and sockets of its own.
    assert!(f[1]["threads_per_instance"].as_f64().unwrap() >= 5.0, "{f:?}");
    assert!(f[1]["sockets_per_instance"].as_f64().unwrap() >= 1.0, "{f:?}");
    let bad = Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["bench", "hosting", "--starts", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(libc::EINVAL));
}
