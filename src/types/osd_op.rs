//! OSD operations: Ceph's `CEPH_OSD_OP_*` codes (include/rados.h, reference §8.4), the op vector
//! of a request (`OsdOp`), and the decoding of what ops answer (`ObjectStat`, omap and name
//! lists). The messages that carry them, `MOsdOp` and `MOsdOpReply`, are in `osd_op_msg`.

use super::encoding::{decode_all, encode_to_bytes, DResult};
use bytes::Bytes;
use std::collections::BTreeMap;

// Mode and type bits: op = mode | type | number.
pub const CEPH_OSD_OP_MODE: u16 = 0xf000;
pub const CEPH_OSD_OP_MODE_RD: u16 = 0x1000;
pub const CEPH_OSD_OP_MODE_WR: u16 = 0x2000;
pub const CEPH_OSD_OP_MODE_RMW: u16 = 0x3000;
pub const CEPH_OSD_OP_MODE_SUB: u16 = 0x4000;
pub const CEPH_OSD_OP_MODE_CACHE: u16 = 0x8000;
pub const CEPH_OSD_OP_TYPE: u16 = 0x0f00;
pub const CEPH_OSD_OP_TYPE_DATA: u16 = 0x0200;
pub const CEPH_OSD_OP_TYPE_ATTR: u16 = 0x0300;
pub const CEPH_OSD_OP_TYPE_EXEC: u16 = 0x0400;
pub const CEPH_OSD_OP_TYPE_PG: u16 = 0x0500;

// Reads.
pub const CEPH_OSD_OP_READ: u16 = 0x1201;
pub const CEPH_OSD_OP_STAT: u16 = 0x1202;
pub const CEPH_OSD_OP_MAPEXT: u16 = 0x1203;
pub const CEPH_OSD_OP_SPARSE_READ: u16 = 0x1205;
pub const CEPH_OSD_OP_NOTIFY: u16 = 0x1206;
pub const CEPH_OSD_OP_NOTIFY_ACK: u16 = 0x1207;
pub const CEPH_OSD_OP_ASSERT_VER: u16 = 0x1208;
pub const CEPH_OSD_OP_LIST_WATCHERS: u16 = 0x1209;
pub const CEPH_OSD_OP_LIST_SNAPS: u16 = 0x120a;
pub const CEPH_OSD_OP_SYNC_READ: u16 = 0x120b;
pub const CEPH_OSD_OP_OMAPGETKEYS: u16 = 0x1211;
pub const CEPH_OSD_OP_OMAPGETVALS: u16 = 0x1212;
pub const CEPH_OSD_OP_OMAPGETHEADER: u16 = 0x1213;
pub const CEPH_OSD_OP_OMAPGETVALSBYKEYS: u16 = 0x1214;
pub const CEPH_OSD_OP_OMAP_CMP: u16 = 0x1219;
pub const CEPH_OSD_OP_CHECKSUM: u16 = 0x121f;
pub const CEPH_OSD_OP_CMPEXT: u16 = 0x1220;
pub const CEPH_OSD_OP_GETXATTR: u16 = 0x1301;
pub const CEPH_OSD_OP_GETXATTRS: u16 = 0x1302;
pub const CEPH_OSD_OP_CMPXATTR: u16 = 0x1303;
pub const CEPH_OSD_OP_CALL: u16 = 0x1401;
pub const CEPH_OSD_OP_PGLS: u16 = 0x1501;
pub const CEPH_OSD_OP_PGLS_FILTER: u16 = 0x1502;
pub const CEPH_OSD_OP_PGNLS: u16 = 0x1505;
pub const CEPH_OSD_OP_PGNLS_FILTER: u16 = 0x1506;
// Writes.
pub const CEPH_OSD_OP_WRITE: u16 = 0x2201;
pub const CEPH_OSD_OP_WRITEFULL: u16 = 0x2202;
pub const CEPH_OSD_OP_TRUNCATE: u16 = 0x2203;
pub const CEPH_OSD_OP_ZERO: u16 = 0x2204;
pub const CEPH_OSD_OP_DELETE: u16 = 0x2205;
pub const CEPH_OSD_OP_APPEND: u16 = 0x2206;
pub const CEPH_OSD_OP_SETTRUNC: u16 = 0x2208;
pub const CEPH_OSD_OP_TRIMTRUNC: u16 = 0x2209;
pub const CEPH_OSD_OP_CREATE: u16 = 0x220d;
pub const CEPH_OSD_OP_ROLLBACK: u16 = 0x220e;
pub const CEPH_OSD_OP_WATCH: u16 = 0x220f;
pub const CEPH_OSD_OP_OMAPSETVALS: u16 = 0x2215;
pub const CEPH_OSD_OP_OMAPSETHEADER: u16 = 0x2216;
pub const CEPH_OSD_OP_OMAPCLEAR: u16 = 0x2217;
pub const CEPH_OSD_OP_OMAPRMKEYS: u16 = 0x2218;
pub const CEPH_OSD_OP_COPY_FROM: u16 = 0x221a;
pub const CEPH_OSD_OP_SETALLOCHINT: u16 = 0x2223;
pub const CEPH_OSD_OP_WRITESAME: u16 = 0x2226;
pub const CEPH_OSD_OP_OMAPRMKEYRANGE: u16 = 0x222c;
pub const CEPH_OSD_OP_COPY_FROM2: u16 = 0x222d;
pub const CEPH_OSD_OP_SETXATTR: u16 = 0x2301;
pub const CEPH_OSD_OP_SETXATTRS: u16 = 0x2302;
pub const CEPH_OSD_OP_RESETXATTRS: u16 = 0x2303;
pub const CEPH_OSD_OP_RMXATTR: u16 = 0x2304;
// Cache tiering.
pub const CEPH_OSD_OP_CACHE_FLUSH: u16 = 0x821f;

