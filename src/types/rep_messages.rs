//! Replication messages (reference §8.3 steps 6-7): `MOSDRepOp` carries a primary's
//! transaction for one PG to a replica, `MOSDRepOpReply` says it is durable there. The store
//! transaction travels as a list of [`Op`]s (our layout; Ceph sends its own `Transaction`
//! encoding), with the PG log entry's version and request id so a replica that becomes primary
//! knows which requests it already holds.

use super::encoding::{envelope_message, DResult, Decode, Decoder, Encode, Encoder};
use super::messages::{
    FrontMessage, MSG_OSD_PG_PULL, MSG_OSD_PG_PUSH, MSG_OSD_PG_PUSH_REPLY, MSG_OSD_PG_SCAN, MSG_OSD_REPOP,
    MSG_OSD_REPOPREPLY, MSG_OSD_REP_SCRUB, MSG_OSD_REP_SCRUBMAP,
};
use super::osd_op::OsdReqId;
use super::osdmap::{Epoch, OsdId, PoolId};
use super::placement::PgId;
use crate::os::{ObjectId, Op, Transaction};
use bytes::Bytes;
use std::collections::BTreeMap;

/// `eversion_t`: the epoch the primary wrote in and the PG's version counter. Ordered by epoch
/// first, so a newer primary's writes sort after a deposed one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Eversion {
    pub epoch: Epoch,
    pub version: u64,
}

impl std::fmt::Display for Eversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}'{}", self.epoch, self.version)
    }
}

impl Eversion {
    /// 12 bytes, big-endian, so byte order is version order.
    pub fn to_bytes(self) -> Bytes {
        let mut b = Vec::with_capacity(12);
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.extend_from_slice(&self.version.to_be_bytes());
        Bytes::from(b)
    }
    pub fn from_bytes(b: &[u8]) -> Option<Eversion> {
        if b.len() != 12 {
            return None;
        }
        Some(Eversion {
            epoch: u32::from_be_bytes(b[..4].try_into().ok()?),
            version: u64::from_be_bytes(b[4..].try_into().ok()?),
        })
    }
}

impl Encode for Eversion {
    fn encode(&self, e: &mut Encoder) {
        e.u32(self.epoch);
        e.u64(self.version);
    }
}
impl Decode for Eversion {
    const MIN_LEN: usize = 12;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(Eversion {
            epoch: d.u32()?,
            version: d.u64()?,
        })
    }
}

// The store owns these encodings (`os::encoding`): its WAL logs the same bytes.
impl Encode for ObjectId {
    fn encode(&self, e: &mut Encoder) {
        self.encode_into(e.buf_mut());
    }
}
impl Decode for ObjectId {
    const MIN_LEN: usize = crate::os::encoding::OBJECT_ID_MIN_LEN;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        ObjectId::decode_from(d.dec_mut())
    }
}

impl Encode for Op {
    fn encode(&self, e: &mut Encoder) {
        self.encode_into(e.buf_mut());
    }
}
impl Decode for Op {
    const MIN_LEN: usize = 1;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Op::decode_from(d.dec_mut())
    }
}

/// `MSG_OSD_REPOP` (112): apply `txn` to PG `pgid`'s collection and log `version` for `reqid`.
#[derive(Debug, Clone, PartialEq)]
pub struct MOsdRepOp {
    pub pgid: PgId,
    /// The primary's tid for this replication (matches the reply).
    pub tid: u64,
    pub from: OsdId,
    pub map_epoch: Epoch,
    pub version: Eversion,
    pub reqid: OsdReqId,
    pub txn: Transaction,
}

fn put_pgid(e: &mut Encoder, p: &PgId) {
    e.i64(p.pool);
    e.u32(p.seed);
}
fn get_pgid(d: &mut Decoder<'_>) -> DResult<PgId> {
    let pool: PoolId = d.i64()?;
    Ok(PgId::new(pool, d.u32()?))
}

