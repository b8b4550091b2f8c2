//! The `MOsdOp` (`CEPH_MSG_OSD_OP` = 42) and `MOsdOpReply` (`CEPH_MSG_OSD_OPREPLY` = 43)
//! message bodies, and the request id (`OsdReqId`) by which replies and resends are matched.
//!
//! Wire layout (ours, not Ceph's `MOSDOp` byte layout): the front segment is one versioned
//! envelope holding the header and, per op, its fields plus an `(offset, length)` reference into
//! the data segment; the data segment is the op payloads (write data on requests, read results
//! on replies) back to back. Decoding slices the data segment's `Bytes`, so payloads are never
//! copied; a request whose only payload is one op's data is sent with that very `Bytes`.

use super::encoding::{to_error, DResult, Decode, DecodeError, Decoder, Encode, Encoder};
use super::messages::{CEPH_MSG_OSD_OP, CEPH_MSG_OSD_OPREPLY};
use super::osd_op::*;
use super::osdmap::{Epoch, PoolId};
use super::placement::PgId;
use crate::common::entity::EntityName;
use crate::msgr::message::Message;
use crate::{Error, Result};
use bytes::{Bytes, BytesMut};

/// Builds a data segment from payloads: zero-copy when at most one payload is non-empty.
/// Returns the segment and each payload's offset.
fn pack_payloads<'a>(payloads: impl Iterator<Item = &'a Bytes> + Clone) -> (Bytes, Vec<u32>) {
    let count = payloads.clone().count();
    let non_empty = payloads.clone().filter(|p| !p.is_empty()).count();
    if non_empty <= 1 {
        let one = payloads.clone().find(|p| !p.is_empty()).cloned().unwrap_or_default();
        return (one, vec![0; count]);
    }
    let total: usize = payloads.clone().map(|p| p.len()).sum();
    let mut seg = BytesMut::with_capacity(total);
    let mut offs = Vec::with_capacity(count);
    for p in payloads {
        offs.push(seg.len() as u32);
        seg.extend_from_slice(p);
    }
    (seg.freeze(), offs)
}

/// Reads an `(offset, length)` reference and slices it out of the data segment.
fn take_payload(d: &mut Decoder<'_>, data: &Bytes) -> DResult<Bytes> {
    let off = d.u32()? as usize;
    let len = d.u32()? as usize;
    if len == 0 {
        return Ok(Bytes::new());
    }
    match off.checked_add(len) {
        Some(end) if end <= data.len() => Ok(data.slice(off..end)),
        _ => Err(DecodeError(format!(
            "payload {off}+{len} outside the {}-byte data segment",
            data.len()
        ))),
    }
}

fn check_len(p: &Bytes) -> Result<u32> {
    u32::try_from(p.len()).map_err(|_| Error::inval("op payload over 4 GiB"))
}

/// `osd_reqid_t`: identifies a request across resends, for duplicate detection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OsdReqId {
    pub name: EntityName,
    pub inc: i32,
    pub tid: u64,
}

impl Encode for OsdReqId {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(1, 1, |e| {
            e.put(&self.name);
            e.i32(self.inc);
            e.u64(self.tid);
        });
    }
}
impl Decode for OsdReqId {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(1, |_, d| {
            Ok(OsdReqId {
                name: d.get()?,
                inc: d.i32()?,
                tid: d.u64()?,
            })
        })
    }
}

/// A client request: `CEPH_MSG_OSD_OP` (42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdOp {
    /// The client entity; with `client_inc` and `tid` it forms the [`OsdReqId`].
    pub client: EntityName,
    /// Client incarnation (a restarted client gets a new one).
    pub client_inc: i32,
    pub tid: u64,
    /// The map epoch the client placed the op with.
    pub epoch: Epoch,
    pub pool: PoolId,
    pub oid: String,
    pub nspace: String,
    /// The object hash (raw PG seed).
    pub hash: u32,
    /// The PG the client computed (`hash` through stable-mod).
    pub pgid: PgId,
    pub flags: u32,
    /// Resend count (0 for the first send).
    pub attempt: u32,
    pub ops: Vec<OsdOp>,
}

