//! The OSD (DESIGN.md §3), built up issue by issue: the sharded op work queue and its
//! scheduler, the op tracker, op execution, and `Osd`, which joins them.
//!
//! `Osd`: one OSD's op path, end to end (reference §8.3): the public messenger fast-dispatches
//! `CEPH_MSG_OSD_OP` on its worker thread, the op is tracked (`OpTracker`) and queued on the
//! `ShardedOpWQ` by PG, a `tp_osd_tp` worker executes it against the `ObjectStore`
//! (`pg_ops`), and the reply goes back on the client's connection once the write is durable.
//!
//! The map comes from outside (`set_osdmap`): the monitor client feeds it in a daemon; tests
//! and embedded hosts may set one directly. Replication is the next issue; today the OSD serves
//! every PG of the map's pools that it is asked for.

pub mod heartbeat;
pub mod op_tracker;
pub mod op_wq;
pub mod pg;
pub mod pg_ops;
mod recovery;
pub mod scheduler;
pub mod scrub;

use op_tracker::{OpRef, OpTracker};
use op_wq::{PgKey, ShardedOpWQ};

use crate::common::error::{Error, Result};
use crate::common::perf::{PerfCounters, PerfCountersBuilder};
use crate::msgr::addr::EntityAddr;
use crate::msgr::connection::ConnectionRef;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::os::{CollId, ObjectId, ObjectStore, Transaction};
use crate::types::messages::CEPH_MSG_OSD_OP;
use crate::types::osd_op::{MOsdOp, MOsdOpReply, CEPH_OSD_FLAG_ACK, CEPH_OSD_FLAG_ONDISK, CEPH_OSD_OP_PGNLS};
use crate::types::osdmap::OsdMap;
use crate::Context;
use parking_lot::{Mutex, RwLock};
use scheduler::cutoff_from_option;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

// Perf counter indices, in the order `osd_perf` adds them (Ceph's names).
const L_OP: usize = 0;
const L_OP_W: usize = 1;
const L_OP_R: usize = 2;
const L_OP_LAT: usize = 3;
const L_OP_W_LAT: usize = 4;
const L_OP_R_LAT: usize = 5;
const L_OP_IN_BYTES: usize = 6;
const L_OP_OUT_BYTES: usize = 7;
const L_OP_WIP: usize = 8;

fn osd_perf() -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new("osd");
    let idx = [
        b.add_u64_counter("op", "Client operations"),
        b.add_u64_counter("op_w", "Client write operations"),
        b.add_u64_counter("op_r", "Client read operations"),
        b.add_time_avg("op_latency", "Latency of client operations (including queue time)"),
        b.add_time_avg("op_w_latency", "Latency of write operation (including queue time)"),
        b.add_time_avg("op_r_latency", "Latency of read operation (including queue time)"),
        b.add_u64_counter("op_in_bytes", "Client operations total write size"),
        b.add_u64_counter("op_out_bytes", "Client operations total read size"),
        b.add_u64("op_wip", "Replication operations currently being processed (primary)"),
    ];
    debug_assert_eq!(
        idx,
        [
            L_OP,
            L_OP_W,
            L_OP_R,
            L_OP_LAT,
            L_OP_W_LAT,
            L_OP_R_LAT,
            L_OP_IN_BYTES,
            L_OP_OUT_BYTES,
            L_OP_WIP
        ]
    );
    b.build()
}

/// The IP of the cluster network: `cluster_addr` when set (an IP or an address), else the
/// public one.
fn cluster_ip(conf: &crate::common::config::Config, public: SocketAddr) -> Result<std::net::IpAddr> {
    match conf.get_str("cluster_addr") {
        s if s.is_empty() => Ok(public.ip()),
        s => s
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| s.parse::<EntityAddr>().ok().and_then(|a| crate::msgr::addr::ip_of(&a)))
            .ok_or_else(|| Error::inval(format!("cluster_addr '{s}' is not an address"))),
    }
}

/// The largest op (bytes of input) `osd_op_inline_idle` runs on a messenger thread.
const INLINE_MAX_COST: u64 = 64 << 10;

/// A client op on its way through the queue.
pub struct OpItem {
    req: MOsdOp,
    conn: ConnectionRef,
    tracked: OpRef,
    received: Instant,
}

struct Shared {
    whoami: i32,
    store: Arc<dyn ObjectStore>,
    map: RwLock<Arc<OsdMap>>,
    /// PG collections known to exist in the store.
    colls: Mutex<HashSet<CollId>>,
    perf: Arc<PerfCounters>,
    /// Replication state of the PGs this OSD has seen.
    pgs: Mutex<crate::common::hash::FxHashMap<PgKey, Arc<Mutex<pg::Pg>>>>,
    /// The cluster messenger: repops to and from the other OSDs.
    cluster: Messenger,
    next_repop_tid: std::sync::atomic::AtomicU64,
    wq: std::sync::OnceLock<std::sync::Weak<ShardedOpWQ<OpItem>>>,
    /// Ops from clients whose map is newer than ours: run again when ours catches up.
    waiting_for_map: Mutex<Vec<(PgKey, OpItem)>>,
    /// Set first thing on the way down.
    stopping: std::sync::atomic::AtomicBool,
    /// Ourselves, for completions that outlive the call that made them.
    me: std::sync::OnceLock<std::sync::Weak<Shared>>,
    /// Peering steps waiting for an answer, by tid.
    recovery_waits: Mutex<std::collections::HashMap<u64, crossbeam_channel::Sender<Message>>>,
    /// PGs to peer, for the `osd_recovery` thread.
    recovery_queue: Mutex<std::collections::VecDeque<PgKey>>,
    /// Active PGs with copies still to make, served a batch at a time after peering.
    recover_queue: Mutex<std::collections::VecDeque<PgKey>>,
    recovery_cv: parking_lot::Condvar,
    /// One scrub at a time.
    scrub_lock: Mutex<()>,
    /// Scrub commands started and not yet answered.
    scrubs_waiting: std::sync::atomic::AtomicUsize,
    /// `osd_max_pg_log_entries` (read at start).
    max_log_entries: usize,
    /// `osd_pg_log_recovery` (read at start); off, writes keep no object log.
    log_recovery: bool,
    /// For options read where they apply (`osd_recovery_sleep`).
    conf: Arc<crate::common::config::Config>,
}

/// Scrub commands an OSD takes before it answers `-EBUSY`.
const MAX_SCRUBS_WAITING: usize = 64;

pub struct Osd {
    ctx: Context,
    shared: Arc<Shared>,
    msgr: Messenger,
    monc: Option<Arc<crate::mon::client::MonClient>>,
    hb: Option<Arc<heartbeat::Heartbeat>>,
    /// The addresses this OSD booted with (`start_with_mon`).
    addrs: Option<crate::types::osdmap::OsdAddrs>,
    wq: Arc<ShardedOpWQ<OpItem>>,
    tracker: OpTracker,
    asok_ids: Vec<u64>,
    recovery: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// What was faulted in at start for a mem store.
    prefault: Prefault,
}

