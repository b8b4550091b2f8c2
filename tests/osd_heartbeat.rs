//! Failure detection end to end on in-process clusters (real messengers on loopback): OSD
//! heartbeats, failure reports, the monitor's grace and reporter rules, mark-me-down,
//! down → out after `mon_osd_down_out_interval`, and an OSD wrongly marked down booting again.

mod common;

use common::wait_for;
use osdkit::hosting::cluster::MiniCluster;
use std::time::{Duration, Instant};

const INTERVAL: &str = "1";
const GRACE: u64 = 4;

fn cluster(dir: &std::path::Path, osds: usize, extra: &[(&str, &str)]) -> MiniCluster {
    let grace = GRACE.to_string();
    let mut opts = vec![
        ("osd_heartbeat_interval", INTERVAL),
        ("osd_heartbeat_grace", grace.as_str()),
    ];
    opts.extend_from_slice(extra);
    MiniCluster::start_opts(dir, osds, "mem", 1, None, &opts).unwrap()
}

/// Every running OSD pings every other running one, and none is reported failed.
fn wait_heartbeats_settled(c: &MiniCluster, running: &[i32]) {
    wait_for("heartbeat peers to settle", 30, || {
        running.iter().all(|&i| {
            c.heartbeat_peers(i).is_ok_and(|p| {
                let mut ids: Vec<i32> = p.iter().filter(|(_, failed)| !failed).map(|(id, _)| *id).collect();
                ids.sort();
                ids == running.iter().copied().filter(|&j| j != i).collect::<Vec<_>>()
            })
        })
    });
}

#[test]
fn a_killed_osd_is_marked_down_after_the_grace_and_a_clean_stop_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, &[("mon_osd_down_out_interval", "0")]);
    wait_heartbeats_settled(&c, &[0, 1, 2]);
    // A crash: only the two peers' reports can bring osd.1 down.
    let t0 = Instant::now();
    c.kill_osd(1).unwrap();
    wait_for("osd.1 marked down", 60, || !c.osdmap().is_up(1));
    let took = t0.elapsed();
    eprintln!(
        "killed osd.1 marked down after {:.2} s (osd_heartbeat_interval {INTERVAL} s, osd_heartbeat_grace {GRACE} s, mon_osd_min_down_reporters 2)",
        took.as_secs_f64()
    );
    // Its last answered ping can be up to one round (0.5 s + 0.9 interval) old at the kill.
    assert!(
        took >= Duration::from_secs(GRACE) - Duration::from_millis(1500),
        "marked down before the grace: {took:?}"
    );
    assert!(
        took <= Duration::from_secs(GRACE + 12),
        "marked down too late: {took:?}"
    );
    let map = c.osdmap();
    assert!(map.is_up(0) && map.is_up(2), "only the killed OSD goes down");
    assert!(map.is_in(1), "down-out is off here: osd.1 stays in");
    // The survivors stop pinging it.
    wait_heartbeats_settled(&c, &[0, 2]);

    // A clean stop marks itself down: no grace to wait out.
    let t1 = Instant::now();
    c.stop_osd(2).unwrap();
    let took = t1.elapsed();
    assert!(!c.osdmap().is_up(2), "stop returns once the map shows it down");
    // It answers pings while it waits for the map that shows it down, so no peer reports it;
    // were mark-me-down not acted on, that wait would run out osd_mon_shutdown_timeout (5 s,
    // past the grace).
    assert!(
        took < Duration::from_secs(GRACE),
        "mark-me-down took {took:?}, not under the {GRACE} s grace"
    );
    eprintln!("cleanly stopped osd.2 marked down after {:.3} s", took.as_secs_f64());

    // Both come back; the heartbeats pick them up again.
    c.start_osd(1).unwrap();
    c.start_osd(2).unwrap();
    assert!((0..3).all(|i| c.osdmap().is_up(i)));
    wait_heartbeats_settled(&c, &[0, 1, 2]);
}

#[test]
fn fewer_reporters_than_mon_osd_min_down_reporters_do_not_mark_an_osd_down() {
    let dir = tempfile::tempdir().unwrap();
    // Two OSDs: one reporter, where two are needed (the default).
    let c = cluster(dir.path(), 2, &[]);
    wait_heartbeats_settled(&c, &[0, 1]);
    c.kill_osd(1).unwrap();
    wait_for("osd.0 to report osd.1", 30, || {
        c.heartbeat_peers(0).is_ok_and(|p| p == vec![(1, true)])
    });
    // Reported past the grace, still up: one reporter is not enough.
    std::thread::sleep(Duration::from_secs(3));
    assert!(c.osdmap().is_up(1), "one reporter marked osd.1 down");
    // An operator can still do it.
    let (r, rs, _) = c.mon_command(r#"{"prefix": "osd down", "ids": ["1"]}"#);
    assert_eq!(r, 0, "{rs}");
    assert!(!c.osdmap().is_up(1));
}

#[test]
fn a_down_osd_is_marked_out_after_the_interval_and_in_again_when_it_boots() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that stop_osd's teardown cannot outlast it before the is_in check below.
    const DOWN_OUT: u64 = 5;
    let interval = DOWN_OUT.to_string();
    let c = cluster(dir.path(), 3, &[("mon_osd_down_out_interval", interval.as_str())]);
    let t0 = Instant::now();
    c.stop_osd(0).unwrap();
    assert!(c.osdmap().is_in(0), "down, not out yet");
    wait_for("osd.0 marked out", 30, || !c.osdmap().is_in(0));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(DOWN_OUT),
        "out before mon_osd_down_out_interval ({DOWN_OUT} s): {took:?}"
    );
    // The monitor marked it out, so its return marks it in.
    c.start_osd(0).unwrap();
    let map = c.osdmap();
    assert!(map.is_up(0) && map.is_in(0), "a returning auto-out OSD is in again");
    // An operator's out sticks across a restart.
    let (r, rs, _) = c.mon_command(r#"{"prefix": "osd out", "ids": ["0"]}"#);
    assert_eq!(r, 0, "{rs}");
    c.stop_osd(0).unwrap();
    c.start_osd(0).unwrap();
    let map = c.osdmap();
    assert!(map.is_up(0) && !map.is_in(0), "the operator's out was undone");
}

#[test]
fn an_osd_wrongly_marked_down_boots_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 2, &[]);
    let before = c.osdmap().osd(0).unwrap().up_from;
    let (r, rs, _) = c.mon_command(r#"{"prefix": "osd down", "ids": ["0"]}"#);
    assert_eq!(r, 0, "{rs}");
    assert!(!c.osdmap().is_up(0));
    wait_for("osd.0 up again", 30, || c.osdmap().is_up(0));
    assert!(c.osdmap().osd(0).unwrap().up_from > before, "a new boot");
}
