//! `osdkit demo`: an embedded daemon context, exercised through its own admin socket.
//!
//! It grows with each capability; today it shows the runtime core (config, log, perf counters,
//! SafeTimer, Finisher, Throttle, the admin socket) and the messenger: a client messenger and
//! the daemon's own exchange msgr2 messages over loopback; and a cluster: a monitor and three
//! OSDs in this process, objects written, read back and listed through the objecter. All real:
//! real sockets, real threads.

use crate::asok::client::AdminSocketClient;
use crate::asok::Request;
use crate::common::error::{Error, Result};
use crate::common::formatter::{render, FVal, Format};
use crate::common::perf::PerfCountersBuilder;
use crate::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ask(c: &AdminSocketClient, v: Value) -> Result<String> {
    let r = c.request(&v)?;
    if r.starts_with("ERROR:") {
        return Err(Error::new(libc::EIO, format!("{v} answered {r}")));
    }
    Ok(r)
}

fn parse(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| Error::inval(format!("reply is not JSON: {e}")))
}

/// Runs the demo; prints text, or one JSON object with `json`.
pub fn run(json_out: bool, dir: Option<PathBuf>) -> Result<()> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(e, d.display()))?;
            d
        }
        None => {
            tmp = TempDir::new()?;
            tmp.0.clone()
        }
    };
    let ctx = Context::new("osd.0", None)?;
    ctx.set_option("run_dir", &dir.to_string_lossy())?;
    ctx.set_option("log_file", &format!("{}/$cluster-$name.log", dir.display()))?;
    ctx.start()?;
    let asok = ctx.asok_path().ok_or_else(|| Error::inval("no admin socket"))?;
    let client = AdminSocketClient::new(&asok);

    // A counter set of our own, updated from the workload below.
    let mut b = PerfCountersBuilder::new("demo");
    let l_ops = b.add_u64_counter("ops", "operations completed");
    let l_lat = b.add_time_avg("op_latency", "queue-to-completion latency");
    let pc = b.build();
    ctx.perf().add(&pc);

    let served = Arc::new(AtomicU64::new(0));
    let s2 = served.clone();
    ctx.register_command(
        "echo name=msg,type=CephString",
        "echo a message back",
        Arc::new(move |r: &Request<'_>| {
            s2.fetch_add(1, Ordering::Relaxed);
            Ok(r.render(&FVal::obj().with("echo", FVal::str(r.arg_str("msg").unwrap_or_default()))))
        }),
    )?;

    // Workload: a throttle of 8 in flight feeds a finisher; a timer fires ticks, one cancelled.
    let timer = ctx.new_timer("demo");
    timer.init()?;
    let finisher = ctx.new_finisher("demo");
    finisher.start()?;
    let throttle = ctx.new_throttle("demo", 8);
    let ticks = Arc::new(AtomicU64::new(0));
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let t = ticks.clone();
        ids.extend(timer.add_event_after(Duration::from_millis(5 * (i + 1)), move || {
            t.fetch_add(1, Ordering::Relaxed);
        }));
    }
    let cancelled = timer.cancel_event(ids[4]);
    const OPS: u64 = 2000;
    let started = Instant::now();
    for _ in 0..OPS {
        throttle.get(1, 0);
        let (pc, th, t0) = (pc.clone(), throttle.clone(), Instant::now());
        finisher.queue(
            move |_r| {
                pc.inc(l_ops, 1);
                pc.tinc(l_lat, t0.elapsed());
                th.put(1);
            },
            0,
        );
    }
    finisher.wait_for_empty();
    let workload = started.elapsed();
    std::thread::sleep(Duration::from_millis(40));

    let msgr = msgr_demo(&ctx, &client)?;
    let cluster = cluster_demo(&dir)?;

    // Everything below goes through the real Unix socket, as `ceph --admin-daemon` would.
    let version = parse(&ask(&client, json!({"prefix": "version", "format": "json"}))?)?;
    ask(
        &client,
        json!({"prefix": "config set", "var": "debug_ms", "val": ["5"]}),
    )?;
    let debug_ms = parse(&ask(
        &client,
        json!({"prefix": "config get", "var": "debug_ms", "format": "json"}),
    )?)?;
    let echo = parse(&ask(
        &client,
        json!({"prefix": "echo", "msg": "hello", "format": "json"}),
    )?)?;
    let perf = parse(&ask(&client, json!({"prefix": "perf dump", "format": "json"}))?)?;
    let mut rtts: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            client.ping().map(|_| t.elapsed())
        })
        .collect::<Result<_>>()?;
    rtts.sort();
    let p50 = rtts[rtts.len() / 2];
    let p99 = rtts[rtts.len() * 99 / 100];
    let ncmds = parse(&ask(
        &client,
        json!({"prefix": "get_command_descriptions", "format": "json"}),
    )?)?
    .as_object()
    .map_or(0, |o| o.len());

    let summary = FVal::obj()
        .with("entity", FVal::str(ctx.name().to_string()))
        .with("asok_path", FVal::str(asok.to_string_lossy()))
        .with("version", FVal::from(&version["version"]))
        .with("admin_commands", FVal::U64(ncmds as u64))
        .with("ops", FVal::U64(perf["demo"]["ops"].as_u64().unwrap_or(0)))
        .with("ops_per_sec", FVal::U64((OPS as f64 / workload.as_secs_f64()) as u64))
        .with("op_latency_avg_s", FVal::from(&perf["demo"]["op_latency"]["avgtime"]))
        .with("throttle_gets", FVal::from(&perf["throttle-demo"]["get"]))
        .with("finisher_queue_len", FVal::from(&perf["finisher-demo"]["queue_len"]))
        .with("timer_ticks_fired", FVal::U64(ticks.load(Ordering::Relaxed)))
        .with("timer_tick_cancelled", FVal::Bool(cancelled))
        .with("debug_ms_after_config_set", FVal::from(&debug_ms["debug_ms"]))
        .with("echo_reply", FVal::from(&echo["echo"]))
        .with("asok_rtt_p50_us", FVal::U64(p50.as_micros() as u64))
        .with("asok_rtt_p99_us", FVal::U64(p99.as_micros() as u64))
        .with("msgr_addr", FVal::str(&msgr.addr))
        .with("msgr_stream_msgs", FVal::U64(msgr.stream_msgs))
        .with("msgr_stream_msgs_per_sec", FVal::U64(msgr.stream_rate as u64))
        .with("msgr_pingpong_p50_us", FVal::U64(msgr.p50_us))
        .with("msgr_pingpong_p99_us", FVal::U64(msgr.p99_us))
        .with("msgr_dump_connections", FVal::U64(msgr.dumped_conns))
        .with("cluster_osds_up", FVal::U64(cluster.osds_up))
        .with("cluster_epoch", FVal::U64(cluster.epoch))
        .with("cluster_objects_written", FVal::U64(cluster.objects))
        .with("cluster_objects_verified", FVal::U64(cluster.verified))
        .with("cluster_objects_listed", FVal::U64(cluster.listed))
        .with("cluster_write_iops", FVal::U64(cluster.write_iops as u64))
        .with("cluster_write_avg_us", FVal::U64(cluster.write_avg_us as u64))
        .with("cluster_read_iops", FVal::U64(cluster.read_iops as u64))
        .with("cluster_recovery_ms", FVal::U64((cluster.recovery_s * 1000.0) as u64))
        .with("cluster_recovered_objects", FVal::U64(cluster.recovered_objects))
        .with("cluster_recovery_kind", FVal::str(cluster.recovery_kind))
        .with("cluster_scrubbed_objects", FVal::U64(cluster.scrubbed))
        .with("cluster_inconsistent_objects", FVal::U64(cluster.inconsistent));

    timer.shutdown();
    finisher.stop();
    ctx.shutdown();

    if json_out {
        println!("{}", render(&summary, Format::Json));
    } else {
        println!("osdkit demo: an embedded {} context", ctx.name());
        println!("  admin socket      {} ({ncmds} commands)", asok.display());
        println!("  version           {}", version["version"].as_str().unwrap_or("?"));
        println!(
            "  workload          {OPS} ops through throttle(8) -> finisher in {:.1} ms ({:.0} ops/s)",
            workload.as_secs_f64() * 1e3,
            OPS as f64 / workload.as_secs_f64()
        );
        println!(
            "  perf dump         demo.ops={} op_latency.avgtime={} throttle-demo.get={}",
            perf["demo"]["ops"], perf["demo"]["op_latency"]["avgtime"], perf["throttle-demo"]["get"]
        );
        println!(
            "  safe_timer        {} of 4 ticks fired, 1 cancelled ({cancelled})",
            ticks.load(Ordering::Relaxed)
        );
        println!(
            "  config set        debug_ms 5 -> config get debug_ms = {}",
            debug_ms["debug_ms"]
        );
        println!("  echo msg=hello    -> {}", echo["echo"]);
        println!(
            "  asok round trip   p50 {} us, p99 {} us (200 pings)",
            p50.as_micros(),
            p99.as_micros()
        );
        println!(
            "  messenger         {} (msgr2, crc, auth none): {} x 4 KiB in {:.0} msgs/s, in order",
            msgr.addr, msgr.stream_msgs, msgr.stream_rate
        );
        println!(
            "  msgr ping-pong    p50 {} us, p99 {} us (1000 round trips of 4 KiB)",
            msgr.p50_us, msgr.p99_us
        );
        println!("  messenger dump    {} connection(s) open on osd.0", msgr.dumped_conns);
        println!(
            "  cluster           mon.a + {} OSDs up (osdmap e{}), pool data (32 PGs, size 2), all in this process",
            cluster.osds_up, cluster.epoch
        );
        println!(
            "  4 KiB writes      {} objects, 16 in flight: {:.0} writes/s, avg {:.0} us",
            cluster.objects, cluster.write_iops, cluster.write_avg_us
        );
        println!(
            "  4 KiB reads       {} of {} read back intact ({:.0} reads/s); ls lists {}",
            cluster.verified, cluster.objects, cluster.read_iops, cluster.listed
        );
        println!(
            "  recovery          osd.2 stopped for 100 writes, back and clean in {:.0} ms ({}: {} objects copied)",
            cluster.recovery_s * 1000.0,
            cluster.recovery_kind,
            cluster.recovered_objects
        );
        println!(
            "  deep scrub        {} objects, 2 copies each compared: {} inconsistent",
            cluster.scrubbed, cluster.inconsistent
        );
    }
    if served.load(Ordering::Relaxed) != 1 || ticks.load(Ordering::Relaxed) != 4 || perf["demo"]["ops"] != OPS {
        return Err(Error::new(libc::EIO, "demo workload did not complete as expected"));
    }
    Ok(())
}