/// Every op code above with its constant name (without the `CEPH_OSD_OP_` prefix).
pub const ALL_OPS: &[(u16, &str)] = &[
    (CEPH_OSD_OP_READ, "READ"),
    (CEPH_OSD_OP_STAT, "STAT"),
    (CEPH_OSD_OP_MAPEXT, "MAPEXT"),
    (CEPH_OSD_OP_SPARSE_READ, "SPARSE_READ"),
    (CEPH_OSD_OP_NOTIFY, "NOTIFY"),
    (CEPH_OSD_OP_NOTIFY_ACK, "NOTIFY_ACK"),
    (CEPH_OSD_OP_ASSERT_VER, "ASSERT_VER"),
    (CEPH_OSD_OP_LIST_WATCHERS, "LIST_WATCHERS"),
    (CEPH_OSD_OP_LIST_SNAPS, "LIST_SNAPS"),
    (CEPH_OSD_OP_SYNC_READ, "SYNC_READ"),
    (CEPH_OSD_OP_OMAPGETKEYS, "OMAPGETKEYS"),
    (CEPH_OSD_OP_OMAPGETVALS, "OMAPGETVALS"),
    (CEPH_OSD_OP_OMAPGETHEADER, "OMAPGETHEADER"),
    (CEPH_OSD_OP_OMAPGETVALSBYKEYS, "OMAPGETVALSBYKEYS"),
    (CEPH_OSD_OP_OMAP_CMP, "OMAP_CMP"),
    (CEPH_OSD_OP_CHECKSUM, "CHECKSUM"),
    (CEPH_OSD_OP_CMPEXT, "CMPEXT"),
    (CEPH_OSD_OP_GETXATTR, "GETXATTR"),
    (CEPH_OSD_OP_GETXATTRS, "GETXATTRS"),
    (CEPH_OSD_OP_CMPXATTR, "CMPXATTR"),
    (CEPH_OSD_OP_CALL, "CALL"),
    (CEPH_OSD_OP_PGLS, "PGLS"),
    (CEPH_OSD_OP_PGLS_FILTER, "PGLS_FILTER"),
    (CEPH_OSD_OP_PGNLS, "PGNLS"),
    (CEPH_OSD_OP_PGNLS_FILTER, "PGNLS_FILTER"),
    (CEPH_OSD_OP_WRITE, "WRITE"),
    (CEPH_OSD_OP_WRITEFULL, "WRITEFULL"),
    (CEPH_OSD_OP_TRUNCATE, "TRUNCATE"),
    (CEPH_OSD_OP_ZERO, "ZERO"),
    (CEPH_OSD_OP_DELETE, "DELETE"),
    (CEPH_OSD_OP_APPEND, "APPEND"),
    (CEPH_OSD_OP_SETTRUNC, "SETTRUNC"),
    (CEPH_OSD_OP_TRIMTRUNC, "TRIMTRUNC"),
    (CEPH_OSD_OP_CREATE, "CREATE"),
    (CEPH_OSD_OP_ROLLBACK, "ROLLBACK"),
    (CEPH_OSD_OP_WATCH, "WATCH"),
    (CEPH_OSD_OP_OMAPSETVALS, "OMAPSETVALS"),
    (CEPH_OSD_OP_OMAPSETHEADER, "OMAPSETHEADER"),
    (CEPH_OSD_OP_OMAPCLEAR, "OMAPCLEAR"),
    (CEPH_OSD_OP_OMAPRMKEYS, "OMAPRMKEYS"),
    (CEPH_OSD_OP_COPY_FROM, "COPY_FROM"),
    (CEPH_OSD_OP_SETALLOCHINT, "SETALLOCHINT"),
    (CEPH_OSD_OP_WRITESAME, "WRITESAME"),
    (CEPH_OSD_OP_OMAPRMKEYRANGE, "OMAPRMKEYRANGE"),
    (CEPH_OSD_OP_COPY_FROM2, "COPY_FROM2"),
    (CEPH_OSD_OP_SETXATTR, "SETXATTR"),
    (CEPH_OSD_OP_SETXATTRS, "SETXATTRS"),
    (CEPH_OSD_OP_RESETXATTRS, "RESETXATTRS"),
    (CEPH_OSD_OP_RMXATTR, "RMXATTR"),
    (CEPH_OSD_OP_CACHE_FLUSH, "CACHE_FLUSH"),
];

