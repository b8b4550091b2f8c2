//! Daemons hosted one at a time in this process (`hosting::instance::HostedDaemon`): a monitor
//! and two OSDs made from one conf file, each with its own admin socket; callbacks, states,
//! one name per process, a failed start with its reason, stop and start again, I/O through a
//! client reading the same conf, and `signal_all`.

use osdkit::asok::client::AdminSocketClient;
use osdkit::client::Rados;
use osdkit::hosting::instance::{signal_all, HostedDaemon, InstanceArgs, InstanceCallbacks, InstanceState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::free_port;

fn write_conf(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let conf = dir.join("osdkit.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nmon_host = v2:127.0.0.1:{}\nrun_dir = {d}/run\nlog_file = {d}/log/$name.log\n\
             osd_heartbeat_interval = 1\n[mon]\nmon_data = {d}/$name\n[osd]\nosd_objectstore = mem\n\
             [osd.1]\nosd_op_num_shards = 2\n",
            free_port(),
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

fn args(id: &str, conf: &Path) -> InstanceArgs {
    InstanceArgs::new(id, conf)
}

fn counting(n: &Arc<AtomicUsize>) -> Option<osdkit::hosting::instance::InstanceCallback> {
    let n = n.clone();
    Some(Arc::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
    }))
}

#[test]
fn host_a_monitor_and_osds_from_one_conf() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path());
    let t = Duration::from_secs(30);

    let mon = HostedDaemon::mon(args("a", &conf), InstanceCallbacks::default()).unwrap();
    assert_eq!(mon.state().0, InstanceState::New);
    mon.start().unwrap();
    mon.wait_active(t).unwrap();
    assert_eq!(mon.start().unwrap_err().errno, libc::EEXIST);

    // As in Ceph, an OSD that is not in the map does not boot: its start says why.
    let ghost = HostedDaemon::osd(args("5", &conf), InstanceCallbacks::default()).unwrap();
    let e = ghost.start().unwrap_err();
    assert_eq!(e.errno, libc::ENOENT, "{e}");
    assert!(e.msg.contains("osd.5 does not exist in the osdmap"), "{e}");
    match ghost.state().0 {
        InstanceState::Failed(why) => assert!(why.contains("does not exist"), "{why}"),
        s => panic!("state {s:?}"),
    }
    common::hosted_osd_create(&mon, 0..2);

    let active = Arc::new(AtomicUsize::new(0));
    let on_own = Arc::new(AtomicUsize::new(0));
    let cbs = InstanceCallbacks {
        on_active: counting(&active),
        on_shutdown: counting(&on_own),
    };
    let osd0 = HostedDaemon::osd(args("0", &conf), cbs.clone()).unwrap();
    let osd1 = HostedDaemon::osd(args("1", &conf), cbs.clone()).unwrap();
    // One name once per cluster; another cluster name is another name.
    assert_eq!(
        HostedDaemon::osd(args("0", &conf), InstanceCallbacks::default())
            .err()
            .unwrap()
            .errno,
        libc::EEXIST
    );
    let other = HostedDaemon::osd(
        InstanceArgs {
            cluster: "other".into(),
            ..args("0", &conf)
        },
        InstanceCallbacks::default(),
    )
    .unwrap();
    drop(other);
    assert_eq!(
        HostedDaemon::osd(args("x", &conf), InstanceCallbacks::default())
            .err()
            .unwrap()
            .errno,
        libc::EINVAL
    );

    osd0.start().unwrap();
    osd1.start().unwrap();
    assert!(matches!(osd0.state().0, InstanceState::Booting | InstanceState::Active));
    osd0.wait_active(t).unwrap();
    osd1.wait_active(t).unwrap();
    assert_eq!(active.load(Ordering::SeqCst), 2);

    // Each has its own context: its conf section, its admin socket by Ceph's name.
    let ctx1 = osd1.context().unwrap();
    assert_eq!(ctx1.conf().get_str("osd_op_num_shards"), "2");
    assert_ne!(osd0.context().unwrap().conf().get_str("osd_op_num_shards"), "2");
    let asok = osd0.asok_path().unwrap();
    assert_eq!(asok, dir.path().join("run/ceph-osd.0.asok"));
    let status = AdminSocketClient::new(&asok)
        .request(&serde_json::json!({"prefix": "status"}))
        .unwrap();
    assert!(status.contains("\"whoami\""), "{status}");
    assert!(dir.path().join("log/osd.1.log").exists());

    // A client from the same conf file does I/O on the hosted OSDs.
    let rados = Rados::connect_with_conf("client.admin", &conf).unwrap();
    rados.pool_create("p", 8, 2).unwrap();
    let io = rados.ioctx("p").unwrap();
    io.write_full("obj", b"hosted").unwrap();
    assert_eq!(&io.read("obj", 0, 0).unwrap()[..], b"hosted");

    // Direct I/O on a hosted OSD, no network hop: on objects it is primary for, through its
    // op queue (so replicated, and seen by its op tracker); -ENXIO for the others.
    let mut mine = Vec::new();
    for i in 0..40 {
        let oid = format!("direct-{i}");
        match osd0.write("p", &oid, 0, oid.as_bytes()) {
            Ok(()) => mine.push(oid),
            Err(e) => assert_eq!(e.errno, libc::ENXIO, "{e}"),
        }
    }
    assert!(mine.len() >= 2 && mine.len() < 40, "{} of 40 on osd.0", mine.len());
    for oid in &mine {
        assert_eq!(
            &io.read(oid, 0, 0).unwrap()[..],
            oid.as_bytes(),
            "written directly, read over the network"
        );
        assert_eq!(&osd0.read("p", oid, 0, 0).unwrap()[..], oid.as_bytes());
    }
    osd0.truncate("p", &mine[0], 3).unwrap();
    assert_eq!(&io.read(&mine[0], 0, 0).unwrap()[..], &mine[0].as_bytes()[..3]);
    let gone = mine.last().unwrap();
    io.remove(gone).unwrap();
    assert_eq!(osd0.read("p", gone, 0, 0).unwrap_err().errno, libc::ENOENT);
    assert_eq!(osd0.read("nopool", &mine[0], 0, 0).unwrap_err().errno, libc::ENOENT);
    assert_eq!(mon.read("p", &mine[0], 0, 0).unwrap_err().errno, libc::EINVAL);
    let hist = AdminSocketClient::new(&asok)
        .request(&serde_json::json!({"prefix": "dump_historic_ops"}))
        .unwrap();
    assert!(hist.contains("osd0-local"), "local ops are tracked like any: {hist}");

    // A stop through shutdown is not "on its own"; a stopped OSD starts again.
    osd1.shutdown();
    assert_eq!(osd1.join(Some(t)).unwrap(), InstanceState::Stopped);
    assert!(osd1.context().is_none());
    assert_eq!(osd1.read("p", "obj", 0, 0).unwrap_err().errno, libc::ENODEV);
    osd1.start().unwrap();
    osd1.wait_active(t).unwrap();
    assert_eq!(active.load(Ordering::SeqCst), 3);
    assert_eq!(&io.read("obj", 0, 0).unwrap()[..], b"hosted");

    // A start that cannot work fails with the reason, and the name is free to retry.
    let bad = HostedDaemon::osd(
        InstanceArgs {
            options: vec![("public_addr".into(), "not-an-address".into())],
            ..args("2", &conf)
        },
        InstanceCallbacks::default(),
    )
    .unwrap();
    let e = bad.start().unwrap_err();
    assert_eq!(e.errno, libc::EINVAL, "{e}");
    match bad.state().0 {
        InstanceState::Failed(why) => assert!(why.contains("public_addr"), "{why}"),
        s => panic!("expected failed, got {s:?}"),
    }
    assert_eq!(bad.wait_active(t).unwrap_err().errno, libc::EIO);
    let mut unknown = args("3", &conf);
    unknown.options.push(("no_such_option".into(), "1".into()));
    let u = HostedDaemon::osd(unknown, InstanceCallbacks::default()).unwrap();
    assert!(u.start().is_err());

    // Marked down by an operator more often than osd_max_markdown_count allows, an OSD stops
    // on its own: on_shutdown runs and the state says why. Once is forgiven (it boots again).
    osd1.context()
        .unwrap()
        .set_option("osd_max_markdown_count", "1")
        .unwrap();
    let down = serde_json::json!({"prefix": "osd down", "ids": ["1"]});
    rados.mon_command(&down).unwrap();
    let up_again = |n: u32| rados.monc().wait_for_map(t, |m| m.epoch > n && m.is_up(1));
    let e0 = rados.osdmap().epoch;
    up_again(e0).unwrap();
    assert_eq!(osd1.state().0, InstanceState::Active);
    rados.mon_command(&down).unwrap();
    match osd1.join(Some(t)).unwrap() {
        InstanceState::Failed(why) => assert!(why.contains("osd_max_markdown_count"), "{why}"),
        s => panic!("expected failed, got {s:?}"),
    }
    assert_eq!(on_own.load(Ordering::SeqCst), 1);
    assert_eq!(&io.read("obj", 0, 0).unwrap()[..], b"hosted"); // osd.0 still serves

    // SIGTERM to all: each begins stopping (OSDs mark themselves down first).
    rados.shutdown();
    assert_eq!(signal_all(libc::SIGKILL).unwrap_err().errno, libc::EINVAL);
    assert_eq!(signal_all(libc::SIGHUP).unwrap(), 2);
    assert_eq!(signal_all(libc::SIGTERM).unwrap(), 2);
    for d in [&osd0, &mon] {
        assert_eq!(d.join(Some(t)).unwrap(), InstanceState::Stopped, "{}", d.name());
    }
    assert_eq!(on_own.load(Ordering::SeqCst), 1);
    assert!(!asok.exists(), "the admin socket goes with its instance");
    // Each daemon logs to its own file, also with several in one process.
    let log = |n: &str| std::fs::read_to_string(dir.path().join(format!("log/{n}.log"))).unwrap();
    let (log0, log1) = (log("osd.0"), log("osd.1"));
    assert!(
        log1.contains("osd.1: map e") && log1.contains("osd_max_markdown_count"),
        "{log1}"
    );
    assert!(!log0.contains("osd.1: map e"), "osd.1's lines in osd.0's log:\n{log0}");
    assert!(log0.contains("osd.0: marked down in"), "{log0}");
    assert!(!log1.contains("osd.0: marked down in"), "{log1}");
}