struct ClusterDemo {
    osds_up: u64,
    epoch: u64,
    objects: u64,
    verified: u64,
    listed: u64,
    write_iops: f64,
    write_avg_us: f64,
    read_iops: f64,
    recovery_s: f64,
    /// Objects copied to bring osd.2's PGs back, and how (`log` or `backfill`).
    recovered_objects: u64,
    recovery_kind: &'static str,
    scrubbed: u64,
    inconsistent: u64,
}

/// A monitor and three OSDs in this process, a pool, then 4 KiB objects written at 16 in
/// flight through the objecter, read back and listed.
fn cluster_demo(dir: &std::path::Path) -> Result<ClusterDemo> {
    use crate::client::Rados;
    use crate::hosting::cluster::MiniCluster;
    use crate::types::osd_op::OsdOp;
    use parking_lot::{Condvar, Mutex};

    let cluster = MiniCluster::start(&dir.join("cluster"), 3, "mem", 2)?;
    let client = Rados::connect(&cluster.mon_addr(), "client.admin")?;
    let objecter = client.objecter();
    let pool = cluster.pool_id();

    const OBJECTS: u64 = 4000;
    const DEPTH: u64 = 16;
    let content = |i: u64| -> bytes::Bytes {
        let mut v = vec![(i % 251) as u8; 4096];
        v[..8].copy_from_slice(&i.to_le_bytes());
        bytes::Bytes::from(v)
    };
    // A window of DEPTH ops: each completion frees a slot for the next.
    let run = |read: bool| -> Result<(f64, f64, u64)> {
        let state = Arc::new((Mutex::new((0u64, 0u64, 0u64, 0u64, None::<Error>)), Condvar::new()));
        let t0 = Instant::now();
        for i in 0..OBJECTS {
            {
                let mut g = state.0.lock();
                while g.0 >= DEPTH {
                    state.1.wait(&mut g);
                }
                if let Some(e) = g.4.take() {
                    return Err(e);
                }
                g.0 += 1;
            }
            let st = state.clone();
            let sent = Instant::now();
            let want = content(i);
            let ops = if read {
                vec![OsdOp::read(0, 0)]
            } else {
                vec![OsdOp::writefull(want.clone())]
            };
            objecter.submit(
                pool,
                &format!("demo-{i}"),
                "",
                ops,
                Box::new(move |r| {
                    let mut g = st.0.lock();
                    g.0 -= 1;
                    g.1 += sent.elapsed().as_nanos() as u64;
                    match r {
                        Ok(rep) if rep.result == 0 => {
                            g.2 += 1;
                            if read && rep.ops[0].outdata == want {
                                g.3 += 1;
                            }
                        }
                        Ok(rep) => g.4 = Some(Error::new(-rep.result, "demo op failed")),
                        Err(e) => g.4 = Some(e),
                    }
                    st.1.notify_all();
                }),
            );
        }
        let mut g = state.0.lock();
        while g.0 > 0 {
            state.1.wait(&mut g);
        }
        if let Some(e) = g.4.take() {
            return Err(e);
        }
        let secs = t0.elapsed().as_secs_f64();
        Ok((
            g.2 as f64 / secs,
            g.1 as f64 / g.2.max(1) as f64 / 1000.0,
            if read { g.3 } else { g.2 },
        ))
    };
    let (write_iops, write_avg_us, written) = run(false)?;
    let (read_iops, _, verified) = run(true)?;
    let listed = objecter.list(pool)?.len() as u64;
    // An OSD away for 100 writes: it is recovered when it returns, then a deep scrub compares
    // both copies of every object.
    cluster.stop_osd(2)?;
    for i in 0..100 {
        client.put("data", &format!("demo-{i}"), &content(i))?;
    }
    let t = Instant::now();
    cluster.start_osd(2)?;
    cluster.wait_for_clean(Duration::from_secs(60))?;
    let recovery_s = t.elapsed().as_secs_f64();
    // How the primaries of osd.2's PGs brought it back: from their logs, or by backfill.
    let returned: Vec<serde_json::Value> = crate::client::pg::pg_dump(client.objecter(), Duration::from_secs(10))?
        .into_iter()
        .filter(|p| {
            p["acting"]
                .as_array()
                .is_some_and(|a| a.contains(&serde_json::json!(2)))
        })
        .collect();
    let recovered_objects: u64 = returned
        .iter()
        .filter_map(|p| p["last_recovery"]["objects"].as_u64())
        .sum();
    let recovery_kind = if returned.iter().all(|p| p["last_recovery"]["kind"] == "log") {
        "log"
    } else {
        "backfill"
    };
    let scrub = cluster.scrub(None, true, Duration::from_secs(60))?;
    let scrubbed: u64 = scrub.iter().map(|r| r.objects as u64).sum();
    let inconsistent: u64 = scrub.iter().map(|r| r.inconsistent.len() as u64).sum();
    let map = client.monc().osdmap();
    let (epoch, osds_up) = (u64::from(map.epoch), map.num_up() as u64);
    client.shutdown();
    cluster.shutdown();
    if verified != OBJECTS || listed != OBJECTS || written != OBJECTS || scrubbed != OBJECTS || inconsistent > 0 {
        return Err(Error::new(
            libc::EIO,
            format!("cluster demo: wrote {written}, verified {verified}, listed {listed}, scrubbed {scrubbed} ({inconsistent} inconsistent)"),
        ));
    }
    Ok(ClusterDemo {
        osds_up,
        epoch,
        objects: OBJECTS,
        verified,
        listed,
        write_iops,
        write_avg_us,
        read_iops,
        recovery_s,
        recovered_objects,
        recovery_kind,
        scrubbed,
        inconsistent,
    })
}

