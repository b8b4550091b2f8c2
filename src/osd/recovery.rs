//! Peering and recovery, simplified (reference: Ceph's peering, log-based recovery and
//! backfill, without past intervals).
//!
//! When a PG's acting set changes and this OSD is its primary, the PG stops serving (client
//! ops park) and the `osd_recovery` thread peers it:
//!
//! 1. It fences the PG on every up OSD and asks each for its `last_update` and
//!    `last_complete` (`MOSDPGScan`). Without past-interval tracking, "every up OSD" stands in
//!    for "every OSD that may have served the PG".
//! 2. It plans what each acting member lacks. From the log when the newest copy is complete
//!    and its log holds every other OSD's `last_complete`: the objects written since. By
//!    backfill otherwise: every up OSD's digest (each object's version, removals included as
//!    tombstones), the newest version of each object winning (versions order by epoch, then
//!    counter, so a newer primary's writes beat a deposed one's).
//! 3. Each copy that lacks something is marked incomplete (`last_complete`, persisted), and
//!    ours gets the newest `last_update`. The PG is active: parked ops run, except those on
//!    objects some copy still lacks. Those wait for their object (Ceph's
//!    `waiting_for_degraded_object` / `waiting_for_unreadable_object`).
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
use super::pg::{self, DigestEntry, Eversion};
use super::Shared;
use crate::common::entity::EntityType;
use crate::common::error::{Error, Result};
use crate::msgr::message::Message;
use crate::os::{CollId, ObjectId, Transaction};
use crate::types::messages::FrontMessage;
use crate::types::osdmap::OsdId;
use crate::types::placement::PgId;
use crate::types::rep_messages::{
    MOsdPgPull, MOsdPgPush, MOsdPgPushReply, MOsdPgScan, PushObject, PUSH_BEGIN, PUSH_COPY, PUSH_END, SCAN_DIGEST,
    SCAN_GET_DIGEST, SCAN_GET_INFO, SCAN_GET_LOG, SCAN_INFO, SCAN_LOG, SCAN_LOG_GAP,
};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a peering step waits for one OSD's answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// Objects per push or pull message.
const PUSH_OBJECTS: usize = 64;

fn pgid(key: PgKey) -> PgId {
    PgId::new(key.pool, key.seed)
}

/// The newest entry per object over several digests, and where each came from.
fn merge(digests: &BTreeMap<OsdId, Vec<DigestEntry>>) -> BTreeMap<ObjectId, (DigestEntry, OsdId)> {
    let mut best: BTreeMap<ObjectId, (DigestEntry, OsdId)> = BTreeMap::new();
    for (osd, entries) in digests {
        for e in entries {
            match best.get(&e.oid) {
                Some((b, _)) if b.version >= e.version => {}
                _ => {
                    best.insert(e.oid.clone(), (e.clone(), *osd));
                }
            }
        }
    }
    best
}

/// What `have` must change to match `want`: objects to copy, removals to record.
fn diff(
    want: &BTreeMap<ObjectId, (DigestEntry, OsdId)>,
    have: &[DigestEntry],
) -> (Vec<(DigestEntry, OsdId)>, Vec<DigestEntry>) {
    let have: BTreeMap<&ObjectId, &DigestEntry> = have.iter().map(|e| (&e.oid, e)).collect();
    let (mut copy, mut remove) = (Vec::new(), Vec::new());
    for (oid, (e, from)) in want {
        let current = have
            .get(oid)
            .is_some_and(|h| h.version == e.version && h.deleted == e.deleted);
        if current {
            continue;
        }
        if e.deleted {
            remove.push(e.clone());
        } else {
            copy.push((e.clone(), *from));
        }
    }
    (copy, remove)
}

impl Shared {
    /// `m` decoded as `T`, or `None` after a warning naming `what` (the connection stays).
    pub(super) fn decode<T: FrontMessage>(&self, m: &Message, what: &str) -> Option<T> {
        T::from_message(m)
            .map_err(|e| log::warn!(target: "osd", "osd.{}: bad {what}: {e}", self.whoami))
            .ok()
    }

