//! Tests of the OSDMap: encoding, placement, pools, up/in changes; and map builders other
//! tests use.

use super::super::encoding::test_util::{assert_prefixes_fail, Rng};
use super::super::encoding::{decode_all, encode_to_bytes};
use super::*;

pub const FSID: [u8; 16] = [7; 16];

pub fn addrs(id: OsdId, nonce: u32) -> OsdAddrs {
    let a = |port: u16| {
        format!("v2:10.0.{}.{}:{port}/{nonce}", id / 250, id % 250 + 1)
            .parse::<EntityAddr>()
            .unwrap()
    };
    OsdAddrs {
        public: a(6800),
        cluster: a(6801),
        hb_front: a(6802),
        hb_back: a(6803),
    }
}

/// A map with OSDs `0..n` up and in at weight 1.0 and one pool.
pub fn cluster(n: i32, pool: Pool) -> OsdMap {
    let mut m = OsdMap::new(FSID);
    let mut inc = m.next_incremental();
    inc.new_max_osd = Some(n);
    for id in 0..n {
        inc.new_osds.insert(id);
        inc.new_up.insert(id, addrs(id, 1));
        inc.new_in.insert(id);
    }
    inc.new_pools.insert(pool.id, pool);
    m.apply(&inc).unwrap();
    m
}

#[test]
fn incrementals_build_the_same_map_as_direct_construction() {
    let mut m = OsdMap::new(FSID);
    // e1: three OSDs and a pool.
    let mut i1 = m.next_incremental();
    i1.new_max_osd = Some(4);
    i1.new_osds.extend([0, 1, 2]);
    i1.new_pools.insert(1, Pool::new(1, "rbd", 3, 2, 64));
    m.apply(&i1).unwrap();
    // e2: they boot and are marked in; osd.2 at half weight.
    let mut i2 = m.next_incremental();
    for id in 0..3 {
        i2.new_up.insert(id, addrs(id, 10));
        i2.new_in.insert(id);
    }
    i2.new_weight.insert(2, 0x8000);
    m.apply(&i2).unwrap();
    // e3: osd.1 goes down and out; a second pool; up_thru for osd.0.
    let mut i3 = m.next_incremental();
    i3.new_down.insert(1);
    i3.new_out.insert(1);
    i3.new_pools.insert(2, Pool::new(2, "data", 2, 1, 32));
    i3.new_up_thru.insert(0, 2);
    m.apply(&i3).unwrap();
    // e4: osd.1 restarts; the first pool goes; osd.3 is created.
    let mut i4 = m.next_incremental();
    i4.new_up.insert(1, addrs(1, 11));
    i4.new_in.insert(1);
    i4.removed_pools.insert(1);
    i4.new_osds.insert(3);
    m.apply(&i4).unwrap();

    let up = |a: OsdAddrs, up_from, down_at, up_thru, weight| OsdInfo {
        up: true,
        in_: true,
        weight,
        addrs: a,
        up_from,
        down_at,
        up_thru,
        full: false,
    };
    let want = OsdMap {
        fsid: FSID,
        epoch: 4,
        max_osd: 4,
        osds: BTreeMap::from([
            (0, up(addrs(0, 10), 2, 0, 2, CEPH_OSD_IN)),
            (1, up(addrs(1, 11), 4, 3, 0, CEPH_OSD_IN)),
            (2, up(addrs(2, 10), 2, 0, 0, 0x8000)),
            (3, OsdInfo::default()),
        ]),
        pools: BTreeMap::from([(2, Pool::new(2, "data", 2, 1, 32))]),
        pool_max: 2,
    };
    assert_eq!(m, want);
    assert_eq!(m.num_up(), 3);
    assert_eq!(m.osd(2).unwrap().weight_f32(), 0.5);
    assert_eq!(weight_from_f32(0.5), 0x8000);
    assert_eq!(weight_from_f32(2.0), CEPH_OSD_IN);
    assert_eq!(weight_from_f32(-1.0), 0);
    assert_eq!(m.pool_by_name("data").map(|p| p.id), Some(2));
    assert!(m.pool_by_name("rbd").is_none());

    // The same sequence, shipped over the wire, gives the same map.
    let mut n = OsdMap::new(FSID);
    for inc in [&i1, &i2, &i3, &i4] {
        let b = encode_to_bytes(inc);
        let back: Incremental = decode_all(&b).unwrap();
        assert_eq!(&back, inc);
        n.apply(&back).unwrap();
    }
    assert_eq!(n, want);
    let b = encode_to_bytes(&want);
    assert_eq!(decode_all::<OsdMap>(&b).unwrap(), want);
}

