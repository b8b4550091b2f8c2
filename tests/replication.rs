//! Primary-copy replication on in-process clusters: every write lands on each OSD of its PG's
//! acting set before it is acknowledged; killing an OSD under a write load loses no
//! acknowledged write; a resent write is not applied twice; `min_size` blocks writes without
//! losing them.

mod common;

use bytes::Bytes;
use common::wait_for;
use osdkit::common::entity::EntityType;
use osdkit::minicluster::{Client, MiniCluster};
use osdkit::msgr::dispatcher::Dispatcher;
use osdkit::msgr::message::Message;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::os::{CollId, ObjectId};
use osdkit::types::osd_op::{MOsdOp, MOsdOpReply, OsdOp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const GRACE: u64 = 4;

fn cluster(dir: &std::path::Path, osds: usize, size: u32, extra: &[(&str, &str)]) -> MiniCluster {
    let grace = GRACE.to_string();
    let mut opts = vec![
        ("osd_heartbeat_interval", "1"),
        ("osd_heartbeat_grace", grace.as_str()),
        ("mon_osd_down_out_interval", "0"),
    ];
    opts.extend_from_slice(extra);
    MiniCluster::start_opts(dir, osds, "mem", size, None, &opts).unwrap()
}

/// Where `oid` of pool `data` lives now: its PG's collection and acting set.
fn placement(c: &MiniCluster, oid: &str) -> (CollId, Vec<i32>) {
    let map = c.monitor().osdmap();
    let p = map.object_placement(c.pool_id(), oid, "").unwrap();
    (CollId::new(p.pg.pool, p.pg.seed), p.up)
}

#[test]
fn every_write_is_on_each_osd_of_its_acting_set() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let cl = Client::connect(&c.mon_addr(), "client.admin").unwrap();
    for i in 0..120 {
        cl.put("data", &format!("obj-{i}"), format!("payload {i}").as_bytes())
            .unwrap();
    }
    cl.operate(
        "data",
        "obj-0",
        vec![
            OsdOp::setxattr("owner", Bytes::from_static(b"me")),
            OsdOp::append(Bytes::from_static(b" + more")),
        ],
    )
    .unwrap();
    cl.remove("data", "obj-1").unwrap();
    let mut per_osd = [0usize; 3];
    for i in 0..120 {
        let name = format!("obj-{i}");
        let (coll, acting) = placement(&c, &name);
        assert_eq!(acting.len(), 2, "size 2 on 3 OSDs");
        let want: Option<Vec<u8>> = match i {
            0 => Some(b"payload 0 + more".to_vec()),
            1 => None,
            _ => Some(format!("payload {i}").into_bytes()),
        };
        for osd in 0..3 {
            let store = c.osd_store(osd).unwrap();
            let oid = ObjectId::new(c.pool_id(), "", name.as_str());
            let got = store.read(&coll, &oid, 0, 0).ok().map(|b| b.to_vec());
            if acting.contains(&osd) {
                assert_eq!(got, want, "{name} on osd.{osd} (acting {acting:?})");
                per_osd[osd as usize] += usize::from(got.is_some());
            } else {
                assert_eq!(got, None, "{name} on osd.{osd}, outside its acting set {acting:?}");
            }
        }
        if i == 0 {
            for &osd in &acting {
                let store = c.osd_store(osd).unwrap();
                let oid = ObjectId::new(c.pool_id(), "", "obj-0");
                assert_eq!(&store.getattr(&coll, &oid, "owner").unwrap()[..], b"me");
            }
        }
    }
    assert!(
        per_osd.iter().all(|n| *n > 0),
        "every OSD holds some objects: {per_osd:?}"
    );
    // Listing shows the clients' objects only (not the PGs' metadata objects).
    let listed = cl.list("data").unwrap();
    assert_eq!(listed.len(), 119);
    assert!(listed.iter().all(|n| n.starts_with("obj-")));
}

/// Writers overwriting their objects with increasing sequence numbers; what each last had
/// acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<HashMap<String, u64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn start_load(c: &MiniCluster, writers: usize, objects: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let threads = (0..writers)
        .map(|w| {
            let cl = Client::connect(&c.mon_addr(), &format!("client.{}", 100 + w)).unwrap();
            let (stop, acked, errors) = (stop.clone(), acked.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::Acquire) {
                    seq += 1;
                    let name = format!("w{w}-{}", seq % objects as u64);
                    match cl.put("data", &name, &value(&name, seq)) {
                        Ok(()) => {
                            acked.lock().unwrap().insert(name, seq);
                        }
                        Err(e) => errors.lock().unwrap().push(format!("{name} seq {seq}: {e}")),
                    }
                }
            })
        })
        .collect();
    Load {
        stop,
        acked,
        errors,
        threads,
    }
}

fn value(name: &str, seq: u64) -> Vec<u8> {
    let mut v = format!("{name}:{seq}:").into_bytes();
    v.resize(4096, b'x');
    v
}

impl Load {
    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
    fn finish(self) -> HashMap<String, u64> {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            t.join().unwrap();
        }
        let errors = self.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "writes failed: {errors:?}");
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