impl Encode for MOsdRepOp {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            put_pgid(e, &self.pgid);
            e.u64(self.tid);
            e.i32(self.from);
            e.u32(self.map_epoch);
            e.put(&self.version);
            e.put(&self.reqid);
            e.u32(self.txn.ops.len() as u32);
            for o in &self.txn.ops {
                e.put(o);
            }
        });
    }
}
impl Decode for MOsdRepOp {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            let pgid = get_pgid(d)?;
            let tid = d.u64()?;
            let from = d.i32()?;
            let map_epoch = d.u32()?;
            let version = d.get()?;
            let reqid = d.get()?;
            let n = d.count(1)?;
            let mut txn = Transaction::new();
            for _ in 0..n {
                txn.push(d.get()?);
            }
            Ok(MOsdRepOp {
                pgid,
                tid,
                from,
                map_epoch,
                version,
                reqid,
                txn,
            })
        })
    }
}
impl FrontMessage for MOsdRepOp {
    const MSG_TYPE: u16 = MSG_OSD_REPOP;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

/// `MSG_OSD_REPOPREPLY` (113): the replica `from` committed (`result` 0) or failed the repop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdRepOpReply {
    pub pgid: PgId,
    pub tid: u64,
    pub from: OsdId,
    pub result: i32,
}

/// One object in a PG digest: its version, or the version that removed it (a tombstone, so a
/// removal wins over an older copy elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEntry {
    pub oid: ObjectId,
    pub version: Eversion,
    pub deleted: bool,
}

impl Encode for DigestEntry {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.oid);
        e.put(&self.version);
        e.bool(self.deleted);
    }
}
impl Decode for DigestEntry {
    const MIN_LEN: usize = 16 + 12 + 1;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(DigestEntry {
            oid: d.get()?,
            version: d.get()?,
            deleted: d.bool()?,
        })
    }
}

/// `MOSDPGScan::op`: ask for a PG's digest / the digest (every object's version).
pub const SCAN_GET_DIGEST: u8 = 0;
pub const SCAN_DIGEST: u8 = 1;
/// Ask for / the PG's info: `last_update` and `log_tail`.
pub const SCAN_GET_INFO: u8 = 2;
pub const SCAN_INFO: u8 = 3;
/// Ask for the objects written after `last_update` / those objects (newest entry each).
pub const SCAN_GET_LOG: u8 = 4;
pub const SCAN_LOG: u8 = 5;
/// The log does not reach back to the `last_update` asked for: backfill instead.
pub const SCAN_LOG_GAP: u8 = 7;

/// `MSG_OSD_PG_SCAN` (94): a peering primary asks an OSD what it holds of a PG (its
/// `last_update` and every object's version); the answer carries the same tid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdPgScan {
    pub op: u8,
    pub tid: u64,
    pub pgid: PgId,
    pub from: OsdId,
    /// The asking primary's map epoch: the answering OSD takes no write of an older interval
    /// for this PG from then on.
    pub epoch: u32,
    pub last_update: Eversion,
    /// The oldest version the answering OSD's log reaches back to (`SCAN_INFO`).
    pub log_tail: Eversion,
    /// The version up to which the answering OSD's copy is complete (`SCAN_INFO`): its
    /// `last_update`, or less while a recovery of that copy is unfinished.
    pub last_complete: Eversion,
    pub objects: Vec<DigestEntry>,
}

/// An object's whole state, as recovery copies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushObject {
    pub oid: ObjectId,
    pub version: Eversion,
    pub data: Bytes,
    pub attrs: BTreeMap<String, Bytes>,
    pub omap: BTreeMap<String, Bytes>,
}

impl Encode for PushObject {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.oid);
        e.put(&self.version);
        e.bytes(&self.data);
        e.map(&self.attrs);
        e.map(&self.omap);
    }
}
impl Decode for PushObject {
    const MIN_LEN: usize = 16 + 12 + 12;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(PushObject {
            oid: d.get()?,
            version: d.get()?,
            data: Bytes::copy_from_slice(d.bytes()?),
            attrs: d.map()?,
            omap: d.map()?,
        })
    }
}

/// Where a push stands in its recovery (`MOsdPgPush::stage`).
pub const PUSH_COPY: u8 = 0;
/// The first push of a recovery: the receiver lacks what follows, and its copy is complete
/// only as far as it was.
pub const PUSH_BEGIN: u8 = 1;
/// The last push: the receiver holds what its peers held at `last_update`.
pub const PUSH_END: u8 = 2;

/// `MSG_OSD_PG_PUSH` (105): objects to install (replacing any local copy) and removals to
/// record, at a `stage` of the receiver's recovery. Every push raises the PG's `last_update` to
/// `last_update` (never lowers it). `PUSH_BEGIN` marks the copy incomplete; `PUSH_END` marks it
/// complete if the peers held a `whole` copy (one complete at that version).
/// `reply_to_pull` marks the answer to a pull (same tid), which the puller applies itself;
/// otherwise the receiver applies it and answers with `MSG_OSD_PG_PUSH_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdPgPush {
    pub tid: u64,
    pub pgid: PgId,
    pub from: OsdId,
    /// The sender's map epoch: a PG fenced at a newer one refuses the push.
    pub epoch: u32,
    pub reply_to_pull: bool,
    pub stage: u8,
    pub whole: bool,
    pub last_update: Eversion,
    pub objects: Vec<PushObject>,
    pub removed: Vec<DigestEntry>,
}

