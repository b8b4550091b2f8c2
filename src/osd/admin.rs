//! The OSD's admin face: its admin-socket commands (`status`, `dump_pgs`), the commands peers
//! and the CLI send it as `MCommand` (`pg dump`, `pg scrub`, `pg deep-scrub`, like
//! `ceph tell osd.N`), and the per-PG state both report.

use super::op_queue::OpQueue;
use super::op_wq::PgKey;
use super::{pg, Shared};
use crate::common::error::{Error, Result};
use crate::msgr::message::Message;
use crate::os::{CollId, ObjectId};
use crate::Context;
use parking_lot::Mutex;
use std::sync::Arc;

/// Scrub commands an OSD takes before it answers `-EBUSY`.
const MAX_SCRUBS_WAITING: usize = 64;

/// Registers `status` and `dump_pgs` on `ctx`'s admin socket; returns their ids.
pub(super) fn register_commands(ctx: &Context, shared: &Arc<Shared>, wq: OpQueue) -> Result<Vec<u64>> {
    let mut asok_ids = Vec::new();
    let shared = shared.clone();
    let s3 = shared.clone();
    asok_ids.push(ctx.register_command(
        "status",
        "high-level status of OSD",
        Arc::new(move |r: &crate::asok::Request<'_>| {
            use crate::common::formatter::FVal;
            let map = s3.map.read().clone();
            let queued = wq.len();
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
                    .with("op_queue_len", FVal::U64(queued))
                    .with("full", FVal::Bool(s3.full.load(std::sync::atomic::Ordering::Acquire))),
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
    Ok(asok_ids)
}

impl Shared {
    /// Each PG this OSD knows, as `dump_pgs` shows it: Ceph's state words for a primary
    /// (`peering`, `recovering` or `backfilling` while it peers; then `active` or, below
    /// `min_size`, `peered`; `undersized+degraded` with fewer than `size` OSDs, `clean` with all
    /// of them; `scrubbing[+deep]` and `inconsistent` after a scrub that found errors),
    /// `replica` or `stray` otherwise. `objects` adds each PG's object count and bytes, which
    /// costs a look at every object.
    pub(super) fn pg_states(&self, objects: bool) -> Vec<serde_json::Value> {
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
                let stamp = |t: Option<std::time::SystemTime>| t.map(crate::common::log::format_stamp);
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
    pub(super) fn handle_command(&self, m: Message) {
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
                let spawned = crate::common::log::ThreadBuilder::new()
                    .name("osd_scrub".into())
                    .spawn(move || {
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
}
