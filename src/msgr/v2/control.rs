//! Control-frame payloads (reference §8) and the message header `ceph_msg_header2` (§12.1).

use crate::msgr::addr::{decode_addrvec, encode_addrvec, EntityAddr};
use crate::msgr::encoding::{DResult, Dec, DecodeError, Enc};
use bytes::{BufMut, Bytes, BytesMut};

pub const CEPH_AUTH_NONE: u32 = 1;
pub const CEPH_CON_MODE_CRC: u32 = 1;
pub const AUTH_MODE_MON: u8 = 10;
pub const CEPH_MSG_CONNECT_LOSSY: u64 = 1;

/// `CEPH_FEATUREMASK_MSG_ADDR2`: required from every msgr2 peer.
pub const FEATURE_MSG_ADDR2: u64 = 0x0800_0000_0000_0000;
/// Pacific 16.2.15's `CEPH_FEATURES_ALL`: what we advertise, so a Pacific mon treats us as a
/// current peer.
pub const FEATURES_PACIFIC: u64 = 0x3f01_cfbd_fffd_ffff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub entity_type: u8,
    /// The other side's address as the sender sees it.
    pub peer_addr: EntityAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub method: u32,
    pub preferred_modes: Vec<u32>,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthBadMethod {
    pub method: u32,
    pub result: i32,
    pub allowed_methods: Vec<u32>,
    pub allowed_modes: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthDone {
    pub global_id: u64,
    pub con_mode: u32,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdent {
    pub addrs: Vec<EntityAddr>,
    pub target: EntityAddr,
    pub gid: i64,
    pub global_seq: u64,
    pub supported: u64,
    pub required: u64,
    pub flags: u64,
    pub cookie: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdent {
    pub addrs: Vec<EntityAddr>,
    pub gid: i64,
    pub global_seq: u64,
    pub supported: u64,
    pub required: u64,
    pub flags: u64,
    pub cookie: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReconnect {
    pub addrs: Vec<EntityAddr>,
    pub client_cookie: u64,
    pub server_cookie: u64,
    pub global_seq: u64,
    pub connect_seq: u64,
    pub msg_seq: u64,
}

/// Encodes a payload with `f`.
pub fn payload(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    f(&mut b);
    b.freeze()
}

fn done(d: &Dec<'_>, what: &str) -> DResult<()> {
    // Trailing bytes are tolerated (a newer peer may append fields), garbage inside is not.
    let _ = (d, what);
    Ok(())
}

impl Hello {
    pub fn encode(&self) -> Bytes {
        payload(|b| {
            b.put_u8(self.entity_type);
            self.peer_addr.encode(b);
        })
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        let mut d = Dec::new(p);
        let h = Hello {
            entity_type: d.u8()?,
            peer_addr: EntityAddr::decode(&mut d)?,
        };
        done(&d, "HELLO")?;
        Ok(h)
    }
}

impl AuthRequest {
    /// What a client with method none sends (reference §9.1).
    pub fn none(entity_type: u32, id: &str, global_id: u64) -> Self {
        let p = payload(|b| {
            b.put_u8(AUTH_MODE_MON);
            b.put_u32_le(entity_type);
            b.put_string(id.as_bytes());
            b.put_u64_le(global_id);
        });
        AuthRequest {
            method: CEPH_AUTH_NONE,
            preferred_modes: vec![CEPH_CON_MODE_CRC],
            payload: p,
        }
    }
    pub fn encode(&self) -> Bytes {
        payload(|b| {
            b.put_u32_le(self.method);
            b.put_u32_vec(&self.preferred_modes);
            b.put_string(&self.payload);
        })
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        let mut d = Dec::new(p);
        Ok(AuthRequest {
            method: d.u32()?,
            preferred_modes: d.u32_vec()?,
            payload: Bytes::copy_from_slice(d.bytes()?),
        })
    }
}

impl AuthBadMethod {
    pub fn encode(&self) -> Bytes {
        payload(|b| {
            b.put_u32_le(self.method);
            b.put_i32_le(self.result);
            b.put_u32_vec(&self.allowed_methods);
            b.put_u32_vec(&self.allowed_modes);
        })
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        let mut d = Dec::new(p);
        Ok(AuthBadMethod {
            method: d.u32()?,
            result: d.u32()? as i32,
            allowed_methods: d.u32_vec()?,
            allowed_modes: d.u32_vec()?,
        })
    }
}

impl AuthDone {
    pub fn encode(&self) -> Bytes {
        payload(|b| {
            b.put_u64_le(self.global_id);
            b.put_u32_le(self.con_mode);
            b.put_string(&self.payload);
        })
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        let mut d = Dec::new(p);
        Ok(AuthDone {
            global_id: d.u64()?,
            con_mode: d.u32()?,
            payload: Bytes::copy_from_slice(d.bytes()?),
        })
    }
}

/// AUTH_SIGNATURE with auth none: 32 zero bytes (no session key).
pub fn auth_signature_none() -> Bytes {
    Bytes::from_static(&[0u8; 32])
}

impl ClientIdent {
    pub fn encode(&self) -> Bytes {
        payload(|b| {
            encode_addrvec(&self.addrs, b);
            self.target.encode(b);
            b.put_i64_le(self.gid);
            b.put_u64_le(self.global_seq);
            b.put_u64_le(self.supported);
            b.put_u64_le(self.required);
            b.put_u64_le(self.flags);
            b.put_u64_le(self.cookie);
        })
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        let mut d = Dec::new(p);
        Ok(ClientIdent {
            addrs: decode_addrvec(&mut d)?,
            target: EntityAddr::decode(&mut d)?,
            gid: d.i64()?,
            global_seq: d.u64()?,
            supported: d.u64()?,
            required: d.u64()?,
            flags: d.u64()?,
            cookie: d.u64()?,
        })
    }
}

impl ServerIdent {
    pub fn encode(&self) -> Bytes {
        payload(|b| {
            encode_addrvec(&self.addrs, b);
            b.put_i64_le(self.gid);
            b.put_u64_le(self.global_seq);
            b.put_u64_le(self.supported);
            b.put_u64_le(self.required);
            b.put_u64_le(self.flags);
            b.put_u64_le(self.cookie);
        })
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        let mut d = Dec::new(p);
        Ok(ServerIdent {
            addrs: decode_addrvec(&mut d)?,
            gid: d.i64()?,
            global_seq: d.u64()?,
            supported: d.u64()?,
            required: d.u64()?,
            flags: d.u64()?,
            cookie: d.u64()?,
        })
    }
}

impl SessionReconnect {
    pub fn encode(&self) -> Bytes {
        payload(|b| {
            encode_addrvec(&self.addrs, b);
            b.put_u64_le(self.client_cookie);
            b.put_u64_le(self.server_cookie);
            b.put_u64_le(self.global_seq);
            b.put_u64_le(self.connect_seq);
            b.put_u64_le(self.msg_seq);
        })
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        let mut d = Dec::new(p);
        Ok(SessionReconnect {
            addrs: decode_addrvec(&mut d)?,
            client_cookie: d.u64()?,
            server_cookie: d.u64()?,
            global_seq: d.u64()?,
            connect_seq: d.u64()?,
            msg_seq: d.u64()?,
        })
    }
}

/// One-`le64` payloads: IDENT_MISSING_FEATURES, SESSION_RETRY, SESSION_RETRY_GLOBAL,
/// SESSION_RECONNECT_OK, ACK.
pub fn encode_u64(v: u64) -> Bytes {
    Bytes::copy_from_slice(&v.to_le_bytes())
}

pub fn decode_u64(p: &[u8]) -> DResult<u64> {
    Dec::new(p).u64()
}

/// KEEPALIVE2 / KEEPALIVE2_ACK: a `utime_t` (le32 seconds, le32 nanoseconds).
pub fn encode_stamp(secs: u32, nsecs: u32) -> Bytes {
    payload(|b| {
        b.put_u32_le(secs);
        b.put_u32_le(nsecs);
    })
}

pub fn decode_stamp(p: &[u8]) -> DResult<(u32, u32)> {
    let mut d = Dec::new(p);
    Ok((d.u32()?, d.u32()?))
}

/// `ceph_msg_header2`, 41 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgHeader {
    pub seq: u64,
    pub tid: u64,
    pub ty: u16,
    pub priority: u16,
    pub version: u16,
    pub data_pre_padding_len: u32,
    pub data_off: u16,
    pub ack_seq: u64,
    pub flags: u8,
    pub compat_version: u16,
    pub reserved: u16,
}

pub const MSG_HEADER2_LEN: usize = 41;
/// `CEPH_MSG_FOOTER_COMPLETE | CEPH_MSG_FOOTER_NOCRC`, what userspace senders put in flags.
pub const MSG_HEADER_FLAGS: u8 = 3;

impl MsgHeader {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(MSG_HEADER2_LEN);
        b.put_u64_le(self.seq);
        b.put_u64_le(self.tid);
        b.put_u16_le(self.ty);
        b.put_u16_le(self.priority);
        b.put_u16_le(self.version);
        b.put_u32_le(self.data_pre_padding_len);
        b.put_u16_le(self.data_off);
        b.put_u64_le(self.ack_seq);
        b.put_u8(self.flags);
        b.put_u16_le(self.compat_version);
        b.put_u16_le(self.reserved);
        b.freeze()
    }
    pub fn decode(p: &[u8]) -> DResult<Self> {
        if p.len() < MSG_HEADER2_LEN {
            return Err(DecodeError(format!(
                "message header of {} bytes, need {MSG_HEADER2_LEN}",
                p.len()
            )));
        }
        let mut d = Dec::new(p);
        Ok(MsgHeader {
            seq: d.u64()?,
            tid: d.u64()?,
            ty: d.u16()?,
            priority: d.u16()?,
            version: d.u16()?,
            data_pre_padding_len: d.u32()?,
            data_off: d.u16()?,
            ack_seq: d.u64()?,
            flags: d.u8()?,
            compat_version: d.u16()?,
            reserved: d.u16()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgr::v2::frame::{encode_frame, Tag};

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }
    fn frame(tag: Tag, p: Bytes) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(tag, &[p, Bytes::new(), Bytes::new(), Bytes::new()], &mut out);
        out.concat()
    }

    #[test]
    fn hello_auth_and_ident_match_reference_bytes() {
        let hello = Hello {
            entity_type: 8,
            peer_addr: "v2:127.0.0.1:6789/0".parse().unwrap(),
        };
        assert_eq!(
            frame(Tag::Hello, hello.encode()),
            hex(
                "01 01 24 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 3f bd 6b 06 \
                 08 01 01 01 1c 00 00 00 02 00 00 00 00 00 00 00 10 00 00 00 02 00 1a 85 7f 00 00 01 00 00 00 00 \
                 00 00 00 00 a2 8f 49 92"
            )
        );
        assert_eq!(Hello::decode(&hello.encode()).unwrap(), hello);
        let auth = AuthRequest::none(8, "admin", 0);
        assert_eq!(
            frame(Tag::AuthRequest, auth.encode()),
            hex(
                "02 01 26 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 8c 5e e4 be \
                 01 00 00 00 01 00 00 00 01 00 00 00 16 00 00 00 0a 08 00 00 00 05 00 00 00 61 64 6d 69 6e 00 00 \
                 00 00 00 00 00 00 d8 ed e5 0c"
            )
        );
        let done = AuthDone {
            global_id: 4235,
            con_mode: 1,
            payload: Bytes::new(),
        };
        assert_eq!(
            frame(Tag::AuthDone, done.encode()),
            hex(
                "06 01 10 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 5b 06 30 a6 \
                 8b 10 00 00 00 00 00 00 01 00 00 00 00 00 00 00 28 f4 19 bb"
            )
        );
        let sig = frame(Tag::AuthSignature, auth_signature_none());
        assert_eq!(
            &sig[..32],
            &hex("07 01 20 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 a8 0c 98 72")[..]
        );
        assert_eq!(&sig[64..], &hex("55 c9 6e 75")[..]);
        let ident = ClientIdent {
            addrs: vec![EntityAddr {
                ty: 3,
                nonce: 0x12345678,
                addr: Some("127.0.0.1:0".parse().unwrap()),
            }],
            target: "v2:127.0.0.1:3300/0".parse().unwrap(),
            gid: 4235,
            global_seq: 1,
            supported: FEATURES_PACIFIC,
            required: FEATURE_MSG_ADDR2,
            flags: 1,
            cookie: 0,
        };
        let want = hex(
            "08 01 7b 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 73 8a 98 95 \
             02 01 00 00 00 01 01 01 1c 00 00 00 03 00 00 00 78 56 34 12 10 00 00 00 02 00 00 00 7f 00 00 01 \
             00 00 00 00 00 00 00 00 01 01 01 1c 00 00 00 02 00 00 00 00 00 00 00 10 00 00 00 02 00 0c e4 7f \
             00 00 01 00 00 00 00 00 00 00 00 8b 10 00 00 00 00 00 00 01 00 00 00 00 00 00 00 ff ff fd ff bd \
             cf 01 3f 00 00 00 00 00 00 00 08 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 f8 bb 7c 9c",
        );
        assert_eq!(frame(Tag::ClientIdent, ident.encode()), want);
        assert_eq!(ClientIdent::decode(&ident.encode()).unwrap(), ident);
    }

    #[test]
    fn header_and_small_payloads_round_trip() {
        let h = MsgHeader {
            seq: 2,
            tid: 7,
            ty: 0x1234,
            priority: 127,
            version: 1,
            ack_seq: 5,
            flags: 3,
            compat_version: 1,
            ..Default::default()
        };
        let e = h.encode();
        assert_eq!(e.len(), MSG_HEADER2_LEN);
        assert_eq!(MsgHeader::decode(&e).unwrap(), h);
        assert!(MsgHeader::decode(&e[..40]).is_err());
        let si = ServerIdent {
            addrs: vec![],
            gid: 0,
            global_seq: 9,
            supported: 1,
            required: 2,
            flags: 1,
            cookie: 0,
        };
        assert_eq!(ServerIdent::decode(&si.encode()).unwrap(), si);
        let r = SessionReconnect {
            addrs: vec![EntityAddr::blank()],
            client_cookie: 1,
            server_cookie: 2,
            global_seq: 3,
            connect_seq: 4,
            msg_seq: 5,
        };
        assert_eq!(SessionReconnect::decode(&r.encode()).unwrap(), r);
        let bad = AuthBadMethod {
            method: 2,
            result: -95,
            allowed_methods: vec![1],
            allowed_modes: vec![1],
        };
        assert_eq!(AuthBadMethod::decode(&bad.encode()).unwrap(), bad);
        assert_eq!(decode_stamp(&encode_stamp(5, 6)).unwrap(), (5, 6));
        assert_eq!(decode_u64(&encode_u64(77)).unwrap(), 77);
        assert!(ClientIdent::decode(&[2, 1]).is_err());
    }
}
