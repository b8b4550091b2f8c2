//! `entity_addr_t` and `entity_addrvec_t` (reference §7): `v2:127.0.0.1:3300/0` and its
//! 35-byte modern encoding.

use super::encoding::{DResult, Dec, DecodeError, Enc};
use bytes::{BufMut, BytesMut};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

/// A nonce for this process's connections: Ceph clients use a random non-zero one.
pub fn random_nonce() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() as u32) | 1
}

/// A random session cookie (msgr2 client and server cookies): never 0, which means "none".
pub(crate) fn random_cookie() -> u64 {
    (u64::from(random_nonce()) << 32) | u64::from(random_nonce())
}

pub const ADDR_TYPE_NONE: u32 = 0;
pub const ADDR_TYPE_LEGACY: u32 = 1;
pub const ADDR_TYPE_MSGR2: u32 = 2;
pub const ADDR_TYPE_ANY: u32 = 3;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityAddr {
    pub ty: u32,
    pub nonce: u32,
    /// None: a blank address (family 0).
    pub addr: Option<SocketAddr>,
}

impl EntityAddr {
    pub fn msgr2(addr: SocketAddr, nonce: u32) -> Self {
        EntityAddr {
            ty: ADDR_TYPE_MSGR2,
            nonce,
            addr: Some(addr),
        }
    }
    pub fn blank() -> Self {
        EntityAddr {
            ty: ADDR_TYPE_NONE,
            nonce: 0,
            addr: None,
        }
    }
    pub fn is_blank_ip(&self) -> bool {
        self.addr.is_none_or(|a| a.ip().is_unspecified())
    }

    pub fn encode(&self, b: &mut BytesMut) {
        b.put_u8(1); // marker: modern form
        let s = b.start_struct(1, 1);
        b.put_u32_le(self.ty);
        b.put_u32_le(self.nonce);
        match self.addr {
            Some(SocketAddr::V4(a)) => {
                b.put_u32_le(16);
                b.put_u16_le(AF_INET);
                b.put_u16(a.port());
                b.put_slice(&a.ip().octets());
                b.put_bytes(0, 8);
            }
            Some(SocketAddr::V6(a)) => {
                b.put_u32_le(28);
                b.put_u16_le(AF_INET6);
                b.put_u16(a.port());
                b.put_u32(a.flowinfo());
                b.put_slice(&a.ip().octets());
                b.put_u32_le(a.scope_id());
            }
            None => {
                b.put_u32_le(28);
                b.put_bytes(0, 28);
            }
        }
        b.finish_struct(s);
    }

    pub fn decode(d: &mut Dec<'_>) -> DResult<Self> {
        match d.u8()? {
            1 => {}
            0 => return Err(DecodeError("legacy (msgr1) address encoding is not supported".into())),
            m => return Err(DecodeError(format!("bad address marker {m}"))),
        }
        let (_, mut b) = d.start_struct(1)?;
        let ty = b.u32()?;
        let nonce = b.u32()?;
        let elen = b.u32()? as usize;
        let sa = b.take(elen)?;
        if elen < 2 {
            return Err(DecodeError(format!("sockaddr length {elen} too short")));
        }
        let family = u16::from_le_bytes([sa[0], sa[1]]);
        let addr = match family {
            0 => None,
            AF_INET if elen >= 8 => {
                let port = u16::from_be_bytes([sa[2], sa[3]]);
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::new(sa[4], sa[5], sa[6], sa[7]),
                    port,
                )))
            }
            AF_INET6 if elen >= 28 => {
                let port = u16::from_be_bytes([sa[2], sa[3]]);
                let flow = u32::from_be_bytes(sa[4..8].try_into().expect("4 bytes"));
                let ip: [u8; 16] = sa[8..24].try_into().expect("16 bytes");
                let scope = u32::from_le_bytes(sa[24..28].try_into().expect("4 bytes"));
                Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope)))
            }
            f => return Err(DecodeError(format!("address family {f} with length {elen}"))),
        };
        Ok(EntityAddr { ty, nonce, addr })
    }
}

