//! Scrub: the primary compares what every OSD of a PG's acting set holds (Ceph's
//! `PgScrubber`, one chunk for the whole PG).
//!
//! A shallow scrub compares each object's presence, size, recorded version and xattrs; a deep
//! scrub also reads every byte and omap entry and compares their crc32c digests. The primary
//! stops the PG's client ops (they park, as during peering) and waits for its writes in flight
//! to commit everywhere, so every OSD is compared at the same version; then it builds its own
//! scrub map, asks each replica for theirs (`MOSDRepScrub` → `MOSDRepScrubMap`), lets the ops
//! run again and compares. Differences are reported per object in the shape of Ceph's
//! `rados list-inconsistent-obj`, and the PG shows `inconsistent` until a clean scrub.
//!
//! Scrub reports; it does not repair.

use super::op_wq::PgKey;
use super::pg;
use super::Shared;
use crate::common::error::{Error, Result};
use crate::msgr::message::Message;
use crate::msgr::v2::frame::ceph_crc32c;
use crate::os::{CollId, ObjectId, ObjectStore};
use crate::types::messages::FrontMessage;
use crate::types::osdmap::OsdId;
use crate::types::placement::PgId;
use crate::types::rep_messages::{MOsdRepScrub, MOsdRepScrubMap, ScrubObject};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

/// How long a scrub waits for the PG's writes in flight before giving up.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Objects (or omap entries) read per store call.
const PAGE: usize = 1024;

/// One object that differs between OSDs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistent {
    pub oid: ObjectId,
    /// Ceph's error names: `missing`, `size_mismatch`, `object_info_inconsistency` (versions),
    /// `attr_value_mismatch`, `data_digest_mismatch`, `omap_digest_mismatch`.
    pub errors: BTreeSet<&'static str>,
    /// Each OSD's view of the object (none: it does not have it), and its own errors.
    pub shards: BTreeMap<OsdId, (Option<ScrubObject>, BTreeSet<&'static str>)>,
}

/// The outcome of one PG's scrub.
#[derive(Debug, Clone)]
pub struct ScrubReport {
    pub pgid: PgId,
    pub deep: bool,
    pub osds: Vec<OsdId>,
    pub objects: usize,
    pub inconsistent: Vec<Inconsistent>,
    pub stamp: SystemTime,
}

impl ScrubReport {
    pub fn errors(&self) -> usize {
        self.inconsistent.iter().map(|i| i.errors.len()).sum()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "pgid": self.pgid.to_string(),
            "deep": self.deep,
            "osds": self.osds,
            "objects": self.objects,
            "errors": self.errors(),
            "inconsistents": self.inconsistent.iter().map(inconsistent_json).collect::<Vec<_>>(),
            "stamp": crate::common::log::format_stamp(self.stamp),
        })
    }
}

fn digest_json(d: Option<u32>) -> Value {
    d.map_or(Value::Null, |d| Value::String(format!("0x{d:08x}")))
}

fn inconsistent_json(i: &Inconsistent) -> Value {
    let shards: Vec<Value> = i
        .shards
        .iter()
        .map(|(osd, (o, errors))| {
            let mut v = json!({"osd": osd, "errors": errors});
            if let Some(o) = o.as_ref().filter(|o| o.exists) {
                v["size"] = json!(o.size);
                v["version"] = json!(o.version.map(|v| v.to_string()));
                v["attrs_digest"] = digest_json(Some(o.attrs_digest));
                v["data_digest"] = digest_json(o.data_digest);
                v["omap_digest"] = digest_json(o.omap_digest);
            }
            v
        })
        .collect();
    json!({
        "object": {"name": i.oid.name, "nspace": i.oid.namespace},
        "errors": i.errors,
        "shards": shards,
    })
}

