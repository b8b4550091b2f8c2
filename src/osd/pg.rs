//! A placement group's replication state on one OSD: its last version, its log of recent
//! requests (for duplicate detection when a client resends), the repops it waits for as
//! primary and the ops parked until it can serve.
//!
//! Persistence: the `pgmeta` object of the PG's collection (the empty name, which clients
//! cannot use) holds the PG's `last_update` under omap key `_info` and each object's version
//! under `o:<namespace>\0<name>`, written in the same transaction as the object itself — on
//! the primary and, through the repop, on every replica. The request log is kept in memory
//! only (a restarted OSD does not recognise resends of requests from before the restart).

use crate::os::{CollId, ObjectId, ObjectStore, Op, Transaction};
use crate::osd::OpItem;
use crate::types::osd_op::OsdReqId;
use crate::types::osdmap::OsdId;
pub use crate::types::rep_messages::{DigestEntry, Eversion};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Requests remembered per PG for duplicate detection (Ceph keeps its log between
/// `osd_min_pg_log_entries` 250 and `osd_max_pg_log_entries` 10000).
pub const PG_LOG_ENTRIES: usize = 3000;

const INFO_KEY: &str = "_info";
/// Present while this OSD's copy of the PG is being recovered: the `last_update` up to which
/// its objects are complete. Writes keep arriving during recovery and raise `last_update`,
/// which then no longer says what the copy holds.
const LC_KEY: &str = "_lc";

/// The PG's metadata object.
pub fn pgmeta(coll: &CollId) -> ObjectId {
    ObjectId::new(coll.pool, "", "")
}

/// The omap key of `oid`'s version in the pgmeta object.
pub fn version_key(oid: &ObjectId) -> String {
    // Built by hand: `format!` was a visible share of every write.
    let mut k = String::with_capacity(3 + oid.namespace.len() + oid.name.len());
    k.push_str("o:");
    k.push_str(&oid.namespace);
    k.push('\0');
    k.push_str(&oid.name);
    k
}

/// The object a version key names.
pub fn object_of_key(pool: i64, key: &str) -> Option<ObjectId> {
    let (ns, name) = key.strip_prefix("o:")?.split_once('\0')?;
    Some(ObjectId::new(pool, ns, name))
}

/// The stored form of an object's version: 12 bytes, plus a 1 for a removal (a tombstone, so
/// recovery can tell "removed at v" from "never written").
pub fn version_value(v: Eversion, deleted: bool) -> Bytes {
    if !deleted {
        return v.to_bytes();
    }
    let mut b = v.to_bytes().to_vec();
    b.push(1);
    Bytes::from(b)
}

fn parse_version_value(b: &[u8]) -> Option<(Eversion, bool)> {
    match b.len() {
        12 => Some((Eversion::from_bytes(b)?, false)),
        13 if b[12] == 1 => Some((Eversion::from_bytes(&b[..12])?, true)),
        _ => None,
    }
}

/// The objects `txn` changes, each with whether it removes it last.
pub fn written_objects(txn: &Transaction) -> BTreeMap<&ObjectId, bool> {
    let mut removed: BTreeMap<&ObjectId, bool> = BTreeMap::new();
    for op in &txn.ops {
        if let Some(oid) = op.oid() {
            removed.insert(oid, matches!(op, Op::Remove(_)));
        }
    }
    removed
}

/// Adds to `txn` the pgmeta updates of a write at `v`: the PG's `last_update` and the version
/// of every object `txn` writes or (a tombstone) removes last.
pub fn stamp(coll: &CollId, txn: &mut Transaction, v: Eversion) {
    let mut set = BTreeMap::from([(INFO_KEY.to_string(), v.to_bytes())]);
    for (oid, removed) in written_objects(txn) {
        set.insert(version_key(oid), version_value(v, removed));
    }
    let meta = pgmeta(coll);
    txn.touch(&meta);
    txn.omap_setkeys(&meta, set);
}

/// Rewrites the object versions `stamp` put in `txn` to zero, keeping removals as removals:
/// a copy that missed a write applies later ones with no version it can vouch for, so that
/// a backfill copies those objects again.
pub fn unstamp(coll: &CollId, txn: &mut Transaction) {
    let meta = pgmeta(coll);
    for op in txn.ops.iter_mut() {
        if let Op::OmapSetKeys { oid, kv } = op {
            if *oid != meta {
                continue;
            }
            for (k, v) in kv.iter_mut() {
                if let (true, Some((_, deleted))) = (k.starts_with("o:"), parse_version_value(v)) {
                    *v = version_value(Eversion::default(), deleted);
                }
            }
        }
    }
}

/// The PG's `last_update` and, while its recovery here is unfinished, its `last_complete`.
pub fn load_info(store: &dyn ObjectStore, coll: &CollId) -> (Eversion, Option<Eversion>) {
    // "_info" < "_lc" < every "o:" key: they are the first two keys when present.
    let Ok((m, _)) = store.omap_get_vals(coll, &pgmeta(coll), None, 2) else {
        return (Eversion::default(), None);
    };
    let get = |k: &str| m.get(k).and_then(|b| Eversion::from_bytes(b));
    (get(INFO_KEY).unwrap_or_default(), get(LC_KEY))
}

/// Adds to `txn` the record that this copy of the PG is complete only up to `lc` (`None`:
/// complete).
pub fn set_last_complete(coll: &CollId, txn: &mut Transaction, lc: Option<Eversion>) {
    let meta = pgmeta(coll);
    txn.touch(&meta);
    match lc {
        Some(v) => {
            txn.omap_setkeys(&meta, BTreeMap::from([(LC_KEY.to_string(), v.to_bytes())]));
        }
        None => {
            txn.omap_rmkeys(&meta, [LC_KEY.to_string()].into_iter().collect());
        }
    }
}

/// Every object's version in the PG (tombstones included), from the pgmeta object.
pub fn load_versions(store: &dyn ObjectStore, coll: &CollId) -> Vec<DigestEntry> {
    let meta = pgmeta(coll);
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let Ok((page, more)) = store.omap_get_vals(coll, &meta, after.as_deref(), 4096) else {
            return out;
        };
        after = page.keys().next_back().cloned();
        for (k, v) in &page {
            if let (Some(oid), Some((version, deleted))) = (object_of_key(coll.pool, k), parse_version_value(v)) {
                out.push(DigestEntry { oid, version, deleted });
            }
        }
        if !more || after.is_none() {
            return out;
        }
    }
}