#[test]
fn bad_incrementals_are_refused_and_leave_the_map_unchanged() {
    let m0 = cluster(3, Pool::new(1, "rbd", 2, 1, 8));
    let mut m = m0.clone();
    let mut skip = m.next_incremental();
    skip.epoch += 1;
    assert!(m.apply(&skip).is_err(), "epoch gap");
    let mut other = m.next_incremental();
    other.fsid = [1; 16];
    assert!(m.apply(&other).is_err(), "fsid mismatch");
    let mut bad = m.next_incremental();
    bad.new_out.insert(0); // would apply...
    bad.new_in.insert(9); // ...but this OSD does not exist
    assert_eq!(m.apply(&bad).unwrap_err().errno, libc::ENOENT);
    let mut dup = m.next_incremental();
    dup.new_up.insert(1, addrs(1, 2));
    assert_eq!(m.apply(&dup).unwrap_err().errno, libc::EEXIST, "already up");
    let mut shrink = m.next_incremental();
    shrink.new_max_osd = Some(2);
    assert!(m.apply(&shrink).is_err(), "osd.2 would be outside max_osd");
    let mut name = m.next_incremental();
    name.new_pools.insert(5, Pool::new(5, "rbd", 2, 1, 8));
    assert_eq!(m.apply(&name).unwrap_err().errno, libc::EEXIST);
    let mut zero = m.next_incremental();
    zero.new_pools.insert(6, Pool::new(6, "z", 2, 1, 0));
    assert!(m.apply(&zero).is_err(), "pg_num 0");
    assert_eq!(m, m0);
}

/// A model of the map as plain state, mutated directly; random incrementals applied to the
/// real map must agree with it, and survive encoding.
#[test]
fn random_incremental_sequences_match_a_direct_model() {
    let mut rng = Rng(2024);
    for _round in 0..20 {
        let mut m = OsdMap::new(FSID);
        let mut model: BTreeMap<OsdId, OsdInfo> = BTreeMap::new();
        let mut pools: BTreeMap<PoolId, Pool> = BTreeMap::new();
        let mut via_wire = OsdMap::new(FSID);
        let mut inc0 = m.next_incremental();
        inc0.new_max_osd = Some(16);
        m.apply(&inc0).unwrap();
        via_wire.apply(&decode_all(&encode_to_bytes(&inc0)).unwrap()).unwrap();
        for _ in 0..30 {
            let mut inc = m.next_incremental();
            let e = inc.epoch;
            for _ in 0..rng.below(5) {
                let id = rng.below(16) as OsdId;
                match rng.below(7) {
                    0 if !model.contains_key(&id) && !inc.new_osds.contains(&id) => {
                        inc.new_osds.insert(id);
                        model.insert(id, OsdInfo::default());
                    }
                    1 if model.get(&id).is_some_and(|o| !o.up) && !inc.new_up.contains_key(&id) => {
                        let a = addrs(id, e);
                        inc.new_up.insert(id, a);
                        let o = model.get_mut(&id).unwrap();
                        o.up = true;
                        o.addrs = a;
                        o.up_from = e;
                    }
                    2 if model.get(&id).is_some_and(|o| o.up) && !inc.new_up.contains_key(&id) => {
                        inc.new_down.insert(id);
                        let o = model.get_mut(&id).unwrap();
                        o.up = false;
                        o.down_at = e;
                    }
                    3 if model.contains_key(&id) && !inc.new_out.contains(&id) => {
                        inc.new_in.insert(id);
                        model.get_mut(&id).unwrap().in_ = true;
                    }
                    4 if model.contains_key(&id) && !inc.new_in.contains(&id) => {
                        inc.new_out.insert(id);
                        model.get_mut(&id).unwrap().in_ = false;
                    }
                    5 if model.contains_key(&id) => {
                        let w = rng.below(0x10001) as u32;
                        inc.new_weight.insert(id, w);
                        model.get_mut(&id).unwrap().weight = w;
                    }
                    6 => {
                        let pid = rng.below(4) as PoolId + 1;
                        if m.pools.contains_key(&pid) && !inc.new_pools.contains_key(&pid) && rng.below(2) == 0 {
                            inc.removed_pools.insert(pid);
                            pools.remove(&pid);
                        } else if !inc.removed_pools.contains(&pid) {
                            let p = Pool::new(pid, format!("p{pid}"), 3, 2, 1 + rng.below(256) as u32);
                            inc.new_pools.insert(pid, p.clone());
                            pools.insert(pid, p);
                        }
                    }
                    _ => {}
                }
            }
            m.apply(&inc).unwrap();
            let wire: Incremental = decode_all(&encode_to_bytes(&inc)).unwrap();
            via_wire.apply(&wire).unwrap();
            assert_eq!(m.osds, model);
            assert_eq!(m.pools, pools);
        }
        assert_eq!(via_wire, m);
        assert_eq!(decode_all::<OsdMap>(&encode_to_bytes(&m)).unwrap(), m);
    }
}