/// crc32c over `(name, value)` pairs in order, each length-prefixed so that moving bytes
/// between a name and its value changes the digest.
fn kv_digest<'a>(seed: u32, kv: impl Iterator<Item = (&'a String, &'a bytes::Bytes)>) -> u32 {
    kv.fold(seed, |crc, (k, v)| {
        let crc = ceph_crc32c(crc, &(k.len() as u32).to_le_bytes());
        let crc = ceph_crc32c(crc, k.as_bytes());
        let crc = ceph_crc32c(crc, &(v.len() as u32).to_le_bytes());
        ceph_crc32c(crc, v)
    })
}

/// This OSD's scrub map of a PG: every object in the store (the pgmeta object aside) and every
/// object the PG records as live, with digests of their data and omap when `deep`.
pub fn build_scrub_map(store: &dyn ObjectStore, coll: &CollId, deep: bool) -> Result<Vec<ScrubObject>> {
    let mut versions: BTreeMap<ObjectId, pg::Eversion> = pg::load_versions(store, coll)
        .into_iter()
        .filter(|e| !e.deleted)
        .map(|e| (e.oid, e.version))
        .collect();
    let mut out = Vec::new();
    let mut after: Option<ObjectId> = None;
    loop {
        let (page, more) = match store.list_objects(coll, after.as_ref(), PAGE) {
            Ok(p) => p,
            // A PG never written here has no collection: it holds nothing.
            Err(e) if e.errno == libc::ENOENT => (Vec::new(), false),
            Err(e) => return Err(e),
        };
        after = page.last().cloned();
        for oid in page {
            if oid.name.is_empty() {
                continue; // the pgmeta object
            }
            let size = store.stat(coll, &oid)?.size;
            let attrs = store.getattrs(coll, &oid)?;
            let (data_digest, omap_digest) = if deep {
                let data = store.read(coll, &oid, 0, 0)?;
                let mut omap = u32::MAX;
                let mut from: Option<String> = None;
                loop {
                    let (vals, more) = store.omap_get_vals(coll, &oid, from.as_deref(), PAGE)?;
                    from = vals.keys().next_back().cloned();
                    omap = kv_digest(omap, vals.iter());
                    if !more || from.is_none() {
                        break;
                    }
                }
                (Some(ceph_crc32c(u32::MAX, &data)), Some(omap))
            } else {
                (None, None)
            };
            out.push(ScrubObject {
                version: versions.remove(&oid),
                oid,
                exists: true,
                size,
                attrs_digest: kv_digest(u32::MAX, attrs.iter()),
                data_digest,
                omap_digest,
            });
        }
        if !more || after.is_none() {
            break;
        }
    }
    // Recorded as live, absent from the store.
    out.extend(versions.into_iter().map(|(oid, v)| ScrubObject {
        oid,
        exists: false,
        version: Some(v),
        size: 0,
        attrs_digest: 0,
        data_digest: None,
        omap_digest: None,
    }));
    out.sort_by(|a, b| a.oid.cmp(&b.oid));
    Ok(out)
}