    /// Refuses this PG's writes of intervals before `epoch`, then waits for the writes already
    /// given a version to reach the store: a digest taken after this holds every write this
    /// OSD can still acknowledge or has acknowledged.
    pub(super) fn fence(&self, key: PgKey, epoch: u32) -> Result<()> {
        let applying = {
            let pg = self.pg(key);
            let mut g = pg.lock();
            g.fence = g.fence.max(epoch);
            g.applying.clone()
        };
        let deadline = std::time::Instant::now() + PEER_TIMEOUT;
        while applying.get() > 0 {
            if std::time::Instant::now() >= deadline {
                // No answer rather than one that may miss a write: the asker retries.
                return Err(Error::new(
                    libc::ETIMEDOUT,
                    format!("pg {}: writes still being applied after {PEER_TIMEOUT:?}", pgid(key)),
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// This OSD's digest of a PG.
    fn digest(&self, key: PgKey) -> (Eversion, Vec<DigestEntry>) {
        let coll = CollId::new(key.pool, key.seed);
        (
            pg::load_info(&*self.store, &coll).0,
            pg::load_versions(&*self.store, &coll),
        )
    }

    fn send_to_osd(&self, osd: OsdId, m: Message) -> Result<()> {
        let map = self.map.read().clone();
        let info = map
            .osd(osd)
            .filter(|o| o.up && !o.addrs.cluster.is_blank_ip())
            .ok_or_else(|| Error::noent(format!("osd.{osd} is not up")))?;
        self.cluster
            .connect_to(EntityType::Osd, &info.addrs.cluster)?
            .send_message(m)
    }

    /// Sends `m` (carrying `tid`) to `osd` and waits for the answer with the same tid.
    pub(super) fn request(&self, osd: OsdId, tid: u64, m: Message) -> Result<Message> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.recovery_waits.lock().insert(tid, tx);
        let r = self.send_to_osd(osd, m).and_then(|()| {
            let deadline = std::time::Instant::now() + PEER_TIMEOUT;
            loop {
                if let Ok(m) = rx.recv_timeout(Duration::from_millis(100)) {
                    return Ok(m);
                }
                if self.stopping.load(Ordering::Acquire) {
                    return Err(Error::new(libc::ESHUTDOWN, "the OSD is stopping"));
                }
                if std::time::Instant::now() >= deadline {
                    return Err(Error::new(
                        libc::ETIMEDOUT,
                        format!("no answer from osd.{osd} in {PEER_TIMEOUT:?}"),
                    ));
                }
            }
        });
        self.recovery_waits.lock().remove(&tid);
        r
    }

    pub(super) fn new_tid(&self) -> u64 {
        self.next_repop_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes an answer to the peering step waiting for it; false when nobody waits.
    pub(super) fn deliver(&self, tid: u64, m: Message) -> bool {
        match self.recovery_waits.lock().remove(&tid) {
            Some(tx) => {
                let _ = tx.send(m);
                true
            }
            None => false,
        }
    }

    pub(super) fn handle_scan(&self, m: Message) {
        let Some(s) = self.decode::<MOsdPgScan>(&m, "pg scan") else {
            return;
        };
        if s.op % 2 == 1 {
            // An answer (digest, info, log, gap) to a peering step of ours.
            self.deliver(s.tid, m);
            return;
        }
        let key = PgKey {
            pool: s.pgid.pool,
            seed: s.pgid.seed,
        };
        let (op, last_update, log_tail, last_complete, objects) = match s.op {
            SCAN_GET_DIGEST | SCAN_GET_INFO => {
                if let Err(e) = self.fence(key, s.epoch) {
                    log::warn!(target: "osd", "osd.{}: not answering osd.{}'s scan: {e}", self.whoami, s.from);
                    return;
                }
                if s.op == SCAN_GET_INFO {
                    let (lu, lc, tail) = self.info(key);
                    (SCAN_INFO, lu, tail, lc, Vec::new())
                } else {
                    let (lu, objects) = self.digest(key);
                    (SCAN_DIGEST, lu, Eversion::default(), Eversion::default(), objects)
                }
            }
            SCAN_GET_LOG => {
                let none = Eversion::default();
                match self.pg(key).lock().objlog.since(s.last_update) {
                    Some(objects) => (SCAN_LOG, s.last_update, none, none, objects),
                    None => (SCAN_LOG_GAP, s.last_update, none, none, Vec::new()),
                }
            }
            other => {
                log::warn!(target: "osd", "osd.{}: pg scan op {other} from osd.{} ignored", self.whoami, s.from);
                return;
            }
        };
        let answer = MOsdPgScan {
            op,
            tid: s.tid,
            pgid: s.pgid,
            from: self.whoami,
            epoch: s.epoch,
            last_update,
            log_tail,
            last_complete,
            objects,
        };
        if let Some(c) = m.conn {
            let _ = c.send_message(answer.to_message());
        }
    }

    /// This OSD's `last_update` of a PG, the version up to which its copy is complete, and
    /// the tail of its log.
    fn info(&self, key: PgKey) -> (Eversion, Eversion, Eversion) {
        let pg = self.pg(key);
        let g = pg.lock();
        (g.last_update, g.complete_to(), g.objlog.tail)
    }

    /// Asks `osd` (maybe ourselves) for the objects written after `since`; None when its log
    /// does not reach back that far.
    fn log_since(&self, key: PgKey, osd: OsdId, since: Eversion, epoch: u32) -> Result<Option<Vec<DigestEntry>>> {
        if osd == self.whoami {
            return Ok(self.pg(key).lock().objlog.since(since));
        }
        let tid = self.new_tid();
        let ask = MOsdPgScan {
            op: SCAN_GET_LOG,
            tid,
            pgid: pgid(key),
            from: self.whoami,
            epoch,
            last_update: since,
            log_tail: Eversion::default(),
            last_complete: Eversion::default(),
            objects: Vec::new(),
        };
        let a = MOsdPgScan::from_message(&self.request(osd, tid, ask.to_message())?)?;
        Ok((a.op == SCAN_LOG).then_some(a.objects))
    }

    /// The plan of a log-based recovery, when the newest OSD's copy is complete and every up
    /// OSD's `last_complete` is a version its log holds: each history is then a prefix of
    /// that one, and each OSD lacks exactly the objects written since. None: backfill (the
    /// option is off, a log does not reach back, or the newest copy is itself unfinished).
    fn plan_from_log(
        &self,
        key: PgKey,
        acting: &[OsdId],
        infos: &BTreeMap<OsdId, PeerInfo>,
        epoch: u32,
    ) -> Result<Option<(Eversion, Plans)>> {
        // The newest OSD; on a tie ourselves, then an acting member.
        let rank = |o: &OsdId| (infos[o].last_update, *o == self.whoami, acting.contains(o));
        let Some(auth) = infos.keys().copied().max_by_key(rank) else {
            return Ok(Some((Eversion::default(), Plans::new())));
        };
        let head = infos[&auth].last_update;
        if !self.log_recovery || infos[&auth].last_complete != head {
            return Ok(None);
        }
        let mut since: BTreeMap<OsdId, Vec<DigestEntry>> = BTreeMap::new();
        // Every up OSD must be covered, not only the acting set: one outside it that the log
        // does not cover may hold writes the others lack (the backfill merge keeps them).
        for (&osd, info) in infos {
            if info.last_complete == head {
                continue;
            }
            match self.log_since(key, auth, info.last_complete, epoch)? {
                Some(entries) => {
                    since.insert(osd, entries);
                }
                None => return Ok(None),
            }
        }
        let mut plans = Plans::new();
        for &osd in acting {
            if let Some(entries) = since.remove(&osd).filter(|e| !e.is_empty()) {
                let src = if osd == self.whoami { auth } else { self.whoami };
                plans.insert(osd, entries.into_iter().map(|e| (e, src)).collect());
            }
        }
        Ok(Some((head, plans)))
    }

    /// The plan of a backfill: every up OSD's digest, the newest version of each object, and
    /// what each acting member lacks of it.
    fn plan_backfill(
        &self,
        key: PgKey,
        map: &crate::types::osdmap::OsdMap,
        acting: &[OsdId],
    ) -> Result<(Eversion, Plans)> {
        let mut digests: BTreeMap<OsdId, Vec<DigestEntry>> = BTreeMap::new();
        let (mine_lu, mine) = self.digest(key);
        let mut head = mine_lu;
        digests.insert(self.whoami, mine);
        for (osd, d) in self.ask_all(key, map, acting, SCAN_GET_DIGEST)? {
            head = head.max(d.last_update);
            digests.insert(osd, d.objects);
        }
        let want = merge(&digests);
        let mut plans = Plans::new();
        for &osd in acting {
            let have = digests.get(&osd).map_or(&[][..], Vec::as_slice);
            let (copy, remove) = diff(&want, have);
            let src = |from: OsdId| if osd == self.whoami { from } else { self.whoami };
            let mut plan: Vec<(DigestEntry, OsdId)> = copy.into_iter().map(|(e, from)| (e, src(from))).collect();
            plan.extend(remove.into_iter().map(|e| (e, self.whoami)));
            if !plan.is_empty() {
                plans.insert(osd, plan);
            }
        }
        Ok((head, plans))
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
            self.deliver(p.tid, m);
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
            self.deliver(r.tid, m);
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
    fn empty_push(&self, key: PgKey, tid: u64, stage: u8, last_update: Eversion, whole: bool) -> MOsdPgPush {
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

    /// Asks every other up OSD `op` about the PG (fencing it at our epoch): their answers. An
    /// acting member must answer; others may hold nothing of it or be going away.
    fn ask_all(
        &self,
        key: PgKey,
        map: &crate::types::osdmap::OsdMap,
        acting: &[OsdId],
        op: u8,
    ) -> Result<BTreeMap<OsdId, MOsdPgScan>> {
        let mut out = BTreeMap::new();
        for (&osd, info) in &map.osds {
            if osd == self.whoami || !info.up || info.addrs.cluster.is_blank_ip() {
                continue;
            }
            let tid = self.new_tid();
            let ask = MOsdPgScan {
                op,
                tid,
                pgid: pgid(key),
                from: self.whoami,
                epoch: map.epoch,
                last_update: Eversion::default(),
                log_tail: Eversion::default(),
                last_complete: Eversion::default(),
                objects: Vec::new(),
            };
            match self.request(osd, tid, ask.to_message()) {
                Ok(m) => {
                    out.insert(osd, MOsdPgScan::from_message(&m)?);
                }
                Err(e) if acting.contains(&osd) => return Err(e),
                Err(e) => {
                    log::info!(target: "osd", "osd.{}: pg {}: no answer from osd.{osd}: {e}", self.whoami, pgid(key))
                }
            }
        }
        Ok(out)
    }

    /// Sends `p` to `osd` and waits for its push reply.
    fn push_to(&self, key: PgKey, osd: OsdId, p: MOsdPgPush) -> Result<()> {
        let r = MOsdPgPushReply::from_message(&self.request(osd, p.tid, p.to_message())?)?;
        if r.result < 0 {
            return Err(Error::new(
                -r.result,
                format!("osd.{osd} failed a push for pg {}", pgid(key)),
            ));
        }
        Ok(())
    }

    /// Peers one PG and activates it: Ok(true) when it serves again (its recovery, if any, is
    /// queued), Ok(false) when the map moved on (peer again or not ours), Err on a failed step
    /// (retry).
    pub(super) fn peer_pg(&self, key: PgKey) -> Result<bool> {
        let map = self.map.read().clone();
        let acting = map.pg_to_up_osds(pgid(key));
        if acting.first() != Some(&self.whoami) {
            return Ok(false);
        }
        let still = |map_acting: &[OsdId]| self.pg(key).lock().acting == map_acting;
        {
            let pg = self.pg(key);
            let mut g = pg.lock();
            g.phase = "peering";
            g.interval_epoch = map.epoch;
        }
        self.fence(key, map.epoch)?;
        let (lu, lc, _) = self.info(key);
        let mut infos = BTreeMap::from([(
            self.whoami,
            PeerInfo {
                last_update: lu,
                last_complete: lc,
            },
        )]);
        for (osd, a) in self.ask_all(key, &map, &acting, SCAN_GET_INFO)? {
            let info = PeerInfo {
                last_update: a.last_update,
                last_complete: a.last_complete,
            };
            infos.insert(osd, info);
        }
        if !still(&acting) {
            return Ok(false);
        }
        let (kind, (head, plans)) = match self.plan_from_log(key, &acting, &infos, map.epoch)? {
            Some(p) => ("recovering", p),
            None => ("backfilling", self.plan_backfill(key, &map, &acting)?),
        };
        if !still(&acting) {
            return Ok(false);
        }
        let whole = infos.values().any(|i| i.last_complete == head);
        self.activate(key, &acting, kind, (head, whole), plans)
    }

    /// Makes the PG serve again after peering chose `plans`. Every copy that lacks something is
    /// first marked incomplete (a write of the new interval raises its `last_update`, which
    /// must not hide what it lacks if the recovery is cut short) and ours is raised to `head`
    /// (new writes must be numbered after every version the PG holds). Ops then run, except
    /// those on objects still lacked, which wait for them (see `recover_step`).
    fn activate(
        &self,
        key: PgKey,
        acting: &[OsdId],
        kind: &'static str,
        head: (Eversion, bool),
        plans: Plans,
    ) -> Result<bool> {
        let me = self.whoami;
        let copies: usize = plans.values().map(Vec::len).sum();
        let (v, whole) = head;
        if plans.contains_key(&me) {
            self.apply_push(&self.empty_push(key, 0, PUSH_BEGIN, v, whole))?;
        } else {
            self.raise_last_update(key, v)?;
        }
        // Every replica at `head` before the new interval's first write, which comes next in
        // the numbering: a repop that does not is one a replica missed.
        for &osd in acting.iter().skip(1) {
            let stage = match plans.get(&osd) {
                Some(plan) => {
                    log::info!(target: "osd", "osd.{me}: pg {}: {kind} osd.{osd}: {} objects", pgid(key), plan.len());
                    PUSH_BEGIN
                }
                None => PUSH_END,
            };
            self.push_to(key, osd, self.empty_push(key, self.new_tid(), stage, v, whole))?;
        }
        if let Some(plan) = plans.get(&me) {
            log::info!(target: "osd", "osd.{me}: pg {}: {kind} our copy: {} objects", pgid(key), plan.len());
        }
        let mut missing: BTreeMap<ObjectId, pg::Missing> = BTreeMap::new();
        // Ours first: an object we lack is pulled from where our plan says.
        let mut order: Vec<&OsdId> = plans.keys().collect();
        order.sort_by_key(|o| **o != me);
        for osd in order {
            for (e, src) in &plans[osd] {
                missing
                    .entry(e.oid.clone())
                    .or_insert_with(|| pg::Missing {
                        want: e.clone(),
                        src: *src,
                        osds: Default::default(),
                        waiting: Vec::new(),
                    })
                    .osds
                    .insert(*osd);
            }
        }
        if missing.is_empty() {
            self.apply_push(&self.empty_push(key, 0, PUSH_END, v, whole))?;
        }
        let parked = {
            let pg = self.pg(key);
            let mut g = pg.lock();
            if g.acting != acting {
                return Ok(false);
            }
            g.recovering = !missing.is_empty();
            g.phase = if g.recovering { kind } else { "" };
            g.missing = missing;
            g.recovery_head = head;
            g.last_recovery = Some((if kind == "recovering" { "log" } else { "backfill" }, copies));
            g.peering = false;
            std::mem::take(&mut g.parked)
        };
        for op in parked {
            self.requeue(key, op);
        }
        if self.pg(key).lock().recovering {
            self.recover_queue.lock().push_back(key);
        }
        Ok(true)
    }

    /// Raises our `last_update` to `v`, leaving `last_complete` as it is.
    fn raise_last_update(&self, key: PgKey, v: Eversion) -> Result<()> {
        let coll = CollId::new(key.pool, key.seed);
        let pg = self.pg(key);
        let mut g = pg.lock();
        if v <= g.last_update {
            return Ok(());
        }
        let mut t = Transaction::new();
        let m = pg::pgmeta(&coll);
        t.touch(&m);
        t.omap_setkeys(&m, BTreeMap::from([("_info".to_string(), v.to_bytes())]));
        self.store.apply_transaction(&coll, t)?;
        g.objlog.reset(v);
        g.last_update = v;
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
            && self.recovery_queue.lock().is_empty()
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
            let (key, peer) = {
                let mut q = self.recovery_queue.lock();
                loop {
                    if self.stopping.load(Ordering::Acquire) {
                        return;
                    }
                    if let Some(k) = q.pop_front() {
                        break (k, true);
                    }
                    if let Some(k) = self.recover_queue.lock().pop_front() {
                        break (k, false);
                    }
                    self.recovery_cv.wait_for(&mut q, Duration::from_millis(500));
                }
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
                        self.recover_queue.lock().push_back(key);
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
                let mut q = self.recovery_queue.lock();
                if !q.contains(&key) {
                    q.push_back(key);
                }
            }
        }
    }

    /// Marks PGs whose acting set changed: repops forget departed replicas, recoveries under
    /// way are called off, PGs we now lead start peering (their ops park until it is done).
    pub(super) fn note_intervals(&self, map: &crate::types::osdmap::OsdMap) {
        let mut queued = Vec::new();
        for pool in map.pools.values() {
            for seed in 0..pool.pg_num {
                let key = PgKey { pool: pool.id, seed };
                let acting = map.pg_to_up_osds(pgid(key));
                let known = self.pgs.lock().get(&key).cloned();
                let pg = match known {
                    Some(p) => p,
                    None if acting.first() == Some(&self.whoami) => self.pgs.lock().entry(key).or_default().clone(),
                    None => continue,
                };
                // An acting member that booted again (a new up_from) starts a new interval too,
                // even in the same acting set: its new instance lacks what the old one had
                // in flight.
                let ups: Vec<u32> = acting.iter().map(|o| map.osd(*o).map_or(0, |i| i.up_from)).collect();
                let done = {
                    let mut g = pg.lock();
                    let rebooted: Vec<OsdId> = if g.acting == acting && g.acting_up_from != ups {
                        acting
                            .iter()
                            .zip(&g.acting_up_from)
                            .zip(&ups)
                            .filter(|((_, a), b)| a != b)
                            .map(|((o, _), _)| *o)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let staying: Vec<OsdId> = acting.iter().copied().filter(|o| !rebooted.contains(o)).collect();
                    let done = g.on_new_acting(&staying, self.whoami);
                    g.noted_epoch = map.epoch;
                    if g.acting != acting || !rebooted.is_empty() || g.acting_up_from.len() != ups.len() {
                        g.acting_up_from = ups;
                    }
                    if g.acting != acting || !rebooted.is_empty() {
                        g.acting = acting.clone();
                        g.abandon_recovery();
                        g.peering = acting.first() == Some(&self.whoami);
                        if g.peering {
                            g.phase = "peering";
                            queued.push(key);
                        }
                    }
                    done
                };
                self.complete_repops(key, &pg, done);
            }
        }
        if !queued.is_empty() {
            let mut q = self.recovery_queue.lock();
            for k in queued {
                if !q.contains(&k) {
                    q.push_back(k);
                }
            }
            self.recovery_cv.notify_all();
        }
    }
}

/// What one OSD told a peering primary of its copy.
struct PeerInfo {
    last_update: Eversion,
    last_complete: Eversion,
}

/// What each acting OSD lacks: (the version it must get, or a removal; where a primary's copy
/// comes from).
type Plans = BTreeMap<OsdId, Vec<(DigestEntry, OsdId)>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn e(name: &str, epoch: u32, v: u64, deleted: bool) -> DigestEntry {
        DigestEntry {
            oid: ObjectId::new(1, "", name),
            version: Eversion { epoch, version: v },
            deleted,
        }
    }

    #[test]
    fn the_newest_version_of_each_object_wins_removals_included() {
        let digests = BTreeMap::from([
            // osd.0 was away: it has old copies of a and b, and c the others never saw.
            (0, vec![e("a", 3, 1, false), e("b", 3, 2, false), e("c", 3, 3, false)]),
            // osd.1 served meanwhile (epoch 5): a rewritten, b removed.
            (1, vec![e("a", 5, 4, false), e("b", 5, 5, true), e("d", 5, 6, false)]),
        ]);
        let want = merge(&digests);
        assert_eq!(want[&ObjectId::new(1, "", "a")], (e("a", 5, 4, false), 1));
        assert_eq!(want[&ObjectId::new(1, "", "c")], (e("c", 3, 3, false), 0));
        let (copy, remove) = diff(&want, &digests[&0]);
        let names: BTreeSet<String> = copy.iter().map(|(e, _)| e.oid.name.clone()).collect();
        assert_eq!(names, BTreeSet::from(["a".to_string(), "d".to_string()]));
        assert_eq!(remove, vec![e("b", 5, 5, true)]);
        let (copy, remove) = diff(&want, &digests[&1]);
        assert_eq!(copy, vec![(e("c", 3, 3, false), 0)]);
        assert!(remove.is_empty());
        // An OSD with nothing gets every live object; removals it never saw are recorded too.
        let (copy, remove) = diff(&want, &[]);
        assert_eq!(copy.len(), 3);
        assert_eq!(remove.len(), 1);
    }
}