/// The constant name of an op code (`"WRITEFULL"`), or `None` for an unknown code.
pub fn op_name(op: u16) -> Option<&'static str> {
    ALL_OPS.iter().find(|(c, _)| *c == op).map(|(_, n)| *n)
}

/// Ceph's `ceph_osd_op_mode_read`: the RD bit, except `CALL`, which may write.
pub fn is_read(op: u16) -> bool {
    op & CEPH_OSD_OP_MODE_RD != 0 && op != CEPH_OSD_OP_CALL
}
/// Ceph's `ceph_osd_op_mode_modify`: the WR bit.
pub fn is_write(op: u16) -> bool {
    op & CEPH_OSD_OP_MODE_WR != 0
}
pub fn is_cache(op: u16) -> bool {
    op & CEPH_OSD_OP_MODE_CACHE != 0
}
pub fn op_type(op: u16) -> u16 {
    op & CEPH_OSD_OP_TYPE
}
/// PG ops (listing) address a PG, not an object.
pub fn is_pg_op(op: u16) -> bool {
    op_type(op) == CEPH_OSD_OP_TYPE_PG
}
/// Ops whose offset and length are an extent of the object's data (reference §8.4).
pub fn is_extent_op(op: u16) -> bool {
    matches!(
        op,
        CEPH_OSD_OP_READ
            | CEPH_OSD_OP_SPARSE_READ
            | CEPH_OSD_OP_SYNC_READ
            | CEPH_OSD_OP_WRITE
            | CEPH_OSD_OP_WRITEFULL
            | CEPH_OSD_OP_ZERO
            | CEPH_OSD_OP_APPEND
            | CEPH_OSD_OP_MAPEXT
            | CEPH_OSD_OP_CMPEXT
    )
}

/// Per-op flag `CEPH_OSD_OP_FLAG_EXCL`: exclusive create.
pub const CEPH_OSD_OP_FLAG_EXCL: u32 = 0x1;
/// Per-op flag `CEPH_OSD_OP_FLAG_FAILOK`: a failure of this op does not fail the request.
pub const CEPH_OSD_OP_FLAG_FAILOK: u32 = 0x2;