fn check_all(c: &MiniCluster, acked: &HashMap<String, u64>) {
    let cl = Client::connect(&c.mon_addr(), "client.checker").unwrap();
    for (name, seq) in acked {
        let got = cl.get("data", name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&got[..], &value(name, *seq)[..], "{name}: last acknowledged seq {seq}");
    }
}

#[test]
fn killing_an_osd_under_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let load = start_load(&c, 4, 40);
    wait_for("writes to flow", 30, || load.acked_count() >= 100);
    let victim = 1;
    let t0 = Instant::now();
    c.kill_osd(victim).unwrap();
    wait_for("the victim marked down", 60, || !c.monitor().osdmap().is_up(victim));
    let detected = t0.elapsed();
    eprintln!(
        "osd.{victim} killed under load, marked down after {:.2} s (grace {GRACE} s)",
        detected.as_secs_f64()
    );
    assert!(
        detected <= Duration::from_secs(GRACE + 8),
        "detection took {detected:?}"
    );
    // Writes go on at the PGs' new primaries.
    let before = load.acked.lock().unwrap().values().sum::<u64>();
    wait_for("writes after the failure", 30, || {
        load.acked.lock().unwrap().values().sum::<u64>() > before + 200
    });
    let acked = load.finish();
    check_all(&c, &acked);
}

/// Collects OSD op replies by tid.
#[derive(Default)]
struct Replies {
    by_tid: parking_lot::Mutex<HashMap<u64, Vec<MOsdOpReply>>>,
    cv: parking_lot::Condvar,
}

impl Dispatcher for Replies {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.ty == osdkit::types::messages::CEPH_MSG_OSD_OPREPLY
    }
    fn ms_fast_dispatch(&self, m: Message) {
        let r = MOsdOpReply::from_message(&m).expect("replies decode");
        self.by_tid.lock().entry(r.tid).or_default().push(r);
        self.cv.notify_all();
    }
}

/// Every acknowledged object is identical (data and version) on each OSD of its acting set.
fn check_replicas(c: &MiniCluster, acked: &HashMap<String, u64>) {
    for (name, seq) in acked {
        let (coll, acting) = placement(c, name);
        let oid = ObjectId::new(c.pool_id(), "", name.as_str());
        for osd in acting {
            let got = c.osd_store(osd).unwrap().read(&coll, &oid, 0, 0);
            let got = got.unwrap_or_else(|e| panic!("{name} missing on osd.{osd}: {e}"));
            let want = value(name, *seq);
            // A replica may hold a later write than the last acknowledged one (its ack was in
            // flight when the load stopped), never an earlier one.
            let got_seq: u64 = std::str::from_utf8(&got[..got.iter().position(|b| *b == b'x').unwrap_or(got.len())])
                .ok()
                .and_then(|s| s.trim_end_matches(':').rsplit(':').next()?.parse().ok())
                .unwrap_or_else(|| panic!("{name} on osd.{osd}: unreadable content"));
            assert!(
                got_seq >= *seq,
                "{name} on osd.{osd}: seq {got_seq} older than acked {seq} ({want:?})"
            );
        }
    }
}

#[test]
fn each_osd_in_turn_killed_and_restarted_under_writes_the_cluster_returns_to_clean() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let load = start_load(&c, 3, 30);
    wait_for("writes to flow", 30, || load.acked_count() >= 60);
    for victim in 0..3 {
        let sum = || load.acked.lock().unwrap().values().sum::<u64>();
        let t0 = Instant::now();
        c.kill_osd(victim).unwrap();
        wait_for("the victim marked down", 60, || !c.monitor().osdmap().is_up(victim));
        let down = t0.elapsed();
        let before = sum();
        wait_for("writes while the victim is down", 30, || sum() > before + 100);
        let t1 = Instant::now();
        c.start_osd(victim).unwrap();
        c.wait_for_clean(Duration::from_secs(60)).unwrap();
        eprintln!(
            "round {victim}: osd.{victim} down after {:.2} s; restarted and clean after {:.2} s",
            down.as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
        let before = sum();
        wait_for("writes after the return", 30, || sum() > before + 100);
    }
    let acked = load.finish();
    c.wait_for_clean(Duration::from_secs(60)).unwrap();
    check_all(&c, &acked);
    check_replicas(&c, &acked);
}