const MOSDOP_V: u8 = 1;
const MOSDOP_COMPAT: u8 = 1;
const MOSDOPREPLY_V: u8 = 1;
const MOSDOPREPLY_COMPAT: u8 = 1;
/// Most ops one request may carry.
pub const MAX_OPS_PER_REQUEST: usize = 1024;

impl MOsdOp {
    pub fn reqid(&self) -> OsdReqId {
        OsdReqId {
            name: self.client.clone(),
            inc: self.client_inc,
            tid: self.tid,
        }
    }
    pub fn has_write(&self) -> bool {
        self.ops.iter().any(|o| o.is_write())
    }

    /// Front = envelope-encoded header and ops; data = the ops' `indata`.
    pub fn to_message(&self) -> Result<Message> {
        for o in &self.ops {
            check_len(&o.indata)?;
        }
        let (data, offs) = pack_payloads(self.ops.iter().map(|o| &o.indata));
        let mut e = Encoder::with_capacity(128 + self.oid.len() + 64 * self.ops.len());
        e.envelope(MOSDOP_V, MOSDOP_COMPAT, |e| {
            e.put(&self.client);
            e.i32(self.client_inc);
            e.u64(self.tid);
            e.u32(self.epoch);
            e.i64(self.pool);
            e.string(&self.oid);
            e.string(&self.nspace);
            e.u32(self.hash);
            e.put(&self.pgid);
            e.u32(self.flags);
            e.u32(self.attempt);
            e.u32(self.ops.len() as u32);
            for (o, off) in self.ops.iter().zip(offs) {
                e.envelope(1, 1, |e| {
                    e.u16(o.op);
                    e.u32(o.flags);
                    e.u64(o.offset);
                    e.u64(o.length);
                    e.string(&o.name);
                    e.vec(&o.keys);
                    e.u8(o.cmp_op);
                    e.u8(o.cmp_mode);
                    e.u32(off);
                    e.u32(o.indata.len() as u32);
                });
            }
        });
        let mut m = Message::new(CEPH_MSG_OSD_OP, e.into_bytes())
            .with_data(data)
            .with_tid(self.tid);
        m.version = MOSDOP_V as u16;
        m.compat_version = MOSDOP_COMPAT as u16;
        Ok(m)
    }

    /// Decodes a request; `indata` are slices of `m.data`. `-EINVAL` on malformed input.
    pub fn from_message(m: &Message) -> Result<Self> {
        if m.ty != CEPH_MSG_OSD_OP {
            return Err(Error::inval(format!("message type {} is not CEPH_MSG_OSD_OP", m.ty)));
        }
        Self::decode_parts(&m.front, &m.data).map_err(to_error)
    }

    pub fn decode_parts(front: &[u8], data: &Bytes) -> DResult<Self> {
        let mut d = Decoder::new(front);
        let r = d.envelope(MOSDOP_V, |_, d| {
            let mut r = MOsdOp {
                client: d.get()?,
                client_inc: d.i32()?,
                tid: d.u64()?,
                epoch: d.u32()?,
                pool: d.i64()?,
                oid: d.string()?,
                nspace: d.string()?,
                hash: d.u32()?,
                pgid: d.get()?,
                flags: d.u32()?,
                attempt: d.u32()?,
                ops: Vec::new(),
            };
            r.ops = decode_ops(d, "request", |d| {
                Ok(OsdOp {
                    op: d.u16()?,
                    flags: d.u32()?,
                    offset: d.u64()?,
                    length: d.u64()?,
                    name: d.string()?,
                    keys: d.vec()?,
                    cmp_op: d.u8()?,
                    cmp_mode: d.u8()?,
                    indata: take_payload(d, data)?,
                    ..Default::default()
                })
            })?;
            Ok(r)
        })?;
        d.finish()?;
        Ok(r)
    }
}

/// The ops vector of a request or a reply: a count (at most `MAX_OPS_PER_REQUEST`), then one
/// envelope per op, each decoded by `one`.
fn decode_ops<'a>(
    d: &mut Decoder<'a>,
    what: &str,
    one: impl Fn(&mut Decoder<'a>) -> DResult<OsdOp>,
) -> DResult<Vec<OsdOp>> {
    let n = d.count(6)?;
    if n > MAX_OPS_PER_REQUEST {
        return Err(DecodeError(format!("{n} ops in one {what}")));
    }
    (0..n).map(|_| d.envelope(1, |_, d| one(d))).collect()
}

