//! OSDs hosted on one `HostedSet` (an OSD manager's `osd_manager_shared_messengers`): three
//! OSDs on one set of messengers, one op pool and one heartbeat thread, beside an OSD process
//! of its own. Replicated I/O across all four; the set's OSDs ping the process and it pings
//! them; a `kill -9` of the process is found by the set's one heartbeat thread and the monitor
//! marks it down; an OSD of the set stopped leaves the others serving, and started again on
//! the same set comes back; an OSD of the set killed is reported by the OSDs beside it.

use osdkit::client::Rados;
use osdkit::hosting::instance::{HostedDaemon, InstanceArgs, InstanceCallbacks};
use osdkit::osd::hosted_set::HostedSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::free_port;

/// One host, as vstart: reporters count by OSD (by host, the default, the three OSDs of the set
/// would be one reporter, as in Ceph).
fn write_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("osdkit.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nmon_host = v2:127.0.0.1:{}\nrun_dir = {d}/run\nlog_file = {d}/$name.log\n\
             osd_heartbeat_interval = 1\nosd_heartbeat_grace = 4\n\
             [mon]\nmon_data = {d}/$name\nmon_osd_reporter_subtree_level = osd\n[osd]\nosd_objectstore = mem\n",
            free_port(),
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

fn osd(id: u32, conf: &Path, set: Option<&Arc<HostedSet>>) -> HostedDaemon {
    HostedDaemon::osd(
        InstanceArgs {
            hosted_set: set.cloned(),
            ..InstanceArgs::new(id.to_string(), conf)
        },
        InstanceCallbacks::default(),
    )
    .unwrap()
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .count()
}

fn wait_until(what: &str, secs: u64, f: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

#[test]
fn osds_on_one_hosted_set_replicate_ping_and_report_like_separate_ones() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path());
    let t = Duration::from_secs(30);
    let mon = HostedDaemon::mon(InstanceArgs::new("a", &conf), InstanceCallbacks::default()).unwrap();
    mon.start().unwrap();
    mon.wait_active(t).unwrap();
    common::hosted_osd_create(&mon, 0..4);

    let ctx = osdkit::Context::new("client.manager-t", Some(&conf)).unwrap();
    let set = Arc::new(HostedSet::start(&ctx, "osd.manager-t", "127.0.0.1:0".parse().unwrap(), None).unwrap());
    let mut hosted: Vec<HostedDaemon> = (0..3).map(|i| osd(i, &conf, Some(&set))).collect();
    for d in &hosted {
        d.start().unwrap();
    }
    // osd.3: a process of its own.
    let _p3 = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_osdkit"))
            .args(["osd", "-c", conf.to_str().unwrap(), "-i", "3", "-f"])
            .spawn()
            .unwrap(),
    );
    for d in &hosted {
        d.wait_active(t).unwrap();
    }
    assert_eq!(set.hosted().len(), 3);
    let rados = Rados::connect_with_conf("client.admin", &conf).unwrap();
    wait_until("osd.3 up", 30, || rados.osdmap().is_up(3));
    let set_addr = set.messengers().public.my_addrs()[0];
    let map = rados.osdmap();
    for i in 0..3 {
        let a = map.osd(i).unwrap().addrs.public;
        assert_eq!(a.addr, set_addr.addr, "osd.{i} at the set's socket");
    }
    assert_ne!(map.osd(3).unwrap().addrs.public.addr, set_addr.addr);

    rados.pool_create("data", 32, 2).unwrap();
    let io = rados.ioctx("data").unwrap();
    for i in 0..64 {
        io.write_full(&format!("o{i}"), format!("v{i}").as_bytes()).unwrap();
    }
    // Every OSD pings the three others, hosted or not.
    wait_until("hosted OSDs ping all three peers", 20, || {
        hosted
            .iter()
            .all(|d| d.with_osd(|o| o.heartbeat_peers().len() == 3).unwrap_or(false))
    });

    // With every PG clean, no OSD keeps an osd_recovery thread (they start when there is
    // work, as below).
    wait_until("no osd_recovery thread while all is clean", 30, || {
        threads_named("osd_recovery") == 0
    });

    // kill -9 of the process: the set's heartbeat thread notices for its three OSDs.
    drop(_p3);
    let took = wait_until("osd.3 marked down", 40, || !rados.osdmap().is_up(3));
    eprintln!("osd.3 marked down {took:?} after its kill");
    for i in 0..64 {
        assert_eq!(
            &io.read(&format!("o{i}"), 0, 0).unwrap()[..],
            format!("v{i}").as_bytes()
        );
    }

    // One OSD of the set stops; the others serve; it starts again on the same set.
    let h1 = hosted.remove(1);
    h1.shutdown();
    h1.join(Some(t)).unwrap();
    drop(h1);
    assert_eq!(set.hosted().len(), 2);
    wait_until("osd.1 down", 30, || !rados.osdmap().is_up(1));
    for i in 0..64 {
        assert_eq!(
            &io.read(&format!("o{i}"), 0, 0).unwrap()[..],
            format!("v{i}").as_bytes()
        );
    }
    let again = osd(1, &conf, Some(&set));
    again.start().unwrap();
    again.wait_active(t).unwrap();
    assert_eq!(set.hosted().len(), 3);
    io.write_full("after", b"restart").unwrap();
    assert_eq!(&io.read("after", 0, 0).unwrap()[..], b"restart");
    // The new osd.1 (an empty mem store) gets its PGs' objects back: recovery threads started
    // again on demand.
    wait_until("osd.1 recovered its share", 60, || {
        again
            .with_osd(|o| {
                o.pg_states()
                    .iter()
                    .map(|p| p["num_objects"].as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
            .unwrap_or(0)
            > 0
            && hosted
                .iter()
                .chain([&again])
                .all(|d| d.with_osd(|o| o.unclean_pgs().is_empty()).unwrap_or(false))
    });

    // An OSD of the set killed (no mark-me-down), no OSD outside the process left to notice:
    // the OSDs beside it on the set, which ask the set instead of pinging it, report it.
    let osd2 = &hosted[1];
    assert_eq!(osd2.with_osd(|o| o.whoami()), Some(2));
    osd2.kill();
    osd2.join(Some(t)).unwrap();
    let took = wait_until("osd.2 marked down", 40, || !rados.osdmap().is_up(2));
    eprintln!("osd.2 marked down {took:?} after its kill");
    io.write_full("after-kill", b"still writing").unwrap();

    rados.shutdown();
    for d in hosted.iter().chain([&again]) {
        d.shutdown();
        d.join(Some(t)).unwrap();
    }
    assert!(set.hosted().is_empty());
    set.shutdown();
}