/// Compares the scrub maps of `maps` (the primary's first). The reference copy of an object is
/// the first OSD's, in acting order, that has it; every other copy is judged against it.
pub fn compare(maps: &[(OsdId, Vec<ScrubObject>)]) -> (usize, Vec<Inconsistent>) {
    let by_osd: Vec<(OsdId, BTreeMap<&ObjectId, &ScrubObject>)> = maps
        .iter()
        .map(|(osd, objs)| (*osd, objs.iter().map(|o| (&o.oid, o)).collect()))
        .collect();
    let all: BTreeSet<&ObjectId> = by_osd.iter().flat_map(|(_, m)| m.keys().copied()).collect();
    let mut bad = Vec::new();
    fn copy<'a>(m: &BTreeMap<&ObjectId, &'a ScrubObject>, oid: &ObjectId) -> Option<&'a ScrubObject> {
        m.get(oid).copied().filter(|o| o.exists)
    }
    for &oid in &all {
        let reference = by_osd.iter().find_map(|(_, m)| copy(m, oid));
        let mut errors = BTreeSet::new();
        let mut shards = BTreeMap::new();
        for (osd, m) in &by_osd {
            let mut mine = BTreeSet::new();
            match (copy(m, oid), reference) {
                (None, _) => {
                    mine.insert("missing");
                }
                (Some(o), Some(r)) => {
                    if o.size != r.size {
                        mine.insert("size_mismatch");
                    }
                    if o.version != r.version {
                        mine.insert("object_info_inconsistency");
                    }
                    if o.attrs_digest != r.attrs_digest {
                        mine.insert("attr_value_mismatch");
                    }
                    if o.data_digest != r.data_digest {
                        mine.insert("data_digest_mismatch");
                    }
                    if o.omap_digest != r.omap_digest {
                        mine.insert("omap_digest_mismatch");
                    }
                }
                (Some(_), None) => unreachable!("a copy exists, so a reference does"),
            }
            errors.extend(mine.iter().copied());
            shards.insert(*osd, (m.get(oid).map(|o| (*o).clone()), mine));
        }
        if !errors.is_empty() {
            bad.push(Inconsistent {
                oid: oid.clone(),
                errors,
                shards,
            });
        }
    }
    (all.len(), bad)
}

fn key_of(pgid: PgId) -> PgKey {
    PgKey {
        pool: pgid.pool,
        seed: pgid.seed,
    }
}

impl Shared {
    /// A replica's side: its scrub map of the PG, on the cluster messenger's dispatch thread
    /// (after the repops the primary waited for, which came on the same session).
    pub(super) fn handle_rep_scrub(&self, m: Message) {
        let Some(s) = self.decode::<MOsdRepScrub>(&m, "rep scrub") else {
            return;
        };
        let coll = CollId::new(s.pgid.pool, s.pgid.seed);
        let (result, objects) = match build_scrub_map(&*self.store, &coll, s.deep) {
            Ok(o) => (0, o),
            Err(e) => {
                log::warn!(target: "osd", "osd.{}: scrub map of pg {}: {e}", self.whoami, s.pgid);
                (-e.errno.abs(), Vec::new())
            }
        };
        let answer = MOsdRepScrubMap {
            tid: s.tid,
            pgid: s.pgid,
            from: self.whoami,
            result,
            objects,
        };
        if let Some(c) = m.conn {
            let _ = c.send_message(answer.to_message());
        }
    }

    pub(super) fn handle_rep_scrub_map(&self, m: Message) {
        if let Some(r) = self.decode::<MOsdRepScrubMap>(&m, "scrub map") {
            self.recovery.deliver(r.tid, m);
        }
    }

    /// Scrubs one PG this OSD leads; blocks the caller until the report is ready. One scrub at
    /// a time per OSD (Ceph's `osd_max_scrubs` 1).
    pub(super) fn scrub_pg(&self, pgid: PgId, deep: bool) -> Result<ScrubReport> {
        let _one = self.scrub_lock.lock();
        let key = key_of(pgid);
        let map = self.map.read().clone();
        if map.pool(pgid.pool).is_none_or(|p| pgid.seed >= p.pg_num) {
            return Err(Error::noent(format!("pg {pgid} does not exist")));
        }
        let acting = map.pg_to_up_osds(pgid);
        if acting.first() != Some(&self.whoami) {
            return Err(Error::new(
                libc::EAGAIN,
                format!(
                    "osd.{} is not the primary of pg {pgid} (acting {acting:?})",
                    self.whoami
                ),
            ));
        }
        let pg = self.pg(key);
        {
            let mut g = pg.lock();
            if g.peering || g.recovering || g.acting != acting {
                return Err(Error::new(libc::EAGAIN, format!("pg {pgid} is peering or recovering")));
            }
            g.scrubbing = Some(deep);
        }
        let maps = self.collect_scrub_maps(key, &pg, &acting, deep);
        let parked = {
            let mut g = pg.lock();
            g.scrubbing = None;
            if g.peering {
                Vec::new() // peering runs them when it is done
            } else {
                std::mem::take(&mut g.parked)
            }
        };
        for op in parked {
            self.requeue(key, op);
        }
        let maps = maps?;
        let (objects, inconsistent) = compare(&maps);
        let report = ScrubReport {
            pgid,
            deep,
            osds: acting,
            objects,
            inconsistent,
            stamp: SystemTime::now(),
        };
        let mut g = pg.lock();
        g.scrub.last_scrub = Some(report.stamp);
        if deep {
            g.scrub.last_deep_scrub = Some(report.stamp);
        }
        g.scrub.errors = report.errors();
        g.scrub.inconsistent = report.inconsistent.len();
        drop(g);
        if !report.inconsistent.is_empty() {
            log::warn!(
                target: "osd",
                "osd.{}: {}scrub of pg {pgid}: {} objects, {} inconsistent",
                self.whoami,
                if deep { "deep-" } else { "" },
                report.objects,
                report.inconsistent.len()
            );
        }
        Ok(report)
    }

