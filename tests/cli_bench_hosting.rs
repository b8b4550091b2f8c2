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
    assert_eq!(f.len(), 4, "both messenger modes at each count");
    let at = |n: u64, mode: &str| {
        f.iter()
            .find(|x| x["instances"] == n && x["messengers"] == mode)
            .unwrap_or_else(|| panic!("no {n}/{mode} row: {f:?}"))
    };
    let (own, shared) = (at(3, "own"), at(3, "shared"));
    // With messengers of its own, each instance has their threads and sockets; on a shared
    // set, three instances add no messenger threads or listening sockets beyond the set's.
    assert!(own["threads_per_instance"].as_f64().unwrap() >= 5.0, "{f:?}");
    assert!(own["sockets_per_instance"].as_f64().unwrap() >= 1.0, "{f:?}");
    let threads = |x: &serde_json::Value| x["threads_per_instance"].as_f64().unwrap();
    assert!(threads(shared) < threads(own), "{f:?}");
    let names = &shared["process_threads_by_name"];
    let workers = names["msgr-worker-"].as_u64().unwrap();
    // The monitor's messengers and the set's (3 + 1 + 1 workers) only.
    assert!(
        workers < own["process_threads_by_name"]["msgr-worker-"].as_u64().unwrap(),
        "{names}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["bench", "hosting", "--starts", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(libc::EINVAL));
}
