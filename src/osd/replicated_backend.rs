//! The replica side of replication (Ceph's `ReplicatedBackend`): a replica logs and applies
//! the primary's repops in the order sent and answers once each is durable; the primary
//! counts the answers and completes the client's write when the last one arrives.

use super::op_wq::PgKey;
use super::{pg, Shared};
use crate::msgr::message::Message;
use crate::os::CollId;
use parking_lot::Mutex;

impl Shared {
    /// Runs finished repops' completions (outside the PG lock), then, once the PG has no
    /// write in flight, the ops that waited for that.
    pub(super) fn complete_repops(&self, key: PgKey, pg: &Mutex<pg::Pg>, done: Vec<(pg::OnRepop, pg::RepopOutcome)>) {
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
    pub(super) fn handle_repop(&self, m: &Message) {
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

    pub(super) fn handle_repop_reply(&self, m: &Message) {
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
