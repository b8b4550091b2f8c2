//! The cluster map of OSDs and pools (`OSDMap`), and the per-epoch change (`OSDMap::Incremental`).
//!
//! Each epoch is one [`Incremental`] applied to the previous map; the monitor publishes either
//! full maps or incrementals and every holder of epoch N−1 plus incremental N arrives at the same
//! map N. The field set and the wire layout are ours (each struct in a Ceph versioned envelope),
//! not Ceph's `OSDMap` byte layout.

use super::encoding::{DResult, Decode, DecodeError, Decoder, Encode, Encoder};
use crate::msgr::addr::EntityAddr;
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

pub type Epoch = u32;
pub type OsdId = i32;
pub type PoolId = i64;

/// Ceph's `CEPH_OSD_IN`: a weight of 1.0 in 16.16 fixed point.
pub const CEPH_OSD_IN: u32 = 0x10000;
/// Ceph's `CEPH_OSD_OUT`.
pub const CEPH_OSD_OUT: u32 = 0;
/// Highest OSD count a map may declare (a sanity bound for decoding and `new_max_osd`).
pub const MAX_OSD_LIMIT: i32 = 1 << 20;

/// The four addresses an OSD serves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsdAddrs {
    pub public: EntityAddr,
    pub cluster: EntityAddr,
    pub hb_front: EntityAddr,
    pub hb_back: EntityAddr,
}

impl Default for OsdAddrs {
    fn default() -> Self {
        OsdAddrs {
            public: EntityAddr::blank(),
            cluster: EntityAddr::blank(),
            hb_front: EntityAddr::blank(),
            hb_back: EntityAddr::blank(),
        }
    }
}

impl Encode for OsdAddrs {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.public);
        e.put(&self.cluster);
        e.put(&self.hb_front);
        e.put(&self.hb_back);
    }
}
impl Decode for OsdAddrs {
    const MIN_LEN: usize = 4 * 7;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(OsdAddrs {
            public: d.get()?,
            cluster: d.get()?,
            hb_front: d.get()?,
            hb_back: d.get()?,
        })
    }
}

/// One OSD's entry in the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsdInfo {
    pub up: bool,
    pub in_: bool,
    /// Placement weight, 16.16 fixed point: `CEPH_OSD_IN` (0x10000) = 1.0.
    pub weight: u32,
    pub addrs: OsdAddrs,
    /// Epoch of the last down → up transition.
    pub up_from: Epoch,
    /// Epoch of the last up → down transition (0: never).
    pub down_at: Epoch,
    /// Last epoch the OSD asked to be recorded as alive through (for peering, later).
    pub up_thru: Epoch,
    /// The OSD said its disk is full (Ceph's `CEPH_OSD_FULL` state bit, from `MOSDFull`):
    /// it refuses writes until it says otherwise. Cleared when it boots.
    pub full: bool,
}

impl Default for OsdInfo {
    /// A newly created OSD: exists, down, out, weight 1.0.
    fn default() -> Self {
        OsdInfo {
            up: false,
            in_: false,
            weight: CEPH_OSD_IN,
            addrs: OsdAddrs::default(),
            up_from: 0,
            down_at: 0,
            up_thru: 0,
            full: false,
        }
    }
}

impl OsdInfo {
    /// The weight placement uses: 0 unless the OSD is up and in.
    pub fn placement_weight(&self) -> u32 {
        if self.up && self.in_ {
            self.weight
        } else {
            0
        }
    }
    pub fn weight_f32(&self) -> f32 {
        self.weight as f32 / CEPH_OSD_IN as f32
    }
}

/// A weight in `0.0..=1.0` as 16.16 fixed point (`1.0` → `CEPH_OSD_IN`); out of range clamps.
pub fn weight_from_f32(w: f32) -> u32 {
    if w.is_nan() {
        return 0;
    }
    (w.clamp(0.0, 1.0) * CEPH_OSD_IN as f32).round() as u32
}

impl Encode for OsdInfo {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(2, 1, |e| {
            e.bool(self.up);
            e.bool(self.in_);
            e.u32(self.weight);
            e.put(&self.addrs);
            e.u32(self.up_from);
            e.u32(self.down_at);
            e.u32(self.up_thru);
            e.bool(self.full);
        });
    }
}
impl Decode for OsdInfo {
    const MIN_LEN: usize = 6;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(2, |v, d| {
            Ok(OsdInfo {
                up: d.bool()?,
                in_: d.bool()?,
                weight: d.u32()?,
                addrs: d.get()?,
                up_from: d.u32()?,
                down_at: d.u32()?,
                up_thru: d.u32()?,
                full: if v >= 2 { d.bool()? } else { false },
            })
        })
    }
}