/// `MSG_OSD_PG_PULL` (106): send me these objects of the PG (as a push with the same tid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdPgPull {
    pub tid: u64,
    pub pgid: PgId,
    pub from: OsdId,
    pub oids: Vec<ObjectId>,
}

/// `MSG_OSD_PG_PUSH_REPLY` (107): the push with this tid is durable (`result` 0) or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdPgPushReply {
    pub tid: u64,
    pub pgid: PgId,
    pub from: OsdId,
    pub result: i32,
}

/// One object as a scrub sees it on one OSD. `data_digest` and `omap_digest` (crc32c, as
/// Ceph's deep scrub computes them) are only filled in by a deep scrub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubObject {
    pub oid: ObjectId,
    /// Present in the store (false: only the PG's record of its version says it should be).
    pub exists: bool,
    /// The version the PG records for it (none: the store has an object the PG never wrote).
    pub version: Option<Eversion>,
    pub size: u64,
    /// crc32c over its xattrs, names and values in order.
    pub attrs_digest: u32,
    pub data_digest: Option<u32>,
    pub omap_digest: Option<u32>,
}

impl Encode for ScrubObject {
    fn encode(&self, e: &mut Encoder) {
        e.put(&self.oid);
        e.bool(self.exists);
        e.put(&self.version);
        e.put(&self.size);
        e.put(&self.attrs_digest);
        e.put(&self.data_digest);
        e.put(&self.omap_digest);
    }
}
impl Decode for ScrubObject {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(ScrubObject {
            oid: d.get()?,
            exists: d.bool()?,
            version: d.get()?,
            size: d.get()?,
            attrs_digest: d.get()?,
            data_digest: d.get()?,
            omap_digest: d.get()?,
        })
    }
}

/// `MSG_OSD_REP_SCRUB` (84): a scrubbing primary asks a replica for its scrub map of a PG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdRepScrub {
    pub tid: u64,
    pub pgid: PgId,
    pub from: OsdId,
    pub deep: bool,
}

/// `MSG_OSD_REP_SCRUBMAP` (117): the replica's scrub map (`result` < 0: it could not build one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdRepScrubMap {
    pub tid: u64,
    pub pgid: PgId,
    pub from: OsdId,
    pub result: i32,
    pub objects: Vec<ScrubObject>,
}

