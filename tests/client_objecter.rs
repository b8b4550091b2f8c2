//! The objecter against in-process OSDs over loopback: placement from the map, tids, reply
//! matching, waiting for a map that has an OSD for the PG, timeouts.

use bytes::Bytes;
use osdkit::client::objecter::Objecter;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::os::mem::MemStore;
use osdkit::osd::Osd;
use osdkit::types::osd_op::OsdOp;
use osdkit::types::osdmap::{OsdInfo, OsdMap, Pool};
use osdkit::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::ctx;

fn start_osd(id: i32) -> (Context, Osd) {
    let c = ctx(
        &format!("osd.{id}"),
        &[("osd_op_num_shards", "2"), ("osd_op_num_threads_per_shard", "1")],
    );
    let osd = Osd::start(&c, id, Arc::new(MemStore::new()), "127.0.0.1:0".parse().unwrap()).unwrap();
    (c, osd)
}

fn map_with(epoch: u32, osds: &[(i32, osdkit::msgr::addr::EntityAddr, bool)]) -> OsdMap {
    let mut m = OsdMap::new([3; 16]);
    m.epoch = epoch;
    m.pools.insert(1, Pool::new(1, "data", 1, 1, 16));
    m.pool_max = 1;
    for (id, addr, up) in osds {
        let mut info = OsdInfo {
            up: *up,
            in_: true,
            weight: 0x10000,
            ..Default::default()
        };
        info.addrs.public = *addr;
        m.osds.insert(*id, info);
        m.max_osd = m.max_osd.max(id + 1);
    }
    m
}

fn client(timeout: Duration) -> (Context, Messenger, Objecter) {
    let c = ctx("client.77", &[]);
    let m = Messenger::new(&c, "client.77", None).unwrap();
    m.set_default_policy(Policy::lossy_client());
    let o = Objecter::new(&m, "client.77", timeout).unwrap();
    m.start().unwrap();
    (c, m, o)
}

#[test]
fn objects_go_to_the_primary_the_map_computes() {
    let (_c0, osd0) = start_osd(0);
    let (_c1, osd1) = start_osd(1);
    let map = map_with(1, &[(0, osd0.addr(), true), (1, osd1.addr(), true)]);
    osd0.set_osdmap(map.clone());
    osd1.set_osdmap(map.clone());
    let (_cc, m, o) = client(Duration::from_secs(10));
    o.set_osdmap(map.clone());
    for i in 0..40 {
        let r = o
            .op(
                1,
                &format!("obj-{i}"),
                vec![OsdOp::writefull(Bytes::from(format!("v{i}")))],
            )
            .unwrap();
        assert_eq!(r.result, 0);
    }
    for i in 0..40 {
        let r = o.op(1, &format!("obj-{i}"), vec![OsdOp::read(0, 0)]).unwrap();
        assert_eq!(&r.ops[0].outdata[..], format!("v{i}").as_bytes());
    }
    // Listing asks each PG's primary: finding all 40 means each object went to its primary.
    let names = o.list(1).unwrap();
    assert_eq!(names.len(), 40);
    let primaries: Vec<i32> = names
        .iter()
        .map(|n| map.object_placement(1, n, "").unwrap().primary().unwrap())
        .collect();
    assert!(
        primaries.contains(&0) && primaries.contains(&1),
        "placement spreads objects: {primaries:?}"
    );
    let e = o.op(1, "nope", vec![OsdOp::stat()]).unwrap_err();
    assert_eq!(e.errno, libc::ENOENT);
    let e = o.op(42, "x", vec![OsdOp::stat()]).unwrap_err();
    assert_eq!(e.errno, libc::ENOENT, "missing pool");
    o.op(1, "obj-0", vec![OsdOp::delete()]).unwrap();
    assert_eq!(o.list(1).unwrap().len(), 39);
    o.shutdown();
    m.shutdown();
    osd0.shutdown().unwrap();
    osd1.shutdown().unwrap();
}

#[test]
fn an_op_waits_for_a_map_with_an_osd_for_its_pg() {
    let (_c0, osd0) = start_osd(0);
    let (_cc, m, o) = client(Duration::from_secs(10));
    o.set_osdmap(map_with(1, &[(0, osd0.addr(), false)]));
    osd0.set_osdmap(map_with(2, &[(0, osd0.addr(), true)]));
    let (tx, rx) = std::sync::mpsc::channel();
    o.submit(
        1,
        "waiting",
        "",
        vec![OsdOp::write(0, Bytes::from_static(b"x"))],
        Box::new(move |r| tx.send(r).unwrap()),
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "no OSD is up: the op waits"
    );
    assert_eq!(o.in_flight(), 1);
    o.set_osdmap(map_with(2, &[(0, osd0.addr(), true)]));
    let r = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(r.result, 0);
    assert_eq!(o.in_flight(), 0);
    o.shutdown();
    m.shutdown();
    osd0.shutdown().unwrap();
}

#[test]
fn ops_time_out_and_shutdown_fails_what_is_left() {
    // osd.0's address is a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead: osdkit::msgr::addr::EntityAddr = format!("v2:127.0.0.1:{port}/1").parse().unwrap();
    let (_cc, m, o) = client(Duration::from_millis(300));
    o.set_osdmap(map_with(1, &[(0, dead, true)]));
    let t0 = Instant::now();
    let e = o.op(1, "x", vec![OsdOp::stat()]).unwrap_err();
    assert_eq!(e.errno, libc::ETIMEDOUT);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "timed out after {:?}",
        t0.elapsed()
    );
    let (_cc2, m2, o2) = client(Duration::ZERO);
    o2.set_osdmap(map_with(1, &[(0, dead, false)]));
    let (tx, rx) = std::sync::mpsc::channel();
    o2.submit(1, "y", "", vec![OsdOp::stat()], Box::new(move |r| tx.send(r).unwrap()));
    o2.shutdown();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap_err().errno,
        libc::ESHUTDOWN
    );
    o.shutdown();
    m.shutdown();
    m2.shutdown();
}