/// How a repop ended for the primary waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepopOutcome {
    /// Durable on every replica still in the acting set.
    Committed,
    /// A replica failed to apply it (its errno).
    Failed(i32),
    /// This OSD is no longer the PG's primary: the client will resend to the new one.
    Deposed,
}

/// What a finished repop runs (the client's reply), outside the PG lock.
pub type OnRepop = Box<dyn FnOnce(RepopOutcome) + Send>;

/// A write in flight on the primary: the OSDs whose commit it waits for (the primary itself
/// among them until its own store commits it).
pub struct Repop {
    pub waiting: BTreeSet<OsdId>,
    pub done: OnRepop,
    /// The object written, while the primary's own commit is pending: the next write to it
    /// must see this one in the store, so it waits.
    pub local: Option<crate::os::ObjectId>,
}

/// Finished repops and how each ended, for the caller to run once it dropped the PG lock.
pub type Finished = Vec<(OnRepop, RepopOutcome)>;

/// The request log: which requests this PG holds, and what they returned.
#[derive(Default)]
pub struct PgLog {
    order: VecDeque<OsdReqId>,
    by_reqid: crate::common::hash::FxHashMap<OsdReqId, (Eversion, i32)>,
}

impl PgLog {
    pub fn add(&mut self, reqid: OsdReqId, v: Eversion, result: i32) {
        if self.by_reqid.insert(reqid.clone(), (v, result)).is_none() {
            self.order.push_back(reqid);
        }
        while self.order.len() > PG_LOG_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.by_reqid.remove(&old);
            }
        }
    }
    /// Takes back the newest entry, `reqid`'s (its write was never applied).
    pub fn forget(&mut self, reqid: &OsdReqId) {
        if self.order.back() == Some(reqid) {
            self.order.pop_back();
            self.by_reqid.remove(reqid);
        }
    }
    pub fn lookup(&self, reqid: &OsdReqId) -> Option<(Eversion, i32)> {
        self.by_reqid.get(reqid).copied()
    }
    pub fn len(&self) -> usize {
        self.order.len()
    }
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The PG's recent writes on this OSD in version order, for log-based recovery: it holds
/// every write with a version in `(tail, head]`, so an OSD whose `last_update` is the tail or
/// one of its versions needs exactly the objects written after it. Kept in memory: a restarted
/// OSD's log starts empty at its stored `last_update`, and one that received objects by
/// recovery starts again after them.
#[derive(Default)]
pub struct ObjLog {
    pub tail: Eversion,
    entries: VecDeque<DigestEntry>,
}