// CMPXATTR comparisons (`CEPH_OSD_CMPXATTR_OP_*`, `CEPH_OSD_CMPXATTR_MODE_*`).
pub const CEPH_OSD_CMPXATTR_OP_EQ: u8 = 1;
pub const CEPH_OSD_CMPXATTR_OP_NE: u8 = 2;
pub const CEPH_OSD_CMPXATTR_OP_GT: u8 = 3;
pub const CEPH_OSD_CMPXATTR_OP_GTE: u8 = 4;
pub const CEPH_OSD_CMPXATTR_OP_LT: u8 = 5;
pub const CEPH_OSD_CMPXATTR_OP_LTE: u8 = 6;
pub const CEPH_OSD_CMPXATTR_MODE_STRING: u8 = 1;
pub const CEPH_OSD_CMPXATTR_MODE_U64: u8 = 2;

// Request / reply flags (`CEPH_OSD_FLAG_*`).
pub const CEPH_OSD_FLAG_ACK: u32 = 0x1;
pub const CEPH_OSD_FLAG_ONNVRAM: u32 = 0x2;
pub const CEPH_OSD_FLAG_ONDISK: u32 = 0x4;
pub const CEPH_OSD_FLAG_RETRY: u32 = 0x8;
pub const CEPH_OSD_FLAG_READ: u32 = 0x10;
pub const CEPH_OSD_FLAG_WRITE: u32 = 0x20;

/// One op of a request, and its result in the reply.
///
/// Field use by op: `offset`/`length` — the extent for extent ops, the new size for
/// `TRUNCATE`, the most entries to return for `OMAPGET*` and `PG*LS`; `name` — the xattr name,
/// the omap/listing start-after cursor, or `class.method` for `CALL`; `keys` — omap keys for
/// `OMAPGETVALSBYKEYS` / `OMAPRMKEYS`; `cmp_op`/`cmp_mode` — `CMPXATTR`; `indata` — write
/// data, an xattr value, or [`encode_omap_vals`] for `OMAPSETVALS`. In the reply: `rval`
/// (0 or a negative errno) and `outdata`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsdOp {
    pub op: u16,
    pub flags: u32,
    pub offset: u64,
    pub length: u64,
    pub name: String,
    pub keys: Vec<String>,
    pub cmp_op: u8,
    pub cmp_mode: u8,
    pub indata: Bytes,
    pub rval: i32,
    pub outdata: Bytes,
}