struct FastDispatch {
    shared: Arc<Shared>,
    wq: std::sync::Weak<ShardedOpWQ<OpItem>>,
    tracker: OpTracker,
    priority: u16,
    /// `osd_op_inline_idle` and a store that does not block.
    inline: bool,
}

fn reply_error(conn: &ConnectionRef, tid: u64, errno: i32, epoch: u32) {
    let r = MOsdOpReply {
        tid,
        oid: String::new(),
        pgid: crate::types::placement::PgId::new(0, 0),
        result: errno,
        epoch,
        flags: CEPH_OSD_FLAG_ACK,
        version: 0,
        attempt: 0,
        ops: Vec::new(),
    };
    if let Ok(m) = r.to_message() {
        let _ = conn.send_message(m);
    }
}

impl Dispatcher for FastDispatch {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.ty == CEPH_MSG_OSD_OP
    }
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        // The monitor's mark-me-down ack: `mark_me_down` waits for the map it announces.
        if m.ty == crate::types::messages::MSG_OSD_MARK_ME_DOWN {
            log::debug!(target: "osd", "osd.{}: mark-me-down acked", self.shared.whoami);
            return None;
        }
        if m.ty == crate::types::messages::MSG_COMMAND {
            self.shared.handle_command(m);
            return None;
        }
        Some(m)
    }
    fn ms_fast_dispatch(&self, m: Message) {
        let received = m.recv_stamp.unwrap_or_else(Instant::now);
        let Some(conn) = m.conn.clone() else { return };
        let epoch = self.shared.map.read().epoch;
        let req = match MOsdOp::from_message(&m) {
            Ok(r) => r,
            Err(e) => {
                // A malformed op gets an errno reply; the session and the OSD carry on.
                log::warn!(target: "osd", "osd.{}: bad op from {}: {e}", self.shared.whoami, conn.peer_addr());
                return reply_error(&conn, m.tid, -libc::EINVAL, epoch);
            }
        };
        let Some(pool) = self.shared.map.read().pool(req.pool).cloned() else {
            return reply_error(&conn, req.tid, -libc::ENOENT, epoch);
        };
        // The PG is the client's if it gave one (the objecter computes it); otherwise ours.
        let pg = if req.pgid.pool == req.pool && req.pgid.seed < pool.pg_num {
            req.pgid
        } else {
            pool.object_to_pg(&req.oid, &req.nspace).1
        };
        let tracked = self.tracker.create(format!(
            "osd_op({}.{}:{} {} {} [{}])",
            req.client,
            req.client_inc,
            req.tid,
            pg,
            req.oid,
            req.ops
                .iter()
                .map(|o| crate::types::osd_op::op_name(o.op).unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(",")
        ));
        tracked.mark_event("queued_for_pg");
        let cost: u64 = req.ops.iter().map(|o| o.indata.len() as u64).sum::<u64>().max(1);
        let owner = owner_of(&req);
        let Some(wq) = self.wq.upgrade() else { return };
        let key = PgKey {
            pool: pg.pool,
            seed: pg.seed,
        };
        let item = OpItem {
            req,
            conn,
            tracked,
            received,
        };
        // A large write's copy would stall the messenger's reads; it goes to a worker.
        let queued = if self.inline && cost <= INLINE_MAX_COST {
            wq.enqueue_or_run(key, owner, self.priority, cost, item)
        } else {
            wq.enqueue(key, owner, self.priority, cost, item)
        };
        if let Err(e) = queued {
            log::debug!(target: "osd", "op dropped: {e}");
        }
    }
}

impl Shared {
    fn ensure_coll(&self, c: &CollId) -> Result<()> {
        if self.colls.lock().contains(c) {
            return Ok(());
        }
        if !self.store.collection_exists(c)? {
            let mut t = Transaction::new();
            t.create_collection();
            match self.store.apply_transaction(c, t) {
                Ok(()) => {}
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => return Err(e),
            }
        }
        self.colls.lock().insert(*c);
        Ok(())
    }

    fn pg(&self, key: PgKey) -> Arc<Mutex<pg::Pg>> {
        let pg = self.pgs.lock().entry(key).or_default().clone();
        {
            let mut g = pg.lock();
            if !g.loaded {
                g.loaded = true;
                let (lu, lc) = pg::load_info(&*self.store, &CollId::new(key.pool, key.seed));
                g.last_update = lu;
                g.last_complete = lc;
                g.objlog.reset(lu);
            }
        }
        pg
    }

    /// Each PG this OSD knows, as `dump_pgs` shows it: Ceph's state words for a primary
    /// (`peering`, `recovering` or `backfilling` while it peers; then `active` or, below
    /// `min_size`, `peered`; `undersized+degraded` with fewer than `size` OSDs, `clean` with all
    /// of them; `scrubbing[+deep]` and `inconsistent` after a scrub that found errors),
    /// `replica` or `stray` otherwise. `objects` adds each PG's object count and bytes, which
    /// costs a look at every object.
    fn pg_states(&self, objects: bool) -> Vec<serde_json::Value> {
        let map = self.map.read().clone();
        let mut pgs: Vec<(PgKey, Arc<Mutex<pg::Pg>>)> = self.pgs.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
        pgs.sort_by_key(|(k, _)| *k);
        pgs.into_iter()
            .filter_map(|(key, pg)| {
                let pool = map.pool(key.pool)?;
                let pgid = crate::types::placement::PgId::new(key.pool, key.seed);
                let acting = map.pg_to_up_osds(pgid);
                let g = pg.lock();
                let (role, state) = if acting.first() == Some(&self.whoami) {
                    let mut w = Vec::new();
                    if g.peering {
                        w.push("peering");
                    } else {
                        w.push(if acting.len() >= pool.min_size as usize {
                            "active"
                        } else {
                            "peered"
                        });
                        if g.recovering {
                            w.push(g.phase); // recovering or backfilling
                        }
                    }
                    if acting.len() < pool.size as usize {
                        w.extend(["undersized", "degraded"]);
                    } else if g.recovering {
                        w.push("degraded");
                    } else if !g.peering {
                        w.push("clean");
                    }
                    match g.scrubbing {
                        Some(true) => w.extend(["scrubbing", "deep"]),
                        Some(false) => w.push("scrubbing"),
                        None => {}
                    }
                    if g.scrub.errors > 0 {
                        w.push("inconsistent");
                    }
                    ("primary", w.join("+"))
                } else if acting.contains(&self.whoami) {
                    ("replica", "replica".to_string())
                } else {
                    ("stray", "stray".to_string())
                };
                let stamp = |t: Option<std::time::SystemTime>| t.map(crate::cluster::client::format_time);
                let mut v = serde_json::json!({
                    "pgid": pgid.to_string(),
                    "state": state,
                    "role": role,
                    "acting": acting,
                    "acting_primary": acting.first(),
                    "last_update": g.last_update.to_string(),
                    "reported_epoch": map.epoch,
                    "log_size": g.log.len(),
                    "repops_in_flight": g.repops.len(),
                    "ops_waiting": g.parked.len() + g.waiting_for_commit.len()
                        + g.missing.values().map(|m| m.waiting.len()).sum::<usize>(),
                    "objects_missing": g.missing.len(),
                    "last_scrub_stamp": stamp(g.scrub.last_scrub),
                    "last_deep_scrub_stamp": stamp(g.scrub.last_deep_scrub),
                    "num_scrub_errors": g.scrub.errors,
                    "log_tail": g.objlog.tail.to_string(),
                    "log_entries": g.objlog.len(),
                    "last_recovery": g.last_recovery.map(|(kind, objects)| serde_json::json!({"kind": kind, "objects": objects})),
                    "num_objects_inconsistent": g.scrub.inconsistent,
                });
                drop(g);
                if objects {
                    let coll = CollId::new(key.pool, key.seed);
                    let live: Vec<ObjectId> = pg::load_versions(&*self.store, &coll)
                        .into_iter()
                        .filter(|e| !e.deleted)
                        .map(|e| e.oid)
                        .collect();
                    let bytes: u64 = live
                        .iter()
                        .filter_map(|o| self.store.stat(&coll, o).ok())
                        .map(|s| s.size)
                        .sum();
                    v["num_objects"] = live.len().into();
                    v["num_bytes"] = bytes.into();
                }
                Some(v)
            })
            .collect()
    }

