//! The `kv` store at the process level: an `osdkit osd` process under a write load is killed
//! with SIGKILL, restarted, and every write it acknowledged reads back intact. Ten rounds on one
//! cluster; each round adds new objects and overwrites a few hot ones, so both "the object is
//! there" and "it has at least its last acknowledged content" are checked.

mod common;

use common::{osdkit_ok, wait_for, StopCluster};
use osdkit::client::Rados;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;
const WRITERS: usize = 4;

fn osd_pid(dir: &Path) -> i32 {
    std::fs::read_to_string(dir.join("run/osd.0.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// 4 KiB..12 KiB whose every byte depends on the object and the version written.
fn content(oid: &str, version: u64) -> Vec<u8> {
    let seed = oid.bytes().fold(version.wrapping_mul(0x9e37_79b9), |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let len = 4096 + (seed % 8192) as usize;
    let mut v = format!("{oid} v{version:020} ").into_bytes();
    let mut x = seed | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

fn version_of(data: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned();
    let v = s.split(" v").nth(1).unwrap().split(' ').next().unwrap();
    v.parse().unwrap()
}

#[test]
fn kill9_osd_under_writes_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap().to_string();
    osdkit_ok(&["vstart", "--dir", &d, "--osds", "1", "--store", "kv", "--size", "1"]);
    let _stop = StopCluster(d.clone());
    let conf = std::fs::read_to_string(dir.join("osdkit.conf")).unwrap();
    let mon = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("mon_host = "))
        .unwrap()
        .to_string();
    let client = Arc::new(Rados::connect(&mon, "client.kill9").unwrap());
    // Unique objects: acknowledged => exact content. Hot objects: the newest acknowledged
    // version is a floor (a later write may have committed without its ack getting out).
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let hot_floor: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut kills = 0;
    let mut total_acked_before_kill = 0usize;
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (client, acked, hot_floor, stop) = (client.clone(), acked.clone(), hot_floor.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let (oid, version) = if n % 4 == 3 {
                            (format!("hot{t}"), (round as u64) << 32 | n)
                        } else {
                            (format!("r{round}_t{t}_{n}"), 1)
                        };
                        if client.put("data", &oid, &content(&oid, version)).is_ok() {
                            if oid.starts_with("hot") {
                                let mut h = hot_floor.lock();
                                let f = h.entry(oid).or_insert(0);
                                *f = (*f).max(version);
                            } else {
                                acked.lock().push((oid, version));
                            }
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        // Let some writes be acknowledged, then kill in the middle of the load.
        let before = acked.lock().len();
        wait_for("40 acknowledged writes before the kill", 20, || {
            acked.lock().len() >= before + 40
        });
        std::thread::sleep(Duration::from_millis(20 + 13 * round as u64));
        let pid = osd_pid(&dir);
        // SAFETY: kill(2) on the OSD process this test started; no memory involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        kills += 1;
        total_acked_before_kill += acked.lock().len() - before;
        // Until the OSD is back, the writers' ops wait (they are resent on its new map).
        wait_for("osd.0 to die of SIGKILL", 10, || {
            !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
        });
        let t1 = Instant::now();
        osdkit_ok(&["osd", "-c", dir.join("osdkit.conf").to_str().unwrap(), "-i", "0"]);
        eprintln!("round {round}: restart took {:?}", t1.elapsed());
        assert_ne!(osd_pid(&dir), pid, "round {round}: the OSD was not restarted");
        stop.store(true, Ordering::Relaxed);
        let t2 = Instant::now();
        for w in writers {
            w.join().unwrap();
        }
        eprintln!("round {round}: writers joined in {:?}", t2.elapsed());
        // Everything acknowledged so far, in every round, reads back.
        for (oid, version) in acked.lock().iter() {
            let got = client
                .get("data", oid)
                .unwrap_or_else(|e| panic!("round {round}: acknowledged {oid} lost: {e}"));
            assert!(got[..] == content(oid, *version)[..], "round {round}: {oid} corrupt");
        }
        for (oid, floor) in hot_floor.lock().iter() {
            let got = client.get("data", oid).unwrap();
            let v = version_of(&got);
            assert!(v >= *floor, "round {round}: {oid} went back from v{floor} to v{v}");
            assert!(got[..] == content(oid, v)[..], "round {round}: {oid} v{v} corrupt");
        }
    }
    assert_eq!(kills, ROUNDS);
    assert!(total_acked_before_kill >= ROUNDS * 40);
    let listed = client.list("data").unwrap().len();
    assert!(listed >= acked.lock().len() + hot_floor.lock().len(), "{listed}");
    client.shutdown();
}
