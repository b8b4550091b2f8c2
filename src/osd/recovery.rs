//! Recovery: after peering (`peering`) made a PG active, the copies it lacks are made.
//!
//! 4. Between peerings the thread copies a batch at a time (`osd_recovery_sleep` after each),
//!    objects that ops wait for first: pulls for our copy (`MOSDPGPull` → `MOSDPGPush`),
//!    then pushes to the replicas (`MOSDPGPush` → `MOSDPGPushReply`): whole objects (data,
//!    xattrs, omap) and removals. Each object's waiting ops run once every copy has it.
//! 5. A last push marks each copy complete, but only if a complete copy was among the peers.
//!    Then the PG is clean.
//!
//! A map that changes the acting set meanwhile calls the recovery off and peers the PG again.
//! A copy whose recovery was cut short still says how far it is complete, so the next peering
//! does not take its `last_update` at its word. A peer that does not answer within
//! `PEER_TIMEOUT` fails the attempt, which is retried.

use super::op_wq::PgKey;
use super::peering::pgid;
use super::pg::{self, DigestEntry, Eversion};
use super::Shared;
use crate::common::error::{Error, Result};
use crate::msgr::message::Message;
use crate::os::{CollId, ObjectId, Transaction};
use crate::types::messages::FrontMessage;
use crate::types::osdmap::OsdId;
use crate::types::rep_messages::{
    MOsdPgPull, MOsdPgPush, MOsdPgPushReply, PushObject, PUSH_BEGIN, PUSH_COPY, PUSH_END,
};
use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Objects per push or pull message.
const PUSH_OBJECTS: usize = 64;

/// How long the `osd_recovery` thread waits for work before it ends (the next PG to peer or
/// recover starts it again): an OSD whose PGs are clean has no such thread, so a process
/// hosting many OSDs does not keep one per OSD.
const IDLE_EXIT: Duration = Duration::from_secs(2);

/// The `osd_recovery` thread, when one runs.
#[derive(Default)]
struct Worker {
    running: bool,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// What the `osd_recovery` thread works from: the PGs to peer (queued by `on_map`), the active
/// PGs with copies still to make, and the peering steps waiting for a peer's answer.
#[derive(Default)]
pub(super) struct Recovery {
    worker: Mutex<Worker>,
    /// Peering steps waiting for an answer, by tid.
    waits: Mutex<HashMap<u64, Sender<Message>>>,
    /// PGs to peer; the thread takes these first.
    to_peer: Mutex<VecDeque<PgKey>>,
    /// Active PGs with copies still to make, served a batch at a time between peerings.
    to_recover: Mutex<VecDeque<PgKey>>,
    /// Signalled when a PG is queued to peer, or the OSD stops.
    cv: Condvar,
}

impl Recovery {
    /// Queues `keys` to peer (each once) and wakes the thread.
    pub(super) fn queue_peering(&self, keys: impl IntoIterator<Item = PgKey>) {
        let mut q = self.to_peer.lock();
        for k in keys {
            if !q.contains(&k) {
                q.push_back(k);
            }
        }
        self.cv.notify_all();
    }

    /// Queues an active PG's next recovery step (after the PGs waiting to peer).
    pub(super) fn queue_recovery(&self, key: PgKey) {
        // Under the peering queue's lock too: the thread decides to end under it.
        let _q = self.to_peer.lock();
        self.to_recover.lock().push_back(key);
        self.cv.notify_all();
    }