    /// Waits for the PG's writes to commit everywhere, then gathers every acting OSD's map.
    fn collect_scrub_maps(
        &self,
        key: PgKey,
        pg: &std::sync::Arc<parking_lot::Mutex<pg::Pg>>,
        acting: &[OsdId],
        deep: bool,
    ) -> Result<Vec<(OsdId, Vec<ScrubObject>)>> {
        let pgid = PgId::new(key.pool, key.seed);
        let deadline = Instant::now() + QUIESCE_TIMEOUT;
        loop {
            let g = pg.lock();
            if g.acting != acting || g.peering || g.recovering {
                return Err(Error::new(libc::EAGAIN, format!("pg {pgid} changed while scrubbing")));
            }
            if g.applying.get() == 0 && g.repops.is_empty() && g.waiting_for_commit.is_empty() {
                break;
            }
            drop(g);
            if Instant::now() >= deadline {
                return Err(Error::new(
                    libc::ETIMEDOUT,
                    format!("pg {pgid}: writes still in flight after {QUIESCE_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let coll = CollId::new(key.pool, key.seed);
        let mut maps = vec![(self.whoami, build_scrub_map(&*self.store, &coll, deep)?)];
        for &osd in &acting[1..] {
            let tid = self.new_tid();
            let ask = MOsdRepScrub {
                tid,
                pgid,
                from: self.whoami,
                deep,
            };
            let answer = MOsdRepScrubMap::from_message(&self.request(osd, tid, ask.to_message())?)?;
            if answer.result < 0 {
                return Err(Error::new(
                    -answer.result,
                    format!("osd.{osd} could not build its scrub map of pg {pgid}"),
                ));
            }
            maps.push((osd, answer.objects));
        }
        // Peering may have started while the maps were built (and pushed objects meanwhile):
        // such a comparison mixes two moments, and is not recorded.
        let g = pg.lock();
        if g.acting != acting || g.peering || g.recovering {
            return Err(Error::new(libc::EAGAIN, format!("pg {pgid} changed while scrubbing")));
        }
        drop(g);
        Ok(maps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::rep_messages::Eversion;

    fn obj(name: &str, size: u64, data: u32) -> ScrubObject {
        ScrubObject {
            oid: ObjectId::new(1, "", name),
            exists: true,
            version: Some(Eversion { epoch: 2, version: 1 }),
            size,
            attrs_digest: 1,
            data_digest: Some(data),
            omap_digest: Some(9),
        }
    }

    #[test]
    fn copies_that_differ_are_reported_per_object_and_per_osd() {
        let same = vec![obj("a", 4, 10), obj("b", 4, 20)];
        let (n, bad) = compare(&[(0, same.clone()), (1, same.clone())]);
        assert_eq!((n, bad.len()), (2, 0), "identical maps are consistent");
        // osd.1 lacks b, has a with other bytes, and has c nobody else has.
        let other = vec![obj("a", 4, 11), obj("c", 1, 30)];
        let (n, bad) = compare(&[(0, same), (1, other)]);
        assert_eq!(n, 3);
        let names: Vec<&str> = bad.iter().map(|i| i.oid.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(bad[0].errors, BTreeSet::from(["data_digest_mismatch"]));
        assert!(bad[0].shards[&0].1.is_empty(), "the primary's copy is the reference");
        assert_eq!(bad[1].shards[&1].1, BTreeSet::from(["missing"]));
        assert_eq!(bad[2].shards[&0].1, BTreeSet::from(["missing"]));
        // A record without its object counts as missing too.
        let mut ghost = obj("a", 4, 10);
        ghost.exists = false;
        let (_, bad) = compare(&[(0, vec![obj("a", 4, 10)]), (1, vec![ghost])]);
        assert_eq!(bad[0].errors, BTreeSet::from(["missing"]));
        let mut grown = obj("a", 5, 10);
        grown.version = None;
        let (_, bad) = compare(&[(0, vec![obj("a", 4, 10)]), (1, vec![grown])]);
        assert_eq!(
            bad[0].errors,
            BTreeSet::from(["object_info_inconsistency", "size_mismatch"])
        );
    }

    #[test]
    fn scrub_maps_see_data_xattrs_omap_and_records() {
        use crate::os::{mem::MemStore, Transaction};
        use bytes::Bytes;
        let store = MemStore::new();
        store.mount().unwrap();
        let coll = CollId::new(1, 0);
        let a = ObjectId::new(1, "", "a");
        let mut t = Transaction::new();
        t.create_collection()
            .write(&a, 0, Bytes::from_static(b"hello"))
            .setattr(&a, "x", Bytes::from_static(b"1"))
            .omap_setkeys(&a, BTreeMap::from([("k".to_string(), Bytes::from_static(b"v"))]));
        pg::stamp(&coll, &mut t, Eversion { epoch: 1, version: 1 });
        store.apply_transaction(&coll, t).unwrap();
        let shallow = build_scrub_map(&store, &coll, false).unwrap();
        assert_eq!(shallow.len(), 1, "the pgmeta object is not scrubbed: {shallow:?}");
        assert_eq!((shallow[0].size, shallow[0].data_digest), (5, None));
        let deep = build_scrub_map(&store, &coll, true).unwrap();
        assert_eq!(deep[0].data_digest, Some(ceph_crc32c(u32::MAX, b"hello")));
        // Each of data, xattrs and omap changes its own digest.
        let change = |f: &dyn Fn(&mut Transaction)| {
            let mut t = Transaction::new();
            f(&mut t);
            store.apply_transaction(&coll, t).unwrap();
            build_scrub_map(&store, &coll, true).unwrap().remove(0)
        };
        let d = change(&|t| {
            t.write(&a, 0, Bytes::from_static(b"j"));
        });
        assert_ne!(d.data_digest, deep[0].data_digest);
        assert_eq!(d.omap_digest, deep[0].omap_digest);
        let x = change(&|t| {
            t.setattr(&a, "x", Bytes::from_static(b"2"));
        });
        assert_ne!(x.attrs_digest, d.attrs_digest);
        let o = change(&|t| {
            t.omap_setkeys(&a, BTreeMap::from([("k".to_string(), Bytes::from_static(b"w"))]));
        });
        assert_ne!(o.omap_digest, x.omap_digest);
        // Removed behind the PG's back: still recorded as live, so it shows as absent.
        let mut t = Transaction::new();
        t.remove(&a);
        store.apply_transaction(&coll, t).unwrap();
        let gone = build_scrub_map(&store, &coll, false).unwrap();
        assert_eq!(gone.len(), 1);
        assert!(!gone[0].exists && gone[0].version.is_some());
    }
}
