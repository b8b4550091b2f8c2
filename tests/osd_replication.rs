//! Primary-copy replication on in-process clusters: every write lands on each OSD of its PG's
//! acting set before it is acknowledged; killing an OSD under a write load loses no
//! acknowledged write; a resent write is not applied twice; `min_size` blocks writes without
//! losing them.

mod common;

use bytes::Bytes;
use common::wait_for;
use osdkit::client::Rados;
use osdkit::common::entity::EntityType;
use osdkit::hosting::cluster::MiniCluster;
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
    // OSDKIT_TEST_OPTS=key=value,... adds options to every cluster here (a soak run with
    // another setting, say); unset in CI.
    let env = std::env::var("OSDKIT_TEST_OPTS").unwrap_or_default();
    let env: Vec<(String, String)> = env
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    opts.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    MiniCluster::start_opts(dir, osds, "mem", size, None, &opts).unwrap()
}

/// Where `oid` of pool `data` lives now: its PG's collection and acting set.
fn placement(c: &MiniCluster, oid: &str) -> (CollId, Vec<i32>) {
    let map = c.osdmap();
    let p = map.object_placement(c.pool_id(), oid, "").unwrap();
    (CollId::new(p.pg.pool, p.pg.seed), p.up)
}

#[test]
fn every_write_is_on_each_osd_of_its_acting_set() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
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
            let cl = Rados::connect(&c.mon_addr(), &format!("client.{}", 100 + w)).unwrap();
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
    let cl = Rados::connect(&c.mon_addr(), "client.checker").unwrap();
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
    wait_for("the victim marked down", 60, || !c.osdmap().is_up(victim));
    let detected = t0.elapsed();
    eprintln!(
        "osd.{victim} killed under load, marked down after {:.2} s (grace {GRACE} s)",
        detected.as_secs_f64()
    );
    assert!(
        detected <= Duration::from_secs(GRACE + 12),
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
        wait_for("the victim marked down", 60, || !c.osdmap().is_up(victim));
        let down = t0.elapsed();
        let before = sum();
        wait_for("writes while the victim is down", 30, || sum() > before + 100);
        let t1 = Instant::now();
        c.start_osd(victim).unwrap();
        c.wait_for_clean(Duration::from_secs(60)).unwrap();
        let clean_after = t1.elapsed();
        // A deep scrub of every PG, with the writers still going, finds the copies equal.
        let reports = c.scrub(None, true, Duration::from_secs(60)).unwrap();
        assert_eq!(reports.len(), 32);
        let bad: Vec<String> = reports
            .iter()
            .filter(|r| !r.inconsistent.is_empty())
            .map(|r| r.to_json().to_string())
            .collect();
        assert!(bad.is_empty(), "round {victim}: inconsistent after recovery: {bad:?}");
        assert!(
            reports.iter().all(|r| r.osds.len() == 2),
            "every PG compared two copies"
        );
        eprintln!(
            "round {victim}: osd.{victim} down after {:.2} s; restarted and clean after {:.2} s; deep scrub of {} objects: no inconsistency",
            down.as_secs_f64(),
            clean_after.as_secs_f64(),
            reports.iter().map(|r| r.objects).sum::<usize>()
        );
        let before = sum();
        wait_for("writes after the return", 30, || sum() > before + 100);
    }
    let acked = load.finish();
    c.wait_for_clean(Duration::from_secs(60)).unwrap();
    check_all(&c, &acked);
    check_replicas(&c, &acked);
    // And once the writers stopped: every copy equal, versions included.
    let reports = c.scrub(None, true, Duration::from_secs(60)).unwrap();
    assert!(reports.iter().all(|r| r.inconsistent.is_empty()));
}

#[test]
fn a_resent_write_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
    cl.put("data", "appended", b"").unwrap();
    // One request (client, incarnation, tid) sent twice to the primary, as a resend after a
    // lost reply would be: the second finds the request in the PG log.
    let map = c.osdmap();
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
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
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
        // States are joined with "+" ("peering+undersized+degraded"): look for the word.
        s.len() == 32 && s.iter().all(|s| !s.split('+').any(|w| w == "peering"))
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