    /// The thread, once stopping was set and `wake` called: joined.
    pub(super) fn join(&self) {
        let h = self.worker.lock().handle.take();
        if let Some(h) = h {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    /// Whether no PG waits to peer (a recovery's sleep ends early otherwise).
    pub(super) fn nothing_to_peer(&self) -> bool {
        self.to_peer.lock().is_empty()
    }

    /// The next PG to work on and whether it is to be peered (else: a recovery step); None
    /// once `stopping` is set, or after `IDLE_EXIT` without work (the thread then ends, marked
    /// not running under the queue's lock: whoever queues next starts another). PGs to peer
    /// come first.
    fn next(&self, stopping: &std::sync::atomic::AtomicBool) -> Option<(PgKey, bool)> {
        let mut q = self.to_peer.lock();
        let mut idle_since = std::time::Instant::now();
        loop {
            if stopping.load(Ordering::Acquire) {
                return None;
            }
            if let Some(k) = q.pop_front() {
                return Some((k, true));
            }
            if let Some(k) = self.to_recover.lock().pop_front() {
                return Some((k, false));
            }
            if idle_since.elapsed() >= IDLE_EXIT && self.waits.lock().is_empty() {
                self.worker.lock().running = false;
                return None;
            }
            if self.cv.wait_for(&mut q, Duration::from_millis(500)).timed_out() {
                continue;
            }
            idle_since = std::time::Instant::now();
        }
    }

    /// Wakes the thread (the OSD is stopping).
    pub(super) fn wake(&self) {
        self.cv.notify_all();
    }

    /// A channel for the answer carrying `tid`.
    pub(super) fn wait_for(&self, tid: u64) -> crossbeam_channel::Receiver<Message> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.waits.lock().insert(tid, tx);
        rx
    }

    /// Stops waiting for `tid`.
    pub(super) fn forget(&self, tid: u64) {
        self.waits.lock().remove(&tid);
    }

    /// Hands `m` to the step waiting for `tid`; false when nobody waits.
    pub(super) fn deliver(&self, tid: u64, m: Message) -> bool {
        match self.waits.lock().remove(&tid) {
            Some(tx) => {
                let _ = tx.send(m);
                true
            }
            None => false,
        }
    }
}

impl Shared {
    /// Starts the `osd_recovery` thread unless it runs (after something was queued).
    pub(super) fn ensure_recovery_thread(&self) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let Some(me) = self.me.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        let mut w = self.recovery.worker.lock();
        if w.running {
            return;
        }
        // The last one ended (or is ending) on its own.
        if let Some(h) = w.handle.take() {
            let _ = h.join();
        }
        let log = self.log.clone();
        match crate::common::log::ThreadBuilder::new()
            .name("osd_recovery".into())
            .spawn(move || {
                // Started from whichever thread queued the work: log as this OSD.
                let _log = crate::common::log::ThreadLogScope::enter(&log);
                me.recovery_loop()
            }) {
            Ok(h) => {
                w.running = true;
                w.handle = Some(h);
            }
            Err(e) => log::error!(target: "osd", "osd.{}: cannot start osd_recovery: {e}", self.whoami),
        }
    }

    pub(super) fn handle_pull(&self, m: Message) {
        let Some(p) = self.decode::<MOsdPgPull>(&m, "pg pull") else {
            return;
        };
        let key = PgKey {
            pool: p.pgid.pool,
            seed: p.pgid.seed,
        };
        let (_, digest) = self.digest(key);
        let versions = digest.iter().map(|e| (&e.oid, e)).collect();
        match self.build_push(key, p.tid, &p.oids, true, &versions) {
            Ok(push) => {
                if let Some(c) = m.conn {
                    let _ = c.send_message(push.to_message());
                }
            }
            // No answer: the puller's step times out and its PG peers again.
            Err(e) => log::warn!(target: "osd", "osd.{}: pull for pg {} from osd.{}: {e}", self.whoami, p.pgid, p.from),
        }
    }

    pub(super) fn handle_push(&self, m: Message) {
        let Some(p) = self.decode::<MOsdPgPush>(&m, "pg push") else {
            return;
        };
        if p.reply_to_pull {
            self.recovery.deliver(p.tid, m);
            return;
        }
        let key = PgKey {
            pool: p.pgid.pool,
            seed: p.pgid.seed,
        };
        let fence = self.pg(key).lock().fence;
        let result = if p.epoch < fence {
            // From a primary that a newer one has since peered: its copies may be older than
            // the writes this PG has taken since.
            log::info!(target: "osd", "osd.{}: refused a push of e{} for pg {} fenced at e{fence}", self.whoami, p.epoch, p.pgid);
            -libc::ESTALE
        } else {
            match self.apply_push(&p) {
                Ok(()) => 0,
                Err(e) => {
                    log::warn!(target: "osd", "osd.{}: applying push for pg {}: {e}", self.whoami, p.pgid);
                    -e.errno.abs()
                }
            }
        };
        let r = MOsdPgPushReply {
            tid: p.tid,
            pgid: p.pgid,
            from: self.whoami,
            result,
        };
        if let Some(c) = m.conn {
            let _ = c.send_message(r.to_message());
        }
    }