envelope_message!(MOsdRepScrub, MSG_OSD_REP_SCRUB, {
    tid: any, pgid: pgid, from: any, deep: any,
});
envelope_message!(MOsdRepScrubMap, MSG_OSD_REP_SCRUBMAP, {
    tid: any, pgid: pgid, from: any, result: any, objects: any,
});
envelope_message!(MOsdPgScan, MSG_OSD_PG_SCAN, {
    op: any, tid: any, pgid: pgid, from: any, epoch: any, last_update: any, log_tail: any, last_complete: any, objects: any,
});
envelope_message!(MOsdPgPush, MSG_OSD_PG_PUSH, {
    tid: any, pgid: pgid, from: any, epoch: any, reply_to_pull: any, stage: any, whole: any, last_update: any, objects: any, removed: any,
});
envelope_message!(MOsdPgPull, MSG_OSD_PG_PULL, {
    tid: any, pgid: pgid, from: any, oids: any,
});
envelope_message!(MOsdRepOpReply, MSG_OSD_REPOPREPLY, {
    pgid: pgid, tid: any, from: any, result: any,
});
envelope_message!(MOsdPgPushReply, MSG_OSD_PG_PUSH_REPLY, {
    tid: any, pgid: pgid, from: any, result: any,
});

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn a_repop_carries_every_kind_of_store_op() {
        let o = ObjectId::new(3, "ns", "obj");
        let mut txn = Transaction::new();
        txn.create_collection()
            .touch(&o)
            .write(&o, 7, Bytes::from_static(b"data"))
            .zero(&o, 1, 2)
            .truncate(&o, 9)
            .setattr(&o, "a", Bytes::from_static(b"v"))
            .rmattr(&o, "b")
            .omap_setkeys(&o, BTreeMap::from([("k".to_string(), Bytes::from_static(b"x"))]))
            .omap_rmkeys(&o, BTreeSet::from(["k2".to_string()]))
            .omap_clear(&o)
            .remove(&o)
            .remove_collection();
        let m = MOsdRepOp {
            pgid: PgId::new(3, 0x1f),
            tid: 42,
            from: 1,
            map_epoch: 17,
            version: Eversion { epoch: 17, version: 5 },
            reqid: OsdReqId {
                name: "client.4100".parse().unwrap(),
                inc: 2,
                tid: 9,
            },
            txn,
        };
        let back = MOsdRepOp::from_message(&m.to_message()).unwrap();
        assert_eq!(back, m);
        let r = MOsdRepOpReply {
            pgid: m.pgid,
            tid: 42,
            from: 2,
            result: -5,
        };
        assert_eq!(MOsdRepOpReply::from_message(&r.to_message()).unwrap(), r);
        // A cut-off body or an unknown op code is an error, not a shorter transaction.
        let msg = m.to_message();
        let mut short = m.to_message();
        short.front = msg.front.slice(..msg.front.len() - 3);
        assert!(MOsdRepOp::from_message(&short).is_err());
        let mut bad = Encoder::new();
        bad.u8(99);
        assert!(crate::types::encoding::decode_all::<Op>(&bad.into_bytes()).is_err());
        // Versions order by epoch first; their bytes keep that order.
        let (a, b) = (Eversion { epoch: 2, version: 100 }, Eversion { epoch: 3, version: 1 });
        assert!(a < b && a.to_bytes() < b.to_bytes());
        assert_eq!(Eversion::from_bytes(&b.to_bytes()), Some(b));
        assert_eq!(Eversion::from_bytes(b"short"), None);
    }

    #[test]
    fn recovery_messages_round_trip() {
        let e = DigestEntry {
            oid: ObjectId::new(1, "", "a"),
            version: Eversion { epoch: 3, version: 4 },
            deleted: true,
        };
        let scan = MOsdPgScan {
            op: SCAN_DIGEST,
            tid: 5,
            pgid: PgId::new(1, 3),
            from: 2,
            epoch: 9,
            last_update: e.version,
            log_tail: Eversion { epoch: 2, version: 1 },
            last_complete: Eversion { epoch: 3, version: 2 },
            objects: vec![e.clone()],
        };
        assert_eq!(MOsdPgScan::from_message(&scan.to_message()).unwrap(), scan);
        let push = MOsdPgPush {
            tid: 6,
            pgid: PgId::new(1, 3),
            from: 0,
            epoch: 12,
            reply_to_pull: true,
            stage: PUSH_END,
            whole: true,
            last_update: e.version,
            objects: vec![PushObject {
                oid: ObjectId::new(1, "ns", "b"),
                version: e.version,
                data: Bytes::from_static(b"data"),
                attrs: BTreeMap::from([("x".to_string(), Bytes::from_static(b"1"))]),
                omap: BTreeMap::from([("k".to_string(), Bytes::from_static(b"v"))]),
            }],
            removed: vec![e.clone()],
        };
        assert_eq!(MOsdPgPush::from_message(&push.to_message()).unwrap(), push);
        let pull = MOsdPgPull {
            tid: 7,
            pgid: PgId::new(1, 3),
            from: 1,
            oids: vec![ObjectId::new(1, "", "c")],
        };
        assert_eq!(MOsdPgPull::from_message(&pull.to_message()).unwrap(), pull);
        let r = MOsdPgPushReply {
            tid: 6,
            pgid: PgId::new(1, 3),
            from: 1,
            result: 0,
        };
        assert_eq!(MOsdPgPushReply::from_message(&r.to_message()).unwrap(), r);
        let scrub = MOsdRepScrub {
            tid: 8,
            pgid: PgId::new(1, 3),
            from: 0,
            deep: true,
        };
        assert_eq!(MOsdRepScrub::from_message(&scrub.to_message()).unwrap(), scrub);
        let map = MOsdRepScrubMap {
            tid: 8,
            pgid: PgId::new(1, 3),
            from: 2,
            result: 0,
            objects: vec![ScrubObject {
                oid: ObjectId::new(1, "", "a"),
                exists: true,
                version: Some(e.version),
                size: 4096,
                attrs_digest: 7,
                data_digest: Some(0xdead_beef),
                omap_digest: None,
            }],
        };
        assert_eq!(MOsdRepScrubMap::from_message(&map.to_message()).unwrap(), map);
        // A scan cut short does not decode.
        let m = scan.to_message();
        let mut cut = scan.to_message();
        cut.front = m.front.slice(..m.front.len() - 2);
        assert!(MOsdPgScan::from_message(&cut).is_err());
    }
}