impl OsdOp {
    pub fn new(op: u16) -> Self {
        OsdOp {
            op,
            ..Default::default()
        }
    }
    pub fn read(offset: u64, length: u64) -> Self {
        OsdOp {
            offset,
            length,
            ..Self::new(CEPH_OSD_OP_READ)
        }
    }
    pub fn write(offset: u64, data: Bytes) -> Self {
        OsdOp {
            offset,
            length: data.len() as u64,
            indata: data,
            ..Self::new(CEPH_OSD_OP_WRITE)
        }
    }
    pub fn writefull(data: Bytes) -> Self {
        OsdOp {
            length: data.len() as u64,
            indata: data,
            ..Self::new(CEPH_OSD_OP_WRITEFULL)
        }
    }
    pub fn append(data: Bytes) -> Self {
        OsdOp {
            length: data.len() as u64,
            indata: data,
            ..Self::new(CEPH_OSD_OP_APPEND)
        }
    }
    pub fn truncate(size: u64) -> Self {
        OsdOp {
            offset: size,
            ..Self::new(CEPH_OSD_OP_TRUNCATE)
        }
    }
    pub fn zero(offset: u64, length: u64) -> Self {
        OsdOp {
            offset,
            length,
            ..Self::new(CEPH_OSD_OP_ZERO)
        }
    }
    pub fn create(exclusive: bool) -> Self {
        OsdOp {
            flags: if exclusive { CEPH_OSD_OP_FLAG_EXCL } else { 0 },
            ..Self::new(CEPH_OSD_OP_CREATE)
        }
    }
    pub fn stat() -> Self {
        Self::new(CEPH_OSD_OP_STAT)
    }
    pub fn delete() -> Self {
        Self::new(CEPH_OSD_OP_DELETE)
    }
    pub fn getxattr(name: impl Into<String>) -> Self {
        OsdOp {
            name: name.into(),
            ..Self::new(CEPH_OSD_OP_GETXATTR)
        }
    }
    pub fn getxattrs() -> Self {
        Self::new(CEPH_OSD_OP_GETXATTRS)
    }
    pub fn setxattr(name: impl Into<String>, value: Bytes) -> Self {
        OsdOp {
            name: name.into(),
            length: value.len() as u64,
            indata: value,
            ..Self::new(CEPH_OSD_OP_SETXATTR)
        }
    }
    pub fn rmxattr(name: impl Into<String>) -> Self {
        OsdOp {
            name: name.into(),
            ..Self::new(CEPH_OSD_OP_RMXATTR)
        }
    }
    pub fn cmpxattr(name: impl Into<String>, cmp_op: u8, cmp_mode: u8, value: Bytes) -> Self {
        OsdOp {
            name: name.into(),
            cmp_op,
            cmp_mode,
            length: value.len() as u64,
            indata: value,
            ..Self::new(CEPH_OSD_OP_CMPXATTR)
        }
    }
    pub fn omap_get_keys(start_after: impl Into<String>, max: u64) -> Self {
        OsdOp {
            name: start_after.into(),
            length: max,
            ..Self::new(CEPH_OSD_OP_OMAPGETKEYS)
        }
    }
    pub fn omap_get_vals(start_after: impl Into<String>, max: u64) -> Self {
        OsdOp {
            name: start_after.into(),
            length: max,
            ..Self::new(CEPH_OSD_OP_OMAPGETVALS)
        }
    }
    pub fn omap_get_vals_by_keys(keys: Vec<String>) -> Self {
        OsdOp {
            keys,
            ..Self::new(CEPH_OSD_OP_OMAPGETVALSBYKEYS)
        }
    }
    pub fn omap_set_vals(vals: &BTreeMap<String, Bytes>) -> Self {
        let indata = encode_omap_vals(vals);
        OsdOp {
            length: indata.len() as u64,
            indata,
            ..Self::new(CEPH_OSD_OP_OMAPSETVALS)
        }
    }
    pub fn omap_rm_keys(keys: Vec<String>) -> Self {
        OsdOp {
            keys,
            ..Self::new(CEPH_OSD_OP_OMAPRMKEYS)
        }
    }
    /// List a PG's objects after cursor `start_after` (`PGNLS`).
    pub fn pgnls(start_after: impl Into<String>, max: u64) -> Self {
        OsdOp {
            name: start_after.into(),
            length: max,
            ..Self::new(CEPH_OSD_OP_PGNLS)
        }
    }
    pub fn is_read(&self) -> bool {
        is_read(self.op)
    }
    pub fn is_write(&self) -> bool {
        is_write(self.op)
    }
}

/// `OMAPSETVALS` input / `OMAPGETVALS` output: a `map<string, bytes>` encoding.
pub fn encode_omap_vals(vals: &BTreeMap<String, Bytes>) -> Bytes {
    encode_to_bytes(vals)
}
pub fn decode_omap_vals(b: &[u8]) -> DResult<BTreeMap<String, Bytes>> {
    decode_all(b)
}
/// `OMAPGETKEYS` output / listing output: a `vector<string>` encoding.
pub fn encode_string_list(v: &[String]) -> Bytes {
    encode_to_bytes(v)
}
pub fn decode_string_list(b: &[u8]) -> DResult<Vec<String>> {
    decode_all(b)
}

pub use super::osd_op_msg::{MOsdOp, MOsdOpReply, OsdReqId};

/// What a `STAT` op answers: the size and the modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectStat {
    pub size: u64,
    pub mtime: std::time::SystemTime,
}