    pub(super) fn handle_push_reply(&self, m: Message) {
        if let Some(r) = self.decode::<MOsdPgPushReply>(&m, "push reply") {
            self.recovery.deliver(r.tid, m);
        }
    }

    /// The objects `oids` of a PG as they are here, at the versions `versions` gives; ones
    /// missing here go as removals at that version.
    fn build_push(
        &self,
        key: PgKey,
        tid: u64,
        oids: &[ObjectId],
        reply_to_pull: bool,
        versions: &BTreeMap<&ObjectId, &DigestEntry>,
    ) -> Result<MOsdPgPush> {
        let coll = CollId::new(key.pool, key.seed);
        let mut push = MOsdPgPush {
            reply_to_pull,
            ..self.empty_push(key, tid, PUSH_COPY, Eversion::default(), false)
        };
        for oid in oids {
            let Some(v) = versions.get(oid) else { continue };
            if v.deleted {
                push.removed.push((*v).clone());
                continue;
            }
            // A live object that cannot be read here fails the whole push: sending it as a
            // removal would delete a copy that exists.
            let data = self.store.read(&coll, oid, 0, 0)?;
            let attrs = self.store.getattrs(&coll, oid)?;
            let (omap, _) = self.store.omap_get_vals(&coll, oid, None, usize::MAX)?;
            push.objects.push(PushObject {
                oid: oid.clone(),
                version: v.version,
                data,
                attrs,
                omap,
            });
        }
        Ok(push)
    }