    /// A command sent to this OSD (`MCommand`, like `ceph tell osd.N`): `pg dump` answers
    /// with this OSD's PGs; `pg scrub` and `pg deep-scrub` (`pgid`) answer once the scrub is
    /// done, from a thread of their own. Anything else gets `-EINVAL`.
    fn handle_command(&self, m: Message) {
        use crate::types::mon_messages::{MCommand, MCommandReply};
        let Some(conn) = m.conn.clone() else { return };
        let reply = move |tid: u64, r: Result<serde_json::Value>| {
            let ack = match r {
                Ok(v) => MCommandReply {
                    tid,
                    r: 0,
                    rs: String::new(),
                    outbl: bytes::Bytes::from(v.to_string()),
                },
                Err(e) => MCommandReply {
                    tid,
                    r: -e.errno.abs(),
                    rs: e.to_string(),
                    outbl: bytes::Bytes::new(),
                },
            };
            let _ = conn.send_message(ack.to_msg());
        };
        let Some(c) = self.decode::<MCommand>(&m, "command") else {
            return reply(m.tid, Err(Error::inval("malformed command message")));
        };
        let args: serde_json::Value = match serde_json::from_str(&c.cmd) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => return reply(c.tid, Err(Error::inval("a command is one JSON object"))),
        };
        let prefix = args["prefix"].as_str().unwrap_or_default();
        match prefix {
            "pg dump" => reply(c.tid, Ok(serde_json::json!({ "pg_stats": self.pg_states(true) }))),
            "pg scrub" | "pg deep-scrub" => {
                let pgid = match args["pgid"].as_str().map(str::parse::<crate::types::placement::PgId>) {
                    Some(Ok(p)) => p,
                    _ => return reply(c.tid, Err(Error::inval(format!("{prefix}: missing or bad 'pgid'")))),
                };
                let deep = prefix == "pg deep-scrub";
                if self.scrubs_waiting.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= MAX_SCRUBS_WAITING {
                    self.scrubs_waiting.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    return reply(c.tid, Err(Error::new(libc::EBUSY, "too many scrubs waiting")));
                }
                let me = self.me.get().cloned().unwrap_or_default();
                let spawned = std::thread::Builder::new().name("osd_scrub".into()).spawn(move || {
                    let Some(shared) = me.upgrade() else { return };
                    let r = shared.scrub_pg(pgid, deep).map(|rep| rep.to_json());
                    shared.scrubs_waiting.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    reply(c.tid, r);
                });
                if let Err(e) = spawned {
                    self.scrubs_waiting.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    log::warn!(target: "osd", "osd.{}: no scrub thread: {e}", self.whoami);
                }
            }
            _ => reply(c.tid, Err(Error::inval(format!("unknown command '{prefix}'")))),
        }
    }

    /// Queues `op` again (a map or the PG's acting set changed while it waited).
    fn requeue(&self, key: PgKey, op: OpItem) {
        if let Some(wq) = self.wq.get().and_then(std::sync::Weak::upgrade) {
            let owner = owner_of(&op.req);
            let _ = wq.enqueue(key, owner, CLIENT_PRIORITY, 1, op);
        }
    }

    /// A new map: PGs whose acting set changed start peering (see `recovery`), repops stop
    /// waiting for replicas that left, parked ops of PGs that can serve run again, and so do
    /// ops that waited for this epoch.
    fn on_map(&self, map: &OsdMap) {
        self.note_intervals(map);
        let pgs: Vec<(PgKey, Arc<Mutex<pg::Pg>>)> = self.pgs.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
        for (key, pg) in pgs {
            let parked = {
                let mut g = pg.lock();
                if g.peering || g.scrubbing.is_some() {
                    continue;
                }
                std::mem::take(&mut g.parked)
            };
            for op in parked {
                self.requeue(key, op);
            }
        }
        let ready: Vec<(PgKey, OpItem)> = {
            let mut w = self.waiting_for_map.lock();
            let (ready, wait) = std::mem::take(&mut *w)
                .into_iter()
                .partition(|(_, o)| o.req.epoch <= map.epoch);
            *w = wait;
            ready
        };
        for (key, op) in ready {
            self.requeue(key, op);
        }
    }

    fn send_reply(&self, op: &OpItem, reply: MOsdOpReply, epoch: u32) {
        match reply.to_message() {
            Ok(m) => {
                let _ = op.conn.send_message(m);
            }
            Err(e) => reply_error(&op.conn, reply.tid, -e.errno.abs(), epoch),
        }
    }

    /// Runs on a `tp_osd_tp` thread; the PG's items come here one at a time, in order.
    fn handle(&self, key: PgKey, mut op: OpItem) {
        op.tracked.mark_event("reached_pg");
        let map = self.map.read().clone();
        let epoch = map.epoch;
        if op.req.epoch > epoch {
            // The client knows a newer map: wait for it before judging where the op belongs.
            op.tracked.mark_event("waiting_for_map");
            let mut w = self.waiting_for_map.lock();
            // Checked again under the lock: `on_map` may have run since.
            if op.req.epoch > self.map.read().epoch {
                w.push((key, op));
                return;
            }
            drop(w);
            return self.requeue(key, op);
        }
        let pgid = crate::types::placement::PgId::new(key.pool, key.seed);
        let acting = map.pg_to_up_osds(pgid);
        // A map without any OSD up (an OSD run without a monitor, fed only pools) makes this
        // OSD serve every PG alone.
        if !acting.is_empty() && acting[0] != self.whoami {
            // Not the primary in our map: the client's map is older, and it resends once its
            // own map shows the new primary (Ceph drops misdirected ops the same way).
            log::debug!(target: "osd", "osd.{}: op for pg {pgid} whose primary is osd.{}", self.whoami, acting[0]);
            op.tracked.mark_event("misdirected");
            return;
        }
        let min_size = map.pool(key.pool).map_or(1, |p| p.min_size as usize);
        let pg = self.pg(key);
        let is_write = op.req.has_write();
        let reqid = op.req.reqid();
        let mut reply = MOsdOpReply::for_request(&op.req, epoch);
        reply.pgid = pgid;
        {
            let mut g = pg.lock();
            if !acting.is_empty() && acting.len() < min_size {
                // Too few copies to accept I/O: the op waits (it is not lost) for a map with more.
                op.tracked.mark_event("waiting_for_min_size");
                g.parked.push(op);
                return;
            }
            if g.peering || (!acting.is_empty() && g.noted_epoch < epoch) {
                // Peering, or about to: our map is newer than the one the PG's interval was
                // judged by, and a write now could go out before the PG learns what it lacks.
                op.tracked.mark_event("waiting_for_peered");
                g.parked.push(op);
                return;
            }
            if g.scrubbing.is_some() {
                op.tracked.mark_event("waiting_for_scrub");
                g.parked.push(op);
                return;
            }
            if epoch < g.fence {
                // A newer interval is peering this PG elsewhere: our map is behind, and the
                // op is judged again when it catches up.
                op.tracked.mark_event("waiting_for_map");
                g.parked.push(op);
                return;
            }
            if g.recovering {
                if op.req.ops.iter().any(|o| o.op == CEPH_OSD_OP_PGNLS) {
                    // A listing needs every object here.
                    op.tracked.mark_event("waiting_for_recovery");
                    g.parked.push(op);
                    return;
                }
                let oid = ObjectId::new(op.req.pool, op.req.nspace.clone(), op.req.oid.clone());
                if g.waits_for_recovery(&oid, is_write, self.whoami) {
                    op.tracked.mark_event(if is_write {
                        "waiting_for_degraded_object"
                    } else {
                        "waiting_for_unreadable_object"
                    });
                    if let Some(m) = g.missing.get_mut(&oid) {
                        m.waiting.push(op);
                    }
                    return;
                }
            }
            // Writes pipeline (replicas apply them in order); a read, or a resend of a write
            // still replicating, waits until the PG's writes are committed, and so does
            // everything after it, to keep the PG's order.
            let dup = if is_write { g.log.lookup(&reqid) } else { None };
            let must_wait = !is_write || dup.is_some();
            if !g.waiting_for_commit.is_empty() || (must_wait && !g.repops.is_empty()) {
                op.tracked.mark_event("waiting_for_commit");
                g.waiting_for_commit.push(op);
                return;
            }
            if let Some((v, result)) = dup {
                // A resend of a write this PG already holds: answer it, do not apply it twice.
                drop(g);
                op.tracked.mark_event("duplicate");
                reply.result = result;
                reply.version = v.version;
                for r in reply.ops.iter_mut() {
                    r.outdata = bytes::Bytes::new();
                }
                return self.finish(op, reply, true, 0);
            }
            if is_write {
                // Until its transaction is applied (in `submit_write`) or it fails: fencing
                // and scrubbing wait for this count to reach zero.
                g.applying.inc();
            }
        }
        let release = || {
            if is_write {
                pg.lock().applying.dec();
            }
        };
        let coll = CollId::new(key.pool, key.seed);
        if let Err(e) = self.ensure_coll(&coll) {
            release();
            return reply_error(&op.conn, op.req.tid, -e.errno.abs(), epoch);
        }
        op.tracked.mark_event("started");
        let in_bytes: u64 = op.req.ops.iter().map(|o| o.indata.len() as u64).sum();
        if op.req.ops.len() == 1 && op.req.ops[0].op == CEPH_OSD_OP_PGNLS {
            let o = &op.req.ops[0];
            match pg_ops::list_pg(&*self.store, &coll, &o.name, o.length) {
                Ok((names, _more)) => reply.ops[0].outdata = crate::types::osd_op::encode_string_list(&names),
                Err(e) => reply.result = e,
            }
        } else if op.req.oid.is_empty() {
            // The empty name is the PG's metadata object.
            reply.result = -libc::EINVAL;
        } else {
            let oid = ObjectId::new(op.req.pool, op.req.nspace.clone(), op.req.oid.clone());
            let mut ops = std::mem::take(&mut op.req.ops);
            let done = pg_ops::execute(&*self.store, &coll, &oid, &mut ops);
            reply.result = done.result;
            for (r, o) in reply.ops.iter_mut().zip(ops) {
                r.rval = o.rval;
                r.outdata = o.outdata;
            }
            if let Some(txn) = done.txn {
                return self.submit_write(&map, key, &pg, &acting, reqid, txn, &coll, op, reply, in_bytes);
            }
        }
        release();
        self.finish(op, reply, is_write, in_bytes);
    }

    /// Sends the reply and counts the op.
    fn finish(&self, op: OpItem, mut reply: MOsdOpReply, is_write: bool, in_bytes: u64) {
        reply.flags = if is_write {
            CEPH_OSD_FLAG_ACK | CEPH_OSD_FLAG_ONDISK
        } else {
            CEPH_OSD_FLAG_ACK
        };
        let out_bytes: u64 = reply.ops.iter().map(|o| o.outdata.len() as u64).sum();
        let epoch = reply.epoch;
        self.send_reply(&op, reply, epoch);
        let lat = op.received.elapsed();
        self.perf.inc(L_OP, 1);
        self.perf.tinc(L_OP_LAT, lat);
        if is_write {
            self.perf.inc(L_OP_W, 1);
            self.perf.tinc(L_OP_W_LAT, lat);
            self.perf.inc(L_OP_IN_BYTES, in_bytes);
        } else {
            self.perf.inc(L_OP_R, 1);
            self.perf.tinc(L_OP_R_LAT, lat);
        }
        self.perf.inc(L_OP_OUT_BYTES, out_bytes);
    }

    /// Versions `txn` (the PG's next version, stamped into its pgmeta), logs the request,
    /// ends the op's count in `applying` (taken by `handle`),
    /// sends it to the replicas of `acting` and applies it here. The client's reply goes out
    /// when the last replica still in the acting set has it — from the thread that reads that
    /// reply, so neither this worker nor a messenger thread ever waits on another OSD.
    #[allow(clippy::too_many_arguments)]
    fn submit_write(
        &self,
        map: &OsdMap,
        key: PgKey,
        pg: &Arc<Mutex<pg::Pg>>,
        acting: &[i32],
        reqid: crate::types::osd_op::OsdReqId,
        mut txn: Transaction,
        coll: &CollId,
        op: OpItem,
        mut reply: MOsdOpReply,
        in_bytes: u64,
    ) {
        let epoch = reply.epoch;
        let replicas: Vec<i32> = acting.iter().copied().filter(|o| *o != self.whoami).collect();
        let tid = self.next_repop_tid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (version, previous) = {
            let mut g = pg.lock();
            let previous = g.last_update;
            let v = pg::Eversion {
                epoch,
                version: g.last_update.version + 1,
            };
            g.last_update = v;
            g.log.add(reqid.clone(), v, reply.result);
            if self.log_recovery {
                g.objlog.append(v, &txn, self.max_log_entries);
            }
            (v, previous)
        };
        reply.version = version.version;
        let kept_reqid = reqid.clone();
        pg::stamp(coll, &mut txn, version);
        let repop = (!replicas.is_empty()).then(|| crate::types::rep_messages::MOsdRepOp {
            pgid: crate::types::placement::PgId::new(key.pool, key.seed),
            tid,
            from: self.whoami,
            map_epoch: epoch,
            version,
            reqid,
            txn: txn.clone(),
        });
        let applied = self.store.apply_transaction(coll, txn);
        if applied.is_err() {
            // Never applied and never sent: its version is taken back, or every replica would
            // see the next repop skip a number, and a resend would find it in the log.
            let mut g = pg.lock();
            if g.last_update == version {
                g.last_update = previous;
                g.log.forget(&kept_reqid);
                g.objlog.forget(version);
            }
        }
        if applied.is_err() || repop.is_none() {
            pg.lock().applying.dec();
        }
        if let Err(e) = applied {
            reply.result = -e.errno.abs();
            for r in reply.ops.iter_mut() {
                r.outdata = bytes::Bytes::new();
            }
            return self.finish(op, reply, true, in_bytes);
        }
        let Some(repop) = repop else {
            op.tracked.mark_event("commit_sent");
            return self.finish(op, reply, true, in_bytes);
        };
        let me = self.me.get().cloned().unwrap_or_default();
        let done: pg::OnRepop = Box::new(move |outcome| {
            let Some(shared) = me.upgrade() else { return };
            match outcome {
                pg::RepopOutcome::Committed => {
                    op.tracked.mark_event("commit_sent");
                    shared.finish(op, reply, true, in_bytes);
                }
                pg::RepopOutcome::Failed(e) => {
                    reply.result = e;
                    for r in reply.ops.iter_mut() {
                        r.outdata = bytes::Bytes::new();
                    }
                    shared.finish(op, reply, true, in_bytes);
                }
                // Applied here and maybe on replicas, but the PG has a new primary: the client
                // resends there, and the new primary finds the request in its log.
                pg::RepopOutcome::Deposed => op.tracked.mark_event("deposed"),
            }
        });
        pg.lock().repops.insert(
            tid,
            pg::Repop {
                waiting: replicas.iter().copied().collect(),
                done,
            },
        );
        let m = crate::types::messages::FrontMessage::to_message(&repop);
        for r in &replicas {
            let sent = map
                .osd(*r)
                .filter(|o| o.up)
                .ok_or_else(|| Error::noent(format!("osd.{r} is not up")))
                .and_then(|o| {
                    self.cluster
                        .connect_to(crate::common::entity::EntityType::Osd, &o.addrs.cluster)
                })
                .and_then(|c| c.send_message(m.clone_for_send()));
            if let Err(e) = sent {
                // The map will drop it from the acting set, which ends the wait for it.
                log::warn!(target: "osd", "osd.{}: repop to osd.{r}: {e}", self.whoami);
            }
        }
        // Counted until sent: a peering primary's fence (its scan, on the same sessions) must
        // reach the replicas after this repop, or they would drop it as stale.
        pg.lock().applying.dec();
    }

    /// Runs finished repops' completions (outside the PG lock), then, once the PG has no
    /// write in flight, the ops that waited for that.
    fn complete_repops(&self, key: PgKey, pg: &Mutex<pg::Pg>, done: Vec<(pg::OnRepop, pg::RepopOutcome)>) {
        for (f, outcome) in done {
            f(outcome);
        }
        let waiting = {
            let mut g = pg.lock();
            if !g.repops.is_empty() {
                return;
            }
            std::mem::take(&mut g.waiting_for_commit)
        };
        for op in waiting {
            self.requeue(key, op);
        }
    }

    /// A replica's side of a repop: log it, apply it, answer once it is durable. Runs on the
    /// cluster messenger's dispatch thread, so one primary's repops apply in the order sent.
    fn handle_repop(&self, m: &Message) {
        use crate::types::messages::FrontMessage;
        use crate::types::rep_messages::{MOsdRepOp, MOsdRepOpReply};
        let Some(conn) = m.conn.clone() else { return };
        let Some(mut r) = self.decode::<MOsdRepOp>(m, "repop") else {
            return;
        };
        let key = PgKey {
            pool: r.pgid.pool,
            seed: r.pgid.seed,
        };
        let coll = CollId::new(key.pool, key.seed);
        let reply = |result: i32| MOsdRepOpReply {
            pgid: r.pgid,
            tid: r.tid,
            from: self.whoami,
            result,
        };
        if let Err(e) = self.ensure_coll(&coll) {
            let _ = conn.send_message(reply(-e.errno.abs()).to_message());
            return;
        }
        let pg = self.pg(key);
        let applying = {
            let mut g = pg.lock();
            if r.map_epoch < g.fence {
                // From a primary of an interval that a newer primary has peered: not applied
                // and not answered; that primary learns from its next map that it is deposed.
                log::debug!(target: "osd", "osd.{}: dropped repop of e{} for pg {} fenced at e{}", self.whoami, r.map_epoch, r.pgid, g.fence);
                return;
            }
            if r.version > g.last_update && r.version.version != g.last_update.version + 1 {
                // The primary numbers its writes one after another, and peering leaves every
                // copy at the same last_update: a write in between never reached this copy.
                log::error!(target: "osd", "osd.{}: pg {}: repop {} follows {}: a write in between is missing here", self.whoami, r.pgid, r.version, g.last_update);
                g.damaged.store(true, std::sync::atomic::Ordering::Release);
            }
            if g.damaged.load(std::sync::atomic::Ordering::Acquire) {
                pg::unstamp(&coll, &mut r.txn);
            }
            g.last_update = g.last_update.max(r.version);
            g.log.add(r.reqid.clone(), r.version, 0);
            if self.log_recovery {
                g.objlog.append(r.version, &r.txn, self.max_log_entries);
            }
            let none = pg::Eversion::default();
            if g.damaged.load(std::sync::atomic::Ordering::Acquire) && g.last_complete != Some(none) {
                // A write is missing here, or failed to apply: record, with this one, that
                // this copy is complete to no known version, so that the next peering
                // backfills it.
                g.last_complete = Some(none);
                pg::set_last_complete(&coll, &mut r.txn, g.last_complete);
            }
            g.applying.inc();
            (g.applying.clone(), g.damaged.clone())
        };
        let (applying, damaged) = applying;
        let ack = reply(0);
        let version = r.version;
        self.store.queue_transaction(
            &coll,
            r.txn,
            Box::new(move |res| {
                let ack = match res {
                    Ok(()) => ack,
                    Err(e) => {
                        log::warn!(target: "osd", "repop {version} of pg {} failed to apply: {e}", ack.pgid);
                        // Before the count drops: a fence waiting on it must see the damage.
                        damaged.store(true, std::sync::atomic::Ordering::Release);
                        MOsdRepOpReply {
                            result: -e.errno.abs(),
                            ..ack
                        }
                    }
                };
                applying.dec();
                let _ = conn.send_message(ack.to_message());
            }),
        );
    }

    fn handle_repop_reply(&self, m: &Message) {
        let Some(r) = self.decode::<crate::types::rep_messages::MOsdRepOpReply>(m, "repop reply") else {
            return;
        };
        let key = PgKey {
            pool: r.pgid.pool,
            seed: r.pgid.seed,
        };
        let pg = self.pgs.lock().get(&key).cloned();
        if let Some(pg) = pg {
            let done = pg.lock().on_reply(r.tid, r.from, r.result);
            self.complete_repops(key, &pg, done);
        }
    }
}