impl ObjLog {
    /// Empty, covering nothing before `at`.
    pub fn reset(&mut self, at: Eversion) {
        self.entries.clear();
        self.tail = at;
    }

    pub fn head(&self) -> Eversion {
        self.entries.back().map_or(self.tail, |e| e.version)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records the write at `v` of `txn`; keeps at most `max` entries (the tail moves up).
    pub fn append(&mut self, v: Eversion, txn: &Transaction, max: usize) {
        if v <= self.head() {
            return; // not after what we hold: the log would no longer be in order
        }
        for (oid, removed) in written_objects(txn) {
            if oid.name.is_empty() {
                continue; // the pgmeta object
            }
            self.entries.push_back(DigestEntry {
                oid: oid.clone(),
                version: v,
                deleted: removed,
            });
        }
        while self.entries.len() > max.max(1) {
            if let Some(e) = self.entries.pop_front() {
                self.tail = e.version;
            }
        }
    }

    /// Takes back the write at `v`, the newest (it was never applied).
    pub fn forget(&mut self, v: Eversion) {
        while self.entries.back().is_some_and(|e| e.version == v) {
            self.entries.pop_back();
        }
    }

    /// Whether the log holds every write after `v`.
    pub fn covers(&self, v: Eversion) -> bool {
        v == self.tail || v == self.head() || self.entries.binary_search_by(|e| e.version.cmp(&v)).is_ok()
    }

    /// The newest entry of each object written after `v`, if the log covers `v`.
    pub fn since(&self, v: Eversion) -> Option<Vec<DigestEntry>> {
        if !self.covers(v) {
            return None;
        }
        let mut newest: BTreeMap<&ObjectId, &DigestEntry> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.version > v) {
            newest.insert(&e.oid, e);
        }
        Some(newest.into_values().cloned().collect())
    }
}

