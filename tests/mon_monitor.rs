//! The monitor over loopback: OSD boots seen by a subscriber, pool commands and their errnos,
//! persistence across a restart (and refusal of a corrupt store), incremental versus full-map
//! catch-up, malformed input, and the admin socket (in-process and through the real `ceph`).

use bytes::Bytes;
use osdkit::common::entity::EntityType;
use osdkit::mon::{MonClient, Monitor, MonitorConfig};
use osdkit::msgr::connection::ConnectionRef;
use osdkit::msgr::dispatcher::Dispatcher;
use osdkit::msgr::message::Message;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::types::messages::{FrontMessage, MMonSubscribe, MOsdBoot, MOsdMap, SubscribeItem, CEPH_MSG_OSD_MAP};
use osdkit::types::mon_messages::{MMonCommandAck, CEPH_MSG_MON_COMMAND, CEPH_MSG_MON_COMMAND_ACK};
use osdkit::types::osdmap::{fsid_to_string, OsdAddrs, OsdMap, CEPH_OSD_IN};
use osdkit::Context;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{ctx, wait_for};

const T: Duration = Duration::from_secs(5);

fn small_ctx(name: &str) -> Context {
    ctx(name, &[("ms_async_op_threads", "1")])
}

fn start_mon(dir: &Path) -> (Context, Monitor) {
    start_mon_with(dir, MonitorConfig::default())
}

fn start_mon_with(dir: &Path, conf: MonitorConfig) -> (Context, Monitor) {
    let c = small_ctx("mon.a");
    let m = Monitor::start_with(&c, dir, "127.0.0.1:0".parse().unwrap(), conf).unwrap();
    (c, m)
}

/// A daemon or client with its own messenger and a MonClient on it.
struct Node {
    _ctx: Context,
    msgr: Messenger,
    mc: MonClient,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.mc.shutdown();
        self.msgr.shutdown();
    }
}

fn node(name: &str, mon: &Monitor) -> Node {
    let c = small_ctx(name);
    let msgr = Messenger::new(&c, name, None).unwrap();
    msgr.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mc = MonClient::new(&msgr, mon.addr()).unwrap();
    msgr.start().unwrap();
    Node { _ctx: c, msgr, mc }
}

fn boot(n: &Node, id: i32, fsid: [u8; 16]) -> OsdAddrs {
    let a = n.msgr.my_addrs()[0];
    let addrs = OsdAddrs {
        public: a,
        cluster: a,
        hb_front: a,
        hb_back: a,
    };
    let b = MOsdBoot {
        fsid,
        osd: id,
        addrs,
        boot_epoch: n.mc.epoch(),
        features: 0,
        metadata: BTreeMap::from([("hostname".into(), "test".into())]),
    };
    n.mc.send_message(b.to_message()).unwrap();
    addrs
}