/// The scheduler's class of a client: one per client entity (hashed in place, no string).
fn owner_of(req: &MOsdOp) -> u64 {
    crate::common::hash::fx_hash(&req.client)
}

/// Priority of requeued client ops (`osd_client_op_priority`'s default).
const CLIENT_PRIORITY: u16 = 63;

/// Repops, recovery messages and their replies, on the cluster messenger. Weak: the shared
/// state holds that messenger, whose dispatcher chain holds this.
struct ClusterDispatch {
    shared: std::sync::Weak<Shared>,
}

impl Dispatcher for ClusterDispatch {
    // Repops and their replies are handled on the messenger worker that read them: in order
    // per connection (what replicas need), and without a hand-off to the dispatch thread, which
    // cost two thread wake-ups per replicated write. Neither waits on anything: the replica's
    // store commit completes through a callback.
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        matches!(
            m.ty,
            crate::types::messages::MSG_OSD_REPOP | crate::types::messages::MSG_OSD_REPOPREPLY
        )
    }
    fn ms_fast_dispatch(&self, m: Message) {
        if let Some(m) = self.ms_dispatch(m) {
            log::debug!(target: "osd", "unexpected fast message type {}", m.ty);
        }
    }
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        let Some(shared) = self.shared.upgrade() else {
            return Some(m);
        };
        match m.ty {
            crate::types::messages::MSG_OSD_REPOP => shared.handle_repop(&m),
            crate::types::messages::MSG_OSD_REPOPREPLY => shared.handle_repop_reply(&m),
            crate::types::messages::MSG_OSD_PG_SCAN => shared.handle_scan(m),
            crate::types::messages::MSG_OSD_PG_PULL => shared.handle_pull(m),
            crate::types::messages::MSG_OSD_PG_PUSH => shared.handle_push(m),
            crate::types::messages::MSG_OSD_PG_PUSH_REPLY => shared.handle_push_reply(m),
            crate::types::messages::MSG_OSD_REP_SCRUB => shared.handle_rep_scrub(m),
            crate::types::messages::MSG_OSD_REP_SCRUBMAP => shared.handle_rep_scrub_map(m),
            _ => return Some(m),
        }
        None
    }
}