#[test]
fn truncated_maps_and_incrementals_are_errors() {
    let mut m = cluster(3, Pool::new(1, "rbd", 2, 1, 8));
    let mut inc = m.next_incremental();
    inc.new_down.insert(2);
    inc.new_weight.insert(1, 0x4000);
    inc.new_max_osd = Some(5);
    m.apply(&inc).unwrap();
    assert_prefixes_fail(&encode_to_bytes(&m), decode_all::<OsdMap>);
    assert_prefixes_fail(&encode_to_bytes(&inc), decode_all::<Incremental>);
}

#[test]
fn json_dump_uses_ceph_key_names() {
    let m = cluster(2, Pool::new(1, "rbd", 2, 1, 8));
    let j = m.to_json();
    assert_eq!(j["epoch"], 1);
    assert_eq!(j["fsid"], "07070707-0707-0707-0707-070707070707");
    assert_eq!(j["pools"][0]["pool_name"], "rbd");
    assert_eq!(j["pools"][0]["pg_num"], 8);
    assert_eq!(j["osds"][1]["osd"], 1);
    assert_eq!(j["osds"][1]["up"], 1);
    assert_eq!(j["osds"][1]["weight"], 1.0);
    assert_eq!(j["osds"][1]["public_addr"], "v2:10.0.0.2:6800/1");
    assert_eq!(parse_fsid("07070707-0707-0707-0707-070707070707").unwrap(), FSID);
    let f = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(parse_fsid(&fsid_to_string(&f)).unwrap(), f);
    assert!(parse_fsid("not-a-uuid").is_err());
    assert!(parse_fsid("zz070707-0707-0707-0707-070707070707").is_err());
}

#[test]
fn decoding_rejects_inconsistent_maps() {
    let mut m = cluster(2, Pool::new(1, "rbd", 2, 1, 8));
    m.max_osd = 1; // osd.1 now outside
    assert!(decode_all::<OsdMap>(&encode_to_bytes(&m)).is_err());
}

#[test]
fn full_state_travels_in_incrementals_and_a_boot_clears_it() {
    let mut m = OsdMap::new(FSID);
    let mut i1 = m.next_incremental();
    i1.new_max_osd = Some(2);
    i1.new_osds.extend([0, 1]);
    m.apply(&i1).unwrap();
    let mut i2 = m.next_incremental();
    i2.new_up.insert(0, addrs(0, 1));
    i2.new_full.insert(0, true);
    m.apply(&i2).unwrap();
    assert!(m.osd(0).unwrap().full && !m.osd(1).unwrap().full);
    // Through the wire and the store's encoding.
    let back: OsdMap = decode_all(&encode_to_bytes(&m)).unwrap();
    assert!(back.osd(0).unwrap().full);
    let wire: Incremental = decode_all(&encode_to_bytes(&i2)).unwrap();
    assert_eq!(wire.new_full.get(&0), Some(&true));
    assert!(m.to_json()["osds"][0]["state"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "full"));
    // Down and up again: it tells again if it still is.
    let mut i3 = m.next_incremental();
    i3.new_down.insert(0);
    m.apply(&i3).unwrap();
    let mut i4 = m.next_incremental();
    i4.new_up.insert(0, addrs(0, 2));
    m.apply(&i4).unwrap();
    assert!(!m.osd(0).unwrap().full);
    // Of an OSD that does not exist: refused, the map unchanged.
    let mut bad = m.next_incremental();
    bad.new_full.insert(5, true);
    assert_eq!(m.apply(&bad).unwrap_err().errno, libc::ENOENT);
}
