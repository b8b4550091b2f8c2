//! `Objecter`: the client side of the op path (Ceph's `Objecter`). It computes where an object
//! lives from the OSDMap (object -> PG -> primary, no lookup), sends the op there with a tid,
//! matches the reply by tid, and resends ops whose target changed when a new map arrives or
//! whose session reset. Each op has a timeout (`rados_osd_op_timeout`; 0 = none).
//!
//! Completions run on the messenger's worker thread that received the reply (or the
//! objecter's timer thread for timeouts and `map` errors): they must not block.

use crate::common::entity::EntityType;
use crate::common::error::{Error, Result};
use crate::msgr::connection::ConnectionRef;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::types::messages::{FrontMessage, CEPH_MSG_OSD_OPREPLY, MSG_COMMAND_REPLY};
use crate::types::mon_messages::{MCommand, MCommandReply};
use crate::types::osd_op::{MOsdOp, MOsdOpReply, OsdOp};
use crate::types::osdmap::OsdMap;
use crate::types::placement::PgId;
use crate::EntityName;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub type OnComplete = Box<dyn FnOnce(Result<MOsdOpReply>) + Send>;

struct InFlight {
    req: MOsdOp,
    /// The OSD it was last sent to (None: no OSD serves its PG in the current map).
    target: Option<i32>,
    /// The address it was last sent to: an OSD that restarted keeps its id but not its
    /// address, and the ops it never answered must follow it there.
    sent_to: Option<crate::msgr::addr::EntityAddr>,
    deadline: Option<Instant>,
    done: OnComplete,
}

struct Inner {
    msgr: Messenger,
    name: EntityName,
    incarnation: i32,
    map: RwLock<Arc<OsdMap>>,
    ops: Mutex<HashMap<u64, InFlight>>,
    next_tid: AtomicU64,
    timeout: Duration,
    stop: AtomicBool,
    timer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Commands sent to OSDs (`osd_command`), waiting for their replies by tid.
    commands: Mutex<HashMap<u64, crossbeam_channel::Sender<MCommandReply>>>,
}

/// A position in a pool's listing (librados' object list cursor): the PG, by its seed, and
/// the last name already returned from it. Written as `<pg hex>:<name>`, which `parse`
/// reads back, so a listing can be resumed in another process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListCursor {
    pub pg: u32,
    pub after: String,
}

impl std::fmt::Display for ListCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}:{}", self.pg, self.after)
    }
}

impl std::str::FromStr for ListCursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<ListCursor> {
        let bad = || Error::inval(format!("'{s}' is not a listing cursor (<pg hex>:<name>)"));
        let (pg, after) = s.split_once(':').ok_or_else(bad)?;
        Ok(ListCursor {
            pg: u32::from_str_radix(pg, 16).map_err(|_| bad())?,
            after: after.to_string(),
        })
    }
}

/// Cheap to clone; clones share the objecter.
#[derive(Clone)]
pub struct Objecter {
    inner: Arc<Inner>,
}

struct ReplyDispatcher(Weak<Inner>);

impl Dispatcher for ReplyDispatcher {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.ty == CEPH_MSG_OSD_OPREPLY || m.ty == MSG_COMMAND_REPLY
    }
    fn ms_fast_dispatch(&self, m: Message) {
        let Some(o) = self.0.upgrade() else { return };
        if m.ty == MSG_COMMAND_REPLY {
            match MCommandReply::from_message(&m) {
                Ok(r) => {
                    if let Some(tx) = o.commands.lock().remove(&r.tid) {
                        let _ = tx.send(r);
                    }
                }
                Err(e) => log::warn!(target: "objecter", "bad command reply (tid {}): {e}", m.tid),
            }
            return;
        }
        let reply = match MOsdOpReply::from_message(&m) {
            Ok(r) => r,
            Err(e) => {
                log::warn!(target: "objecter", "bad op reply (tid {}): {e}", m.tid);
                return;
            }
        };
        let op = o.ops.lock().remove(&reply.tid);
        if let Some(InFlight { req, done, .. }) = op {
            // Freed before the completion runs, which may reuse its buffers.
            drop(req);
            done(Ok(reply));
        }
    }
    fn ms_handle_reset(&self, c: &ConnectionRef) -> bool {
        // The session to an OSD went away: send its ops again on a new one.
        if let Some(o) = self.0.upgrade() {
            let peer = c.peer_addr();
            o.resend_where(|op| {
                op.target.is_some_and(|t| {
                    o.osd_addr(t)
                        .is_some_and(|a| a.addr == peer.addr && a.nonce == peer.nonce)
                })
            });
        }
        false
    }
}

