//! An OSD in-process, a client messenger over loopback: ops go through the messenger, the
//! sharded op queue and the store, and come back as replies (mem and kv stores).

use bytes::Bytes;
use osdkit::common::entity::EntityType;
use osdkit::msgr::connection::ConnectionRef;
use osdkit::msgr::dispatcher::Dispatcher;
use osdkit::msgr::message::Message;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::os::{kv::KvStore, mem::MemStore, ObjectStore};
use osdkit::osd::Osd;
use osdkit::types::osd_op::*;
use osdkit::types::osdmap::{OsdMap, Pool};
use osdkit::types::placement::PgId;
use osdkit::Context;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{ctx, perf_dump, wait_for};

#[derive(Default)]
struct Replies {
    by_tid: Mutex<HashMap<u64, MOsdOpReply>>,
    cv: Condvar,
}

impl Dispatcher for Replies {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.ty == osdkit::types::messages::CEPH_MSG_OSD_OPREPLY
    }
    fn ms_fast_dispatch(&self, m: Message) {
        let r = MOsdOpReply::from_message(&m).expect("replies decode");
        self.by_tid.lock().insert(r.tid, r);
        self.cv.notify_all();
    }
}

struct Client {
    _ctx: Context,
    msgr: Messenger,
    conn: ConnectionRef,
    replies: Arc<Replies>,
    tid: Mutex<u64>,
}

impl Client {
    fn new(osd: &Osd) -> Client {
        let c = ctx("client.4100", &[]);
        let msgr = Messenger::new(&c, "client.4100", None).unwrap();
        msgr.set_default_policy(Policy::lossy_client());
        let replies = Arc::new(Replies::default());
        msgr.add_dispatcher_tail(replies.clone());
        msgr.start().unwrap();
        let conn = msgr.connect_to(EntityType::Osd, &osd.addr()).unwrap();
        Client {
            _ctx: c,
            msgr,
            conn,
            replies,
            tid: Mutex::new(0),
        }
    }

    fn wait(&self, tid: u64) -> MOsdOpReply {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut g = self.replies.by_tid.lock();
        loop {
            if let Some(r) = g.remove(&tid) {
                return r;
            }
            assert!(
                !self.replies.cv.wait_until(&mut g, deadline).timed_out(),
                "no reply to tid {tid}"
            );
        }
    }

    fn op(&self, pool: i64, oid: &str, ops: Vec<OsdOp>) -> MOsdOpReply {
        let tid = {
            let mut t = self.tid.lock();
            *t += 1;
            *t
        };
        let req = MOsdOp {
            client: "client.4100".parse().unwrap(),
            client_inc: 1,
            tid,
            epoch: 1,
            pool,
            oid: oid.into(),
            nspace: String::new(),
            hash: 0,
            pgid: PgId::new(-1, 0),
            flags: 0,
            attempt: 0,
            ops,
        };
        self.conn.send_message(req.to_message().unwrap()).unwrap();
        self.wait(tid)
    }
}

fn map() -> OsdMap {
    let mut m = OsdMap::new([7; 16]);
    m.epoch = 1;
    m.pools.insert(1, Pool::new(1, "data", 1, 1, 8));
    m.pool_max = 1;
    m
}

fn start(store: Arc<dyn ObjectStore>) -> (Context, Osd) {
    let c = ctx(
        "osd.0",
        &[("osd_op_num_shards", "2"), ("osd_op_num_threads_per_shard", "2")],
    );
    let osd = Osd::start(&c, 0, store, "127.0.0.1:0".parse().unwrap()).unwrap();
    osd.set_osdmap(map());
    (c, osd)
}

fn data(r: &MOsdOpReply, i: usize) -> &[u8] {
    &r.ops[i].outdata
}