#[test]
fn scrub_reports_copies_that_differ_and_deep_scrub_reads_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
    for i in 0..40 {
        cl.put("data", &format!("s-{i}"), format!("scrub me {i:03}").as_bytes())
            .unwrap();
    }
    cl.setxattr("data", "s-1", "owner", b"me").unwrap();
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    let all = c.scrub(None, true, Duration::from_secs(30)).unwrap();
    assert_eq!(all.iter().map(|r| r.objects).sum::<usize>(), 40);
    assert!(all.iter().all(|r| r.inconsistent.is_empty()));
    // Behind the PG's back, on one replica each: same-size new bytes, a removal, an xattr.
    let pool = c.pool_id();
    let damage = |name: &str, f: &dyn Fn(&mut osdkit::os::Transaction, &ObjectId)| -> (i32, Vec<i32>) {
        let (coll, acting) = placement(&c, name);
        let oid = ObjectId::new(pool, "", name);
        let mut t = osdkit::os::Transaction::new();
        f(&mut t, &oid);
        c.osd_store(acting[1]).unwrap().apply_transaction(&coll, t).unwrap();
        (acting[1], acting)
    };
    let (flipped, _) = damage("s-2", &|t, o| {
        t.write(o, 0, Bytes::from_static(b"SCRUB"));
    });
    let (lost, _) = damage("s-3", &|t, o| {
        t.remove(o);
    });
    let (attr, _) = damage("s-1", &|t, o| {
        t.setattr(o, "owner", Bytes::from_static(b"you"));
    });
    let pg_of = |name: &str| c.osdmap().object_placement(pool, name, "").unwrap().pg;
    let find = |reports: &[osdkit::osd::scrub::ScrubReport], name: &str| {
        reports
            .iter()
            .flat_map(|r| r.inconsistent.iter())
            .find(|i| i.oid.name == name)
            .cloned()
    };
    let scrub = |name: &str, deep: bool| c.scrub(Some(pg_of(name)), deep, Duration::from_secs(30)).unwrap();
    // A shallow scrub sees the missing copy and the xattr, not same-size data.
    let shallow = scrub("s-3", false);
    let i = find(&shallow, "s-3").expect("the removed copy");
    assert_eq!(i.shards[&lost].1, std::collections::BTreeSet::from(["missing"]));
    assert!(
        find(&scrub("s-2", false), "s-2").is_none(),
        "same size: only a deep scrub reads it"
    );
    let i = find(&scrub("s-1", false), "s-1").expect("the changed xattr");
    assert!(i.errors.contains("attr_value_mismatch"), "{:?}", i.errors);
    assert!(i.shards[&attr].1.contains("attr_value_mismatch"));
    // A deep scrub reads the bytes.
    let deep = scrub("s-2", true);
    let i = find(&deep, "s-2").expect("the flipped bytes");
    assert_eq!(i.errors, std::collections::BTreeSet::from(["data_digest_mismatch"]));
    assert!(i.shards[&flipped].1.contains("data_digest_mismatch"));
    let primary = *i.shards.keys().find(|o| **o != flipped).unwrap();
    assert!(i.shards[&primary].1.is_empty(), "the primary's copy is the reference");
    // The PG shows as inconsistent, through the OSDs' command path as well.
    let dump = osdkit::client::pg::pg_dump(cl.objecter(), Duration::from_secs(10)).unwrap();
    assert_eq!(dump.len(), 32);
    let line = dump.iter().find(|p| p["pgid"] == pg_of("s-2").to_string()).unwrap();
    assert!(line["state"].as_str().unwrap().ends_with("+inconsistent"), "{line}");
    assert!(line["num_scrub_errors"].as_u64().unwrap() >= 1);
    assert!(line["last_deep_scrub_stamp"].is_string());
    let stat = osdkit::client::pg::pg_stat(&dump);
    assert_eq!(stat["num_objects"], 40, "{stat}");
    let remote = osdkit::client::pg::scrub(cl.objecter(), pg_of("s-2"), true, Duration::from_secs(30)).unwrap();
    assert_eq!(remote["errors"], 1, "{remote}");
    assert_eq!(remote["inconsistents"][0]["errors"][0], "data_digest_mismatch");
    // Put right (the lost copy by hand: scrub does not repair), a clean scrub clears the flag.
    cl.put("data", "s-2", b"rewritten").unwrap();
    damage("s-3", &|t, o| {
        t.write(o, 0, Bytes::from_static(b"scrub me 003"));
    });
    cl.setxattr("data", "s-1", "owner", b"me").unwrap();
    let again = c.scrub(None, true, Duration::from_secs(30)).unwrap();
    assert!(again.iter().all(|r| r.inconsistent.is_empty()));
    let dump = osdkit::client::pg::pg_dump(cl.objecter(), Duration::from_secs(10)).unwrap();
    assert!(
        dump.iter().all(|p| p["state"] == "active+clean"),
        "{:?}",
        dump.iter().map(|p| p["state"].to_string()).collect::<Vec<_>>()
    );
    // A bad request gets an errno, and the OSD carries on.
    let e = osdkit::client::pg::scrub(
        cl.objecter(),
        osdkit::types::placement::PgId::new(pool, 999),
        false,
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert_eq!(e.errno, libc::ENOENT);
    let e = cl
        .objecter()
        .osd_command(0, r#"{"prefix":"no such thing"}"#, Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(e.errno, libc::EINVAL);
    let e = cl
        .objecter()
        .osd_command(0, "not json", Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(e.errno, libc::EINVAL);
    assert_eq!(&cl.get("data", "s-0").unwrap()[..], b"scrub me 000");
}

/// Every message a test messenger receives, in order.
#[derive(Default)]
struct Inbox(parking_lot::Mutex<Vec<Message>>, parking_lot::Condvar);

impl Dispatcher for Inbox {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        self.0.lock().push(m);
        self.1.notify_all();
        None
    }
}

impl Inbox {
    /// The first message of type `ty` to arrive within `wait`, taken out of the inbox.
    fn take(&self, ty: u16, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        let mut g = self.0.lock();
        loop {
            if let Some(i) = g.iter().position(|m| m.ty == ty) {
                return Some(g.remove(i));
            }
            if self.1.wait_until(&mut g, deadline).timed_out() {
                return None;
            }
        }
    }
}

#[test]
fn once_a_newer_primary_collected_a_pg_its_replicas_refuse_older_writes_and_notice_missed_ones() {
    use osdkit::types::messages::{FrontMessage, MSG_OSD_PG_SCAN, MSG_OSD_REPOPREPLY};
    use osdkit::types::rep_messages::{
        Eversion, MOsdPgScan, MOsdRepOp, MOsdRepOpReply, SCAN_GET_DIGEST, SCAN_GET_INFO,
    };
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
    cl.put("data", "before", b"v1").unwrap();
    let map = c.osdmap();
    let p = map.object_placement(c.pool_id(), "before", "").unwrap();
    let replica = p.up[1];
    let addr = map.osd(replica).unwrap().addrs.cluster;
    // We play two primaries of the PG: a deposed one (at the current epoch) and, first, the
    // one of a later interval collecting the PG (its scan announces epoch + 5).
    let ctx = common::ctx("osd.77", &[]);
    let msgr = Messenger::new(&ctx, "osd.77", None).unwrap();
    let inbox = Arc::new(Inbox::default());
    msgr.add_dispatcher_tail(inbox.clone());
    msgr.start().unwrap();
    let conn = msgr.connect_to(EntityType::Osd, &addr).unwrap();
    let scan = MOsdPgScan {
        op: SCAN_GET_DIGEST,
        tid: 1,
        pgid: p.pg,
        from: 77,
        epoch: map.epoch + 5,
        last_update: Eversion::default(),
        log_tail: Eversion::default(),
        last_complete: Eversion::default(),
        objects: Vec::new(),
    };
    conn.send_message(scan.to_message()).unwrap();
    let digest = inbox.take(MSG_OSD_PG_SCAN, Duration::from_secs(10)).expect("a digest");
    let digest = MOsdPgScan::from_message(&digest).unwrap();
    assert!(digest.objects.iter().any(|e| e.oid.name == "before"), "{digest:?}");
    let coll = CollId::new(p.pg.pool, p.pg.seed);
    let oid = |n: &str| ObjectId::new(c.pool_id(), "", n);
    let repop = |tid: u64, epoch: u32, version: u64, name: &str| {
        let mut txn = osdkit::os::Transaction::new();
        txn.write(&oid(name), 0, Bytes::from_static(b"late"));
        MOsdRepOp {
            pgid: p.pg,
            tid,
            from: 77,
            map_epoch: epoch,
            version: Eversion { epoch, version },
            reqid: osdkit::types::osd_op::OsdReqId {
                name: "client.99".parse().unwrap(),
                inc: 1,
                tid,
            },
            txn,
        }
    };
    // The deposed primary's write: not applied, not answered (it could not be acknowledged).
    let next = digest.last_update.version + 1;
    conn.send_message(repop(2, map.epoch, next, "stale").to_message())
        .unwrap();
    assert!(inbox.take(MSG_OSD_REPOPREPLY, Duration::from_secs(1)).is_none());
    let store = c.osd_store(replica).unwrap();
    assert!(
        !store.exists(&coll, &oid("stale")).unwrap(),
        "a fenced repop was applied"
    );
    // The new interval's write goes through.
    let write = |tid: u64, version: u64, name: &str| {
        conn.send_message(repop(tid, map.epoch + 5, version, name).to_message())
            .unwrap();
        let r = inbox
            .take(MSG_OSD_REPOPREPLY, Duration::from_secs(10))
            .expect("an answer");
        let r = MOsdRepOpReply::from_message(&r).unwrap();
        assert_eq!((r.tid, r.result), (tid, 0));
        assert!(store.exists(&coll, &oid(name)).unwrap());
    };
    let info = |tid: u64| {
        let ask = MOsdPgScan {
            op: SCAN_GET_INFO,
            tid,
            ..scan.clone()
        };
        conn.send_message(ask.to_message()).unwrap();
        let a = inbox.take(MSG_OSD_PG_SCAN, Duration::from_secs(10)).expect("info");
        let a = MOsdPgScan::from_message(&a).unwrap();
        (a.last_update.version, a.last_complete.version)
    };
    write(3, next, "fresh");
    assert_eq!(info(4), (next, next), "complete: its writes came one after another");
    // A write numbered past the next one: the replica knows it missed one, and says so.
    write(5, next + 2, "after-a-gap");
    assert_eq!(info(6), (next + 2, 0), "the copy is no longer known complete");
    msgr.shutdown();
}

/// `last_recovery` of every PG whose acting set holds `osd`, from the primaries.
fn recoveries_with(cl: &Rados, osd: i32) -> Vec<serde_json::Value> {
    osdkit::client::pg::pg_dump(cl.objecter(), Duration::from_secs(10))
        .unwrap()
        .into_iter()
        .filter(|p| p["acting"].as_array().unwrap().contains(&serde_json::json!(osd)))
        .map(|p| p["last_recovery"].clone())
        .collect()
}

#[test]
fn a_short_absence_is_caught_up_from_the_log_a_long_one_by_backfill() {
    let dir = tempfile::tempdir().unwrap();
    // A log of 8 entries per PG: 400 writes while away outrun it in most PGs.
    let c = cluster(
        dir.path(),
        3,
        2,
        &[("osd_max_pg_log_entries", "8"), ("osd_pg_log_recovery", "true")],
    );
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
    put_numbered(&cl, "l", 0..64, |_| b"first".to_vec());
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    // Away for 6 writes: every PG it returns to is caught up from the log, and only the
    // objects written meanwhile are copied.
    c.stop_osd(2).unwrap();
    put_numbered(&cl, "l", 0..6, |_| b"second".to_vec());
    cl.remove("data", "l-10").unwrap();
    c.start_osd(2).unwrap();
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    let r = recoveries_with(&cl, 2);
    assert!(!r.is_empty());
    assert!(r.iter().all(|x| x["kind"] == "log"), "{r:?}");
    let copied: u64 = r.iter().map(|x| x["objects"].as_u64().unwrap()).sum();
    assert!(
        (1..=7).contains(&copied),
        "copied {copied} (7 changes at most reach osd.2's PGs): {r:?}"
    );
    let deep = c.scrub(None, true, Duration::from_secs(30)).unwrap();
    assert!(deep.iter().all(|r| r.inconsistent.is_empty()));
    assert!(cl.get("data", "l-10").is_err(), "the removal reached every copy");
    // Away for 400 writes: the PGs whose log it fell behind are backfilled.
    c.stop_osd(2).unwrap();
    for i in 0..400 {
        cl.put("data", &format!("l-{}", i % 64), format!("third {i}").as_bytes())
            .unwrap();
    }
    c.start_osd(2).unwrap();
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    let r = recoveries_with(&cl, 2);
    assert!(r.iter().any(|x| x["kind"] == "backfill"), "{r:?}");
    let deep = c.scrub(None, true, Duration::from_secs(30)).unwrap();
    assert!(deep.iter().all(|r| r.inconsistent.is_empty()));
    for i in 336..400 {
        let name = format!("l-{}", i % 64);
        assert_eq!(
            cl.get("data", &name).unwrap(),
            format!("third {i}").as_bytes(),
            "{name}"
        );
    }
}

/// The primaries' view of every PG, by PG id.
fn pg_states(cl: &Rados) -> HashMap<String, serde_json::Value> {
    osdkit::client::pg::pg_dump(cl.objecter(), Duration::from_secs(10))
        .unwrap()
        .into_iter()
        .map(|p| (p["pgid"].as_str().unwrap().to_string(), p))
        .collect()
}

/// A deep scrub of every PG: the reports, once it found every pair of copies equal.
fn deep_scrub_clean(c: &MiniCluster) -> Vec<osdkit::osd::scrub::ScrubReport> {
    let deep = c.scrub(None, true, Duration::from_secs(60)).unwrap();
    let bad: Vec<String> = deep
        .iter()
        .filter(|r| !r.inconsistent.is_empty())
        .map(|r| r.to_json().to_string())
        .collect();
    assert!(bad.is_empty(), "copies differ: {bad:?}");
    deep
}

/// Writes `<prefix>-<i>` for i in `range`, each with `content(i)`.
fn put_numbered(cl: &Rados, prefix: &str, range: std::ops::Range<usize>, content: impl Fn(usize) -> Vec<u8>) {
    for i in range {
        cl.put("data", &format!("{prefix}-{i}"), &content(i)).unwrap();
    }
}

#[test]
fn while_a_pg_recovers_only_ops_on_objects_it_still_lacks_wait() {
    let dir = tempfile::tempdir().unwrap();
    // Slow recovery (a pause after each batch of copies) leaves seconds in which PGs serve
    // with copies still to make.
    let c = cluster(dir.path(), 2, 2, &[("osd_recovery_sleep", "0.3")]);
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
    let pgid_of = |oid: &str| {
        let map = c.osdmap();
        map.object_placement(c.pool_id(), oid, "").unwrap().pg.to_string()
    };
    put_numbered(&cl, "old", 0..128, |_| b"old".to_vec());
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    c.stop_osd(1).unwrap();
    // 2,048 objects osd.1 never saw: about 64 per PG, one batch each.
    for i in 0..2048 {
        cl.put("data", &format!("new-{i}"), format!("new {i}").as_bytes())
            .unwrap();
    }
    c.start_osd(1).unwrap();
    let recovering = |states: &HashMap<String, serde_json::Value>, pg: &str| {
        let state = states[pg]["state"].as_str().unwrap();
        (state.starts_with("active+recovering+degraded") || state.starts_with("active+backfilling+degraded"))
            && states[pg]["objects_missing"].as_u64() > Some(0)
    };
    wait_for("a PG serving while it recovers", 30, || {
        let s = pg_states(&cl);
        s.keys().any(|p| recovering(&s, p))
    });
    // An op on an object every copy holds runs at once, its PG still recovering around it.
    let mut ran_during_recovery = 0;
    for i in 0..128 {
        let name = format!("old-{i}");
        let pg = pgid_of(&name);
        if !recovering(&pg_states(&cl), &pg) {
            continue;
        }
        cl.put("data", &name, b"rewritten").unwrap();
        assert_eq!(cl.get("data", &name).unwrap(), &b"rewritten"[..]);
        let after = pg_states(&cl);
        if recovering(&after, &pg) {
            ran_during_recovery += 1;
        }
        if ran_during_recovery >= 3 {
            break;
        }
    }
    assert!(
        ran_during_recovery >= 3,
        "ops on present objects did not run during recovery"
    );
    // Ops on objects still lacked wait for them, then run: none is lost or misapplied.
    for i in (0..2048).step_by(97) {
        let name = format!("new-{i}");
        cl.put("data", &name, format!("newer {i}").as_bytes()).unwrap();
    }
    c.wait_for_clean(Duration::from_secs(60)).unwrap();
    let states = pg_states(&cl);
    assert!(states.values().all(|p| p["state"] == "active+clean"), "{states:?}");
    for i in 0..2048 {
        let name = format!("new-{i}");
        let want = if i % 97 == 0 {
            format!("newer {i}")
        } else {
            format!("new {i}")
        };
        assert_eq!(cl.get("data", &name).unwrap(), want.as_bytes(), "{name}");
    }
    let deep = deep_scrub_clean(&c);
    assert_eq!(deep.iter().map(|r| r.objects).sum::<usize>(), 2048 + 128);
}

#[test]
fn a_recovery_cut_short_is_not_mistaken_for_a_complete_copy() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(
        dir.path(),
        2,
        2,
        &[("osd_pg_log_recovery", "true"), ("osd_recovery_sleep", "1")],
    );
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
    put_numbered(&cl, "b", 0..64, |_| b"base".to_vec());
    c.wait_for_clean(Duration::from_secs(30)).unwrap();
    c.stop_osd(1).unwrap();
    put_numbered(&cl, "m", 0..640, |i| format!("m {i}").into_bytes());
    c.start_osd(1).unwrap();
    wait_for("a PG recovering", 30, || {
        pg_states(&cl)
            .values()
            .any(|p| p["state"].as_str().unwrap().contains("recovering"))
    });
    // Writes during the recovery raise osd.1's last_update past objects it still lacks.
    put_numbered(&cl, "b", 0..64, |_| b"during".to_vec());
    // osd.0, the only whole copy, goes away: osd.1 serves alone, and must still know that
    // its copy is partial when osd.0 comes back with the same last_update.
    c.stop_osd(0).unwrap();
    wait_for("osd.1 serving alone", 60, || {
        pg_states(&cl)
            .values()
            .all(|p| p["state"] == "active+undersized+degraded")
    });
    c.start_osd(0).unwrap();
    c.wait_for_clean(Duration::from_secs(120)).unwrap();
    let deep = deep_scrub_clean(&c);
    assert!(deep.iter().all(|r| r.osds.len() == 2));
    assert_eq!(deep.iter().map(|r| r.objects).sum::<usize>(), 640 + 64);
}

#[test]
fn an_osd_restarted_before_it_is_marked_down_is_peered_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), 3, 2, &[]);
    let load = start_load(&c, 3, 30);
    wait_for("writes to flow", 30, || load.acked_count() >= 60);
    let sum = || load.acked.lock().unwrap().values().sum::<u64>();
    let up_from = |m: &osdkit::types::osdmap::OsdMap| m.osd(1).unwrap().up_from;
    let before = up_from(&c.osdmap());
    // Back at once: the monitor sees the new instance boot while the old one is still up in
    // its map, and the acting sets stay what they were.
    c.kill_osd(1).unwrap();
    c.start_osd(1).unwrap();
    wait_for("the new instance in the map", 30, || {
        let m = c.osdmap();
        m.is_up(1) && up_from(&m) > before
    });
    let acked = sum();
    wait_for("writes after the restart", 30, || sum() > acked + 100);
    let acked = load.finish();
    c.wait_for_clean(Duration::from_secs(60)).unwrap();
    check_all(&c, &acked);
    deep_scrub_clean(&c);
}
