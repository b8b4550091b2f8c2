//! The OSD's dispatchers: `FastDispatch` on the public messenger (client ops, tracked and
//! queued on the `ShardedOpWQ` by PG, or run inline when the OSD is idle; commands) and
//! `ClusterDispatch` on the cluster messenger (repops, peering, recovery and scrub messages).

use super::op_queue::OpQueue;
use super::op_tracker::OpTracker;
use super::op_wq::PgKey;
use super::{OpItem, Shared};
use crate::msgr::connection::ConnectionRef;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::types::messages::CEPH_MSG_OSD_OP;
use crate::types::osd_op::{MOsdOp, MOsdOpReply, CEPH_OSD_FLAG_ACK};
use std::sync::Arc;
use std::time::Instant;

/// The largest op (bytes of input) `osd_op_inline_idle` runs on a messenger thread.
const INLINE_MAX_COST: u64 = 64 << 10;

pub(super) struct FastDispatch {
    pub(super) shared: Arc<Shared>,
    pub(super) wq: OpQueue,
    pub(super) tracker: OpTracker,
    pub(super) priority: u16,
    /// `osd_op_inline_idle` and a store that does not block.
    pub(super) inline: bool,
}

pub(super) fn reply_error(conn: &ConnectionRef, tid: u64, errno: i32, epoch: u32) {
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
        let pool = self.shared.map.read().pool(req.pool).cloned();
        // The PG is the client's if it gave one (the objecter computes it); otherwise ours.
        let pg = match pool {
            Some(pool) if req.pgid.pool == req.pool && req.pgid.seed < pool.pg_num => req.pgid,
            Some(pool) => pool.object_to_pg(&req.oid, &req.nspace).1,
            // A pool created in a map newer than ours: the op waits in its PG for that map
            // (`handle` parks it), as Ceph's OSD waits for a client's newer epoch.
            None if req.epoch > epoch && req.pgid.pool == req.pool => req.pgid,
            None => return reply_error(&conn, req.tid, -libc::ENOENT, epoch),
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
        let inline = self.inline && cost <= INLINE_MAX_COST;
        let queued = self.wq.enqueue(key, owner, self.priority, cost, item, inline);
        if let Err(e) = queued {
            log::debug!(target: "osd", "op dropped: {e}");
        }
    }
}

/// The scheduler's class of a client: one per client entity (hashed in place, no string).
pub(super) fn owner_of(req: &MOsdOp) -> u64 {
    crate::common::hash::fx_hash(&req.client)
}

/// Priority of requeued client ops (`osd_client_op_priority`'s default).
pub(super) const CLIENT_PRIORITY: u16 = 63;

/// Repops, recovery messages and their replies, on the cluster messenger. Weak: the shared
/// state holds that messenger, whose dispatcher chain holds this.
pub(super) struct ClusterDispatch {
    pub(super) shared: std::sync::Weak<Shared>,
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
