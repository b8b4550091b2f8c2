//! Placement: object → PG → ordered OSD list, computed the same way by every
//! client and OSD from the map alone.
//!
//! * Object → raw PG: Ceph's `ceph_str_hash_rjenkins` (src/common/ceph_hash.cc) over the object
//!   name, or over `namespace + '\x1f' + name` when the namespace is not empty
//!   (`pg_pool_t::hash_key`). The raw seed is what an `MOSDOp` carries as the object hash.
//! * Raw PG → PG: `ceph_stable_mod(raw, pg_num, pg_num_mask)` (include/rados.h), so growing
//!   `pg_num` splits PGs instead of reshuffling objects.
//! * PG → OSDs: weighted rendezvous hashing, straw2's rule for a flat hierarchy. The PG's
//!   placement seed is `pps = crush_hash32_rjenkins1_2(seed, pool)` (Ceph's `raw_pg_to_pps` with
//!   `HASHPSPOOL`). Every OSD that is up and in with weight w > 0 draws
//!   `u = crush_hash32_rjenkins1_3(pps, osd, 0) & 0xffff` and scores `ln((u+1)/65536) / w`,
//!   the log computed in 44-bit fixed point by integer arithmetic (like crush's `crush_ln`, but
//!   our own bit-exact routine, not Ceph's table) and divided by the 16.16 weight as integers
//!   (as straw2's `div64_s64`). OSDs are ordered by score, highest first (ties: lower id first);
//!   the first `size` are the up set, the first is the primary. Ordering by `ln(u)/w` is
//!   Efraimidis–Spirakis weighted sampling without replacement, so each OSD leads a share of
//!   PGs proportional to its weight, and adding or removing an OSD only moves the PGs that it
//!   now wins or used to hold. No floating point: identical on every machine.

use super::osdmap::{OsdId, OsdMap, Pool, PoolId};
use crate::{Error, Result};
use std::fmt;

/// Robert Jenkins' 96-bit mix, as Ceph's `mix` / crush's `crush_hashmix`.
#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 13);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 8);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 13);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 12);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 16);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 5);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 3);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 10);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 15);
}

/// Ceph's `ceph_str_hash_rjenkins` (`CEPH_STR_HASH_RJENKINS`, the hash of every pool).
pub fn ceph_str_hash_rjenkins(key: &[u8]) -> u32 {
    let mut a: u32 = 0x9e37_79b9;
    let mut b: u32 = a;
    let mut c: u32 = 0;
    let word = |k: &[u8]| u32::from_le_bytes([k[0], k[1], k[2], k[3]]);
    let mut k = key;
    while k.len() >= 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    c = c.wrapping_add(key.len() as u32);
    // The last 0..=11 bytes; the low byte of c is reserved for the length.
    let mut tail = [0u8; 12];
    tail[..k.len()].copy_from_slice(k);
    a = a.wrapping_add(word(&tail[0..4]));
    b = b.wrapping_add(word(&tail[4..8]));
    c = c.wrapping_add(u32::from_le_bytes([0, tail[8], tail[9], tail[10]]));
    mix(&mut a, &mut b, &mut c);
    c
}

/// Ceph's `ceph_stable_mod` (include/rados.h): `x` reduced to `0..b`, stable as `b` grows
/// towards `bmask + 1`.
pub fn ceph_stable_mod(x: u32, b: u32, bmask: u32) -> u32 {
    if (x & bmask) < b {
        x & bmask
    } else {
        x & (bmask >> 1)
    }
}

/// `pg_pool_t::calc_pg_masks`: the smallest `2^k − 1` covering `pg_num − 1`.
pub fn pg_num_mask(pg_num: u32) -> u32 {
    if pg_num <= 1 {
        return 0;
    }
    let bits = 32 - (pg_num - 1).leading_zeros();
    ((1u64 << bits) - 1) as u32
}

const CRUSH_HASH_SEED: u32 = 1_315_423_911;

/// crush's `crush_hash32_rjenkins1_2`.
pub fn crush_hash32_2(mut a: u32, mut b: u32) -> u32 {
    let mut hash = CRUSH_HASH_SEED ^ a ^ b;
    let mut x: u32 = 231_232;
    let mut y: u32 = 1232;
    mix(&mut a, &mut b, &mut hash);
    mix(&mut x, &mut a, &mut hash);
    mix(&mut b, &mut y, &mut hash);
    hash
}

