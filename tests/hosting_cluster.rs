//! A whole cluster in one process: a monitor, three OSDs that boot to it and follow its maps,
//! and a client whose objecter gets its maps from the monitor. Real sockets, real threads.

use bytes::Bytes;
use osdkit::client::objecter::Objecter;
use osdkit::mon::client::MonClient;
use osdkit::mon::Monitor;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::os::{kv::KvStore, mem::MemStore, ObjectStore};
use osdkit::osd::Osd;
use osdkit::types::osd_op::OsdOp;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::ctx;

const T: Duration = Duration::from_secs(10);

#[test]
fn three_osds_boot_a_pool_is_created_and_objects_land_on_their_primaries() {
    let dir = tempfile::tempdir().unwrap();
    let mc = ctx("mon.a", &[]);
    let mon = Monitor::start(&mc, &dir.path().join("mon"), "127.0.0.1:0".parse().unwrap()).unwrap();
    common::osd_create(&mon, 0..3);
    let mut osds = Vec::new();
    for id in 0..3 {
        let oc = ctx(
            &format!("osd.{id}"),
            &[("osd_op_num_shards", "2"), ("osd_op_num_threads_per_shard", "1")],
        );
        let store: Arc<dyn ObjectStore> = if id == 2 {
            Arc::new(KvStore::new(dir.path().join("osd2")))
        } else {
            Arc::new(MemStore::new())
        };
        let osd = Osd::start_with_mon(&oc, id, store, "127.0.0.1:0".parse().unwrap(), mon.addr()).unwrap();
        osds.push((oc, osd));
    }
    for (_, osd) in &osds {
        let m = osd.wait_for_up(T).unwrap();
        assert!(m.is_up(osd.whoami()));
    }

    let cc = ctx("client.admin", &[]);
    let cm = Messenger::new(&cc, "client.admin", None).unwrap();
    cm.set_default_policy(Policy::lossy_client());
    let objecter = Objecter::new(&cm, "client.admin", T).unwrap();
    let monc = MonClient::new(&cm, mon.addr()).unwrap();
    cm.start().unwrap();
    let o2 = objecter.clone();
    monc.set_map_callback(move |m| o2.set_osdmap(m.clone()));
    monc.subscribe_osdmap().unwrap();
    let (r, status, _) = monc
        .command(r#"{"prefix": "osd pool create", "pool": "data", "pg_num": 16, "size": 1}"#)
        .unwrap();
    assert_eq!(r, 0, "{status}");
    let map = monc
        .wait_for_map(T, |m| m.pool_by_name("data").is_some() && m.num_up() == 3)
        .unwrap();
    let pool = map.pool_by_name("data").unwrap().id;
    // Every OSD must have the pool before it serves it.
    for (_, osd) in &osds {
        let deadline = std::time::Instant::now() + T;
        while osd.osdmap().pool(pool).is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "osd.{} never saw the pool",
                osd.whoami()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let deadline = std::time::Instant::now() + T;
    while objecter.osdmap().pool(pool).is_none() {
        assert!(std::time::Instant::now() < deadline, "the objecter never got the pool");
        std::thread::sleep(Duration::from_millis(5));
    }

    for i in 0..60 {
        let r = objecter
            .op(
                pool,
                &format!("obj-{i}"),
                vec![OsdOp::writefull(Bytes::from(format!("value {i}")))],
            )
            .unwrap();
        assert_eq!(r.result, 0);
    }
    for i in 0..60 {
        let r = objecter.op(pool, &format!("obj-{i}"), vec![OsdOp::read(0, 0)]).unwrap();
        assert_eq!(&r.ops[0].outdata[..], format!("value {i}").as_bytes());
    }
    assert_eq!(objecter.list(pool).unwrap().len(), 60);
    let served: Vec<u64> = osds
        .iter()
        .map(|(c, _)| {
            let v = common::perf_dump(c);
            v["osd"]["op_w"].as_u64().unwrap_or(0)
        })
        .collect();
    // Each OSD served exactly the writes whose primary the map makes it.
    let map = objecter.osdmap();
    let mut expected = vec![0u64; 3];
    for i in 0..60 {
        let p = map
            .object_placement(pool, &format!("obj-{i}"), "")
            .unwrap()
            .primary()
            .unwrap();
        expected[p as usize] += 1;
    }
    assert_eq!(served, expected);
    assert!(
        served.iter().filter(|n| **n > 0).count() >= 2,
        "placement spread the writes: {served:?}"
    );

    let (r, _, out) = monc.command(r#"{"prefix": "osd dump", "format": "json"}"#).unwrap();
    assert_eq!(r, 0);
    let dump: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(dump["osds"].as_array().unwrap().len(), 3, "{dump}");

    objecter.shutdown();
    monc.shutdown();
    cm.shutdown();
    for (_, osd) in &osds {
        osd.shutdown().unwrap();
    }
    mon.shutdown();
}
