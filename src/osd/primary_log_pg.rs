//! Client ops on the primary (Ceph's `PrimaryLogPG`): an op reaches its PG in order on a
//! `tp_osd_tp` worker, waits while the PG cannot serve it (map, min_size, peering, scrub,
//! recovery of its object, writes in flight), runs against the store (`pg_ops`), and a write is
//! versioned, logged, queued to this OSD's store and sent to the replicas; the reply goes out
//! once this store and every replica still in the acting set have committed it.

use super::dispatch::reply_error;
use super::op_wq::PgKey;
use super::{pg, pg_ops, OpItem, Shared};
use super::{L_OP, L_OP_IN_BYTES, L_OP_LAT, L_OP_OUT_BYTES, L_OP_R, L_OP_R_LAT, L_OP_W, L_OP_W_LAT};
use crate::common::error::Error;
use crate::os::{CollId, ObjectId, Transaction};
use crate::types::osd_op::{MOsdOpReply, CEPH_OSD_FLAG_ACK, CEPH_OSD_FLAG_ONDISK, CEPH_OSD_OP_PGNLS};
use crate::types::osdmap::OsdMap;
use parking_lot::Mutex;
use std::sync::Arc;

/// The object an op names.
fn op_oid(op: &OpItem) -> ObjectId {
    ObjectId::new(op.req.pool, op.req.nspace.clone(), op.req.oid.clone())
}

impl Shared {
    fn send_reply(&self, op: &OpItem, reply: MOsdOpReply, epoch: u32) {
        match reply.to_message() {
            Ok(m) => {
                let _ = op.conn.send_message(m);
            }
            Err(e) => reply_error(&op.conn, reply.tid, -e.errno.abs(), epoch),
        }
    }

    /// Runs on a `tp_osd_tp` thread; the PG's items come here one at a time, in order.
    pub(super) fn handle(&self, key: PgKey, mut op: OpItem) {
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
        let Some(min_size) = map.pool(key.pool).map(|p| p.min_size as usize) else {
            // Waited for a newer map that does not have the pool (removed meanwhile).
            return reply_error(&op.conn, op.req.tid, -libc::ENOENT, epoch);
        };
        let pgid = crate::types::placement::PgId::new(key.pool, key.seed);
        let acting = map.pg_to_up_osds(pgid);
        // A map without any OSD up (an OSD run without a monitor, fed only pools) makes this
        // OSD serve every PG alone.
        if !acting.is_empty() && acting[0] != self.whoami {
            // Not the primary in our map: the client's map is older, and it resends once its
            // own map shows the new primary (Ceph drops misdirected ops the same way).
            log::debug!(target: "osd", "osd.{}: op for pg {pgid} whose primary is osd.{}", self.whoami, acting[0]);
            op.tracked.mark_event("misdirected");
            if op.conn.is_local() {
                // A local op has no client to resend it: tell the caller where it belongs.
                return reply_error(&op.conn, op.req.tid, -libc::ENXIO, epoch);
            }
            return;
        }
        let is_write = op.req.has_write();
        if is_write
            && self.full.load(std::sync::atomic::Ordering::Acquire)
            && !op
                .req
                .ops
                .iter()
                .all(|o| o.op == crate::types::osd_op::CEPH_OSD_OP_DELETE)
        {
            // A full disk takes no writes but deletes, which give space back (Ceph's full flag).
            op.tracked.mark_event("full");
            return reply_error(&op.conn, op.req.tid, -libc::ENOSPC, epoch);
        }
        let pg = self.pg(key);
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
            // A write to an object whose last write this store is still committing waits too:
            // it must be computed against that write.
            let dup = if is_write { g.log.lookup(&reqid) } else { None };
            let must_wait = !is_write || dup.is_some();
            if !g.waiting_for_commit.is_empty()
                || (must_wait && !g.repops.is_empty())
                || (is_write && !g.repops.is_empty() && g.committing(&op_oid(&op)))
            {
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
    pub(super) fn finish(&self, op: OpItem, mut reply: MOsdOpReply, is_write: bool, in_bytes: u64) {
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
    /// ends the op's count in `applying` (taken by `handle`), queues it to this OSD's store and
    /// sends it to the replicas of `acting`. The client's reply goes out once this store and
    /// every replica still in the acting set have committed it — from the thread that saw the
    /// last commit, so no `tp_osd_tp` worker waits for a disk or for another OSD.
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
        let target = op_oid(&op);
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
        // What the store refuses without looking at its state is refused before anything
        // goes out; past this, the write is replicated and committed here at the same time.
        let checked = self.store.check_transaction(coll, &txn);
        if let Err(e) = checked {
            // Never applied and never sent: its version is taken back, or every replica would
            // see the next repop skip a number, and a resend would find it in the log.
            {
                let mut g = pg.lock();
                if g.last_update == version {
                    g.last_update = previous;
                    g.log.forget(&kept_reqid);
                    g.objlog.forget(version);
                }
                g.applying.dec();
            }
            reply.result = -e.errno.abs();
            for r in reply.ops.iter_mut() {
                r.outdata = bytes::Bytes::new();
            }
            return self.finish(op, reply, true, in_bytes);
        }
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
        let (applying, damaged) = {
            let mut g = pg.lock();
            g.repops.insert(
                tid,
                pg::Repop {
                    waiting: replicas.iter().copied().chain([self.whoami]).collect(),
                    done,
                    local: Some(target),
                },
            );
            // A second count, until our own commit: a fence must find this write in the store.
            g.applying.inc();
            (g.applying.clone(), g.damaged.clone())
        };
        // Our own commit runs while the replicas apply theirs; neither this worker nor the
        // store's thread waits for the other. The reply goes once every copy has it.
        let (me, whoami, coll_id) = (self.me.get().cloned().unwrap_or_default(), self.whoami, *coll);
        self.store.queue_transaction(
            coll,
            txn,
            Box::new(move |res| {
                let Some(shared) = me.upgrade() else {
                    applying.dec();
                    return;
                };
                let pg = shared.pg(key);
                let result = match res {
                    Ok(()) => 0,
                    Err(e) => {
                        // The replicas may hold it and we do not: this copy is no longer
                        // complete, and the next peering repairs it from theirs.
                        log::error!(target: "osd", "osd.{whoami}: write {version} to {coll_id} failed to commit here: {e}");
                        damaged.store(true, std::sync::atomic::Ordering::Release);
                        -e.errno.abs()
                    }
                };
                let done = {
                    let mut g = pg.lock();
                    if let Some(r) = g.repops.get_mut(&tid) {
                        r.local = None;
                    }
                    g.on_reply(tid, whoami, result)
                };
                applying.dec();
                shared.complete_repops(key, &pg, done);
            }),
        );
        if let Some(repop) = repop {
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
        }
        // Counted until sent: a peering primary's fence (its scan, on the same sessions) must
        // reach the replicas after this repop, or they would drop it as stale.
        pg.lock().applying.dec();
    }
}