/// crush's `crush_hash32_rjenkins1_3`.
pub fn crush_hash32_3(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    let mut hash = CRUSH_HASH_SEED ^ a ^ b ^ c;
    let mut x: u32 = 231_232;
    let mut y: u32 = 1232;
    mix(&mut a, &mut b, &mut hash);
    mix(&mut c, &mut x, &mut hash);
    mix(&mut y, &mut a, &mut hash);
    mix(&mut b, &mut x, &mut hash);
    mix(&mut y, &mut c, &mut hash);
    hash
}

/// A placement group: pool and seed (`pg_t`). Printed as Ceph does, `1.2a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PgId {
    pub pool: PoolId,
    pub seed: u32,
}

impl PgId {
    pub fn new(pool: PoolId, seed: u32) -> Self {
        PgId { pool, seed }
    }
}

impl fmt::Display for PgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}", self.pool, self.seed)
    }
}

impl std::str::FromStr for PgId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::inval(format!("'{s}' is not a PG id like 1.2a"));
        let (p, x) = s.split_once('.').ok_or_else(bad)?;
        Ok(PgId {
            pool: p.parse().map_err(|_| bad())?,
            seed: u32::from_str_radix(x, 16).map_err(|_| bad())?,
        })
    }
}

impl super::encoding::Encode for PgId {
    fn encode(&self, e: &mut super::encoding::Encoder) {
        e.i64(self.pool);
        e.u32(self.seed);
    }
}
impl super::encoding::Decode for PgId {
    const MIN_LEN: usize = 12;
    fn decode(d: &mut super::encoding::Decoder<'_>) -> super::encoding::DResult<Self> {
        Ok(PgId {
            pool: d.i64()?,
            seed: d.u32()?,
        })
    }
}

/// `pg_pool_t::hash_key`: the object hash (raw PG seed) of `name` in namespace `nspace`.
pub fn object_hash(name: &str, nspace: &str) -> u32 {
    if nspace.is_empty() {
        ceph_str_hash_rjenkins(name.as_bytes())
    } else {
        let mut k = Vec::with_capacity(nspace.len() + 1 + name.len());
        k.extend_from_slice(nspace.as_bytes());
        k.push(0x1f);
        k.extend_from_slice(name.as_bytes());
        ceph_str_hash_rjenkins(&k)
    }
}

impl Pool {
    pub fn pg_num_mask(&self) -> u32 {
        pg_num_mask(self.pg_num)
    }
    /// `pg_pool_t::raw_pg_to_pg`: the PG a raw hash falls in.
    pub fn raw_pg_to_pg(&self, raw_seed: u32) -> PgId {
        PgId::new(self.id, ceph_stable_mod(raw_seed, self.pg_num, self.pg_num_mask()))
    }
    /// The PG of an object: `(raw hash, pg)`.
    pub fn object_to_pg(&self, name: &str, nspace: &str) -> (u32, PgId) {
        let h = object_hash(name, nspace);
        (h, self.raw_pg_to_pg(h))
    }
    /// `raw_pg_to_pps` with `HASHPSPOOL`: the PG's input to the OSD draw.
    pub fn pg_pps(&self, pg: PgId) -> u32 {
        crush_hash32_2(
            ceph_stable_mod(pg.seed, self.pg_num, self.pg_num_mask()),
            self.id as u32,
        )
    }
}

/// `2^44 · log2(x)` for `x` in `1..=65536`, exact to the last bit of the algorithm (integer
/// square-and-compare; no floating point, so every machine computes the same value).
fn log2_fixed44(x: u32) -> i64 {
    debug_assert!((1..=65536).contains(&x));
    let int = 31 - x.leading_zeros(); // floor(log2 x)
    let mut result: i64 = (int as i64) << 44;
    // y = x / 2^int in [1, 2), as Q2.62.
    const ONE: u128 = 1 << 62;
    let mut y: u128 = (x as u128) << (62 - int);
    for bit in (0..44).rev() {
        y = (y * y) >> 62;
        if y >= 2 * ONE {
            y >>= 1;
            result |= 1 << bit;
        }
    }
    result
}

/// The straw2 draw of `osd` for placement seed `pps`: `2^44·log2((u+1)/65536) / weight`,
/// `u` the low 16 bits of the hash; ≤ 0, and closer to 0 (better) for a higher weight.
pub fn straw2_draw(pps: u32, osd: OsdId, weight: u32) -> i64 {
    let u = crush_hash32_3(pps, osd as u32, 0) & 0xffff;
    ln_table()[u as usize] / weight as i64
}