impl ObjectStat {
    /// A `STAT` op's output: size (u64), then mtime seconds (u32) and nanoseconds (u32),
    /// little endian. `-EIO` when it is short.
    pub fn decode(b: &[u8]) -> crate::Result<ObjectStat> {
        if b.len() < 16 {
            return Err(crate::Error::new(libc::EIO, format!("stat reply of {} bytes", b.len())));
        }
        let size = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes"));
        let secs = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        let nsec = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
        Ok(ObjectStat {
            size,
            mtime: std::time::UNIX_EPOCH + std::time::Duration::new(u64::from(secs), nsec.min(999_999_999)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::encoding::test_util::{assert_prefixes_fail, Rng};
    use super::super::messages::tests::bump_version;
    use super::super::messages::CEPH_MSG_OSD_OP;
    use super::super::placement::PgId;
    use super::*;
    use crate::msgr::message::Message;

    #[test]
    fn op_codes_are_cephs() {
        // Reference §8.4, decimal column.
        let dec: &[(u16, u32)] = &[
            (CEPH_OSD_OP_READ, 4609),
            (CEPH_OSD_OP_STAT, 4610),
            (CEPH_OSD_OP_MAPEXT, 4611),
            (CEPH_OSD_OP_SPARSE_READ, 4613),
            (CEPH_OSD_OP_NOTIFY, 4614),
            (CEPH_OSD_OP_NOTIFY_ACK, 4615),
            (CEPH_OSD_OP_ASSERT_VER, 4616),
            (CEPH_OSD_OP_LIST_WATCHERS, 4617),
            (CEPH_OSD_OP_LIST_SNAPS, 4618),
            (CEPH_OSD_OP_SYNC_READ, 4619),
            (CEPH_OSD_OP_CHECKSUM, 4639),
            (CEPH_OSD_OP_CMPEXT, 4640),
            (CEPH_OSD_OP_OMAPGETKEYS, 4625),
            (CEPH_OSD_OP_OMAPGETVALS, 4626),
            (CEPH_OSD_OP_OMAPGETHEADER, 4627),
            (CEPH_OSD_OP_OMAPGETVALSBYKEYS, 4628),
            (CEPH_OSD_OP_OMAP_CMP, 4633),
            (CEPH_OSD_OP_GETXATTR, 4865),
            (CEPH_OSD_OP_GETXATTRS, 4866),
            (CEPH_OSD_OP_CMPXATTR, 4867),
            (CEPH_OSD_OP_CALL, 5121),
            (CEPH_OSD_OP_PGLS, 5377),
            (CEPH_OSD_OP_PGLS_FILTER, 5378),
            (CEPH_OSD_OP_PGNLS, 5381),
            (CEPH_OSD_OP_PGNLS_FILTER, 5382),
            (CEPH_OSD_OP_WRITE, 8705),
            (CEPH_OSD_OP_WRITEFULL, 8706),
            (CEPH_OSD_OP_TRUNCATE, 8707),
            (CEPH_OSD_OP_ZERO, 8708),
            (CEPH_OSD_OP_DELETE, 8709),
            (CEPH_OSD_OP_APPEND, 8710),
            (CEPH_OSD_OP_SETTRUNC, 8712),
            (CEPH_OSD_OP_TRIMTRUNC, 8713),
            (CEPH_OSD_OP_CREATE, 8717),
            (CEPH_OSD_OP_ROLLBACK, 8718),
            (CEPH_OSD_OP_WATCH, 8719),
            (CEPH_OSD_OP_OMAPSETVALS, 8725),
            (CEPH_OSD_OP_OMAPSETHEADER, 8726),
            (CEPH_OSD_OP_OMAPCLEAR, 8727),
            (CEPH_OSD_OP_OMAPRMKEYS, 8728),
            (CEPH_OSD_OP_OMAPRMKEYRANGE, 8748),
            (CEPH_OSD_OP_COPY_FROM, 8730),
            (CEPH_OSD_OP_COPY_FROM2, 8749),
            (CEPH_OSD_OP_SETALLOCHINT, 8739),
            (CEPH_OSD_OP_WRITESAME, 8742),
            (CEPH_OSD_OP_SETXATTR, 8961),
            (CEPH_OSD_OP_SETXATTRS, 8962),
            (CEPH_OSD_OP_RESETXATTRS, 8963),
            (CEPH_OSD_OP_RMXATTR, 8964),
        ];
        for &(c, d) in dec {
            assert_eq!(c as u32, d, "{:?}", op_name(c));
        }
        assert_eq!(ALL_OPS.len(), dec.len() + 1); // + CACHE_FLUSH
        let mut codes: Vec<u16> = ALL_OPS.iter().map(|(c, _)| *c).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ALL_OPS.len(), "duplicate op code");
        // Codes are mode | type | number.
        for &(c, n) in ALL_OPS {
            let mode = c & CEPH_OSD_OP_MODE;
            assert!(
                [CEPH_OSD_OP_MODE_RD, CEPH_OSD_OP_MODE_WR, CEPH_OSD_OP_MODE_CACHE].contains(&mode),
                "{n}"
            );
            assert!(
                (CEPH_OSD_OP_TYPE_DATA..=CEPH_OSD_OP_TYPE_PG).contains(&op_type(c)),
                "{n}"
            );
        }
        assert_eq!(op_name(CEPH_OSD_OP_WRITEFULL), Some("WRITEFULL"));
        assert_eq!(op_name(0x1234), None);
    }

    #[test]
    fn read_write_helpers_follow_the_mode_bits() {
        for op in [
            CEPH_OSD_OP_READ,
            CEPH_OSD_OP_STAT,
            CEPH_OSD_OP_GETXATTR,
            CEPH_OSD_OP_OMAPGETVALS,
            CEPH_OSD_OP_PGNLS,
            CEPH_OSD_OP_CMPXATTR,
        ] {
            assert!(is_read(op) && !is_write(op), "{:?}", op_name(op));
        }
        for op in [
            CEPH_OSD_OP_WRITE,
            CEPH_OSD_OP_WRITEFULL,
            CEPH_OSD_OP_DELETE,
            CEPH_OSD_OP_SETXATTR,
            CEPH_OSD_OP_OMAPRMKEYS,
            CEPH_OSD_OP_CREATE,
        ] {
            assert!(is_write(op) && !is_read(op), "{:?}", op_name(op));
        }
        assert!(!is_read(CEPH_OSD_OP_CALL), "CALL is special-cased");
        assert!(is_read(CEPH_OSD_OP_MODE_RMW | 1) && is_write(CEPH_OSD_OP_MODE_RMW | 1));
        assert!(is_cache(CEPH_OSD_OP_CACHE_FLUSH));
        assert!(is_pg_op(CEPH_OSD_OP_PGLS) && !is_pg_op(CEPH_OSD_OP_READ));
        assert!(is_extent_op(CEPH_OSD_OP_APPEND) && !is_extent_op(CEPH_OSD_OP_TRUNCATE));
        assert_eq!(OsdOp::create(true).flags, CEPH_OSD_OP_FLAG_EXCL);
    }

    fn sample_request() -> MOsdOp {
        let mut vals = BTreeMap::new();
        vals.insert("k1".to_string(), Bytes::from_static(b"v1"));
        vals.insert("k2".to_string(), Bytes::from_static(b""));
        MOsdOp {
            client: "client.admin".parse().unwrap(),
            client_inc: 3,
            tid: 77,
            epoch: 12,
            pool: 1,
            oid: "foo".into(),
            nspace: "ns".into(),
            hash: 0x7fc1_f406,
            pgid: PgId::new(1, 6),
            flags: CEPH_OSD_FLAG_WRITE,
            attempt: 1,
            ops: vec![
                OsdOp::create(true),
                OsdOp::write(4096, Bytes::from(vec![0xaa; 5000])),
                OsdOp::setxattr("user.a", Bytes::from_static(b"xattr-value")),
                OsdOp::omap_set_vals(&vals),
                OsdOp::omap_rm_keys(vec!["old".into(), "older".into()]),
                OsdOp::cmpxattr(
                    "user.a",
                    CEPH_OSD_CMPXATTR_OP_EQ,
                    CEPH_OSD_CMPXATTR_MODE_STRING,
                    Bytes::from_static(b"x"),
                ),
                OsdOp::truncate(100),
            ],
        }
    }

    #[test]
    fn request_round_trips_with_payloads_sliced_not_copied() {
        let req = sample_request();
        let m = req.to_message().unwrap();
        assert_eq!(m.ty, 42);
        assert_eq!(m.tid, 77);
        let payload: usize = req.ops.iter().map(|o| o.indata.len()).sum();
        assert_eq!(m.data.len(), payload, "payloads go in the data segment");
        assert!(m.front.len() < 600, "front is small: {}", m.front.len());
        let back = MOsdOp::from_message(&m).unwrap();
        assert_eq!(back, req);
        assert_eq!(
            back.reqid(),
            OsdReqId {
                name: req.client.clone(),
                inc: 3,
                tid: 77
            }
        );
        assert!(back.has_write());
        let range = m.data.as_ptr() as usize..m.data.as_ptr() as usize + m.data.len();
        for o in back.ops.iter().filter(|o| !o.indata.is_empty()) {
            assert!(
                range.contains(&(o.indata.as_ptr() as usize)),
                "indata is a slice of m.data"
            );
        }
        let vals = decode_omap_vals(&back.ops[3].indata).unwrap();
        assert_eq!(vals["k1"], Bytes::from_static(b"v1"));
        // One payload: sent as the caller's Bytes, no copy.
        let data = Bytes::from(vec![1u8; 4096]);
        let single = MOsdOp {
            ops: vec![OsdOp::writefull(data.clone())],
            ..sample_request()
        };
        let m1 = single.to_message().unwrap();
        assert_eq!(m1.data.as_ptr(), data.as_ptr());
        assert_eq!(MOsdOp::from_message(&m1).unwrap(), single);
    }

    #[test]
    fn reply_round_trips_with_ack_ondisk() {
        let req = sample_request();
        let mut rep = MOsdOpReply::for_request(&req, 13);
        assert_eq!(rep.flags, 0x1 | 0x4);
        rep.result = -libc::ECANCELED;
        rep.version = 9;
        rep.ops[5].rval = -libc::ECANCELED;
        rep.ops[1].outdata = Bytes::from(vec![7u8; 100]);
        rep.ops[2].outdata = Bytes::from_static(b"abc");
        let m = rep.to_message().unwrap();
        assert_eq!(m.ty, 43);
        assert_eq!(m.data.len(), 103);
        let back = MOsdOpReply::from_message(&m).unwrap();
        // Replies carry op code, extent, rval and outdata, not names or keys.
        assert_eq!(back.ops.len(), rep.ops.len());
        for (a, b) in back.ops.iter().zip(&rep.ops) {
            assert_eq!(
                (a.op, a.offset, a.length, a.rval, &a.outdata),
                (b.op, b.offset, b.length, b.rval, &b.outdata)
            );
        }
        assert_eq!(
            (back.tid, back.result, back.epoch, back.version, back.flags),
            (77, -libc::ECANCELED, 13, 9, 5)
        );
        assert_eq!(back.oid, "foo");
        assert!(MOsdOp::from_message(&m).is_err(), "wrong message type");
    }

    #[test]
    fn malformed_requests_are_errors_never_panics() {
        let m = sample_request().to_message().unwrap();
        assert_prefixes_fail(&m.front, |f| MOsdOp::decode_parts(f, &m.data));
        // A data segment shorter than the references.
        let short = m.data.slice(..m.data.len() - 1);
        let e = MOsdOp::decode_parts(&m.front, &short).unwrap_err();
        assert!(e.0.contains("outside"), "{e}");
        let err = MOsdOp::from_message(&Message::new(
            CEPH_MSG_OSD_OP,
            Bytes::from_static(&[1, 1, 0xff, 0xff, 0xff, 0xff]),
        ))
        .unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);
        // Trailing garbage after the envelope.
        let mut f = m.front.to_vec();
        f.push(0);
        assert!(MOsdOp::decode_parts(&f, &m.data).is_err());
        // Random corruption of the front: errors or a decode, never a panic.
        let mut rng = Rng(99);
        for _ in 0..3000 {
            let mut f = m.front.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(f.len() as u64) as usize;
                f[i] = rng.below(256) as u8;
            }
            let _ = MOsdOp::decode_parts(&f, &m.data);
        }
        let r = MOsdOpReply::for_request(&sample_request(), 1).to_message().unwrap();
        assert_prefixes_fail(&r.front, |f| MOsdOpReply::decode_parts(f, &r.data));
    }

    #[test]
    fn newer_encoders_interoperate() {
        let req = sample_request();
        let m = req.to_message().unwrap();
        let newer = bump_version(&m.front);
        assert_eq!(MOsdOp::decode_parts(&newer, &m.data).unwrap(), req);
        let rep = MOsdOpReply::for_request(&req, 2);
        let rm = rep.to_message().unwrap();
        let plain = MOsdOpReply::from_message(&rm).unwrap();
        assert_eq!(
            MOsdOpReply::decode_parts(&bump_version(&rm.front), &rm.data).unwrap(),
            plain
        );
        // A compat we do not understand is refused.
        let mut f = m.front.to_vec();
        f[1] = 9;
        assert!(MOsdOp::decode_parts(&f, &m.data).unwrap_err().0.contains("compat"));
    }
}