/// The primary serving `req` in `map`, filling in the request's PG and hash the first time
/// (an explicit PG, for PG-wide ops, is kept).
fn primary_for(map: &OsdMap, req: &mut MOsdOp) -> Result<Option<i32>> {
    if req.pgid.pool != req.pool {
        let pl = map.object_placement(req.pool, &req.oid, &req.nspace)?;
        req.pgid = pl.pg;
        req.hash = pl.hash;
        return Ok(pl.primary());
    }
    if map.pool(req.pool).is_none() {
        return Err(Error::new(libc::ENOENT, format!("no pool {}", req.pool)));
    }
    Ok(map.pg_primary(req.pgid))
}

impl Inner {
    fn osd_addr(&self, osd: i32) -> Option<crate::msgr::addr::EntityAddr> {
        let map = self.map.read();
        map.osd(osd).filter(|i| i.up).map(|i| i.addrs.public)
    }

    /// Fills in the PG and returns the primary for `req` in the current map.
    fn target(&self, req: &mut MOsdOp) -> Result<Option<i32>> {
        let map = self.map.read().clone();
        req.epoch = map.epoch;
        primary_for(&map, req)
    }

    fn send(&self, tid: u64) {
        let (msg, target) = {
            let mut ops = self.ops.lock();
            let Some(op) = ops.get_mut(&tid) else { return };
            match self.target(&mut op.req) {
                Ok(t) => op.target = t,
                Err(e) => {
                    let op = ops.remove(&tid).expect("present");
                    drop(ops);
                    return (op.done)(Err(e));
                }
            }
            let Some(t) = op.target else { return }; // waits for a map where the PG has an OSD
                                                     // Lock order ops -> map, as in ms_handle_reset.
            let Some(addr) = self.osd_addr(t) else { return };
            op.sent_to = Some(addr);
            (op.req.to_message(), (t, addr))
        };
        let (target, addr) = target;
        let sent = msg.and_then(|m| self.msgr.connect_to(EntityType::Osd, &addr)?.send_message(m));
        if let Err(e) = sent {
            log::debug!(target: "objecter", "tid {tid} to osd.{target}: {e}; will resend");
        }
    }

    fn resend_where(&self, pick: impl Fn(&InFlight) -> bool) {
        let tids: Vec<u64> = self
            .ops
            .lock()
            .iter()
            .filter(|(_, op)| pick(op))
            .map(|(t, _)| *t)
            .collect();
        for tid in tids {
            if let Some(op) = self.ops.lock().get_mut(&tid) {
                op.req.attempt += 1;
            }
            self.send(tid);
        }
    }

    fn expire(&self) {
        let now = Instant::now();
        let expired: Vec<InFlight> = {
            let mut ops = self.ops.lock();
            let tids: Vec<u64> = ops
                .iter()
                .filter(|(_, op)| op.deadline.is_some_and(|d| d <= now))
                .map(|(t, _)| *t)
                .collect();
            tids.into_iter().filter_map(|t| ops.remove(&t)).collect()
        };
        for op in expired {
            let e = Error::new(
                libc::ETIMEDOUT,
                format!("op tid {} on {} timed out", op.req.tid, op.req.oid),
            );
            (op.done)(Err(e));
        }
    }
}