/// `2^44·log2((u+1)/65536)` for every 16-bit `u`, computed once.
fn ln_table() -> &'static [i64] {
    static TABLE: std::sync::OnceLock<Vec<i64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (1..=65536u32).map(|x| log2_fixed44(x) - (16i64 << 44)).collect())
}

/// The up set of `pg` in `map`: at most `size` distinct OSDs, up, in and with weight > 0,
/// in rendezvous order (the first is the primary). Empty for an unknown pool.
pub fn pg_to_up_osds(map: &OsdMap, pg: PgId) -> Vec<OsdId> {
    let Some(pool) = map.pool(pg.pool) else {
        return Vec::new();
    };
    let pps = pool.pg_pps(pg);
    let mut scored: Vec<(i64, OsdId)> = map
        .osds
        .iter()
        .filter(|(_, o)| o.placement_weight() > 0)
        .map(|(&id, o)| (straw2_draw(pps, id, o.placement_weight()), id))
        .collect();
    let size = pool.size as usize;
    let by_rank = |a: &(i64, OsdId), b: &(i64, OsdId)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
    if scored.len() > size {
        scored.select_nth_unstable_by(size, by_rank);
        scored.truncate(size);
    }
    scored.sort_unstable_by(by_rank);
    scored.into_iter().map(|(_, id)| id).collect()
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPlacement {
    /// The object hash (raw PG seed), as an `MOsdOp` carries it.
    pub hash: u32,
    pub pg: PgId,
    /// Up set in order; `up[0]` is the primary.
    pub up: Vec<OsdId>,
}

impl ObjectPlacement {
    pub fn primary(&self) -> Option<OsdId> {
        self.up.first().copied()
    }
}

impl OsdMap {
    /// See [`pg_to_up_osds`].
    pub fn pg_to_up_osds(&self, pg: PgId) -> Vec<OsdId> {
        pg_to_up_osds(self, pg)
    }
    pub fn pg_primary(&self, pg: PgId) -> Option<OsdId> {
        self.pg_to_up_osds(pg).first().copied()
    }
    /// Object → PG → OSDs; `-ENOENT` for an unknown pool.
    pub fn object_placement(&self, pool: PoolId, name: &str, nspace: &str) -> Result<ObjectPlacement> {
        let p = self
            .pool(pool)
            .ok_or_else(|| Error::noent(format!("pool {pool} does not exist")))?;
        let (hash, pg) = p.object_to_pg(name, nspace);
        Ok(ObjectPlacement {
            hash,
            pg,
            up: self.pg_to_up_osds(pg),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::osdmap::tests::{addrs, cluster};
    use super::super::osdmap::{Pool, CEPH_OSD_IN};
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn rjenkins_matches_ceph_known_values() {
        // `ceph osd map <pool> <obj> [<ns>]` on a Ceph 19 cluster, pool pg_num 32 and 12.
        let cases: &[(&str, &str, u32, u32, u32)] = &[
            ("", "foo", 0x7fc1_f406, 0x6, 0x6),
            ("ns1", "foo", 0xf456_9544, 0x4, u32::MAX),
            ("", "bar", 0xefe6_384b, 0xb, 0xb),
            ("ns1", "bar", 0x73a7_5142, 0x2, u32::MAX),
            ("users.uid", "testuser", 0xa13a_a4c1, 0x1, u32::MAX),
            ("gc", "gc.0", 0x031b_b659, 0x19, u32::MAX),
            ("", "gc.0", 0x990e_66d8, 0x18, 0x8),
            ("control", "notify.0", 0x4eea_cd0a, 0xa, u32::MAX),
            ("rgw", "foo", 0x0ecb_73a9, 0x9, u32::MAX),
            ("", "obj", 0xaabc_5e21, 0x1, 0x1),
            ("ns1", "obj", 0x37ed_a02a, 0xa, u32::MAX),
            ("", "_shadow_obj.1", 0xe5f4_2c1a, 0x1a, 0xa),
            ("", "e", 0xef61_efce, 0xe, 0x6),
            ("", "c", 0x4fa4_bedb, 0x1b, 0xb),
            ("", "a", 0x29ee_c818, 0x18, 0x8),
        ];
        let p32 = Pool::new(2, "test", 3, 2, 32);
        let p12 = Pool::new(2, "test", 3, 2, 12);
        for &(ns, name, raw, pg32, pg12) in cases {
            assert_eq!(object_hash(name, ns), raw, "{ns}/{name}");
            assert_eq!(p32.object_to_pg(name, ns), (raw, PgId::new(2, pg32)), "{ns}/{name}");
            if pg12 != u32::MAX {
                assert_eq!(p12.object_to_pg(name, ns).1.seed, pg12, "{name} in pg_num 12");
            }
        }
        // Inputs of 12+ bytes exercise the block loop.
        assert_eq!(ceph_str_hash_rjenkins(b"_shadow_obj.1"), 0xe5f4_2c1a);
        assert_eq!(ceph_str_hash_rjenkins(b"users.uid\x1ftestuser"), 0xa13a_a4c1);
    }

    #[test]
    fn stable_mod_and_masks() {
        assert_eq!(pg_num_mask(1), 0);
        assert_eq!(pg_num_mask(2), 1);
        assert_eq!(pg_num_mask(12), 15);
        assert_eq!(pg_num_mask(16), 15);
        assert_eq!(pg_num_mask(17), 31);
        assert_eq!(pg_num_mask(1 << 24), (1 << 24) - 1);
        for x in 0..10_000u32 {
            let x = x.wrapping_mul(2_654_435_761);
            for b in [1u32, 3, 12, 16, 100, 4096] {
                let r = ceph_stable_mod(x, b, pg_num_mask(b));
                assert!(r < b);
                // Power of two: the plain mask.
                if b.is_power_of_two() {
                    assert_eq!(r, x & (b - 1));
                }
            }
            // Growing 12 → 13 only moves objects into the new PG 12.
            let (a, b) = (ceph_stable_mod(x, 12, 15), ceph_stable_mod(x, 13, 15));
            assert!(a == b || b == 12, "{x:#x}: {a} -> {b}");
        }
    }

    #[test]
    fn fixed_point_log_is_accurate_and_monotonic() {
        let mut prev = i64::MIN;
        for x in 1..=65536u32 {
            let l = log2_fixed44(x);
            assert!(l > prev, "not increasing at {x}");
            prev = l;
            let want = (x as f64).log2() * (1u64 << 44) as f64;
            assert!((l as f64 - want).abs() < 4096.0, "log2({x}) = {l}, want {want}");
        }
        assert_eq!(log2_fixed44(1), 0);
        assert_eq!(log2_fixed44(65536), 16 << 44);
    }

    fn pool(pg_num: u32, size: u32) -> Pool {
        Pool::new(1, "rbd", size, 1, pg_num)
    }

    fn primaries(m: &OsdMap, pg_num: u32) -> Vec<Option<OsdId>> {
        (0..pg_num).map(|s| m.pg_primary(PgId::new(1, s))).collect()
    }

    #[test]
    fn placement_is_deterministic_and_distinct() {
        let m = cluster(10, pool(4096, 3));
        let again = cluster(10, pool(4096, 3));
        for s in 0..4096 {
            let pg = PgId::new(1, s);
            let up = m.pg_to_up_osds(pg);
            assert_eq!(up.len(), 3);
            let mut d = up.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3, "{pg}: {up:?} repeats an OSD");
            assert_eq!(again.pg_to_up_osds(pg), up);
        }
        // A size larger than the cluster gets every OSD once.
        let small = cluster(2, pool(8, 3));
        for s in 0..8 {
            let mut up = small.pg_to_up_osds(PgId::new(1, s));
            up.sort();
            assert_eq!(up, vec![0, 1]);
        }
        assert!(m.pg_to_up_osds(PgId::new(99, 0)).is_empty(), "unknown pool");
        let p = m.object_placement(1, "foo", "").unwrap();
        assert_eq!(p.hash, 0x7fc1_f406);
        assert_eq!(p.pg, PgId::new(1, 0x7fc1_f406 & 4095));
        assert_eq!(p.up, m.pg_to_up_osds(p.pg));
        assert_eq!(m.object_placement(7, "foo", "").unwrap_err().errno, libc::ENOENT);
        assert_eq!("1.2a".parse::<PgId>().unwrap(), PgId::new(1, 0x2a));
        assert_eq!(PgId::new(3, 0x1f).to_string(), "3.1f");
    }

    #[test]
    fn weights_are_respected() {
        let mut m = cluster(10, pool(4096, 1));
        let mut inc = m.next_incremental();
        inc.new_weight.insert(3, CEPH_OSD_IN / 2);
        m.apply(&inc).unwrap();
        let mut count: BTreeMap<OsdId, u32> = BTreeMap::new();
        for p in primaries(&m, 4096) {
            *count.entry(p.unwrap()).or_default() += 1;
        }
        let full: f64 = count
            .iter()
            .filter(|(&k, _)| k != 3)
            .map(|(_, &v)| v as f64)
            .sum::<f64>()
            / 9.0;
        let ratio = count[&3] as f64 / full;
        println!(
            "half-weight osd.3 got {} PGs, weight-1 OSDs {full:.1} on average: ratio {ratio:.3}",
            count[&3]
        );
        assert!((0.38..=0.62).contains(&ratio), "ratio {ratio}");
        for (&id, &n) in &count {
            if id != 3 {
                assert!((n as f64 - full).abs() < full * 0.2, "osd.{id}: {n} vs {full}");
            }
        }
    }

    #[test]
    fn down_out_and_zero_weight_osds_get_nothing() {
        let mut m = cluster(6, pool(1024, 3));
        let mut inc = m.next_incremental();
        inc.new_down.insert(1);
        inc.new_out.insert(2);
        inc.new_weight.insert(4, 0);
        m.apply(&inc).unwrap();
        for s in 0..1024 {
            let up = m.pg_to_up_osds(PgId::new(1, s));
            assert_eq!(up.len(), 3);
            assert!(!up.iter().any(|o| [1, 2, 4].contains(o)), "{up:?}");
        }
    }

    #[test]
    fn adding_one_osd_to_ten_moves_about_a_tenth() {
        const PGS: u32 = 4096;
        let before = cluster(10, pool(PGS, 3));
        let mut after = before.clone();
        let mut inc = after.next_incremental();
        inc.new_max_osd = Some(11);
        inc.new_osds.insert(10);
        inc.new_up.insert(10, addrs(10, 1));
        inc.new_in.insert(10);
        after.apply(&inc).unwrap();
        let (mut moved_primary, mut moved_sets, mut moved_slots) = (0, 0, 0);
        for s in 0..PGS {
            let pg = PgId::new(1, s);
            let (a, b) = (before.pg_to_up_osds(pg), after.pg_to_up_osds(pg));
            if a[0] != b[0] {
                moved_primary += 1;
                assert_eq!(b[0], 10, "{pg}: a primary moved to an old OSD");
            }
            if a != b {
                moved_sets += 1;
                // Rendezvous: the new OSD slots in and the others keep their relative order.
                assert!(b.contains(&10), "{pg}: {a:?} -> {b:?}");
                let kept: Vec<_> = b.iter().copied().filter(|&o| o != 10).collect();
                assert_eq!(&kept[..], &a[..2], "{pg}");
            }
            moved_slots += b.iter().filter(|o| !a.contains(o)).count();
        }
        let frac = moved_primary as f64 / PGS as f64;
        println!(
            "adding osd.10 to 10 OSDs: {moved_primary}/{PGS} PG primaries moved ({:.2}%), \
             {moved_sets} up sets changed, {moved_slots}/{} replica slots moved ({:.2}%)",
            frac * 100.0,
            PGS * 3,
            moved_slots as f64 * 100.0 / (PGS * 3) as f64
        );
        assert!((0.05..=0.15).contains(&frac), "{frac}");
        let slot_frac = moved_slots as f64 / (PGS * 3) as f64;
        assert!((0.05..=0.15).contains(&slot_frac), "{slot_frac}");
    }

    #[test]
    fn removing_one_osd_moves_only_its_pgs() {
        const PGS: u32 = 4096;
        let before = cluster(10, pool(PGS, 3));
        let mut after = before.clone();
        let mut inc = after.next_incremental();
        inc.new_down.insert(7);
        after.apply(&inc).unwrap();
        let mut moved = 0;
        for s in 0..PGS {
            let pg = PgId::new(1, s);
            let (a, b) = (before.pg_to_up_osds(pg), after.pg_to_up_osds(pg));
            if a.contains(&7) {
                moved += 1;
                let kept: Vec<_> = a.iter().copied().filter(|&o| o != 7).collect();
                assert_eq!(&b[..2], &kept[..], "{pg}: the survivors keep their order");
                assert!(!b.contains(&7));
            } else {
                assert_eq!(a, b, "{pg} did not hold osd.7 but changed");
            }
        }
        println!("removing osd.7: {moved}/{PGS} PGs held it and changed; no other PG moved");
        assert!(moved > 0);
    }
}