/// A replicated pool (no CRUSH rule: placement is flat weighted rendezvous hashing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub id: PoolId,
    pub name: String,
    pub size: u32,
    pub min_size: u32,
    pub pg_num: u32,
}

impl Pool {
    /// As `ceph osd dump -f json` shows a pool.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "pool": self.id,
            "pool_name": self.name,
            "size": self.size,
            "min_size": self.min_size,
            "pg_num": self.pg_num,
            "pg_placement_num": self.pg_num,
        })
    }

    pub fn new(id: PoolId, name: impl Into<String>, size: u32, min_size: u32, pg_num: u32) -> Self {
        Pool {
            id,
            name: name.into(),
            size,
            min_size,
            pg_num,
        }
    }
    fn validate(&self) -> Result<()> {
        if self.id < 0 {
            return Err(Error::inval(format!("pool id {} is negative", self.id)));
        }
        if self.name.is_empty() {
            return Err(Error::inval(format!("pool {} has an empty name", self.id)));
        }
        if self.pg_num == 0 || self.pg_num > 1 << 24 {
            return Err(Error::inval(format!(
                "pool '{}': pg_num {} out of range 1..=2^24",
                self.name, self.pg_num
            )));
        }
        if self.size == 0 || self.size > 32 || self.min_size == 0 || self.min_size > self.size {
            return Err(Error::inval(format!(
                "pool '{}': size {} / min_size {} invalid",
                self.name, self.size, self.min_size
            )));
        }
        Ok(())
    }
}

impl Encode for Pool {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(1, 1, |e| {
            e.i64(self.id);
            e.string(&self.name);
            e.u32(self.size);
            e.u32(self.min_size);
            e.u32(self.pg_num);
        });
    }
}
impl Decode for Pool {
    const MIN_LEN: usize = 6;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(1, |_, d| {
            Ok(Pool {
                id: d.i64()?,
                name: d.string()?,
                size: d.u32()?,
                min_size: d.u32()?,
                pg_num: d.u32()?,
            })
        })
    }
}

/// The OSD map at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsdMap {
    pub fsid: [u8; 16],
    pub epoch: Epoch,
    /// OSD ids are `0..max_osd`.
    pub max_osd: i32,
    /// The OSDs that exist.
    pub osds: BTreeMap<OsdId, OsdInfo>,
    pub pools: BTreeMap<PoolId, Pool>,
    /// Highest pool id ever allocated (ids are not reused).
    pub pool_max: PoolId,
}

impl OsdMap {
    /// The empty map of epoch 0; the first incremental makes epoch 1.
    pub fn new(fsid: [u8; 16]) -> Self {
        OsdMap {
            fsid,
            ..Default::default()
        }
    }
    pub fn exists(&self, osd: OsdId) -> bool {
        self.osds.contains_key(&osd)
    }
    pub fn is_up(&self, osd: OsdId) -> bool {
        self.osds.get(&osd).is_some_and(|o| o.up)
    }
    pub fn is_in(&self, osd: OsdId) -> bool {
        self.osds.get(&osd).is_some_and(|o| o.in_)
    }
    pub fn osd(&self, osd: OsdId) -> Option<&OsdInfo> {
        self.osds.get(&osd)
    }
    pub fn num_up(&self) -> usize {
        self.osds.values().filter(|o| o.up).count()
    }
    pub fn num_in(&self) -> usize {
        self.osds.values().filter(|o| o.in_).count()
    }
    pub fn pool(&self, id: PoolId) -> Option<&Pool> {
        self.pools.get(&id)
    }
    pub fn pool_by_name(&self, name: &str) -> Option<&Pool> {
        self.pools.values().find(|p| p.name == name)
    }
    /// An empty incremental for the next epoch.
    pub fn next_incremental(&self) -> Incremental {
        Incremental::new(self.fsid, self.epoch + 1)
    }
    /// Applies `inc` (see [`Incremental::apply`]).
    pub fn apply(&mut self, inc: &Incremental) -> Result<()> {
        inc.apply(self)
    }