#[test]
fn objects_round_trip_through_the_op_path() {
    let (c, osd) = start(Arc::new(MemStore::new()));
    let cl = Client::new(&osd);
    let r = cl.op(
        1,
        "greeting",
        vec![
            OsdOp::write(0, Bytes::from_static(b"hello")),
            OsdOp::setxattr("lang", Bytes::from_static(b"en")),
        ],
    );
    assert_eq!(r.result, 0);
    assert_eq!(
        r.flags,
        CEPH_OSD_FLAG_ACK | CEPH_OSD_FLAG_ONDISK,
        "a write is acked on disk"
    );
    let r = cl.op(
        1,
        "greeting",
        vec![
            OsdOp::append(Bytes::from_static(b", world")),
            OsdOp::read(0, 0),
            OsdOp::getxattr("lang"),
            OsdOp::stat(),
        ],
    );
    assert_eq!(r.result, 0);
    assert_eq!(data(&r, 1), b"hello, world");
    assert_eq!(data(&r, 2), b"en");
    assert_eq!(u64::from_le_bytes(data(&r, 3)[..8].try_into().unwrap()), 12);
    let vals: BTreeMap<String, Bytes> = [("a".to_string(), Bytes::from_static(b"1"))].into();
    assert_eq!(cl.op(1, "greeting", vec![OsdOp::omap_set_vals(&vals)]).result, 0);
    let r = cl.op(1, "greeting", vec![OsdOp::omap_get_vals("", 10)]);
    assert_eq!(decode_omap_vals(data(&r, 0)).unwrap(), vals);
    // Every object of the pool can be listed, PG by PG.
    for i in 0..20 {
        assert_eq!(cl.op(1, &format!("obj-{i}"), vec![OsdOp::create(true)]).result, 0);
    }
    let pool = osd.osdmap().pool(1).unwrap().clone();
    let mut names = Vec::new();
    for seed in 0..pool.pg_num {
        let mut req = vec![OsdOp::pgnls("", 1000)];
        req[0].length = 1000;
        let tid = {
            let mut t = cl.tid.lock();
            *t += 1;
            *t
        };
        let m = MOsdOp {
            client: "client.4100".parse().unwrap(),
            client_inc: 1,
            tid,
            epoch: 1,
            pool: 1,
            oid: String::new(),
            nspace: String::new(),
            hash: seed,
            pgid: PgId::new(1, seed),
            flags: 0,
            attempt: 0,
            ops: req,
        };
        cl.conn.send_message(m.to_message().unwrap()).unwrap();
        let r = cl.wait(tid);
        assert_eq!(r.result, 0);
        for n in decode_string_list(data(&r, 0)).unwrap() {
            // The OSD put each object in the PG that placement computes for its name.
            assert_eq!(pool.object_to_pg(&n, "").1.seed, seed, "{n} listed in PG {seed}");
            names.push(n);
        }
    }
    names.sort();
    assert_eq!(names.len(), 21, "{names:?}");
    assert!(names.contains(&"greeting".to_string()));
    // The counters and the tracker saw the ops. An op is counted just after its reply is
    // sent, so the last ones may still be on their way into the counters: wait for them.
    wait_for("the op counters to count the ops", 30, || {
        let v = perf_dump(&c);
        v["osd"]["op"].as_u64().unwrap() >= 25
            && v["osd"]["op_w"].as_u64().unwrap() >= 23
            && v["osd"]["op_in_bytes"].as_u64().unwrap() >= 12
    });
    let h = c
        .admin_socket()
        .execute(br#"{"prefix": "dump_historic_ops", "format": "json"}"#);
    let h: serde_json::Value = serde_json::from_slice(&h).unwrap();
    assert_eq!(h["ops"].as_array().unwrap().len(), 20, "osd_op_history_size ops kept");
    let st = c.admin_socket().execute(br#"{"prefix": "status", "format": "json"}"#);
    let st: serde_json::Value = serde_json::from_slice(&st).unwrap();
    assert_eq!(st["objectstore"], "mem");
    assert_eq!(st["osdmap_epoch"], 1);
    cl.msgr.shutdown();
    osd.shutdown().unwrap();
}

#[test]
fn bad_requests_get_errnos_and_the_osd_keeps_serving() {
    let (_c, osd) = start(Arc::new(MemStore::new()));
    let cl = Client::new(&osd);
    assert_eq!(
        cl.op(99, "x", vec![OsdOp::create(false)]).result,
        -libc::ENOENT,
        "missing pool"
    );
    assert_eq!(
        cl.op(1, "x", vec![OsdOp::read(0, 10)]).result,
        -libc::ENOENT,
        "missing object"
    );
    assert_eq!(
        cl.op(1, "x", vec![OsdOp::write(u64::MAX - 2, Bytes::from_static(b"abc"))])
            .result,
        -libc::EINVAL
    );
    assert_eq!(
        cl.op(1, "x", vec![OsdOp::write(1 << 40, Bytes::from_static(b"abc"))])
            .result,
        -libc::EFBIG,
        "past the max object size"
    );
    let big = Bytes::from(vec![0u8; 1 << 20]);
    assert!(
        cl.op(1, "x", vec![OsdOp::setxattr("big", big)]).result < 0,
        "oversized xattr"
    );
    let long = "n".repeat(300);
    assert_eq!(
        cl.op(1, "x", vec![OsdOp::setxattr(long, Bytes::from_static(b"v"))])
            .result,
        -libc::ENAMETOOLONG
    );
    // A multi-op request whose last op fails leaves no trace.
    let r = cl.op(
        1,
        "atomic",
        vec![
            OsdOp::write(0, Bytes::from_static(b"data")),
            OsdOp::cmpxattr(
                "k",
                CEPH_OSD_CMPXATTR_OP_EQ,
                CEPH_OSD_CMPXATTR_MODE_STRING,
                Bytes::from_static(b"v"),
            ),
        ],
    );
    assert_eq!(r.result, -libc::ECANCELED);
    assert_eq!(
        cl.op(1, "atomic", vec![OsdOp::stat()]).result,
        -libc::ENOENT,
        "the write was not applied"
    );
    // Malformed op messages: the OSD answers -EINVAL on the same session and keeps going.
    for (i, junk) in [&b""[..], b"\x01", b"\xff\xff\xff\xff\xff\xff", &[0u8; 100]]
        .iter()
        .enumerate()
    {
        let tid = 10_000 + i as u64;
        let m = Message::new(osdkit::types::messages::CEPH_MSG_OSD_OP, Bytes::copy_from_slice(junk)).with_tid(tid);
        cl.conn.send_message(m).unwrap();
        assert_eq!(cl.wait(tid).result, -libc::EINVAL);
    }
    assert_eq!(cl.op(1, "after", vec![OsdOp::create(false)]).result, 0, "still serving");
    osd.shutdown().unwrap();
}

#[test]
fn the_kv_store_keeps_objects_across_an_osd_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mk = || -> Arc<dyn ObjectStore> { Arc::new(KvStore::new(dir.path())) };
    let (_c, osd) = start(mk());
    let cl = Client::new(&osd);
    for i in 0..50u32 {
        let r = cl.op(
            1,
            &format!("o{i}"),
            vec![OsdOp::writefull(Bytes::from(format!("value {i}")))],
        );
        assert_eq!(r.result, 0);
    }
    cl.msgr.shutdown();
    osd.shutdown().unwrap();
    drop(osd);
    let (_c2, osd) = start(mk());
    let cl = Client::new(&osd);
    for i in 0..50u32 {
        let r = cl.op(1, &format!("o{i}"), vec![OsdOp::read(0, 0)]);
        assert_eq!(r.result, 0);
        assert_eq!(data(&r, 0), format!("value {i}").as_bytes());
    }
    osd.shutdown().unwrap();
}

#[test]
fn memstore_prefault_is_refused_without_mimalloc_and_ignored_by_kv() {
    // This test binary runs on the system allocator, which gives freed memory back at once.
    let c = ctx("osd.0", &[("memstore_prefault_bytes", "67108864")]);
    let e = Osd::start(&c, 0, Arc::new(MemStore::new()), "127.0.0.1:0".parse().unwrap())
        .err()
        .unwrap();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(
        e.msg.contains("memstore_prefault_bytes") && e.msg.contains("mimalloc"),
        "{}",
        e.msg
    );
    // The kv store keeps nothing in memory: it starts, and nothing was faulted in.
    let dir = tempfile::tempdir().unwrap();
    let osd = Osd::start(
        &c,
        0,
        Arc::new(KvStore::new(dir.path())),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    assert!(perf_dump(&c).get("memstore_prefault").is_none());
    osd.shutdown().unwrap();
}

#[test]
fn large_writes_are_read_into_the_frame_reserve_until_it_is_used_up() {
    const MIB: usize = 1 << 20;
    let c = ctx("osd.0", &[("memstore_prefault_frame_bytes", "20971520")]);
    let osd = Osd::start(&c, 0, Arc::new(MemStore::new()), "127.0.0.1:0".parse().unwrap()).unwrap();
    osd.set_osdmap(map());
    let reserve = |k: &str| perf_dump(&c)["prefault_reserve"][k].as_u64().unwrap();
    assert_eq!((reserve("reserved_bytes"), reserve("left_bytes")), (20 << 20, 20 << 20));
    let cl = Client::new(&osd);
    // Each 4 MiB write is a frame of a little more than 4 MiB: four fit in 20 MiB, the fifth
    // and sixth are read the usual way.
    let body = |i: usize| -> Vec<u8> { (0..4 * MIB).map(|j| (j * 31 + i * 7) as u8).collect() };
    for i in 0..6 {
        let r = cl.op(1, &format!("big{i}"), vec![OsdOp::writefull(Bytes::from(body(i)))]);
        assert_eq!(r.result, 0, "write {i}");
    }
    let hits: u64 = perf_dump(&c)
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("ms_prefault-osd.0"))
        .map(|(_, v)| v["reserve_hits"].as_u64().unwrap())
        .sum();
    assert_eq!(hits, 4);
    assert_eq!(
        reserve("left_bytes"),
        0,
        "the remainder too small for a frame is let go"
    );
    for i in 0..6 {
        let r = cl.op(1, &format!("big{i}"), vec![OsdOp::read(0, 0)]);
        assert_eq!(r.result, 0);
        assert!(data(&r, 0) == body(i).as_slice(), "object {i} reads back intact");
    }
    drop(cl);
    osd.shutdown().unwrap();
    assert!(
        perf_dump(&c).get("prefault_reserve").is_none(),
        "the OSD's counters go with it"
    );

    // Without the large-frame pool there is nothing to cut frames for: a clear error.
    let c = ctx(
        "osd.0",
        &[
            ("memstore_prefault_frame_bytes", "20971520"),
            ("ms_prefault_bytes", "0"),
        ],
    );
    let e = Osd::start(&c, 0, Arc::new(MemStore::new()), "127.0.0.1:0".parse().unwrap())
        .err()
        .unwrap();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(e.msg.contains("ms_prefault_bytes"), "{}", e.msg);

    // More than the machine has is refused, before anything is touched.
    let c = ctx("osd.0", &[("memstore_prefault_frame_bytes", "1125899906842624")]);
    let e = Osd::start(&c, 0, Arc::new(MemStore::new()), "127.0.0.1:0".parse().unwrap())
        .err()
        .unwrap();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(e.msg.contains("available"), "{}", e.msg);
}