#[test]
fn a_resent_write_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let cl = Client::connect(&c.mon_addr(), "client.admin").unwrap();
    cl.put("data", "appended", b"").unwrap();
    // One request (client, incarnation, tid) sent twice to the primary, as a resend after a
    // lost reply would be: the second finds the request in the PG log.
    let map = c.monitor().osdmap();
    let p = map.object_placement(c.pool_id(), "appended", "").unwrap();
    let primary = map.osd(p.up[0]).unwrap().addrs.public;
    let ctx = common::ctx("client.4242", &[]);
    let msgr = Messenger::new(&ctx, "client.4242", None).unwrap();
    msgr.set_default_policy(Policy::lossy_client());
    let replies = Arc::new(Replies::default());
    msgr.add_dispatcher_tail(replies.clone());
    msgr.start().unwrap();
    let conn = msgr.connect_to(EntityType::Osd, &primary).unwrap();
    let req = |attempt| MOsdOp {
        client: "client.4242".parse().unwrap(),
        client_inc: 1,
        tid: 7,
        epoch: map.epoch,
        pool: c.pool_id(),
        oid: "appended".into(),
        nspace: String::new(),
        hash: p.hash,
        pgid: p.pg,
        flags: 0,
        attempt,
        ops: vec![OsdOp::append(Bytes::from_static(b"once"))],
    };
    for attempt in 0..2 {
        conn.send_message(req(attempt).to_message().unwrap()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut g = replies.by_tid.lock();
        while g.get(&7).map_or(0, Vec::len) <= attempt as usize {
            assert!(
                !replies.cv.wait_until(&mut g, deadline).timed_out(),
                "no reply to attempt {attempt}"
            );
        }
    }
    let got = replies.by_tid.lock().remove(&7).unwrap();
    assert!(got.iter().all(|r| r.result == 0), "{got:?}");
    assert_eq!(
        got[0].version, got[1].version,
        "the duplicate reports the first write's version"
    );
    assert_eq!(&cl.get("data", "appended").unwrap()[..], b"once", "applied once");
    msgr.shutdown();
}

#[test]
fn below_min_size_writes_wait_and_complete_when_an_osd_returns() {
    let dir = tempfile::tempdir().unwrap();
    // size 3, min_size 2 (the default for size 3).
    let c = cluster(dir.path(), 3, 3, &[]);
    let cl = Client::connect(&c.mon_addr(), "client.admin").unwrap();
    cl.put("data", "before", b"safe").unwrap();
    c.stop_osd(1).unwrap();
    c.stop_osd(2).unwrap();
    // One OSD left of three: every PG is below min_size, so the write waits.
    let (tx, rx) = std::sync::mpsc::channel();
    cl.submit_async(
        "data",
        "blocked",
        vec![OsdOp::writefull(Bytes::from_static(b"waited"))],
        Box::new(move |r| tx.send(r.map(|r| r.result)).unwrap()),
    );
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_err(),
        "a write below min_size completed"
    );
    c.start_osd(2).unwrap();
    let r = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the write completes once two OSDs are up");
    assert_eq!(r.unwrap(), 0);
    assert_eq!(&cl.get("data", "blocked").unwrap()[..], b"waited");
    assert_eq!(&cl.get("data", "before").unwrap()[..], b"safe");
}

#[test]
fn dump_pgs_on_the_admin_socket_shows_each_pgs_state() {
    let dir = tempfile::tempdir().unwrap();
    // Unix socket paths are short: a run dir of its own under /tmp.
    let run = tempfile::Builder::new()
        .prefix("osdkit-pgs")
        .tempdir_in("/tmp")
        .unwrap();
    let grace = GRACE.to_string();
    let c = MiniCluster::start_opts(
        dir.path(),
        3,
        "mem",
        2,
        Some(run.path()),
        &[("osd_heartbeat_interval", "1"), ("osd_heartbeat_grace", grace.as_str())],
    )
    .unwrap();
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    let dump = |osd: i32| -> serde_json::Value {
        let client = osdkit::asok::client::AdminSocketClient::new(run.path().join(format!("osd.{osd}.asok")));
        let out = client
            .request(&serde_json::json!({"prefix": "dump_pgs", "format": "json"}))
            .unwrap();
        serde_json::from_str(&out).unwrap()
    };
    let states = |osd: i32, role: &str| -> Vec<String> {
        dump(osd)["pg_stats"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["role"] == role)
            .map(|p| p["state"].as_str().unwrap().to_string())
            .collect()
    };
    // Every one of the 32 PGs has one primary among the three OSDs, all active+clean.
    let primaries: Vec<String> = (0..3).flat_map(|o| states(o, "primary")).collect();
    assert_eq!(primaries.len(), 32, "{primaries:?}");
    assert!(primaries.iter().all(|s| s == "active+clean"), "{primaries:?}");
    assert!((0..3).any(|o| !states(o, "replica").is_empty()));
    // Two OSDs gone: every PG has one copy left, undersized and degraded, still active
    // (min_size 1 for size 2).
    c.stop_osd(1).unwrap();
    c.stop_osd(2).unwrap();
    assert!(
        c.wait_for_clean(Duration::from_millis(300)).is_err(),
        "clean with one OSD of size 2"
    );
    wait_for("every PG peered on osd.0", 30, || {
        let s = states(0, "primary");
        s.len() == 32 && s.iter().all(|s| s != "peering")
    });
    let after = states(0, "primary");
    assert!(after.iter().all(|s| s == "active+undersized+degraded"), "{after:?}");
    // Back to two: clean again.
    c.start_osd(1).unwrap();
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    let back: Vec<String> = (0..2).flat_map(|o| states(o, "primary")).collect();
    assert_eq!(back.len(), 32);
    assert!(back.iter().all(|s| s == "active+clean"), "{back:?}");
}