/// `osd create <id>`: an OSD must exist before it boots.
fn create(mon: &Monitor, id: i32) {
    let (r, rs, _) = mon.command(&format!(r#"{{"prefix":"osd create","id":{id}}}"#));
    assert_eq!(r, 0, "osd create {id}: {rs}");
}

fn cmd(mc: &MonClient, json: &str) -> (i32, String, Bytes) {
    mc.command_timeout(json, T).unwrap()
}

fn json_out(b: &Bytes) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

#[test]
fn osds_boot_and_a_subscriber_sees_them_up_with_their_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (_mc, mon) = start_mon(dir.path());
    assert_eq!(mon.messenger().nonce(), 0, "monitors use nonce 0");
    assert_eq!(mon.messenger().name().to_string(), "mon.a");
    let fsid = mon.fsid();

    let watcher = node("client.admin", &mon);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    watcher.mc.set_map_callback(move |m: &OsdMap| s.lock().push(m.epoch));
    watcher.mc.subscribe_osdmap().unwrap();
    let m = watcher.mc.wait_for_epoch(1, T).unwrap();
    assert_eq!(m.fsid, fsid);
    assert_eq!(watcher.mc.fsid(), Some(fsid));

    // As in Ceph, an OSD must be created before it boots: `osd create [id]` prints the id.
    let out = |r: (i32, String, Bytes)| (r.0, String::from_utf8_lossy(&r.2).to_string());
    assert_eq!(
        out(cmd(&watcher.mc, r#"{"prefix":"osd create","id":0}"#)),
        (0, "0".into())
    );
    // An id beyond max_osd grows it; creating an existing id again is no change.
    assert_eq!(
        out(cmd(&watcher.mc, r#"{"prefix":"osd create","id":"osd.5"}"#)),
        (0, "5".into())
    );
    let e_created = mon.epoch();
    assert_eq!(
        out(cmd(&watcher.mc, r#"{"prefix":"osd create","id":5}"#)),
        (0, "5".into())
    );
    assert_eq!(mon.epoch(), e_created);
    // Without an id: the lowest free one. `osd rm` of a down OSD forgets it.
    assert_eq!(out(cmd(&watcher.mc, r#"{"prefix":"osd create"}"#)), (0, "1".into()));
    assert!(mon.osdmap().exists(1));
    let (r, rs, _) = cmd(&watcher.mc, r#"{"prefix":"osd rm","ids":["1", "4"]}"#);
    assert_eq!((r, rs.as_str()), (0, "removed osd.1. osd.4 does not exist."));
    assert_eq!(cmd(&watcher.mc, r#"{"prefix":"osd create","id":-1}"#).0, -libc::EINVAL);
    let m = watcher.mc.wait_for_map(T, |m| m.exists(5) && !m.exists(1)).unwrap();
    assert_eq!(m.max_osd, 6);
    let o = m.osd(5).unwrap();
    assert!(!o.up && !o.in_, "a created OSD is down and out until it boots");
    let e0 = m.epoch;

    // A boot of an id that does not exist is ignored, and the booting OSD gets the map that
    // says so.
    let ghost = node("osd.3", &mon);
    boot(&ghost, 3, fsid);
    ghost.mc.wait_for_map(T, |m| m.epoch >= e0 && !m.exists(3)).unwrap();
    assert_eq!(mon.epoch(), e0, "no epoch for a boot of a missing OSD");

    let osd0 = node("osd.0", &mon);
    let a0 = boot(&osd0, 0, fsid);
    let osd1 = node("osd.1", &mon);
    // A zero fsid is accepted.
    let a5 = boot(&osd1, 5, [0; 16]);

    let m = watcher.mc.wait_for_map(T, |m| m.is_up(0) && m.is_up(5)).unwrap();
    assert_eq!(m.epoch, e0 + 2, "one epoch per boot");
    assert_eq!(m.max_osd, 6);
    for (id, a) in [(0, a0), (5, a5)] {
        let o = m.osd(id).unwrap();
        assert!(o.up && o.in_, "osd.{id} up and in");
        assert_eq!(o.weight, CEPH_OSD_IN);
        assert_eq!(o.addrs, a);
        assert!(o.up_from > e0);
    }
    assert!(!m.exists(3));
    // The booting OSDs, not subscribed, got the map in answer to their boot.
    osd0.mc.wait_for_map(T, |m| m.is_up(0)).unwrap();
    osd1.mc.wait_for_map(T, |m| m.is_up(5)).unwrap();

    // A repeated boot with the same addresses is no new epoch.
    boot(&osd0, 0, fsid);
    assert_eq!(cmd(&osd0.mc, r#"{"prefix":"status"}"#).0, 0);
    assert_eq!(mon.epoch(), e0 + 2);

    // Marked down by command, the OSD boots again: up, newer up_from, same in/weight.
    // An up OSD cannot be removed.
    let (r, rs, _) = cmd(&watcher.mc, r#"{"prefix":"osd rm","ids":[0]}"#);
    assert_eq!(
        (r, rs.as_str()),
        (-libc::EBUSY, "osd.0 is still up; must be down before removal.")
    );
    let (r, rs, _) = cmd(&watcher.mc, r#"{"prefix":"osd down","ids":["osd.0"]}"#);
    assert_eq!((r, rs.as_str()), (0, "marked down osd.0."));
    let m = watcher.mc.wait_for_map(T, |m| !m.is_up(0)).unwrap();
    assert_eq!(m.osd(0).unwrap().down_at, e0 + 3);
    let (r, rs, _) = cmd(&watcher.mc, r#"{"prefix":"osd down","ids":["0"]}"#);
    assert_eq!((r, rs.as_str()), (0, "osd.0 is already down."));
    boot(&osd0, 0, fsid);
    let m = watcher.mc.wait_for_map(T, |m| m.is_up(0)).unwrap();
    assert_eq!(m.osd(0).unwrap().up_from, e0 + 4);
    // out / in
    assert_eq!(cmd(&watcher.mc, r#"{"prefix":"osd out","ids":[5]}"#).0, 0);
    watcher.mc.wait_for_map(T, |m| !m.is_in(5)).unwrap();
    assert_eq!(cmd(&watcher.mc, r#"{"prefix":"osd in","ids":"osd.5"}"#).0, 0);
    let m = watcher.mc.wait_for_map(T, |m| m.is_in(5)).unwrap();
    assert_eq!(m, mon.osdmap(), "the subscriber's map is the monitor's");
    assert_eq!(
        cmd(&watcher.mc, r#"{"prefix":"osd out","ids":["osd.3"]}"#).0,
        -libc::ENOENT
    );

    // Every epoch arrived, in order (the first push may be a full map of a later epoch).
    let seen = seen.lock().clone();
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    assert_eq!(*seen.last().unwrap(), mon.epoch());
    assert!(mon.num_subscribers() >= 1);
}

#[test]
fn pool_create_ls_rm_round_trip_with_errnos() {
    let dir = tempfile::tempdir().unwrap();
    let (_mc, mon) = start_mon(dir.path());
    let c = node("client.admin", &mon);
    c.mc.subscribe_osdmap().unwrap();

    let e = mon.epoch();
    let (r, rs, out) = cmd(
        &c.mc,
        r#"{"prefix":"osd pool create","pool":"data","pg_num":16,"size":2}"#,
    );
    assert_eq!((r, rs.as_str()), (0, "pool 'data' created"));
    assert_eq!(json_out(&out)["pool_id"], 1);
    let (r, _, _) = cmd(&c.mc, r#"{"prefix":"osd pool create","pool":"rbd"}"#);
    assert_eq!(r, 0);
    let m = mon.osdmap();
    assert_eq!(m.epoch, e + 2);
    let data = m.pool_by_name("data").unwrap();
    assert_eq!((data.id, data.size, data.min_size, data.pg_num), (1, 2, 1, 16));
    let rbd = m.pool_by_name("rbd").unwrap();
    assert_eq!((rbd.id, rbd.size, rbd.min_size, rbd.pg_num), (2, 3, 2, 32), "defaults");
    c.mc.wait_for_map(T, |m| m.pools.len() == 2).unwrap();

    let (r, rs, _) = cmd(&c.mc, r#"{"prefix":"osd pool create","pool":"data","pg_num":8}"#);
    assert_eq!(r, -libc::EEXIST);
    assert!(rs.contains("already exists"), "{rs}");
    assert_eq!(mon.epoch(), e + 2, "a failed command makes no epoch");

    let (r, _, out) = cmd(&c.mc, r#"{"prefix":"osd pool ls","format":"json"}"#);
    assert_eq!(r, 0);
    assert_eq!(json_out(&out), serde_json::json!(["data", "rbd"]));
    let (_, _, out) = cmd(&c.mc, r#"{"prefix":"osd pool ls"}"#);
    assert_eq!(&out[..], b"data\nrbd\n");

    let (r, rs, _) = cmd(&c.mc, r#"{"prefix":"osd pool rm","pool":"nope"}"#);
    assert_eq!(r, -libc::ENOENT);
    assert!(rs.contains("does not exist"), "{rs}");
    let (r, _, _) = cmd(&c.mc, r#"{"prefix":"osd pool rm","pool":"data","pool2":"rbd"}"#);
    assert_eq!(r, -libc::EINVAL, "pool2 must repeat the name");
    let (r, rs, _) = cmd(
        &c.mc,
        r#"{"prefix":"osd pool rm","pool":"data","pool2":"data","yes_i_really_really_mean_it":true}"#,
    );
    assert_eq!((r, rs.as_str()), (0, "pool 'data' removed"));
    assert_eq!(cmd(&c.mc, r#"{"prefix":"osd pool rm","pool":"data"}"#).0, -libc::ENOENT);
    let (_, _, out) = cmd(&c.mc, r#"{"prefix":"osd pool ls","format":"json"}"#);
    assert_eq!(json_out(&out), serde_json::json!(["rbd"]));
    c.mc.wait_for_map(T, |m| m.pool_by_name("data").is_none()).unwrap();

    // A new pool gets a new id: ids are not reused.
    assert_eq!(
        cmd(&c.mc, r#"{"prefix":"osd pool create","pool":"data","pg_num":"8"}"#).0,
        0
    );
    assert_eq!(mon.osdmap().pool_by_name("data").unwrap().id, 3);

    for bad in [
        r#"{"prefix":"osd pool create"}"#,
        r#"{"prefix":"osd pool create","pool":""}"#,
        r#"{"prefix":"osd pool create","pool":"x","pg_num":0}"#,
        r#"{"prefix":"osd pool create","pool":"x","pg_num":"many"}"#,
        r#"{"prefix":"osd pool create","pool":"x","pg_num":-4}"#,
        r#"{"prefix":"osd pool create","pool":"x","size":2,"min_size":3}"#,
        r#"{"prefix":"osd pool create","pool":"x","size":0}"#,
        r#"{"prefix":"osd pool create","pool":"x","pg_num":99999999}"#,
        r#"{"prefix":"osd pool rm"}"#,
        r#"{"prefix":"osd down"}"#,
    ] {
        let (r, rs, _) = cmd(&c.mc, bad);
        assert_eq!(r, -libc::EINVAL, "{bad}: {rs}");
        assert!(!rs.is_empty(), "{bad}: a reason is given");
    }

    let (r, rs, out) = cmd(&c.mc, r#"{"prefix":"osd dump"}"#);
    assert_eq!(r, 0);
    let d = json_out(&out);
    assert_eq!(d["epoch"], mon.epoch());
    assert_eq!(rs, format!("dumped osdmap epoch {}", mon.epoch()));
    assert_eq!(d["fsid"], fsid_to_string(&mon.fsid()));
    let names: Vec<&str> = d["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pool_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rbd", "data"]);

    let (r, _, out) = cmd(&c.mc, r#"{"prefix":"status"}"#);
    assert_eq!(r, 0);
    let s = json_out(&out);
    assert_eq!(s["num_pools"], 2);
    assert_eq!(s["epoch"], mon.epoch());
}

#[test]
fn a_restarted_monitor_keeps_fsid_epochs_osds_and_pools() {
    let dir = tempfile::tempdir().unwrap();
    let (fsid, before) = {
        let (_c, mon) = start_mon(dir.path());
        create(&mon, 0);
        let osd = node("osd.0", &mon);
        boot(&osd, 0, mon.fsid());
        osd.mc.wait_for_map(T, |m| m.is_up(0)).unwrap();
        assert_eq!(
            cmd(&osd.mc, r#"{"prefix":"osd pool create","pool":"data","size":2}"#).0,
            0
        );
        assert_eq!(cmd(&osd.mc, r#"{"prefix":"osd pool create","pool":"rbd"}"#).0, 0);
        assert_eq!(cmd(&osd.mc, r#"{"prefix":"osd pool rm","pool":"data"}"#).0, 0);
        (mon.fsid(), mon.osdmap())
    };
    assert!(before.epoch >= 5);

    let (c2, mon) = start_mon(dir.path());
    assert_eq!(mon.fsid(), fsid);
    let after = mon.osdmap();
    assert!(after.epoch >= before.epoch);
    assert_eq!(after, before, "the whole map survives");
    assert_eq!(after.pool_by_name("rbd").unwrap().size, 3);
    assert!(after.is_up(0) && after.is_in(0));
    // It goes on from there; pool ids go on too.
    let n = node("client.admin", &mon);
    n.mc.subscribe_osdmap().unwrap();
    n.mc.wait_for_epoch(before.epoch, T).unwrap();
    assert_eq!(cmd(&n.mc, r#"{"prefix":"osd pool create","pool":"more"}"#).0, 0);
    let m = n.mc.wait_for_epoch(before.epoch + 1, T).unwrap();
    assert_eq!(m.pool_by_name("more").unwrap().id, 3);
    let v: Value =
        serde_json::from_slice(&c2.admin_socket().execute(br#"{"prefix":"status","format":"json"}"#)).unwrap();
    assert_eq!(v["fsid"], fsid_to_string(&fsid));
    drop(n);
    drop(mon);

    // A damaged store is refused with a clear error, and so is a truncated one.
    let path = dir.path().join("osdmap.state");
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0xff;
    for damaged in [bad, good[..good.len() - 7].to_vec()] {
        std::fs::write(&path, &damaged).unwrap();
        let c = small_ctx("mon.a");
        let e = Monitor::start(&c, dir.path(), "127.0.0.1:0".parse().unwrap())
            .err()
            .expect("a corrupt store must not start");
        assert_eq!(e.errno, libc::EIO);
        assert!(e.msg.contains("corrupt") && e.msg.contains("osdmap.state"), "{}", e.msg);
    }
    // Restored, it starts again.
    std::fs::write(&path, &good).unwrap();
    let (_c3, mon) = start_mon(dir.path());
    assert_eq!(mon.fsid(), fsid);
}

/// Records what the monitor sends a bare messenger.
#[derive(Default)]
struct Capture {
    maps: Mutex<Vec<MOsdMap>>,
    acks: Mutex<Vec<MMonCommandAck>>,
}

impl Dispatcher for Capture {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        match m.ty {
            CEPH_MSG_OSD_MAP => self.maps.lock().push(MOsdMap::from_message(&m).unwrap()),
            CEPH_MSG_MON_COMMAND_ACK => self.acks.lock().push(MMonCommandAck::from_message(&m).unwrap()),
            _ => {}
        }
        None
    }
    fn ms_handle_reset(&self, _c: &ConnectionRef) -> bool {
        false
    }
}

fn subscribe(conn: &ConnectionRef, start: u64) {
    let mut s = MMonSubscribe::default();
    s.what.insert("osdmap".into(), SubscribeItem { start, flags: 0 });
    conn.send_message(s.to_message()).unwrap();
}

#[test]
fn subscribers_behind_get_incrementals_while_held_else_a_full_map() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, mon) = start_mon_with(
        dir.path(),
        MonitorConfig {
            keep_incrementals: 3,
            ..Default::default()
        },
    );
    for i in 0..5 {
        let (r, _, _) = mon.command(&format!(r#"{{"prefix":"osd pool create","pool":"p{i}","pg_num":8}}"#));
        assert_eq!(r, 0);
    }
    assert_eq!(mon.epoch(), 6);
    assert_eq!(mon.incremental_range(), Some((4, 6)));
    let at = |e: u32| -> OsdMap {
        // The map as of epoch e: the monitor's map without the pools created after it.
        let mut m = mon.osdmap();
        m.epoch = e;
        m.pools.retain(|id, _| *id < i64::from(e));
        m.pool_max = i64::from(e) - 1;
        m
    };

    let cc = small_ctx("client.raw");
    let msgr = Messenger::new(&cc, "client.raw", None).unwrap();
    msgr.set_policy(EntityType::Mon, Policy::lossy_client());
    let cap = Arc::new(Capture::default());
    msgr.add_dispatcher_tail(cap.clone());
    msgr.start().unwrap();
    let conn = msgr.connect_to(EntityType::Mon, &mon.addr()).unwrap();

    // Holding epoch 4, wanting 5..: incrementals 5 and 6 only.
    subscribe(&conn, 5);
    wait_for("first map", 5, || cap.maps.lock().len() == 1);
    let u = cap.maps.lock()[0].clone();
    assert!(u.maps.is_empty(), "no full map when the incrementals are held");
    assert_eq!(u.incrementals.keys().copied().collect::<Vec<_>>(), [5, 6]);
    assert_eq!((u.oldest, u.newest), (4, 6));
    let mut m = at(4);
    assert!(u.advance(&mut m).unwrap());
    assert_eq!(m, mon.osdmap());

    // Holding epoch 1, wanting 2..: the incrementals are gone, a full map of epoch 6.
    subscribe(&conn, 2);
    wait_for("second map", 5, || cap.maps.lock().len() == 2);
    let u = cap.maps.lock()[1].clone();
    assert!(u.incrementals.is_empty());
    assert_eq!(u.maps.keys().copied().collect::<Vec<_>>(), [6]);
    assert_eq!(u.maps[&6], mon.osdmap());
    // Nothing at all (start 0): a full map too.
    subscribe(&conn, 0);
    wait_for("third map", 5, || cap.maps.lock().len() == 3);
    assert_eq!(cap.maps.lock()[2].maps.keys().copied().collect::<Vec<_>>(), [6]);

    // The subscription stays: the next epoch is pushed as one incremental.
    assert_eq!(mon.command(r#"{"prefix":"osd pool create","pool":"last"}"#).0, 0);
    wait_for("pushed epoch", 5, || cap.maps.lock().len() == 4);
    let u = cap.maps.lock()[3].clone();
    assert!(u.maps.is_empty());
    assert_eq!(u.incrementals.keys().copied().collect::<Vec<_>>(), [7]);
    let mut m = at(6);
    u.advance(&mut m).unwrap();
    assert_eq!(m, mon.osdmap());
    // Already current: nothing is sent until the next epoch.
    subscribe(&conn, 8);
    assert_eq!(mon.command(r#"{"prefix":"osd out","ids":[0]}"#).0, -libc::ENOENT);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(cap.maps.lock().len(), 4);
    msgr.shutdown();
    wait_for("subscriber dropped on reset", 5, || mon.num_subscribers() == 0);
}

#[test]
fn malformed_commands_get_error_replies_and_the_monitor_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, mon) = start_mon(dir.path());
    let n = node("client.admin", &mon);
    let cap = Arc::new(Capture::default());
    n.msgr.add_dispatcher_tail(cap.clone());

    for (bad, why) in [
        ("not json at all", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1,2,3]", "JSON object"),
        (r#"{"pool":"data"}"#, "prefix"),
        (r#"{"prefix":17}"#, "prefix"),
        (r#"{"prefix":"osd pool frobnicate"}"#, "unknown command prefix"),
        (r#"{"prefix":"osd pool create","pool":5}"#, "must be a string"),
        (r#"{"prefix":"osd in","ids":[{"a":1}]}"#, "invalid OSD id"),
    ] {
        let (r, rs, out) = cmd(&n.mc, bad);
        assert_eq!(r, -libc::EINVAL, "{bad}");
        assert!(rs.contains(why), "{bad}: {rs}");
        assert!(out.is_empty());
    }
    // A body that is not an MMonCommand at all: answered under the header tid.
    n.mc.send_message(Message::new(CEPH_MSG_MON_COMMAND, Bytes::from_static(b"\x01\x01\xff\xff")).with_tid(4242))
        .unwrap();
    wait_for("ack to garbage", 5, || !cap.acks.lock().is_empty());
    let ack = cap.acks.lock()[0].clone();
    assert_eq!((ack.tid, ack.r), (4242, -libc::EINVAL));
    assert!(ack.rs.contains("malformed MMonCommand"), "{}", ack.rs);
    // Garbage boots and subscriptions are dropped.
    n.mc.send_message(Message::new(71, Bytes::from_static(b"junk")))
        .unwrap();
    n.mc.send_message(Message::new(15, Bytes::from_static(b"\x09\x09\x00\x00\x00\x00")))
        .unwrap();
    n.mc.send_message(Message::new(9999, Bytes::from_static(b"?"))).unwrap();

    // Still serving, on the same session and on a new one.
    let (r, _, out) = cmd(&n.mc, r#"{"prefix":"status"}"#);
    assert_eq!(r, 0);
    assert_eq!(json_out(&out)["num_osds"], 0);
    assert_eq!(mon.epoch(), 1, "nothing changed");
    let n2 = node("client.other", &mon);
    assert_eq!(cmd(&n2.mc, r#"{"prefix":"osd pool create","pool":"ok"}"#).0, 0);
    n2.mc.subscribe_osdmap().unwrap();
    n2.mc.wait_for_epoch(2, T).unwrap();
}

#[test]
fn admin_socket_status_and_dump_osdmap() {
    let dir = tempfile::tempdir().unwrap();
    let (mctx, mon) = start_mon(dir.path());
    create(&mon, 0);
    let osd = node("osd.0", &mon);
    boot(&osd, 0, mon.fsid());
    osd.mc.wait_for_map(T, |m| m.is_up(0)).unwrap();
    assert_eq!(
        mon.command(r#"{"prefix":"osd pool create","pool":"rbd","size":1}"#).0,
        0
    );
    assert_eq!(mon.command(r#"{"prefix":"osd out","ids":["0"]}"#).0, 0);

    let asok = mctx.admin_socket();
    let s: Value = serde_json::from_slice(&asok.execute(br#"{"prefix":"status","format":"json"}"#)).unwrap();
    assert_eq!(s["fsid"], fsid_to_string(&mon.fsid()));
    assert_eq!(s["epoch"], mon.epoch());
    assert_eq!(
        (
            s["num_osds"].as_u64(),
            s["num_up_osds"].as_u64(),
            s["num_in_osds"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(s["pools"][0]["pool_name"], "rbd");
    assert_eq!(s["pools"][0]["size"], 1);
    let pretty = String::from_utf8(asok.execute(br#"{"prefix":"status"}"#)).unwrap();
    assert!(pretty.starts_with("{\n    \""), "json-pretty by default: {pretty}");

    let d: Value = serde_json::from_slice(&asok.execute(br#"{"prefix":"dump osdmap","format":"json"}"#)).unwrap();
    let want = mon.osdmap().to_json();
    for k in ["epoch", "fsid", "max_osd", "pool_max", "pools"] {
        assert_eq!(d[k], want[k], "{k}");
    }
    assert_eq!(d["osds"][0]["public_addr"], osd.msgr.my_addrs()[0].to_string());
    assert_eq!(d["osds"][0]["up"], 1);
    assert_eq!(d["osds"][0]["in"], 0);

    drop(osd);
    drop(mon);
    let r = String::from_utf8(asok.execute(br#"{"prefix":"status"}"#)).unwrap();
    assert!(r.starts_with("ERROR:"), "unregistered at shutdown: {r}");
}

/// The real `ceph --admin-daemon` answers both commands (skipped without a `ceph` binary).
#[test]
fn the_ceph_cli_reads_status_and_dump_osdmap() {
    let Some(ceph) = ["/usr/bin/ceph", "/usr/local/bin/ceph"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        eprintln!("skipped: no ceph CLI installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let c = Context::new("mon.a", None).unwrap();
    c.set_option("run_dir", dir.path().to_str().unwrap()).unwrap();
    c.set_option("log_file", "").unwrap();
    c.set_option("ms_async_op_threads", "1").unwrap();
    c.start().unwrap();
    let mon = Monitor::start(&c, &dir.path().join("mon"), "127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(
        mon.command(r#"{"prefix":"osd pool create","pool":"cli","pg_num":4}"#).0,
        0
    );
    let sock = c.asok_path().unwrap();
    let run = |args: &[&str]| -> Value {
        let mut child = std::process::Command::new(ceph)
            .arg("--admin-daemon")
            .arg(&sock)
            .args(args)
            .arg("--format=json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("ceph --admin-daemon {args:?} hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let s = run(&["status"]);
    assert_eq!(s["fsid"], fsid_to_string(&mon.fsid()));
    assert_eq!(s["epoch"], 2);
    let d = run(&["dump", "osdmap"]);
    assert_eq!(d["pools"][0]["pool_name"], "cli");
    assert_eq!(d["epoch"], 2);
    drop(mon);
    c.shutdown();
}

#[test]
fn a_monclient_reconnects_resubscribes_and_resends_after_a_monitor_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, mon) = start_mon(dir.path());
    let addr = mon.addr();
    let n = node("client.admin", &mon);
    n.mc.subscribe_osdmap().unwrap();
    assert_eq!(cmd(&n.mc, r#"{"prefix":"osd pool create","pool":"a"}"#).0, 0);
    n.mc.wait_for_epoch(2, T).unwrap();
    drop(mon);
    drop(c1);

    // A command sent while the monitor is down is answered once it is back (same address:
    // monitors use nonce 0 and a fixed port).
    let d = dir.path().to_path_buf();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let c = small_ctx("mon.a");
        let sa = addr.addr.unwrap();
        let m = Monitor::start(&c, &d, sa).unwrap();
        (c, m)
    });
    let (r, rs, _) = cmd(&n.mc, r#"{"prefix":"osd pool create","pool":"b"}"#);
    assert_eq!((r, rs.as_str()), (0, "pool 'b' created"));
    let (_c2, mon2) = restarter.join().unwrap();
    assert_eq!(mon2.addr(), addr);
    // The subscription was renewed from the epoch held: the new epoch arrives.
    let m = n.mc.wait_for_epoch(3, T).unwrap();
    assert!(m.pool_by_name("a").is_some() && m.pool_by_name("b").is_some());
    wait_for("resubscribed", 5, || mon2.num_subscribers() == 1);
    assert_eq!(mon2.command(r#"{"prefix":"osd pool rm","pool":"a"}"#).0, 0);
    let m = n.mc.wait_for_epoch(4, T).unwrap();
    assert_eq!(m, mon2.osdmap());
}