impl fmt::Display for EntityAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.ty {
            ADDR_TYPE_NONE => "none",
            ADDR_TYPE_LEGACY => "v1",
            ADDR_TYPE_MSGR2 => "v2",
            _ => "any",
        };
        match self.addr {
            Some(a) => write!(f, "{t}:{a}/{}", self.nonce),
            None => write!(f, "{t}:-/{}", self.nonce),
        }
    }
}

impl FromStr for EntityAddr {
    type Err = crate::Error;
    /// `v2:127.0.0.1:3300`, `v2:127.0.0.1:3300/0`, `127.0.0.1:6800/1234` (v2 assumed), `[::1]:3300`.
    fn from_str(s: &str) -> crate::Result<Self> {
        let bad = || crate::Error::inval(format!("'{s}' is not an address like v2:127.0.0.1:3300/0"));
        let (ty, rest) = match s.split_once(':') {
            Some(("v2", r)) => (ADDR_TYPE_MSGR2, r),
            Some(("v1", _)) => {
                return Err(crate::Error::inval(format!(
                    "'{s}' is a msgr1 (v1) address; osdkit speaks msgr2 only"
                )))
            }
            Some(("any", r)) => (ADDR_TYPE_ANY, r),
            _ => (ADDR_TYPE_MSGR2, s),
        };
        let (hostport, nonce) = match rest.rsplit_once('/') {
            Some((h, n)) => (h, n.parse::<u32>().map_err(|_| bad())?),
            None => (rest, 0),
        };
        let addr: SocketAddr = hostport.parse().map_err(|_| bad())?;
        Ok(EntityAddr {
            ty,
            nonce,
            addr: Some(addr),
        })
    }
}

/// Encodes an address vector (`entity_addrvec_t`, marker 2).
pub fn encode_addrvec(addrs: &[EntityAddr], b: &mut BytesMut) {
    b.put_u8(2);
    b.put_u32_le(addrs.len() as u32);
    for a in addrs {
        a.encode(b);
    }
}

pub fn decode_addrvec(d: &mut Dec<'_>) -> DResult<Vec<EntityAddr>> {
    match d.u8()? {
        2 => {
            let n = d.u32()? as usize;
            if n > 64 {
                return Err(DecodeError(format!("address vector of {n} entries")));
            }
            (0..n).map(|_| EntityAddr::decode(d)).collect()
        }
        1 => {
            // A single modern address without the vector wrapper: re-read it whole.
            let mut body = BytesMut::new();
            body.put_u8(1);
            let rest = d.take(d.remaining())?;
            body.put_slice(rest);
            let mut dd = Dec::new(&body);
            let a = EntityAddr::decode(&mut dd)?;
            let used = dd.position() - 1;
            *d = Dec::new(&rest[used..]);
            Ok(vec![a])
        }
        m => Err(DecodeError(format!("address vector marker {m} not supported"))),
    }
}

pub fn ip_of(a: &EntityAddr) -> Option<IpAddr> {
    a.addr.map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reference_bytes() {
        // Reference §15.2: v2:127.0.0.1:6789/0.
        let a: EntityAddr = "v2:127.0.0.1:6789/0".parse().unwrap();
        let mut b = BytesMut::new();
        a.encode(&mut b);
        let want: [u8; 35] = [
            0x01, 0x01, 0x01, 0x1c, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
            0x00, 0x02, 0x00, 0x1a, 0x85, 0x7f, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(&b[..], &want[..]);
        assert_eq!(EntityAddr::decode(&mut Dec::new(&want)).unwrap(), a);
        assert_eq!(a.to_string(), "v2:127.0.0.1:6789/0");
    }

    #[test]
    fn round_trips_v6_blank_and_vectors() {
        let v6: EntityAddr = "v2:[::1]:3300/7".parse().unwrap();
        let blank = EntityAddr::blank();
        let mut b = BytesMut::new();
        encode_addrvec(&[v6, blank], &mut b);
        let mut d = Dec::new(&b);
        assert_eq!(decode_addrvec(&mut d).unwrap(), vec![v6, blank]);
        assert_eq!(d.remaining(), 0);
        assert!("v1:1.2.3.4:6789".parse::<EntityAddr>().is_err());
        assert!("nonsense".parse::<EntityAddr>().is_err());
        assert!(EntityAddr::decode(&mut Dec::new(&[7])).is_err());
    }
}