struct MsgrDemo {
    addr: String,
    stream_msgs: u64,
    stream_rate: f64,
    p50_us: u64,
    p99_us: u64,
    dumped_conns: u64,
}

/// The daemon's messenger echoes what a client messenger sends: a stream of 4 KiB messages
/// (checked for order), then ping-pong round trips, then `messenger dump` on the admin socket.
fn msgr_demo(ctx: &Context, asok: &AdminSocketClient) -> Result<MsgrDemo> {
    use crate::common::entity::EntityType;
    use crate::msgr::{dispatcher::Dispatcher, message::Message, messenger::Messenger, policy::Policy};
    use parking_lot::{Condvar, Mutex};

    const T_ECHO: u16 = 0x7301;
    struct Echo;
    impl Dispatcher for Echo {
        fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
            m.ty == T_ECHO
        }
        fn ms_fast_dispatch(&self, m: Message) {
            if let Some(c) = m.conn.clone() {
                let _ = c.send_message(Message::new(T_ECHO, m.front.clone()).with_data(m.data.clone()));
            }
        }
    }
    /// Counts replies, notes whether they came back in order, wakes the waiting thread.
    #[derive(Default)]
    struct Replies {
        got: Mutex<(u64, bool)>,
        cv: Condvar,
    }
    impl Dispatcher for Replies {
        fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
            m.ty == T_ECHO
        }
        fn ms_fast_dispatch(&self, m: Message) {
            let idx = m
                .front
                .get(..8)
                .map_or(u64::MAX, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
            let mut g = self.got.lock();
            g.1 &= idx == g.0;
            g.0 += 1;
            self.cv.notify_all();
        }
    }
    impl Replies {
        fn wait_for(&self, n: u64) -> Result<bool> {
            let mut g = self.got.lock();
            let deadline = Instant::now() + Duration::from_secs(20);
            while g.0 < n {
                if self.cv.wait_until(&mut g, deadline).timed_out() {
                    return Err(Error::new(
                        libc::ETIMEDOUT,
                        format!("messenger demo: {} of {n} replies", g.0),
                    ));
                }
            }
            Ok(g.1)
        }
    }

    let srv = Messenger::new(ctx, &ctx.name().to_string(), None)?;
    srv.set_policy(EntityType::Client, Policy::stateful_server());
    srv.add_dispatcher_tail(Arc::new(Echo));
    let addr = srv.bind("127.0.0.1:0".parse().expect("literal address"))?;
    srv.start()?;
    let cctx = Context::new("client.admin", None)?;
    cctx.set_option("admin_socket", "")?;
    cctx.set_option("log_file", "")?;
    cctx.start()?;
    let cli = Messenger::new(&cctx, "client.admin", None)?;
    cli.set_default_policy(Policy::lossless_client());
    let replies = Arc::new(Replies {
        got: Mutex::new((0, true)),
        cv: Condvar::new(),
    });
    cli.add_dispatcher_tail(replies.clone());
    cli.start()?;
    let conn = cli.connect_to(EntityType::Osd, &addr)?;
    let data = bytes::Bytes::from(vec![0xa5u8; 4096]);
    let msg = |i: u64| Message::new(T_ECHO, i.to_le_bytes().to_vec()).with_data(data.clone());

    const STREAM: u64 = 20_000;
    let t0 = Instant::now();
    for i in 0..STREAM {
        conn.send_message(msg(i))?;
    }
    let in_order = replies.wait_for(STREAM)?;
    let stream_rate = STREAM as f64 / t0.elapsed().as_secs_f64();
    let mut rtts = Vec::with_capacity(1000);
    for i in STREAM..STREAM + 1000 {
        let t = Instant::now();
        conn.send_message(msg(i))?;
        replies.wait_for(i + 1)?;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let dump = parse(&ask(asok, json!({"prefix": "messenger dump", "format": "json"}))?)?;
    let dumped_conns = dump["messengers"][0]["connections"]
        .as_array()
        .map_or(0, |a| a.len() as u64);
    cli.shutdown();
    cctx.shutdown();
    srv.shutdown();
    if !in_order {
        return Err(Error::new(libc::EIO, "messenger demo: replies came back out of order"));
    }
    Ok(MsgrDemo {
        addr: addr.to_string(),
        stream_msgs: STREAM,
        stream_rate,
        p50_us: rtts[rtts.len() / 2].as_micros() as u64,
        p99_us: rtts[rtts.len() * 99 / 100].as_micros() as u64,
        dumped_conns,
    })
}

/// A temporary directory removed on drop (no extra dependency for one use).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir();
        for i in 0..100u32 {
            let p = base.join(format!("osdkit-demo-{}-{i}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(TempDir(p));
            }
        }
        Err(Error::new(libc::EEXIST, "cannot create a temporary directory"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