/// What a mem-store OSD faulted in at start: `memstore_prefault_bytes` through the allocator
/// (logger `memstore_prefault`) and `memstore_prefault_frame_bytes` for large frames.
struct Prefault {
    perf: Option<Arc<PerfCounters>>,
    frames: Option<Arc<crate::msgr::recv_pool::PrefaultReserve>>,
}

impl Prefault {
    /// Faults both in, for a mem store (whose data is what the memory goes to), and has the
    /// messengers' large frames cut from the frame reserve.
    fn start(ctx: &Context, name: &str, store_kind: &str, msgrs: &[&Messenger]) -> Result<Prefault> {
        let conf = ctx.conf();
        let none = Prefault {
            perf: None,
            frames: None,
        };
        let bytes = conf.get_u64("memstore_prefault_bytes");
        let frame_bytes = conf.get_u64("memstore_prefault_frame_bytes");
        if store_kind != "mem" || bytes.saturating_add(frame_bytes) == 0 {
            return Ok(none);
        }
        let what = |e: Error| {
            Error::new(
                e.errno,
                format!(
                    "memstore_prefault_bytes = {bytes}, memstore_prefault_frame_bytes = {frame_bytes}: {}",
                    e.msg
                ),
            )
        };
        if let Some(avail) = crate::common::mem::mem_available() {
            if bytes.saturating_add(frame_bytes) > avail {
                return Err(what(Error::inval(format!(
                    "more than the system has available ({avail} bytes)"
                ))));
            }
        }
        let threads = conf.get_u64("ms_prefault_threads") as usize;
        let mut p = none;
        // The frames' reserve first: it is allocated too, and would otherwise take the memory
        // the allocator was asked to keep for everything else.
        if frame_bytes > 0 {
            let pools: Vec<_> = msgrs.iter().filter_map(|m| m.recv_pool()).collect();
            if pools.len() < msgrs.len() {
                return Err(what(Error::inval(
                    "memstore_prefault_frame_bytes needs ms_prefault_bytes > 0",
                )));
            }
            let r = crate::msgr::recv_pool::PrefaultReserve::fault_in(frame_bytes as usize, threads).map_err(what)?;
            for pool in pools {
                pool.set_reserve(r.clone());
            }
            let (n, _, took) = r.stats();
            log::info!(target: "osd", "{name}: faulted in {n} bytes for large frames in {took:?} ({threads} threads)");
            ctx.perf().add(r.perf());
            p.frames = Some(r);
        }
        if bytes > 0 {
            let took = match crate::common::mem::pretouch(bytes, threads) {
                Ok(t) => t,
                Err(e) => {
                    p.stop(ctx);
                    return Err(what(e));
                }
            };
            log::info!(target: "osd", "{name}: faulted in {bytes} bytes in {took:?} ({threads} threads); freed memory is kept");
            let mut b = PerfCountersBuilder::new("memstore_prefault");
            let idx = [
                b.add_u64(
                    "prefaulted_bytes",
                    "Bytes faulted in at startup (memstore_prefault_bytes)",
                ),
                b.add_time("prefault_time", "Time faulting them in took"),
            ];
            let perf = b.build();
            perf.set(idx[0], bytes);
            perf.tset(idx[1], took);
            ctx.perf().add(&perf);
            p.perf = Some(perf);
        }
        Ok(p)
    }