    /// A push carrying no objects, at `stage` of a recovery that ends at `last_update`
    /// (`whole`: a complete copy was among the peers).
    pub(super) fn empty_push(&self, key: PgKey, tid: u64, stage: u8, last_update: Eversion, whole: bool) -> MOsdPgPush {
        MOsdPgPush {
            tid,
            pgid: pgid(key),
            from: self.whoami,
            // The interval the recovery was planned in: a replica fenced by a newer primary
            // refuses it, however late it arrives.
            epoch: self.pg(key).lock().interval_epoch,
            reply_to_pull: false,
            stage,
            whole,
            last_update,
            objects: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Installs a push: each object replaces any local copy, each removal removes; the pgmeta
    /// records their versions and the raised `last_update`. `PUSH_BEGIN` sets `last_complete`
    /// to what this copy reported when peering planned its recovery (it lacks only what that
    /// plan copies) and forgets earlier damage, which the plan covers; `PUSH_END` clears it,
    /// unless no complete copy was among the peers or this copy was damaged meanwhile. One
    /// transaction.
    pub(super) fn apply_push(&self, p: &MOsdPgPush) -> Result<()> {
        let key = PgKey {
            pool: p.pgid.pool,
            seed: p.pgid.seed,
        };
        let coll = CollId::new(key.pool, key.seed);
        self.ensure_coll(&coll)?;
        let pg = self.pg(key);
        let mut g = pg.lock();
        let before = g.last_update;
        let last_update = before.max(p.last_update);
        let damaged = g.damaged.load(Ordering::Acquire);
        let last_complete = match p.stage {
            PUSH_BEGIN => Some(g.complete_to()),
            PUSH_END if p.whole && !damaged => None,
            PUSH_END if damaged => Some(Eversion::default()),
            // Copying, or done without a complete copy to compare with (the one that had
            // everything is down): complete only as far as it was.
            _ => Some(g.last_complete.unwrap_or(before)),
        };
        let mut t = Transaction::new();
        let mut meta = BTreeMap::new();
        for o in &p.objects {
            if self.store.exists(&coll, &o.oid)? {
                t.remove(&o.oid);
            }
            t.touch(&o.oid);
            if !o.data.is_empty() {
                t.write(&o.oid, 0, o.data.clone());
            }
            for (k, v) in &o.attrs {
                t.setattr(&o.oid, k, v.clone());
            }
            if !o.omap.is_empty() {
                t.omap_setkeys(&o.oid, o.omap.clone());
            }
            meta.insert(pg::version_key(&o.oid), pg::version_value(o.version, false));
        }
        for r in &p.removed {
            if self.store.exists(&coll, &r.oid)? {
                t.remove(&r.oid);
            }
            meta.insert(pg::version_key(&r.oid), pg::version_value(r.version, true));
        }
        meta.insert("_info".to_string(), last_update.to_bytes());
        let m = pg::pgmeta(&coll);
        t.touch(&m);
        t.omap_setkeys(&m, meta);
        if last_complete != g.last_complete {
            pg::set_last_complete(&coll, &mut t, last_complete);
        }
        self.store.apply_transaction(&coll, t)?;
        if !p.objects.is_empty() || !p.removed.is_empty() || last_update > g.last_update {
            // Changed by recovery, not by the writes the log records: it starts again here.
            g.objlog.reset(last_update);
        }
        g.last_update = last_update;
        g.last_complete = last_complete;
        if p.stage == PUSH_BEGIN {
            g.damaged.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Sends `p` to `osd` and waits for its push reply.
    pub(super) fn push_to(&self, key: PgKey, osd: OsdId, p: MOsdPgPush) -> Result<()> {
        let r = MOsdPgPushReply::from_message(&self.request(osd, p.tid, p.to_message())?)?;
        if r.result < 0 {
            return Err(Error::new(
                -r.result,
                format!("osd.{osd} failed a push for pg {}", pgid(key)),
            ));
        }
        Ok(())
    }

    /// Ends a recovery: every replica's and our own copy holds what the peers had at `head`.
    fn complete_recovery(&self, key: PgKey, acting: &[OsdId], (v, whole): (Eversion, bool)) -> Result<()> {
        for &r in acting.iter().skip(1) {
            self.push_to(key, r, self.empty_push(key, self.new_tid(), PUSH_END, v, whole))?;
        }
        self.apply_push(&self.empty_push(key, 0, PUSH_END, v, whole))
    }

    /// One step of an active PG's recovery: one batch of objects pulled to us or pushed to a
    /// replica (objects that ops wait for first), or, once nothing is lacked, the end of it.
    /// Ok(true) when there is nothing more to do.
    fn recover_step(&self, key: PgKey) -> Result<bool> {
        let me = self.whoami;
        let map = self.map.read().clone();
        let acting = map.pg_to_up_osds(pgid(key));
        let pg = self.pg(key);
        let (osd, batch) = {
            let g = pg.lock();
            if !g.recovering || g.peering || g.acting != acting || acting.first() != Some(&me) {
                return Ok(true); // called off: a new interval peers it again
            }
            let Some(osd) = (if g.missing.values().any(|m| m.osds.contains(&me)) {
                Some(me)
            } else {
                g.missing.values().find_map(|m| m.osds.iter().next().copied())
            }) else {
                drop(g);
                return self.finish_recovery(key, &acting).map(|()| true);
            };
            // Objects that ops wait for first; a pull takes objects of one source.
            let lacked = || g.missing.values().filter(|m| m.osds.contains(&osd));
            let first = lacked().find(|m| !m.waiting.is_empty()).or_else(|| lacked().next());
            let src = first.map(|m| m.src);
            let same_src = |m: &&pg::Missing| osd != me || m.want.deleted || Some(m.src) == src;
            let mut batch: Vec<(DigestEntry, OsdId)> = lacked()
                .filter(|m| !m.waiting.is_empty())
                .filter(same_src)
                .take(PUSH_OBJECTS)
                .map(|m| (m.want.clone(), m.src))
                .collect();
            if batch.len() < PUSH_OBJECTS {
                let more: Vec<(DigestEntry, OsdId)> = lacked()
                    .filter(|m| m.waiting.is_empty())
                    .filter(same_src)
                    .take(PUSH_OBJECTS - batch.len())
                    .map(|m| (m.want.clone(), m.src))
                    .collect();
                batch.extend(more);
            }
            (osd, batch)
        };
        let oids: Vec<ObjectId> = batch.iter().map(|(e, _)| e.oid.clone()).collect();
        if osd == me {
            let removed: Vec<DigestEntry> = batch
                .iter()
                .filter(|(e, _)| e.deleted)
                .map(|(e, _)| e.clone())
                .collect();
            let pull: Vec<ObjectId> = batch
                .iter()
                .filter(|(e, _)| !e.deleted)
                .map(|(e, _)| e.oid.clone())
                .collect();
            if !removed.is_empty() {
                let mut p = self.empty_push(key, 0, PUSH_COPY, Eversion::default(), false);
                p.removed = removed;
                self.apply_push(&p)?;
            }
            if let Some(&(_, src)) = batch.iter().find(|(e, _)| !e.deleted) {
                let tid = self.new_tid();
                let ask = MOsdPgPull {
                    tid,
                    pgid: pgid(key),
                    from: me,
                    oids: pull,
                };
                let mut push = MOsdPgPush::from_message(&self.request(src, tid, ask.to_message())?)?;
                let got: std::collections::BTreeSet<&ObjectId> = push
                    .objects
                    .iter()
                    .map(|o| &o.oid)
                    .chain(push.removed.iter().map(|r| &r.oid))
                    .collect();
                if let Some(lost) = batch.iter().find(|(e, _)| !e.deleted && !got.contains(&e.oid)) {
                    return Err(Error::noent(format!(
                        "pg {}: osd.{src} has no {} to pull",
                        pgid(key),
                        lost.0.oid.name
                    )));
                }
                push.stage = PUSH_COPY;
                self.apply_push(&push)?;
            }
        } else {
            let versions: BTreeMap<&ObjectId, &DigestEntry> = batch.iter().map(|(e, _)| (&e.oid, e)).collect();
            let push = self.build_push(key, self.new_tid(), &oids, false, &versions)?;
            self.push_to(key, osd, push)?;
        }
        let ready = pg.lock().recovered(osd, &oids);
        for op in ready {
            self.requeue(key, op);
        }
        let sleep = self.conf.get_f64("osd_recovery_sleep").clamp(0.0, 60.0);
        let until = std::time::Instant::now() + Duration::from_secs_f64(sleep);
        // In steps, so that neither a stopping OSD nor a PG waiting to peer waits it out.
        while std::time::Instant::now() < until
            && !self.stopping.load(Ordering::Acquire)
            && self.recovery.nothing_to_peer()
        {
            std::thread::sleep(
                Duration::from_millis(20).min(until.saturating_duration_since(std::time::Instant::now())),
            );
        }
        Ok(false)
    }

    /// Every copy holds every object: each is marked complete, and the PG is clean.
    fn finish_recovery(&self, key: PgKey, acting: &[OsdId]) -> Result<()> {
        let head = self.pg(key).lock().recovery_head;
        self.complete_recovery(key, acting, head)?;
        let parked = {
            let pg = self.pg(key);
            let mut g = pg.lock();
            if g.acting != acting || !g.recovering {
                return Ok(());
            }
            g.recovering = false;
            g.phase = "";
            std::mem::take(&mut g.parked)
        };
        log::info!(target: "osd", "osd.{}: pg {} recovered", self.whoami, pgid(key));
        for op in parked {
            self.requeue(key, op);
        }
        Ok(())
    }

    /// The `osd_recovery` thread: peers the PGs queued by `on_map`, one at a time, and between
    /// them runs the active PGs' recoveries a batch at a time, in turn.
    pub(super) fn recovery_loop(&self) {
        loop {
            let Some((key, peer)) = self.recovery.next(&self.stopping) else {
                return;
            };
            let pg = self.pg(key);
            if peer && !pg.lock().peering {
                continue;
            }
            let r = if peer {
                self.peer_pg(key).map(|_| ())
            } else {
                match self.recover_step(key) {
                    Ok(false) => {
                        self.recovery.queue_recovery(key);
                        Ok(())
                    }
                    Ok(true) => Ok(()),
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = r {
                log::warn!(target: "osd", "osd.{}: {} pg {}: {e}; peering it again", self.whoami, if peer { "peering" } else { "recovering" }, pgid(key));
                {
                    let mut g = pg.lock();
                    let map = self.map.read().clone();
                    if map.pg_to_up_osds(pgid(key)).first() != Some(&self.whoami) {
                        continue;
                    }
                    if !g.peering {
                        g.abandon_recovery();
                        g.peering = true;
                        g.phase = "peering";
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
                self.recovery.queue_peering([key]);
            }
        }
    }
}
