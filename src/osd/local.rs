//! Direct I/O on this OSD without a network hop (cohortfs' `libosd_read/write/truncate`): a
//! client op built here and handed to the OSD's own dispatch on a [`LocalConnection`], so it is
//! tracked, queued per PG, ordered and replicated like any client's, and its reply comes back
//! through the same connection to the caller's completion.

use super::Osd;
use crate::common::entity::EntityName;
use crate::common::error::{Error, Result};
use crate::msgr::connection::LocalConnection;
use crate::msgr::dispatcher::Dispatcher;
use crate::types::osd_op::{MOsdOp, MOsdOpReply, OsdOp};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Gets the reply of one local op (or why there is none): on the thread that finished the op
/// (a `tp_osd_tp` worker, a messenger worker for a replicated write, or the caller's thread for
/// an op refused up front). It must not block.
pub type LocalDone = Box<dyn FnOnce(Result<MOsdOpReply>) + Send>;

/// The OSD's local client: one connection, and the ops waiting for their reply by tid.
pub(super) struct LocalClient {
    conn: LocalConnection,
    name: EntityName,
    next_tid: AtomicU64,
    pending: Arc<Mutex<HashMap<u64, LocalDone>>>,
}

impl LocalClient {
    pub(super) fn new(whoami: i32) -> LocalClient {
        let pending: Arc<Mutex<HashMap<u64, LocalDone>>> = Arc::default();
        let p2 = pending.clone();
        let conn = LocalConnection::new(
            crate::msgr::addr::EntityAddr::blank(),
            crate::common::entity::EntityType::Client.wire_value(),
            move |m| {
                let reply = MOsdOpReply::from_message(&m);
                let tid = match &reply {
                    Ok(r) => r.tid,
                    Err(_) => m.tid,
                };
                let Some(done) = p2.lock().remove(&tid) else { return };
                done(
                    reply
                        .map_err(|e| Error::new(libc::EIO, format!("bad local reply: {e}")))
                        .and_then(|r| {
                            if r.result < 0 {
                                Err(Error::new(-r.result, crate::common::error::strerror(-r.result)))
                            } else {
                                Ok(r)
                            }
                        }),
                );
            },
        );
        LocalClient {
            conn,
            // A client name of its own, so the OSD's duplicate detection keeps local requests
            // apart from network clients'.
            name: EntityName::new(crate::common::entity::EntityType::Client, format!("osd{whoami}-local")),
            next_tid: AtomicU64::new(1),
            pending,
        }
    }

    /// Fails every op still waiting (the OSD stopped): `-ENODEV`.
    pub(super) fn fail_all(&self) {
        let all: Vec<LocalDone> = self.pending.lock().drain().map(|(_, d)| d).collect();
        for d in all {
            d(Err(Error::new(libc::ENODEV, "the OSD stopped")));
        }
    }
}

impl Osd {
    /// Runs `ops` on object `oid` of pool `pool` here, as a client op with no network hop:
    /// `done` gets the reply (or the op's errno). `-ENXIO` when this OSD is not the object's
    /// primary in its current map (the op would go to another OSD), `-ENOENT` for an unknown
    /// pool, `-ENODEV` once the OSD is stopping (also for ops still waiting when it stops).
    pub fn submit_local(&self, pool: &str, oid: &str, ops: Vec<OsdOp>, done: LocalDone) {
        match self.local_request(pool, oid, ops) {
            Ok((local, tid, m)) => {
                local.pending.lock().insert(tid, done);
                // Stopping may have begun since the check: fail_all runs after the flag is set,
                // so the op is either failed there or served.
                self.fast.ms_fast_dispatch(m);
                if self.shared.stopping.load(Ordering::Acquire) {
                    local.fail_all();
                }
            }
            Err(e) => done(Err(e)),
        }
    }

    fn local_request(
        &self,
        pool: &str,
        oid: &str,
        ops: Vec<OsdOp>,
    ) -> Result<(&LocalClient, u64, crate::msgr::message::Message)> {
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(Error::new(
                libc::ENODEV,
                format!("osd.{} is stopping", self.shared.whoami),
            ));
        }
        if ops.is_empty() {
            return Err(Error::inval("no ops"));
        }
        let map = self.osdmap();
        let p = map
            .pool_by_name(pool)
            .ok_or_else(|| Error::noent(format!("no pool '{pool}'")))?;
        let pl = map.object_placement(p.id, oid, "")?;
        if pl.primary() != Some(self.shared.whoami) {
            return Err(Error::new(
                libc::ENXIO,
                format!(
                    "osd.{} is not the primary of {oid} (pg {}, primary {:?})",
                    self.shared.whoami,
                    pl.pg,
                    pl.primary()
                ),
            ));
        }
        let local = self.local.get_or_init(|| LocalClient::new(self.shared.whoami));
        let tid = local.next_tid.fetch_add(1, Ordering::Relaxed);
        let req = MOsdOp {
            client: local.name.clone(),
            client_inc: 0,
            tid,
            epoch: map.epoch,
            pool: p.id,
            oid: oid.into(),
            nspace: String::new(),
            hash: pl.hash,
            pgid: pl.pg,
            flags: 0,
            attempt: 0,
            ops,
        };
        let mut m = req.to_message()?;
        m.conn = Some(local.conn.conn().clone());
        Ok((local, tid, m))
    }
}