    /// A JSON dump with the key names of `ceph osd dump -f json` (the subset we model).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let osds: Vec<_> = self
            .osds
            .iter()
            .map(|(id, o)| {
                let mut state = vec!["exists"];
                if o.up {
                    state.push("up");
                }
                if o.full {
                    state.push("full");
                }
                json!({
                    "osd": id,
                    "up": o.up as u8,
                    "in": o.in_ as u8,
                    "weight": o.weight_f32(),
                    "up_from": o.up_from,
                    "up_thru": o.up_thru,
                    "down_at": o.down_at,
                    "public_addr": o.addrs.public.to_string(),
                    "cluster_addr": o.addrs.cluster.to_string(),
                    "heartbeat_back_addr": o.addrs.hb_back.to_string(),
                    "heartbeat_front_addr": o.addrs.hb_front.to_string(),
                    "state": state,
                })
            })
            .collect();
        let pools: Vec<_> = self.pools.values().map(Pool::to_json).collect();
        json!({
            "epoch": self.epoch,
            "fsid": fsid_to_string(&self.fsid),
            "max_osd": self.max_osd,
            "pool_max": self.pool_max,
            "pools": pools,
            "osds": osds,
        })
    }
}

/// An fsid as a UUID string, `8-4-4-4-12` lowercase hex.
pub fn fsid_to_string(f: &[u8; 16]) -> String {
    let h: String = f.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Parses a UUID string (with or without dashes) into an fsid.
pub fn parse_fsid(s: &str) -> Result<[u8; 16]> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    let bad = || Error::inval(format!("'{s}' is not a UUID"));
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut f = [0u8; 16];
    for (i, b) in f.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(f)
}

impl Encode for OsdMap {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(2, 1, |e| {
            e.put(&self.fsid);
            e.u32(self.epoch);
            e.i32(self.max_osd);
            e.map(&self.osds);
            e.map(&self.pools);
            e.i64(self.pool_max);
        });
    }
}
impl Decode for OsdMap {
    const MIN_LEN: usize = 6;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(1, |_, d| {
            let m = OsdMap {
                fsid: d.get()?,
                epoch: d.u32()?,
                max_osd: d.i32()?,
                osds: d.map()?,
                pools: d.map()?,
                pool_max: d.i64()?,
            };
            if !(0..=MAX_OSD_LIMIT).contains(&m.max_osd) {
                return Err(DecodeError(format!("max_osd {} out of range", m.max_osd)));
            }
            if let Some((&id, _)) = m.osds.iter().find(|(&id, _)| id < 0 || id >= m.max_osd) {
                return Err(DecodeError(format!("osd.{id} outside max_osd {}", m.max_osd)));
            }
            if let Some((&id, _)) = m.pools.iter().find(|(&id, p)| p.id != id) {
                return Err(DecodeError(format!("pool {id} keyed under another id")));
            }
            Ok(m)
        })
    }
}

/// The change from epoch `epoch − 1` to `epoch` (Ceph's `OSDMap::Incremental`).
///
/// [`apply`](Incremental::apply) applies the fields in this order: `new_max_osd`,
/// `removed_pools`, `new_pools`, `new_pool_max`, `removed_osds`, `new_osds`, `new_down`, `new_up`,
/// `new_out`, `new_in`, `new_weight`, `new_up_thru`. So an OSD can be marked down and back up
/// (a restart) in one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Incremental {
    pub fsid: [u8; 16],
    pub epoch: Epoch,
    pub new_max_osd: Option<i32>,
    pub new_pool_max: Option<PoolId>,
    /// Pools created or changed (the whole pool replaces the old entry).
    pub new_pools: BTreeMap<PoolId, Pool>,
    pub removed_pools: BTreeSet<PoolId>,
    /// OSDs created: down, out, weight 1.0.
    pub new_osds: BTreeSet<OsdId>,
    pub removed_osds: BTreeSet<OsdId>,
    /// OSDs booting: up, with these addresses, `up_from` = this epoch.
    pub new_up: BTreeMap<OsdId, OsdAddrs>,
    /// OSDs going down: `down_at` = this epoch.
    pub new_down: BTreeSet<OsdId>,
    pub new_in: BTreeSet<OsdId>,
    pub new_out: BTreeSet<OsdId>,
    /// New placement weights, 16.16.
    pub new_weight: BTreeMap<OsdId, u32>,
    pub new_up_thru: BTreeMap<OsdId, Epoch>,
    /// OSDs whose full state changed (`MOSDFull`).
    pub new_full: BTreeMap<OsdId, bool>,
}

impl Incremental {
    pub fn new(fsid: [u8; 16], epoch: Epoch) -> Self {
        Incremental {
            fsid,
            epoch,
            ..Default::default()
        }
    }

