//! The byte form of a store transaction's ops: what a repop carries to the replicas and what
//! the kv store's write-ahead log keeps. Little-endian, Ceph's conventions (`u32` length before
//! strings and byte strings); one op is a tag byte then its fields.

use super::{ObjectId, Op, Transaction};
use crate::msgr::encoding::{DResult, Dec, DecodeError, Enc};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

/// The fewest bytes an encoded [`ObjectId`] takes (pool, two empty strings).
pub const OBJECT_ID_MIN_LEN: usize = 16;

/// The most elements of one collection a decoder accepts.
const MAX_COUNT: usize = 1 << 24;

/// Reads an element count and checks that that many elements of at least `min_len` bytes fit
/// in what is left, so a forged count cannot make a decoder allocate.
fn count(d: &mut Dec<'_>, min_len: usize) -> DResult<usize> {
    let n = d.u32()? as usize;
    if n > MAX_COUNT || n.saturating_mul(min_len.max(1)) > d.remaining() {
        return Err(DecodeError(format!(
            "collection of {n} elements does not fit in {} bytes",
            d.remaining()
        )));
    }
    Ok(n)
}

impl ObjectId {
    pub fn encode_into(&self, b: &mut BytesMut) {
        b.put_i64_le(self.pool);
        b.put_string(self.namespace.as_bytes());
        b.put_string(self.name.as_bytes());
    }

    pub fn decode_from(d: &mut Dec<'_>) -> DResult<ObjectId> {
        Ok(ObjectId {
            pool: d.i64()?,
            namespace: d.string()?,
            name: d.string()?,
        })
    }
}

impl Op {
    pub fn encode_into(&self, b: &mut BytesMut) {
        match self {
            Op::CreateCollection => b.put_u8(1),
            Op::RemoveCollection => b.put_u8(2),
            Op::Touch(o) => {
                b.put_u8(3);
                o.encode_into(b);
            }
            Op::Write { oid, off, data } => {
                b.put_u8(4);
                oid.encode_into(b);
                b.put_u64_le(*off);
                b.put_string(data);
            }
            Op::Zero { oid, off, len } => {
                b.put_u8(5);
                oid.encode_into(b);
                b.put_u64_le(*off);
                b.put_u64_le(*len);
            }
            Op::Truncate { oid, size } => {
                b.put_u8(6);
                oid.encode_into(b);
                b.put_u64_le(*size);
            }
            Op::Remove(o) => {
                b.put_u8(7);
                o.encode_into(b);
            }
            Op::SetAttr { oid, name, value } => {
                b.put_u8(8);
                oid.encode_into(b);
                b.put_string(name.as_bytes());
                b.put_string(value);
            }
            Op::RmAttr { oid, name } => {
                b.put_u8(9);
                oid.encode_into(b);
                b.put_string(name.as_bytes());
            }
            Op::OmapSetKeys { oid, kv } => {
                b.put_u8(10);
                oid.encode_into(b);
                b.put_u32_le(kv.len() as u32);
                for (k, v) in kv {
                    b.put_string(k.as_bytes());
                    b.put_string(v);
                }
            }
            Op::OmapRmKeys { oid, keys } => {
                b.put_u8(11);
                oid.encode_into(b);
                b.put_u32_le(keys.len() as u32);
                for k in keys {
                    b.put_string(k.as_bytes());
                }
            }
            Op::OmapClear(o) => {
                b.put_u8(12);
                o.encode_into(b);
            }
        }
    }

    pub fn decode_from(d: &mut Dec<'_>) -> DResult<Op> {
        let oid = ObjectId::decode_from;
        let bytes = |d: &mut Dec<'_>| -> DResult<Bytes> { Ok(Bytes::copy_from_slice(d.bytes()?)) };
        Ok(match d.u8()? {
            1 => Op::CreateCollection,
            2 => Op::RemoveCollection,
            3 => Op::Touch(oid(d)?),
            4 => Op::Write {
                oid: oid(d)?,
                off: d.u64()?,
                data: bytes(d)?,
            },
            5 => Op::Zero {
                oid: oid(d)?,
                off: d.u64()?,
                len: d.u64()?,
            },
            6 => Op::Truncate {
                oid: oid(d)?,
                size: d.u64()?,
            },
            7 => Op::Remove(oid(d)?),
            8 => Op::SetAttr {
                oid: oid(d)?,
                name: d.string()?,
                value: bytes(d)?,
            },
            9 => Op::RmAttr {
                oid: oid(d)?,
                name: d.string()?,
            },
            10 => {
                let oid = oid(d)?;
                let n = count(d, 8)?;
                let mut kv = BTreeMap::new();
                for _ in 0..n {
                    let k = d.string()?;
                    kv.insert(k, bytes(d)?);
                }
                Op::OmapSetKeys { oid, kv }
            }
            11 => {
                let oid = oid(d)?;
                let n = count(d, 4)?;
                let mut keys = BTreeSet::new();
                for _ in 0..n {
                    keys.insert(d.string()?);
                }
                Op::OmapRmKeys { oid, keys }
            }
            12 => Op::OmapClear(oid(d)?),
            t => return Err(DecodeError(format!("unknown transaction op {t}"))),
        })
    }
}

impl Transaction {
    /// The op count, then each op.
    pub fn encode_into(&self, b: &mut BytesMut) {
        b.put_u32_le(self.ops.len() as u32);
        for o in &self.ops {
            o.encode_into(b);
        }
    }

    pub fn decode_from(d: &mut Dec<'_>) -> DResult<Transaction> {
        let n = count(d, 1)?;
        let mut t = Transaction::new();
        for _ in 0..n {
            t.push(Op::decode_from(d)?);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_and_forged_counts_fail() {
        let o = ObjectId::new(3, "ns", "obj");
        let mut t = Transaction::new();
        t.push(Op::CreateCollection);
        t.push(Op::RemoveCollection);
        t.push(Op::Touch(o.clone()));
        t.push(Op::Write {
            oid: o.clone(),
            off: 7,
            data: Bytes::from_static(b"data"),
        });
        t.push(Op::Zero {
            oid: o.clone(),
            off: 1,
            len: 2,
        });
        t.push(Op::Truncate {
            oid: o.clone(),
            size: 9,
        });
        t.push(Op::Remove(o.clone()));
        t.push(Op::SetAttr {
            oid: o.clone(),
            name: "a".into(),
            value: Bytes::from_static(b"v"),
        });
        t.push(Op::RmAttr {
            oid: o.clone(),
            name: "a".into(),
        });
        t.push(Op::OmapSetKeys {
            oid: o.clone(),
            kv: BTreeMap::from([("k".to_string(), Bytes::from_static(b"v"))]),
        });
        t.push(Op::OmapRmKeys {
            oid: o.clone(),
            keys: BTreeSet::from(["k".to_string()]),
        });
        t.push(Op::OmapClear(o));
        let mut b = BytesMut::new();
        t.encode_into(&mut b);
        let mut d = Dec::new(&b);
        assert_eq!(Transaction::decode_from(&mut d).unwrap(), t);
        assert_eq!(d.remaining(), 0);
        for cut in 0..b.len() {
            assert!(
                Transaction::decode_from(&mut Dec::new(&b[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        // A count of 2^32 - 1 omap keys in a few bytes is refused before anything is allocated.
        let mut f = BytesMut::new();
        f.put_u32_le(1);
        f.put_u8(11);
        ObjectId::new(1, "", "x").encode_into(&mut f);
        f.put_u32_le(u32::MAX);
        assert!(Transaction::decode_from(&mut Dec::new(&f)).is_err());
    }
}
