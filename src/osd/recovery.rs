//! Peering and recovery, simplified (reference: Ceph's peering + backfill, without past
//! intervals or log-based recovery).
//!
//! When a PG's acting set changes and this OSD is its primary, the PG stops serving (client
//! ops park) and the `osd_recovery` thread peers it:
//!
//! 1. It asks every up OSD for the PG's digest (`MOSDPGScan`): `last_update` and each object's
//!    version, removals included (tombstones in the pgmeta object). Without past-interval
//!    tracking, "every up OSD" stands in for "every OSD that may have served the PG".
//! 2. Per object the newest version wins (versions order by epoch, then counter, so a newer
//!    primary's writes beat a deposed one's). The primary pulls what it lacks or holds older
//!    (`MOSDPGPull` → `MOSDPGPush`) and applies newer removals.
//! 3. It pushes to each replica of the acting set what that replica lacks (`MOSDPGPush` →
//!    `MOSDPGPushReply`): whole objects (data, xattrs, omap) and removals.
//! 4. The PG is active: parked ops run again.
//!
//! A map that changes the acting set meanwhile restarts the PG's peering. A peer that does not
//! answer within `PEER_TIMEOUT` fails this attempt; it is retried a second later.
//!
//! Every recovery copies whole objects: there is no log-based catch-up for short absences
//! yet, and ops wait for the whole PG, not for the objects they touch.

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
    MOsdPgPull, MOsdPgPush, MOsdPgPushReply, MOsdPgScan, PushObject, SCAN_DIGEST, SCAN_GET_DIGEST, SCAN_GET_INFO,
    SCAN_GET_LOG, SCAN_INFO, SCAN_LOG, SCAN_LOG_GAP,
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
            pg::load_last_update(&*self.store, &coll),
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
        let (op, last_update, log_tail, objects) = match s.op {
            SCAN_GET_DIGEST | SCAN_GET_INFO => {
                if let Err(e) = self.fence(key, s.epoch) {
                    log::warn!(target: "osd", "osd.{}: not answering osd.{}'s scan: {e}", self.whoami, s.from);
                    return;
                }
                if s.op == SCAN_GET_INFO {
                    let (lu, tail) = self.info(key);
                    (SCAN_INFO, lu, tail, Vec::new())
                } else {
                    let (lu, objects) = self.digest(key);
                    (SCAN_DIGEST, lu, Eversion::default(), objects)
                }
            }
            SCAN_GET_LOG => match self.pg(key).lock().objlog.since(s.last_update) {
                Some(objects) => (SCAN_LOG, s.last_update, Eversion::default(), objects),
                None => (SCAN_LOG_GAP, s.last_update, Eversion::default(), Vec::new()),
            },
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
            objects,
        };
        if let Some(c) = m.conn {
            let _ = c.send_message(answer.to_message());
        }
    }

    /// This OSD's `last_update` of a PG and the tail of its log.
    fn info(&self, key: PgKey) -> (Eversion, Eversion) {
        let pg = self.pg(key);
        let g = pg.lock();
        (g.last_update, g.objlog.tail)
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
            objects: Vec::new(),
        };
        let a = MOsdPgScan::from_message(&self.request(osd, tid, ask.to_message())?)?;
        Ok((a.op == SCAN_LOG).then_some(a.objects))
    }

    /// Log-based recovery, when every up OSD's `last_update` is one the authoritative log (the
    /// newest OSD's) holds: its history is then a prefix of that one, and the acting set needs
    /// exactly the objects written since. Ok(None): some OSD's history is not in that log
    /// (too old, or divergent): backfill. Ok(Some(n)): done, n objects and removals copied.
    fn recover_from_log(
        &self,
        key: PgKey,
        acting: &[OsdId],
        infos: &BTreeMap<OsdId, Eversion>,
        epoch: u32,
    ) -> Result<Option<usize>> {
        // The newest OSD; on a tie ourselves, then an acting member.
        let rank = |o: &OsdId| (infos[o], *o == self.whoami, acting.contains(o));
        let Some(auth) = infos.keys().copied().max_by_key(rank) else {
            return Ok(Some(0));
        };
        let head = infos[&auth];
        if !self.log_recovery {
            return Ok(None);
        }
        let mut since: BTreeMap<OsdId, Vec<DigestEntry>> = BTreeMap::new();
        // Every up OSD must be covered, not only the acting set: one outside it that the log
        // does not cover may hold writes the others lack (the backfill merge keeps them).
        for (&osd, &lu) in infos {
            if lu == head {
                continue;
            }
            match self.log_since(key, auth, lu, epoch)? {
                Some(entries) => {
                    since.insert(osd, entries);
                }
                None => return Ok(None),
            }
        }
        self.set_phase(key, "recovering");
        let mut copied = 0;
        let split = |entries: &[DigestEntry], from: OsdId| {
            let copy: Vec<(DigestEntry, OsdId)> = entries
                .iter()
                .filter(|e| !e.deleted)
                .map(|e| (e.clone(), from))
                .collect();
            let remove: Vec<DigestEntry> = entries.iter().filter(|e| e.deleted).cloned().collect();
            (copy, remove)
        };
        if let Some(mine) = since.get(&self.whoami) {
            let (copy, remove) = split(mine, auth);
            copied += copy.len() + remove.len();
            self.sync_osd(key, self.whoami, &copy, &remove)?;
        }
        self.apply_push(&self.removal_push(key, 0, head, Vec::new()))?;
        for &r in acting.iter().skip(1) {
            if let Some(theirs) = since.get(&r) {
                let (copy, remove) = split(theirs, self.whoami);
                copied += copy.len() + remove.len();
                log::info!(
                    target: "osd",
                    "osd.{}: pg {}: osd.{r} catches up from the log: {} objects, {} removals",
                    self.whoami,
                    pgid(key),
                    copy.len(),
                    remove.len()
                );
                self.sync_osd(key, r, &copy, &remove)?;
            }
        }
        Ok(Some(copied))
    }

    fn set_phase(&self, key: PgKey, phase: &'static str) {
        self.pg(key).lock().phase = phase;
    }

    pub(super) fn handle_pull(&self, m: Message) {
        let Some(p) = self.decode::<MOsdPgPull>(&m, "pg pull") else {
            return;
        };
        let key = PgKey {
            pool: p.pgid.pool,
            seed: p.pgid.seed,
        };
        let (last_update, digest) = self.digest(key);
        let versions = digest.iter().map(|e| (&e.oid, e)).collect();
        let push = self.build_push(key, p.tid, &p.oids, true, last_update, &versions);
        if let Some(c) = m.conn {
            let _ = c.send_message(push.to_message());
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
        let result = match self.apply_push(&p) {
            Ok(()) => 0,
            Err(e) => {
                log::warn!(target: "osd", "osd.{}: applying push for pg {}: {e}", self.whoami, p.pgid);
                -e.errno.abs()
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

    /// The objects `oids` of a PG as they are here; ones missing here go as removals at
    /// their recorded version.
    /// `versions` and `last_update` are this OSD's digest of the PG, read once by the caller.
    fn build_push(
        &self,
        key: PgKey,
        tid: u64,
        oids: &[ObjectId],
        reply_to_pull: bool,
        last_update: Eversion,
        versions: &BTreeMap<&ObjectId, &DigestEntry>,
    ) -> MOsdPgPush {
        let coll = CollId::new(key.pool, key.seed);
        let mut push = MOsdPgPush {
            reply_to_pull,
            ..self.removal_push(key, tid, last_update, Vec::new())
        };
        for oid in oids {
            let Some(v) = versions.get(oid) else { continue };
            let data = self.store.read(&coll, oid, 0, 0);
            match data {
                Ok(data) if !v.deleted => {
                    let attrs = self.store.getattrs(&coll, oid).unwrap_or_default();
                    let omap = self
                        .store
                        .omap_get_vals(&coll, oid, None, usize::MAX)
                        .map(|(m, _)| m)
                        .unwrap_or_default();
                    push.objects.push(PushObject {
                        oid: oid.clone(),
                        version: v.version,
                        data,
                        attrs,
                        omap,
                    });
                }
                _ => push.removed.push((*v).clone()),
            }
        }
        push
    }

    /// A push carrying no objects: `removed` (maybe none) and the PG's `last_update`.
    fn removal_push(&self, key: PgKey, tid: u64, last_update: Eversion, removed: Vec<DigestEntry>) -> MOsdPgPush {
        MOsdPgPush {
            tid,
            pgid: pgid(key),
            from: self.whoami,
            reply_to_pull: false,
            last_update,
            objects: Vec::new(),
            removed,
        }
    }

    /// Installs a push: each object replaces any local copy, each removal removes; the pgmeta
    /// records their versions and the PG's `last_update` (never lowered). One transaction.
    pub(super) fn apply_push(&self, p: &MOsdPgPush) -> Result<()> {
        let key = PgKey {
            pool: p.pgid.pool,
            seed: p.pgid.seed,
        };
        let coll = CollId::new(key.pool, key.seed);
        self.ensure_coll(&coll)?;
        let pg = self.pg(key);
        let mut g = pg.lock();
        let last_update = g.last_update.max(p.last_update);
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
        self.store.apply_transaction(&coll, t)?;
        if !p.objects.is_empty() || !p.removed.is_empty() || last_update > g.last_update {
            // Changed by recovery, not by the writes the log records: it starts again here.
            g.objlog.reset(last_update);
        }
        g.last_update = last_update;
        Ok(())
    }

    /// Copies `copy` and `remove` to `osd` (or, for ourselves, pulls `copy` from where each
    /// came from) in batches.
    fn sync_osd(&self, key: PgKey, osd: OsdId, copy: &[(DigestEntry, OsdId)], remove: &[DigestEntry]) -> Result<()> {
        let last_update = self.pg(key).lock().last_update;
        if osd == self.whoami {
            // Pull: group by source.
            let mut by_src: BTreeMap<OsdId, Vec<ObjectId>> = BTreeMap::new();
            for (e, src) in copy {
                by_src.entry(*src).or_default().push(e.oid.clone());
            }
            for (src, oids) in by_src {
                for chunk in oids.chunks(PUSH_OBJECTS) {
                    let tid = self.new_tid();
                    let pull = MOsdPgPull {
                        tid,
                        pgid: pgid(key),
                        from: self.whoami,
                        oids: chunk.to_vec(),
                    };
                    let answer = self.request(src, tid, pull.to_message())?;
                    let mut push = MOsdPgPush::from_message(&answer)?;
                    // Not current until every batch is in: the caller records the PG's new
                    // last_update last, so an interrupted recovery is redone, not skipped.
                    push.last_update = Eversion::default();
                    self.apply_push(&push)?;
                }
            }
            if !remove.is_empty() {
                self.apply_push(&self.removal_push(key, 0, last_update, remove.to_vec()))?;
            }
            return Ok(());
        }
        // Push: our copies (we are current by now), batched by count and bytes.
        let oids: Vec<ObjectId> = copy.iter().map(|(e, _)| e.oid.clone()).collect();
        let (mine_lu, digest) = self.digest(key);
        let versions: BTreeMap<&ObjectId, &DigestEntry> = digest.iter().map(|e| (&e.oid, e)).collect();
        let mut batches: Vec<MOsdPgPush> = oids
            .chunks(PUSH_OBJECTS)
            .map(|chunk| self.build_push(key, self.new_tid(), chunk, false, Eversion::default(), &versions))
            .collect();
        if batches.is_empty() || !remove.is_empty() {
            batches.push(self.removal_push(key, self.new_tid(), Eversion::default(), Vec::new()));
        }
        // Only the last batch makes the replica current: one cut short leaves it behind.
        if let Some(last) = batches.last_mut() {
            last.removed = remove.to_vec();
            last.last_update = mine_lu.max(last_update);
        }
        for b in batches {
            let tid = b.tid;
            let answer = self.request(osd, tid, b.to_message())?;
            let r = MOsdPgPushReply::from_message(&answer)?;
            if r.result < 0 {
                return Err(Error::new(
                    -r.result,
                    format!("osd.{osd} failed a push for pg {}", pgid(key)),
                ));
            }
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

    /// Peers one PG: Ok(true) when it is active, Ok(false) when the map moved on (peer again or
    /// not ours), Err on a failed step (retry).
    pub(super) fn peer_pg(&self, key: PgKey) -> Result<bool> {
        let map = self.map.read().clone();
        let acting = map.pg_to_up_osds(pgid(key));
        if acting.first() != Some(&self.whoami) {
            return Ok(false);
        }
        let still = |map_acting: &[OsdId]| self.pg(key).lock().acting == map_acting;
        self.set_phase(key, "peering");
        self.fence(key, map.epoch)?;
        let mut infos = BTreeMap::from([(self.whoami, self.info(key).0)]);
        for (osd, a) in self.ask_all(key, &map, &acting, SCAN_GET_INFO)? {
            infos.insert(osd, a.last_update);
        }
        if !still(&acting) {
            return Ok(false);
        }
        if let Some(n) = self.recover_from_log(key, &acting, &infos, map.epoch)? {
            self.pg(key).lock().last_recovery = Some(("log", n));
            return Ok(still(&acting));
        }
        self.set_phase(key, "backfilling");
        let mut digests: BTreeMap<OsdId, Vec<DigestEntry>> = BTreeMap::new();
        let (mine_lu, mine) = self.digest(key);
        let mut last_update = mine_lu;
        digests.insert(self.whoami, mine);
        for (osd, d) in self.ask_all(key, &map, &acting, SCAN_GET_DIGEST)? {
            last_update = last_update.max(d.last_update);
            if !d.objects.is_empty() {
                digests.insert(osd, d.objects);
            }
        }
        if !still(&acting) {
            return Ok(false);
        }
        let want = merge(&digests);
        let (copy, remove) = diff(&want, digests.get(&self.whoami).map_or(&[][..], Vec::as_slice));
        let mut copied = copy.len() + remove.len();
        if !copy.is_empty() || !remove.is_empty() {
            log::info!(
                target: "osd",
                "osd.{}: pg {}: recovering {} objects, {} removals from peers",
                self.whoami,
                pgid(key),
                copy.len(),
                remove.len()
            );
            self.sync_osd(key, self.whoami, &copy, &remove)?;
        }
        // Make sure the merged last_update is on disk even when nothing was copied.
        self.apply_push(&self.removal_push(key, 0, last_update, Vec::new()))?;
        for &r in acting.iter().skip(1) {
            if !still(&acting) {
                return Ok(false);
            }
            let have = digests.get(&r).map_or(&[][..], Vec::as_slice);
            let (copy, remove) = diff(&want, have);
            let copy: Vec<(DigestEntry, OsdId)> = copy.into_iter().map(|(e, _)| (e, self.whoami)).collect();
            copied += copy.len() + remove.len();
            if !copy.is_empty() || !remove.is_empty() {
                log::info!(
                    target: "osd",
                    "osd.{}: pg {}: backfilling osd.{r}: {} objects, {} removals",
                    self.whoami,
                    pgid(key),
                    copy.len(),
                    remove.len()
                );
            }
            self.sync_osd(key, r, &copy, &remove)?;
        }
        self.pg(key).lock().last_recovery = Some(("backfill", copied));
        Ok(still(&acting))
    }

    /// The `osd_recovery` thread: peers the PGs queued by `on_map`, one at a time.
    pub(super) fn recovery_loop(&self) {
        loop {
            let key = {
                let mut q = self.recovery_queue.lock();
                loop {
                    if self.stopping.load(Ordering::Acquire) {
                        return;
                    }
                    if let Some(k) = q.pop_front() {
                        break k;
                    }
                    self.recovery_cv.wait_for(&mut q, Duration::from_millis(500));
                }
            };
            let pg = self.pg(key);
            if !pg.lock().peering {
                continue;
            }
            match self.peer_pg(key) {
                Ok(true) => {
                    let parked = {
                        let mut g = pg.lock();
                        g.peering = false;
                        std::mem::take(&mut g.parked)
                    };
                    log::debug!(target: "osd", "osd.{}: pg {} active", self.whoami, pgid(key));
                    for op in parked {
                        self.requeue(key, op);
                    }
                }
                Ok(false) => {
                    // A newer interval: on_map queued it again if it is still ours.
                }
                Err(e) => {
                    log::warn!(target: "osd", "osd.{}: peering pg {}: {e}; retrying", self.whoami, pgid(key));
                    std::thread::sleep(Duration::from_millis(200));
                    let mut q = self.recovery_queue.lock();
                    if !q.contains(&key) {
                        q.push_back(key);
                    }
                }
            }
        }
    }

    /// Marks PGs whose acting set changed: repops forget departed replicas, PGs we now lead
    /// start peering (their ops park until it is done).
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
                let done = {
                    let mut g = pg.lock();
                    let done = g.on_new_acting(&acting, self.whoami);
                    if g.acting != acting {
                        g.acting = acting.clone();
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