    /// Applies this incremental to `map`, which must be at `self.epoch − 1` with the same fsid.
    /// Either the whole incremental applies or (on error) `map` is left unchanged.
    pub fn apply(&self, map: &mut OsdMap) -> Result<()> {
        if self.fsid != map.fsid {
            return Err(Error::inval("incremental for another cluster (fsid mismatch)"));
        }
        if map.epoch.checked_add(1) != Some(self.epoch) {
            return Err(Error::inval(format!(
                "incremental epoch {} does not follow map epoch {}",
                self.epoch, map.epoch
            )));
        }
        let mut m = map.clone();
        m.epoch = self.epoch;
        if let Some(n) = self.new_max_osd {
            if !(0..=MAX_OSD_LIMIT).contains(&n) {
                return Err(Error::inval(format!("max_osd {n} out of range")));
            }
            m.max_osd = n;
        }
        for id in &self.removed_pools {
            if m.pools.remove(id).is_none() {
                return Err(Error::noent(format!("pool {id} does not exist")));
            }
        }
        for (id, p) in &self.new_pools {
            if p.id != *id {
                return Err(Error::inval(format!("pool {} given under id {id}", p.id)));
            }
            p.validate()?;
            if m.pools.values().any(|o| o.id != p.id && o.name == p.name) {
                return Err(Error::exists(format!("pool name '{}' is taken", p.name)));
            }
            m.pools.insert(*id, p.clone());
            m.pool_max = m.pool_max.max(*id);
        }
        if let Some(pm) = self.new_pool_max {
            if pm < m.pool_max {
                return Err(Error::inval(format!(
                    "pool_max {pm} below an allocated pool id {}",
                    m.pool_max
                )));
            }
            m.pool_max = pm;
        }
        for id in &self.removed_osds {
            if m.osds.remove(id).is_none() {
                return Err(Error::noent(format!("osd.{id} does not exist")));
            }
        }
        for &id in &self.new_osds {
            if id < 0 || id >= m.max_osd {
                return Err(Error::inval(format!("osd.{id} outside max_osd {}", m.max_osd)));
            }
            if m.osds.insert(id, OsdInfo::default()).is_some() {
                return Err(Error::exists(format!("osd.{id} already exists")));
            }
        }
        fn get(m: &mut OsdMap, id: OsdId) -> Result<&mut OsdInfo> {
            m.osds
                .get_mut(&id)
                .ok_or_else(|| Error::noent(format!("osd.{id} does not exist")))
        }
        for &id in &self.new_down {
            let o = get(&mut m, id)?;
            if o.up {
                o.up = false;
                o.down_at = self.epoch;
            }
        }
        for (&id, addrs) in &self.new_up {
            let o = get(&mut m, id)?;
            if o.up {
                return Err(Error::exists(format!("osd.{id} is already up")));
            }
            o.up = true;
            o.addrs = *addrs;
            o.up_from = self.epoch;
            // It says again if it still is.
            o.full = false;
        }
        for &id in &self.new_out {
            get(&mut m, id)?.in_ = false;
        }
        for &id in &self.new_in {
            get(&mut m, id)?.in_ = true;
        }
        for (&id, &w) in &self.new_weight {
            get(&mut m, id)?.weight = w;
        }
        for (&id, &e) in &self.new_up_thru {
            get(&mut m, id)?.up_thru = e;
        }
        for (&id, &f) in &self.new_full {
            get(&mut m, id)?.full = f;
        }
        if let Some((&id, _)) = m.osds.iter().next_back().filter(|(&id, _)| id >= m.max_osd) {
            return Err(Error::inval(format!("osd.{id} outside max_osd {}", m.max_osd)));
        }
        *map = m;
        Ok(())
    }
}

impl Encode for Incremental {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(2, 1, |e| {
            e.put(&self.fsid);
            e.u32(self.epoch);
            e.put(&self.new_max_osd);
            e.put(&self.new_pool_max);
            e.map(&self.new_pools);
            e.set(&self.removed_pools);
            e.set(&self.new_osds);
            e.set(&self.removed_osds);
            e.map(&self.new_up);
            e.set(&self.new_down);
            e.set(&self.new_in);
            e.set(&self.new_out);
            e.map(&self.new_weight);
            e.map(&self.new_up_thru);
            e.map(&self.new_full);
        });
    }
}
impl Decode for Incremental {
    const MIN_LEN: usize = 6;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(2, |v, d| {
            Ok(Incremental {
                fsid: d.get()?,
                epoch: d.u32()?,
                new_max_osd: d.get()?,
                new_pool_max: d.get()?,
                new_pools: d.map()?,
                removed_pools: d.set()?,
                new_osds: d.set()?,
                removed_osds: d.set()?,
                new_up: d.map()?,
                new_down: d.set()?,
                new_in: d.set()?,
                new_out: d.set()?,
                new_weight: d.map()?,
                new_up_thru: d.map()?,
                new_full: if v >= 2 { d.map()? } else { BTreeMap::new() },
            })
        })
    }
}

#[cfg(test)]
#[path = "osdmap_tests.rs"]
pub(crate) mod tests;
