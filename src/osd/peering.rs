//! Peering, simplified (reference: Ceph's peering, log-based recovery and
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
//!
//! A map that changes the acting set meanwhile calls the peering (or the recovery after it) off
//! and peers the PG again. A peer that does not answer within `PEER_TIMEOUT` fails the attempt,
//! which is retried. What each copy then lacks is copied by `recovery`.

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
    MOsdPgScan, PUSH_BEGIN, PUSH_END, SCAN_DIGEST, SCAN_GET_DIGEST, SCAN_GET_INFO, SCAN_GET_LOG, SCAN_INFO, SCAN_LOG,
    SCAN_LOG_GAP,
};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a peering step waits for one OSD's answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) fn pgid(key: PgKey) -> PgId {
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
    pub(super) fn digest(&self, key: PgKey) -> (Eversion, Vec<DigestEntry>) {
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
        let rx = self.recovery.wait_for(tid);
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
        self.recovery.forget(tid);
        r
    }

    pub(super) fn new_tid(&self) -> u64 {
        self.next_repop_tid.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn handle_scan(&self, m: Message) {
        let Some(s) = self.decode::<MOsdPgScan>(&m, "pg scan") else {
            return;
        };
        if s.op % 2 == 1 {
            // An answer (digest, info, log, gap) to a peering step of ours.
            self.recovery.deliver(s.tid, m);
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
            self.recovery.queue_recovery(key);
            self.ensure_recovery_thread();
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
            self.recovery.queue_peering(queued);
            self.ensure_recovery_thread();
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