/// The reply: `CEPH_MSG_OSD_OPREPLY` (43). `ops` carry each op's code, extent, `rval` and
/// `outdata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdOpReply {
    pub tid: u64,
    pub oid: String,
    pub pgid: PgId,
    /// 0 or the negative errno of the first failed op.
    pub result: i32,
    /// The OSD's map epoch.
    pub epoch: Epoch,
    /// `CEPH_OSD_FLAG_ACK | CEPH_OSD_FLAG_ONDISK` for a committed write.
    pub flags: u32,
    /// The object version after the op (user version).
    pub version: u64,
    pub attempt: u32,
    pub ops: Vec<OsdOp>,
}

impl MOsdOpReply {
    /// A reply to `req` with the request's ops (their `indata` dropped); fill in `rval` and
    /// `outdata`.
    pub fn for_request(req: &MOsdOp, epoch: Epoch) -> Self {
        MOsdOpReply {
            tid: req.tid,
            oid: req.oid.clone(),
            pgid: req.pgid,
            result: 0,
            epoch,
            flags: CEPH_OSD_FLAG_ACK | CEPH_OSD_FLAG_ONDISK,
            version: 0,
            attempt: req.attempt,
            ops: req
                .ops
                .iter()
                .map(|o| OsdOp {
                    indata: Bytes::new(),
                    ..o.clone()
                })
                .collect(),
        }
    }

    /// Front = envelope-encoded header and per-op results; data = the ops' `outdata`.
    pub fn to_message(&self) -> Result<Message> {
        for o in &self.ops {
            check_len(&o.outdata)?;
        }
        let (data, offs) = pack_payloads(self.ops.iter().map(|o| &o.outdata));
        let mut e = Encoder::with_capacity(96 + self.oid.len() + 40 * self.ops.len());
        e.envelope(MOSDOPREPLY_V, MOSDOPREPLY_COMPAT, |e| {
            e.u64(self.tid);
            e.string(&self.oid);
            e.put(&self.pgid);
            e.i32(self.result);
            e.u32(self.epoch);
            e.u32(self.flags);
            e.u64(self.version);
            e.u32(self.attempt);
            e.u32(self.ops.len() as u32);
            for (o, off) in self.ops.iter().zip(offs) {
                e.envelope(1, 1, |e| {
                    e.u16(o.op);
                    e.u32(o.flags);
                    e.u64(o.offset);
                    e.u64(o.length);
                    e.i32(o.rval);
                    e.u32(off);
                    e.u32(o.outdata.len() as u32);
                });
            }
        });
        let mut m = Message::new(CEPH_MSG_OSD_OPREPLY, e.into_bytes())
            .with_data(data)
            .with_tid(self.tid);
        m.version = MOSDOPREPLY_V as u16;
        m.compat_version = MOSDOPREPLY_COMPAT as u16;
        Ok(m)
    }

    pub fn from_message(m: &Message) -> Result<Self> {
        if m.ty != CEPH_MSG_OSD_OPREPLY {
            return Err(Error::inval(format!(
                "message type {} is not CEPH_MSG_OSD_OPREPLY",
                m.ty
            )));
        }
        Self::decode_parts(&m.front, &m.data).map_err(to_error)
    }

    pub fn decode_parts(front: &[u8], data: &Bytes) -> DResult<Self> {
        let mut d = Decoder::new(front);
        let r = d.envelope(MOSDOPREPLY_V, |_, d| {
            let mut r = MOsdOpReply {
                tid: d.u64()?,
                oid: d.string()?,
                pgid: d.get()?,
                result: d.i32()?,
                epoch: d.u32()?,
                flags: d.u32()?,
                version: d.u64()?,
                attempt: d.u32()?,
                ops: Vec::new(),
            };
            r.ops = decode_ops(d, "reply", |d| {
                Ok(OsdOp {
                    op: d.u16()?,
                    flags: d.u32()?,
                    offset: d.u64()?,
                    length: d.u64()?,
                    rval: d.i32()?,
                    outdata: take_payload(d, data)?,
                    ..Default::default()
                })
            })?;
            Ok(r)
        })?;
        d.finish()?;
        Ok(r)
    }
}
