//! An op-path benchmark inside one process (`osdkit bench osd` is the one to quote): one OSD and
//! one objecter in this process, over loopback msgr2, 4 KiB writes for 3 s at 1 and at 16 in flight.
//!
//!     cargo run --release --example osd_bench_inprocess [mem|kv]
//!
//! Client and OSD share the machine's two cores, so this is a floor, not a figure to quote
//! against `rados bench` (`benches/vs_ceph.sh` makes that comparison).

use bytes::Bytes;
use osdkit::client::objecter::Objecter;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use osdkit::os::mem::MemStore;
use osdkit::osd::Osd;
use osdkit::types::osd_op::OsdOp;
use osdkit::types::osdmap::{OsdInfo, OsdMap, Pool};
use osdkit::Context;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
fn ctx(n: &str) -> Context {
    let c = Context::new(n, None).unwrap();
    c.set_option("admin_socket", "").unwrap();
    c.set_option("log_file", "").unwrap();
    c.start().unwrap();
    c
}
fn main() {
    let store: Arc<dyn osdkit::os::ObjectStore> = if std::env::args().nth(1).as_deref() == Some("kv") {
        let d = tempfile_dir();
        Arc::new(osdkit::os::kv::KvStore::new(d))
    } else {
        Arc::new(MemStore::new())
    };
    let c = ctx("osd.0");
    let osd = Osd::start(&c, 0, store, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut m = OsdMap::new([3; 16]);
    m.epoch = 1;
    m.pools.insert(1, Pool::new(1, "data", 1, 1, 32));
    m.pool_max = 1;
    let mut info = OsdInfo {
        up: true,
        in_: true,
        weight: 0x10000,
        ..Default::default()
    };
    info.addrs.public = osd.addr();
    m.osds.insert(0, info);
    m.max_osd = 1;
    osd.set_osdmap(m.clone());
    let cc = ctx("client.1");
    let msgr = Messenger::new(&cc, "client.1", None).unwrap();
    msgr.set_default_policy(Policy::lossy_client());
    let o = Objecter::new(&msgr, "client.1", Duration::ZERO).unwrap();
    msgr.start().unwrap();
    o.set_osdmap(m);
    let data = Bytes::from(vec![7u8; 4096]);
    for depth in [1u64, 16] {
        let done = Arc::new(AtomicU64::new(0));
        let lat = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let secs = 3.0;
        let next = Arc::new(AtomicU64::new(0));
        fn go(
            o: Objecter,
            d: Bytes,
            next: Arc<AtomicU64>,
            done: Arc<AtomicU64>,
            lat: Arc<AtomicU64>,
            t0: Instant,
            secs: f64,
        ) {
            if t0.elapsed().as_secs_f64() > secs {
                return;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let s = Instant::now();
            let o2 = o.clone();
            let d2 = d.clone();
            o.submit(
                1,
                &format!("obj-{}", i % 10000),
                "",
                vec![OsdOp::write(0, d)],
                Box::new(move |r| {
                    r.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    lat.fetch_add(s.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    go(o2, d2, next, done, lat, t0, secs);
                }),
            );
        }
        for _ in 0..depth {
            go(
                o.clone(),
                data.clone(),
                next.clone(),
                done.clone(),
                lat.clone(),
                t0,
                secs,
            );
        }
        std::thread::sleep(Duration::from_secs_f64(secs + 0.5));
        let n = done.load(Ordering::Relaxed);
        println!(
            "depth {depth}: {n} writes, {:.0} IOPS, avg {:.1} us",
            n as f64 / secs,
            lat.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
        );
    }
    o.shutdown();
    msgr.shutdown();
    osd.shutdown().unwrap();
}
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("qb-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