impl Objecter {
    /// An objecter for `name` on `msgr` (started, or started later); `timeout` per op (zero:
    /// none).
    pub fn new(msgr: &Messenger, name: &str, timeout: Duration) -> Result<Objecter> {
        let name: EntityName = name.parse()?;
        let inner = Arc::new(Inner {
            msgr: msgr.clone(),
            name,
            incarnation: (crate::msgr::addr::random_nonce() >> 1) as i32,
            map: RwLock::new(Arc::new(OsdMap::new([0; 16]))),
            ops: Mutex::new(HashMap::new()),
            next_tid: AtomicU64::new(1),
            timeout,
            stop: AtomicBool::new(false),
            timer: Mutex::new(None),
            commands: Mutex::new(HashMap::new()),
        });
        msgr.add_dispatcher_head(Arc::new(ReplyDispatcher(Arc::downgrade(&inner))));
        let weak = Arc::downgrade(&inner);
        let t = crate::common::log::ThreadBuilder::new()
            .name("objecter_timer".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(50));
                let Some(o) = weak.upgrade() else { return };
                if o.stop.load(Ordering::Acquire) {
                    return;
                }
                o.expire();
            })
            .map_err(|e| Error::io(e, "spawning objecter_timer"))?;
        *inner.timer.lock() = Some(t);
        Ok(Objecter { inner })
    }

    /// A new map: ops whose primary changed (or that were waiting for one) are sent again.
    pub fn set_osdmap(&self, map: OsdMap) {
        let map = Arc::new(map);
        if map.epoch < self.inner.map.read().epoch {
            return;
        }
        *self.inner.map.write() = map.clone();
        let o = &self.inner;
        o.resend_where(|op| {
            let mut req = op.req.clone();
            let target = primary_for(&map, &mut req).ok().flatten();
            op.target.is_none()
                || target != op.target
                || target.and_then(|t| map.osd(t).filter(|i| i.up).map(|i| i.addrs.public)) != op.sent_to
        });
    }

    pub fn osdmap(&self) -> Arc<OsdMap> {
        self.inner.map.read().clone()
    }

    /// Ops sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.inner.ops.lock().len()
    }

    /// Sends `ops` on object `oid` of `pool`; `done` gets the reply (whose `result` may be a
    /// negative errno) or an error (`-ENOENT` missing pool, `-ETIMEDOUT`, `-ESHUTDOWN`).
    pub fn submit(&self, pool: i64, oid: &str, nspace: &str, ops: Vec<OsdOp>, done: OnComplete) -> u64 {
        self.submit_to_pg(pool, oid, nspace, None, ops, done)
    }

    /// As `submit`, with an explicit PG (PG-wide ops such as listing).
    pub fn submit_to_pg(
        &self,
        pool: i64,
        oid: &str,
        nspace: &str,
        pg: Option<PgId>,
        ops: Vec<OsdOp>,
        done: OnComplete,
    ) -> u64 {
        let o = &self.inner;
        let tid = o.next_tid.fetch_add(1, Ordering::Relaxed);
        if o.stop.load(Ordering::Acquire) {
            done(Err(Error::new(libc::ESHUTDOWN, "objecter is shut down")));
            return tid;
        }
        let req = MOsdOp {
            client: o.name.clone(),
            client_inc: o.incarnation,
            tid,
            epoch: 0,
            pool,
            oid: oid.into(),
            nspace: nspace.into(),
            hash: pg.map_or(0, |p| p.seed),
            pgid: pg.unwrap_or(PgId::new(-1, 0)),
            flags: 0,
            attempt: 0,
            ops,
        };
        let deadline = (!o.timeout.is_zero()).then(|| Instant::now() + o.timeout);
        o.ops.lock().insert(
            tid,
            InFlight {
                req,
                target: None,
                sent_to: None,
                deadline,
                done,
            },
        );
        o.send(tid);
        tid
    }

    /// The blocking form of `submit`: the reply, or the reply's errno as an error.
    pub fn op(&self, pool: i64, oid: &str, ops: Vec<OsdOp>) -> Result<MOsdOpReply> {
        self.op_pg(pool, oid, None, ops)
    }

    fn op_pg(&self, pool: i64, oid: &str, pg: Option<PgId>, ops: Vec<OsdOp>) -> Result<MOsdOpReply> {
        let slot = Arc::new((Mutex::new(None), Condvar::new()));
        let s2 = slot.clone();
        self.submit_to_pg(
            pool,
            oid,
            "",
            pg,
            ops,
            Box::new(move |r| {
                *s2.0.lock() = Some(r);
                s2.1.notify_all();
            }),
        );
        let mut g = slot.0.lock();
        while g.is_none() {
            slot.1.wait(&mut g);
        }
        let r = g.take().expect("set")?;
        if r.result < 0 {
            return Err(Error::new(
                -r.result,
                format!("{oid}: {}", crate::common::error::strerror(-r.result)),
            ));
        }
        Ok(r)
    }

    /// Every object name of `pool`, sorted.
    pub fn list(&self, pool: i64) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut cursor = Some(ListCursor::default());
        while let Some(c) = cursor {
            let (page, next) = self.list_page(pool, &c, 1024)?;
            names.extend(page.into_iter().map(|(_, n)| n));
            cursor = next;
        }
        names.sort();
        Ok(names)
    }

    /// Up to `max` object names of `pool` from `cursor` on, PG by PG (`PGNLS`), sorted within
    /// a PG, each with its PG's seed; and the cursor after the last one, `None` when the
    /// listing is done.
    #[allow(clippy::type_complexity)]
    pub fn list_page(
        &self,
        pool: i64,
        cursor: &ListCursor,
        max: u64,
    ) -> Result<(Vec<(u32, String)>, Option<ListCursor>)> {
        let pg_num = self
            .osdmap()
            .pool(pool)
            .ok_or_else(|| Error::new(libc::ENOENT, format!("no pool {pool}")))?
            .pg_num;
        let max = max.max(1);
        let mut cur = cursor.clone();
        let mut names = Vec::new();
        while cur.pg < pg_num && (names.len() as u64) < max {
            let want = max - names.len() as u64;
            let r = self.op_pg(
                pool,
                "",
                Some(PgId::new(pool, cur.pg)),
                vec![OsdOp::pgnls(cur.after.clone(), want)],
            )?;
            let page = crate::types::osd_op::decode_string_list(&r.ops[0].outdata)
                .map_err(|e| Error::inval(format!("bad listing: {e:?}")))?;
            let full = page.len() as u64 >= want;
            if let Some(last) = page.last() {
                cur.after = last.clone();
            }
            names.extend(page.into_iter().map(|n| (cur.pg, n)));
            if !full {
                cur = ListCursor {
                    pg: cur.pg + 1,
                    after: String::new(),
                };
            }
        }
        Ok((names, (cur.pg < pg_num).then_some(cur)))
    }

    /// Sends `cmd` (one JSON object with a `prefix`) to osd.`osd`, as `ceph tell osd.N` does,
    /// and waits up to `timeout` for its answer: the output, or the OSD's errno and text.
    pub fn osd_command(&self, osd: i32, cmd: &str, timeout: Duration) -> Result<bytes::Bytes> {
        let o = &self.inner;
        let addr = o
            .osd_addr(osd)
            .ok_or_else(|| Error::new(libc::ENXIO, format!("osd.{osd} is not up")))?;
        let tid = o.next_tid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(1);
        o.commands.lock().insert(tid, tx);
        let sent = o
            .msgr
            .connect_to(EntityType::Osd, &addr)
            .and_then(|c| c.send_message(MCommand { tid, cmd: cmd.into() }.to_msg()));
        let r = sent.and_then(|()| {
            rx.recv_timeout(timeout).map_err(|_| {
                Error::new(
                    libc::ETIMEDOUT,
                    format!("osd.{osd} did not answer '{cmd}' in {timeout:?}"),
                )
            })
        });
        o.commands.lock().remove(&tid);
        let r = r?;
        if r.r < 0 {
            return Err(Error::new(-r.r, format!("osd.{osd}: {}", r.rs)));
        }
        Ok(r.outbl)
    }

    /// Fails what is in flight with -ESHUTDOWN and stops the timer.
    pub fn shutdown(&self) {
        let o = &self.inner;
        if o.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        let ops: Vec<InFlight> = o.ops.lock().drain().map(|(_, op)| op).collect();
        for op in ops {
            (op.done)(Err(Error::new(libc::ESHUTDOWN, "objecter is shut down")));
        }
        if let Some(t) = o.timer.lock().take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ListCursor;

    #[test]
    fn list_cursor_round_trips_and_rejects_garbage() {
        let c = ListCursor {
            pg: 0x1f,
            after: "name:with:colons".into(),
        };
        assert_eq!(c.to_string(), "1f:name:with:colons");
        assert_eq!("1f:name:with:colons".parse::<ListCursor>().unwrap(), c);
        assert_eq!("0:".parse::<ListCursor>().unwrap(), ListCursor::default());
        for bad in ["", "nocolon", "zz:x", "-1:x"] {
            assert_eq!(bad.parse::<ListCursor>().unwrap_err().errno, libc::EINVAL, "{bad}");
        }
    }
}