    fn stop(&self, ctx: &Context) {
        if let Some(perf) = &self.perf {
            ctx.perf().remove(perf);
        }
        if let Some(r) = &self.frames {
            ctx.perf().remove(r.perf());
            r.release();
        }
    }
}

impl Osd {
    /// Starts `osd.<whoami>` of `ctx` on `store` (mounted here), its public messenger bound to
    /// `bind`, its op queue (`osd_op_num_shards` x `osd_op_num_threads_per_shard`) and its admin
    /// commands (`dump_ops_in_flight`, `dump_historic_ops`, `dump_blocked_ops`, `status`).
    pub fn start(ctx: &Context, whoami: i32, store: Arc<dyn ObjectStore>, bind: SocketAddr) -> Result<Osd> {
        let conf = ctx.conf();
        store.mount()?;
        let perf = osd_perf();
        ctx.perf().add(&perf);
        let name = format!("osd.{whoami}");
        let msgr = Messenger::new(ctx, &name, None)?;
        msgr.set_default_policy(Policy::stateless_server());
        msgr.set_policy(crate::common::entity::EntityType::Osd, Policy::lossless_peer());
        // Without a cluster network of its own, replication shares the public messenger:
        // a client op, its repops and their replies then meet on the same workers, without a
        // hand-off between messengers' threads for each.
        let separate_cluster = !conf.get_str("cluster_addr").is_empty();
        let cluster = if separate_cluster {
            let c = Messenger::new(ctx, &name, None)?;
            c.set_default_policy(Policy::stateless_server());
            c.set_policy(crate::common::entity::EntityType::Osd, Policy::lossless_peer());
            c
        } else {
            msgr.clone()
        };
        let prefault = Prefault::start(ctx, &name, store.kind(), &[&msgr, &cluster])?;
        let shared = Arc::new(Shared {
            whoami,
            store,
            map: RwLock::new(Arc::new(OsdMap::new([0; 16]))),
            colls: Mutex::new(HashSet::new()),
            perf,
            pgs: Mutex::new(crate::common::hash::FxHashMap::default()),
            cluster: cluster.clone(),
            next_repop_tid: std::sync::atomic::AtomicU64::new(1),
            wq: std::sync::OnceLock::new(),
            waiting_for_map: Mutex::new(Vec::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            me: std::sync::OnceLock::new(),
            recovery_waits: Mutex::new(std::collections::HashMap::new()),
            recovery_queue: Mutex::new(std::collections::VecDeque::new()),
            recover_queue: Mutex::new(std::collections::VecDeque::new()),
            recovery_cv: parking_lot::Condvar::new(),
            scrub_lock: Mutex::new(()),
            scrubs_waiting: std::sync::atomic::AtomicUsize::new(0),
            max_log_entries: conf.get_u64("osd_max_pg_log_entries").clamp(1, 1 << 20) as usize,
            log_recovery: conf.get_bool("osd_pg_log_recovery"),
            conf: conf.clone(),
        });
        let _ = shared.me.set(Arc::downgrade(&shared));
        cluster.add_dispatcher_tail(Arc::new(ClusterDispatch {
            shared: Arc::downgrade(&shared),
        }));
        if separate_cluster {
            cluster.bind(SocketAddr::new(cluster_ip(conf, bind)?, 0))?;
            cluster.start()?;
        }
        let s2 = shared.clone();
        let shards = conf.get_u64("osd_op_num_shards").max(1) as usize;
        let threads = conf.get_u64("osd_op_num_threads_per_shard").max(1) as usize;
        let cutoff = cutoff_from_option(&conf.get_str("osd_op_queue_cut_off"));
        let wq = Arc::new(ShardedOpWQ::new(
            shards,
            threads,
            cutoff,
            Arc::new(move |pg, op| s2.handle(pg, op)),
        )?);
        let _ = shared.wq.set(Arc::downgrade(&wq));
        let tracker = OpTracker::from_conf(conf);
        msgr.add_dispatcher_head(Arc::new(FastDispatch {
            shared: shared.clone(),
            wq: Arc::downgrade(&wq),
            tracker: tracker.clone(),
            priority: conf.get_u64("osd_client_op_priority").min(255) as u16,
            inline: conf.get_bool("osd_op_inline_idle") && shared.store.commits_in_memory(),
        }));
        msgr.bind(bind)?;
        msgr.start()?;
        let mut asok_ids = tracker.register_commands(ctx)?;
        let s3 = shared.clone();
        let wq2 = Arc::downgrade(&wq);
        asok_ids.push(ctx.register_command(
            "status",
            "high-level status of OSD",
            Arc::new(move |r: &crate::asok::Request<'_>| {
                use crate::common::formatter::FVal;
                let map = s3.map.read().clone();
                let queued = wq2.upgrade().map_or(0, |w| w.len());
                Ok(r.render(
                    &FVal::obj()
                        .with(
                            "cluster_fsid",
                            FVal::str(crate::types::osdmap::fsid_to_string(&map.fsid)),
                        )
                        .with("whoami", FVal::I64(i64::from(s3.whoami)))
                        .with("state", FVal::str("active"))
                        .with("objectstore", FVal::str(s3.store.kind()))
                        .with("osdmap_epoch", FVal::U64(u64::from(map.epoch)))
                        .with("num_pgs", FVal::U64(s3.colls.lock().len() as u64))
                        .with("op_queue_len", FVal::U64(queued)),
                ))
            }),
        )?);
        let s4 = shared.clone();
        asok_ids.push(ctx.register_command(
            "dump_pgs",
            "show the PGs this OSD holds: state, role, acting set, last_update, ops waiting",
            Arc::new(move |r: &crate::asok::Request<'_>| {
                let v = serde_json::json!({ "pg_stats": s4.pg_states(true) });
                Ok(r.render(&crate::common::formatter::FVal::from(&v)))
            }),
        )?);
        // Last: an error above leaves no thread behind.
        let recovery = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("osd_recovery".into())
                .spawn(move || shared.recovery_loop())
                .map_err(|e| Error::io(e, "spawning osd_recovery"))?
        };
        Ok(Osd {
            ctx: ctx.clone(),
            shared,
            msgr,
            monc: None,
            hb: None,
            addrs: None,
            recovery: Mutex::new(Some(recovery)),
            prefault,
            wq,
            tracker,
            asok_ids,
        })
    }

    /// `start`, then boot to the monitor at `mon` (`MOSDBoot` with our addresses) and follow
    /// its maps from then on, with heartbeats to the other OSDs (`hb_front` on the public IP,
    /// `hb_back` on `cluster_addr`'s IP when set, else the public one).
    pub fn start_with_mon(
        ctx: &Context,
        whoami: i32,
        store: Arc<dyn ObjectStore>,
        bind: SocketAddr,
        mon: EntityAddr,
    ) -> Result<Osd> {
        use crate::types::messages::{FrontMessage, MOsdBoot};
        let mut osd = Osd::start(ctx, whoami, store, bind)?;
        let monc = Arc::new(crate::mon::client::MonClient::new(&osd.msgr, mon)?);
        let back_ip = cluster_ip(ctx.conf(), bind)?;
        let shared = osd.shared.clone();
        let map_src: heartbeat::MapSource = Arc::new(move || shared.map.read().clone());
        let (hb, hb_front, hb_back) = heartbeat::Heartbeat::new(
            ctx,
            whoami,
            SocketAddr::new(bind.ip(), 0),
            SocketAddr::new(back_ip, 0),
            map_src,
            monc.clone(),
        )?;
        let hb = Arc::new(hb);
        let (shared, weak_hb) = (osd.shared.clone(), Arc::downgrade(&hb));
        monc.set_map_callback(move |m| {
            *shared.map.write() = Arc::new(m.clone());
            shared.on_map(m);
            if let Some(h) = weak_hb.upgrade() {
                h.notify_map();
            }
        });
        monc.subscribe_osdmap()?;
        let a = osd.addr();
        let addrs = crate::types::osdmap::OsdAddrs {
            public: a,
            cluster: osd.shared.cluster.my_addrs()[0],
            hb_front,
            hb_back,
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let boot = MOsdBoot {
            fsid: monc.fsid().unwrap_or([0; 16]),
            osd: whoami,
            addrs,
            boot_epoch: monc.epoch(),
            features: 0,
            metadata: [
                ("osd_objectstore".to_string(), osd.shared.store.kind().to_string()),
                ("hostname".to_string(), hostname),
            ]
            .into(),
        };
        monc.send_message(boot.to_message())?;
        hb.start(addrs, boot)?;
        osd.monc = Some(monc);
        osd.hb = Some(hb);
        osd.addrs = Some(addrs);
        Ok(osd)
    }

    /// Waits until the monitor's map shows this OSD up at its address.
    pub fn wait_for_up(&self, timeout: std::time::Duration) -> Result<Arc<OsdMap>> {
        let Some(monc) = &self.monc else {
            return Err(Error::inval("this OSD has no monitor"));
        };
        let (me, addrs) = (self.shared.whoami, self.addrs);
        monc.wait_for_map(timeout, |m| m.osd(me).is_some_and(|i| i.up && Some(i.addrs) == addrs))?;
        // The callback may not have run yet: the map the wait saw is the one to serve.
        *self.shared.map.write() = Arc::new(monc.osdmap());
        Ok(self.osdmap())
    }

    pub fn whoami(&self) -> i32 {
        self.shared.whoami
    }
    /// The object store this OSD serves from.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.shared.store.clone()
    }
    /// The address clients connect to.
    pub fn addr(&self) -> EntityAddr {
        self.msgr.my_addrs()[0]
    }
    pub fn messenger(&self) -> &Messenger {
        &self.msgr
    }
    pub fn tracker(&self) -> &OpTracker {
        &self.tracker
    }
    /// A new map: pools and their PG counts decide what the OSD serves.
    pub fn set_osdmap(&self, map: OsdMap) {
        *self.shared.map.write() = Arc::new(map.clone());
        self.shared.on_map(&map);
    }
    pub fn osdmap(&self) -> Arc<OsdMap> {
        self.shared.map.read().clone()
    }

    /// Scrubs `pgid`, which this OSD must lead, comparing every OSD of its acting set (deep:
    /// data and omap digests too). Blocks until done; the PG's client ops wait meanwhile.
    pub fn scrub_pg(&self, pgid: crate::types::placement::PgId, deep: bool) -> Result<scrub::ScrubReport> {
        self.shared.scrub_pg(pgid, deep)
    }

    /// What `dump_pgs` shows: one JSON object per PG this OSD knows.
    pub fn pg_states(&self) -> Vec<serde_json::Value> {
        self.shared.pg_states(true)
    }

    /// PGs this OSD leads that are not clean yet: peering (not serving) or recovering
    /// (serving, with copies still to make).
    pub fn unclean_pgs(&self) -> Vec<crate::types::placement::PgId> {
        let mut v: Vec<_> = self
            .shared
            .pgs
            .lock()
            .iter()
            .filter(|(_, p)| {
                let g = p.lock();
                g.peering || g.recovering
            })
            .map(|(k, _)| crate::types::placement::PgId::new(k.pool, k.seed))
            .collect();
        v.sort();
        v
    }

    /// The heartbeat peers and whether each is reported failed (empty without a monitor).
    pub fn heartbeat_peers(&self) -> Vec<(i32, bool)> {
        self.hb.as_ref().map_or_else(Vec::new, |h| h.peers())
    }

    /// A clean stop: mark-me-down to the monitor (waiting up to `osd_mon_shutdown_timeout` for
    /// the map that shows it), then stops taking ops, finishes the running ones, stops the
    /// queue and unmounts the store.
    pub fn shutdown(&self) -> Result<()> {
        self.stop(true)
    }

    /// Stops as a crash would look to the cluster: no mark-me-down, heartbeats just end, so
    /// the peers must notice. The store is still unmounted (a `kv` store's committed writes
    /// are on disk either way).
    pub fn kill(&self) -> Result<()> {
        self.stop(false)
    }

    fn mark_me_down(&self) {
        use crate::types::hb_messages::MOsdMarkMeDown;
        use crate::types::messages::FrontMessage;
        let (Some(monc), Some(addrs)) = (&self.monc, self.addrs) else {
            return;
        };
        let me = self.shared.whoami;
        let map = self.osdmap();
        if !map.osd(me).is_some_and(|o| o.up && o.addrs == addrs) {
            return;
        }
        let req = MOsdMarkMeDown {
            fsid: map.fsid,
            target: me,
            target_addrs: addrs,
            epoch: map.epoch,
            request_ack: true,
            down_and_dead: true,
        };
        let timeout =
            std::time::Duration::from_secs_f64(self.ctx.conf().get_f64("osd_mon_shutdown_timeout").clamp(0.0, 300.0));
        let t0 = Instant::now();
        if monc.send_message(req.to_message()).is_err() {
            return;
        }
        // The monitor acks once the epoch is committed; that epoch reaches us as a map too,
        // which is what the rest of the cluster acts on.
        match monc.wait_for_map(timeout, |m| !m.osd(me).is_some_and(|o| o.up && o.addrs == addrs)) {
            Ok(m) => log::info!(target: "osd", "osd.{me}: marked down in e{} after {:?}", m.epoch, t0.elapsed()),
            Err(_) => log::warn!(target: "osd", "osd.{me}: no mark-me-down ack within {timeout:?}; stopping anyway"),
        }
    }

    fn stop(&self, clean: bool) -> Result<()> {
        if let Some(h) = &self.hb {
            h.set_stopping();
        }
        if clean {
            self.mark_me_down();
        }
        if let Some(h) = &self.hb {
            h.shutdown();
        }
        if let Some(m) = &self.monc {
            m.shutdown();
        }
        self.shared.stopping.store(true, std::sync::atomic::Ordering::Release);
        self.msgr.shutdown();
        self.shared.cluster.shutdown();
        // Repops still waited for end now; ops parked in PGs are dropped (their clients resend
        // to the PG's next primary).
        let pgs: Vec<_> = self.shared.pgs.lock().values().cloned().collect();
        for pg in pgs {
            let (done, parked, waiting) = {
                let mut g = pg.lock();
                let done = g.on_new_acting(&[], self.shared.whoami);
                g.abandon_recovery();
                (
                    done,
                    std::mem::take(&mut g.parked),
                    std::mem::take(&mut g.waiting_for_commit),
                )
            };
            for (f, o) in done {
                f(o);
            }
            drop((parked, waiting));
        }
        self.shared.waiting_for_map.lock().clear();
        self.shared.recovery_cv.notify_all();
        if let Some(t) = self.recovery.lock().take() {
            let _ = t.join();
        }
        self.wq.shutdown();
        for id in &self.asok_ids {
            self.ctx.admin_socket().unregister_command(*id);
        }
        self.ctx.perf().remove(&self.shared.perf);
        self.prefault.stop(&self.ctx);
        self.shared
            .store
            .umount()
            .map_err(|e| Error::new(e.errno, format!("osd.{}: umount: {e}", self.shared.whoami)))
    }
}