/// A count of writes in progress, shared with store callbacks so that they never take the PG
/// lock (a kv store's commit thread must not wait on a PG whose lock a push holds while it
/// waits for that thread).
#[derive(Default, Clone)]
pub struct Applying(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Applying {
    pub fn inc(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
    pub fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// An object an OSD of the acting set lacks, or holds at an older version, while the PG
/// recovers. Client ops that touch it wait here (writes always, reads when the primary is the
/// one lacking it) and run once every copy is in place.
pub struct Missing {
    /// What recovery installs: this version, or a removal.
    pub want: DigestEntry,
    /// Where the primary pulls it from when the primary lacks it.
    pub src: OsdId,
    pub osds: BTreeSet<OsdId>,
    pub waiting: Vec<OpItem>,
}

/// One PG on this OSD.
#[derive(Default)]
pub struct Pg {
    /// Read from the store on first use.
    pub loaded: bool,
    pub last_update: Eversion,
    /// Set while this copy is being recovered: it holds every write up to this version, but
    /// not necessarily those up to `last_update` (persisted, see `set_last_complete`).
    pub last_complete: Option<Eversion>,
    /// A repop failed to apply here: this copy may lack a write its `last_update` covers
    /// (the store callback sets it; the next repop records it).
    pub damaged: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub log: PgLog,
    /// Recent writes by object, for log-based recovery.
    pub objlog: ObjLog,
    /// How the last peering brought the acting set in line: `log` or `backfill`, and the
    /// objects (and removals) it copied.
    pub last_recovery: Option<(&'static str, usize)>,
    /// Repops in flight (we are primary), by their tid.
    pub repops: crate::common::hash::FxHashMap<u64, Repop>,
    /// Client ops waiting for the PG to have `min_size` OSDs or to finish peering, in
    /// arrival order.
    pub parked: Vec<OpItem>,
    /// The acting set of the current interval, as this OSD last computed it, and when each
    /// member last booted (`up_from`).
    pub acting: Vec<OsdId>,
    pub acting_up_from: Vec<u32>,
    /// The newest map `note_intervals` has applied to this PG: an op judged with a newer one
    /// waits for it (the PG may be about to peer).
    pub noted_epoch: u32,
    /// The map epoch the PG's current recovery was planned at, which its pushes carry.
    pub interval_epoch: u32,
    /// We are primary and have not yet brought the acting set in line with every copy.
    pub peering: bool,
    /// Active, but copies are still being made (`missing` says which); clean once false.
    pub recovering: bool,
    /// What each OSD of the acting set still lacks, by object (we are a recovering primary).
    pub missing: BTreeMap<ObjectId, Missing>,
    /// The `last_update` every copy has once the recovery is done, and whether a copy complete
    /// at that version was among the peers (then every copy will be).
    pub recovery_head: (Eversion, bool),
    /// Ops that must not pass the writes in flight (reads, resends), in arrival order.
    pub waiting_for_commit: Vec<OpItem>,
    /// The newest epoch a peering primary announced for this PG: writes of an older
    /// interval are refused from then on (ours park, repops are dropped), so that a deposed
    /// primary cannot acknowledge a write the new one did not collect.
    pub fence: u32,
    /// Writes given a version here whose store transaction has not completed yet.
    pub applying: Applying,
    /// A scrub holds the PG's ops (`Some(deep)`).
    pub scrubbing: Option<bool>,
    /// What peering is doing now: `peering` (asking for digests), `recovering` or
    /// `backfilling` (copying objects).
    pub phase: &'static str,
    pub scrub: ScrubStats,
}

/// The PG's last scrubs and what they found.
#[derive(Default, Clone, Copy)]
pub struct ScrubStats {
    pub last_scrub: Option<std::time::SystemTime>,
    pub last_deep_scrub: Option<std::time::SystemTime>,
    /// Errors the last scrub found (one per object per kind).
    pub errors: usize,
    pub inconsistent: usize,
}

impl Pg {
    /// The version up to which this copy is known complete, as peering reports it.
    pub fn complete_to(&self) -> Eversion {
        if self.damaged.load(std::sync::atomic::Ordering::Acquire) {
            return Eversion::default();
        }
        self.last_complete.unwrap_or(self.last_update)
    }

    /// Whether an op on `oid` must wait for its recovery: a write while any copy lacks it, a
    /// read while the primary (`me`) does or an earlier op waits.
    pub fn waits_for_recovery(&self, oid: &ObjectId, is_write: bool, me: OsdId) -> bool {
        // A read also waits behind a write to the object that waits: ops keep their order.
        self.missing
            .get(oid)
            .is_some_and(|m| is_write || m.osds.contains(&me) || !m.waiting.is_empty())
    }

    /// `osd` now holds `oids`: the ops waiting for objects no OSD lacks any more.
    pub fn recovered(&mut self, osd: OsdId, oids: &[ObjectId]) -> Vec<OpItem> {
        let mut ready = Vec::new();
        for oid in oids {
            if let Some(m) = self.missing.get_mut(oid) {
                m.osds.remove(&osd);
                if m.osds.is_empty() {
                    ready.extend(self.missing.remove(oid).map(|m| m.waiting).unwrap_or_default());
                }
            }
        }
        ready
    }

    /// Recovery is called off (a new interval, or a failed step): its waiting ops park until
    /// the PG peers again.
    pub fn abandon_recovery(&mut self) {
        for (_, m) in std::mem::take(&mut self.missing) {
            self.parked.extend(m.waiting);
        }
        self.recovering = false;
    }

    /// Applies a new acting set to the repops in flight: replicas that left it are no longer
    /// waited for; if we are no longer primary every repop ends `Deposed`.
    #[must_use]
    pub fn on_new_acting(&mut self, acting: &[OsdId], me: OsdId) -> Finished {
        let primary = acting.first() == Some(&me);
        let mut done = Vec::new();
        let tids: Vec<u64> = self.repops.keys().copied().collect();
        for tid in tids {
            let r = self.repops.get_mut(&tid).expect("listed");
            let outcome = if !primary {
                RepopOutcome::Deposed
            } else {
                r.waiting.retain(|o| acting.contains(o));
                if !r.waiting.is_empty() {
                    continue;
                }
                RepopOutcome::Committed
            };
            let r = self.repops.remove(&tid).expect("listed");
            done.push((r.done, outcome));
        }
        // Completions in version order, as replies would have come.
        done
    }

    /// Whether a write to `oid` is still being committed by this OSD's store.
    pub fn committing(&self, oid: &crate::os::ObjectId) -> bool {
        self.repops.values().any(|r| r.local.as_ref() == Some(oid))
    }

    /// A replica's answer to repop `tid`.
    #[must_use]
    pub fn on_reply(&mut self, tid: u64, from: OsdId, result: i32) -> Finished {
        let Some(r) = self.repops.get_mut(&tid) else {
            return Vec::new();
        };
        let outcome = if result < 0 {
            RepopOutcome::Failed(result)
        } else {
            r.waiting.remove(&from);
            if !r.waiting.is_empty() {
                return Vec::new();
            }
            RepopOutcome::Committed
        };
        let r = self.repops.remove(&tid).expect("present");
        vec![(r.done, outcome)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqid(tid: u64) -> OsdReqId {
        OsdReqId {
            name: "client.1".parse().unwrap(),
            inc: 1,
            tid,
        }
    }

    #[test]
    fn the_log_remembers_recent_requests_only() {
        let mut l = PgLog::default();
        for t in 0..(PG_LOG_ENTRIES as u64 + 10) {
            l.add(
                reqid(t),
                Eversion {
                    epoch: 1,
                    version: t + 1,
                },
                0,
            );
        }
        assert_eq!(l.len(), PG_LOG_ENTRIES);
        assert_eq!(l.lookup(&reqid(5)), None, "trimmed");
        let last = PG_LOG_ENTRIES as u64 + 9;
        assert_eq!(
            l.lookup(&reqid(last)),
            Some((
                Eversion {
                    epoch: 1,
                    version: last + 1
                },
                0
            ))
        );
    }

    #[test]
    fn the_object_log_knows_what_changed_since_a_version_it_covers() {
        let v = |n: u64| Eversion { epoch: 3, version: n };
        let w = |name: &str, remove: bool| {
            let mut t = Transaction::new();
            let o = ObjectId::new(1, "", name);
            if remove {
                t.remove(&o);
            } else {
                t.write(&o, 0, Bytes::from_static(b"x"));
            }
            stamp(&CollId::new(1, 0), &mut t, v(0));
            t
        };
        let mut l = ObjLog::default();
        l.reset(v(10));
        l.append(v(11), &w("a", false), 4);
        l.append(v(12), &w("b", false), 4);
        l.append(v(13), &w("a", true), 4);
        l.append(v(13), &w("c", false), 4); // not after the head: ignored
        assert_eq!(l.len(), 3, "the pgmeta object is not logged");
        fn since(l: &ObjLog, at: u64) -> Option<Vec<(String, u64, bool)>> {
            l.since(Eversion { epoch: 3, version: at }).map(|es| {
                es.iter()
                    .map(|e| (e.oid.name.clone(), e.version.version, e.deleted))
                    .collect()
            })
        }
        assert_eq!(
            since(&l, 10),
            Some(vec![("a".into(), 13, true), ("b".into(), 12, false)])
        );
        assert_eq!(since(&l, 12), Some(vec![("a".into(), 13, true)]));
        assert_eq!(since(&l, 13), Some(vec![]));
        assert_eq!(since(&l, 9), None, "before the tail");
        assert_eq!(
            l.since(Eversion { epoch: 2, version: 12 }),
            None,
            "a version it never had"
        );
        // Trimmed to its maximum, the tail moves up.
        l.append(v(14), &w("d", false), 2);
        assert_eq!((l.len(), l.tail), (2, v(12)));
        assert_eq!(since(&l, 11), None);
        assert!(since(&l, 12).is_some());
    }

    #[test]
    fn repops_end_on_replies_or_when_the_acting_set_changes() {
        let mut pg = Pg::default();
        let (tx, rx) = crossbeam_channel::unbounded();
        let repop = |waiting: &[OsdId]| {
            let tx = tx.clone();
            Repop {
                waiting: waiting.iter().copied().collect(),
                done: Box::new(move |o| tx.send(o).unwrap()),
                local: None,
            }
        };
        let run = |f: Finished| f.into_iter().for_each(|(d, o)| d(o));
        pg.repops.insert(1, repop(&[1, 2]));
        pg.repops.insert(2, repop(&[2]));
        run(pg.on_reply(1, 1, 0));
        assert!(rx.try_recv().is_err(), "osd.2 still owes repop 1");
        run(pg.on_reply(9, 1, 0));
        assert!(rx.try_recv().is_err(), "an unknown tid ends nothing");
        // osd.2 leaves the acting set: both repops are complete without it.
        run(pg.on_new_acting(&[0, 1], 0));
        assert_eq!(rx.try_recv(), Ok(RepopOutcome::Committed));
        assert_eq!(rx.try_recv(), Ok(RepopOutcome::Committed));
        assert!(pg.repops.is_empty());
        pg.repops.insert(3, repop(&[1]));
        run(pg.on_reply(3, 1, -5));
        assert_eq!(rx.try_recv(), Ok(RepopOutcome::Failed(-5)));
        pg.repops.insert(4, repop(&[1]));
        run(pg.on_new_acting(&[1, 0], 0));
        assert_eq!(rx.try_recv(), Ok(RepopOutcome::Deposed), "osd.1 is primary now");
    }

    #[test]
    fn stamp_records_versions_of_written_and_removed_objects() {
        let c = CollId::new(1, 2);
        let (a, b) = (ObjectId::new(1, "", "a"), ObjectId::new(1, "n", "b"));
        let mut t = Transaction::new();
        t.write(&a, 0, Bytes::from_static(b"x")).remove(&b);
        let v = Eversion { epoch: 4, version: 9 };
        stamp(&c, &mut t, v);
        let meta = pgmeta(&c);
        let set = t.ops.iter().find_map(|o| match o {
            Op::OmapSetKeys { oid, kv } if *oid == meta => Some(kv.clone()),
            _ => None,
        });
        let set = set.expect("an omap set on pgmeta");
        assert_eq!(set.get("_info"), Some(&v.to_bytes()));
        assert_eq!(set.get(&version_key(&a)), Some(&version_value(v, false)));
        assert_eq!(set.get(&version_key(&b)), Some(&version_value(v, true)), "a tombstone");
        assert_eq!(parse_version_value(&version_value(v, true)), Some((v, true)));
        assert_eq!(parse_version_value(b"garbage"), None);
        assert_eq!(object_of_key(1, &version_key(&b)), Some(b));
    }
}
