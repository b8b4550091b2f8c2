//! Message type numbers (reference §8.3, Ceph's `CEPH_MSG_*` / `MSG_*`) and the bodies of the
//! cluster messages: `MOsdBoot`, `MOsdMap`, `MMonSubscribe`, `MMonSubscribeAck`.
//!
//! The type numbers are Ceph's; the body layouts are ours (each one versioned envelope in the
//! front segment), not Ceph's byte layouts.

use super::encoding::{decode_all, encode_to_bytes, to_error, DResult, Decode, DecodeError, Decoder, Encode, Encoder};
use super::osdmap::{Epoch, Incremental, OsdAddrs, OsdId, OsdMap};
use crate::msgr::message::Message;
use crate::{Error, Result};
use std::collections::BTreeMap;

pub const CEPH_MSG_MON_SUBSCRIBE: u16 = 15;
pub const CEPH_MSG_MON_SUBSCRIBE_ACK: u16 = 16;
pub const CEPH_MSG_OSD_MAP: u16 = 41;
pub const CEPH_MSG_OSD_OP: u16 = 42;
pub const CEPH_MSG_OSD_OPREPLY: u16 = 43;
pub const MSG_OSD_PING: u16 = 70;
pub const MSG_OSD_BOOT: u16 = 71;
pub const MSG_OSD_FAILURE: u16 = 72;
pub const MSG_OSD_ALIVE: u16 = 73;
pub const MSG_OSD_MARK_ME_DOWN: u16 = 74;
pub const MSG_OSD_FULL: u16 = 75;
pub const MSG_OSD_BEACON: u16 = 79;
pub const MSG_OSD_REP_SCRUB: u16 = 84;
pub const MSG_OSD_PG_SCAN: u16 = 94;
pub const MSG_COMMAND: u16 = 97;
pub const MSG_COMMAND_REPLY: u16 = 98;
pub const MSG_OSD_PG_PUSH: u16 = 105;
pub const MSG_OSD_PG_PULL: u16 = 106;
pub const MSG_OSD_PG_PUSH_REPLY: u16 = 107;
pub const MSG_OSD_REPOP: u16 = 112;
pub const MSG_OSD_REPOPREPLY: u16 = 113;
pub const MSG_OSD_REP_SCRUBMAP: u16 = 117;
pub const MSG_OSD_MARK_ME_DEAD: u16 = 123;

/// A message body that lives entirely in the front segment, as one versioned envelope.
pub trait FrontMessage: Encode + Decode {
    const MSG_TYPE: u16;
    /// The envelope's struct version (also put in the message header).
    const HEAD_VERSION: u8;
    const COMPAT_VERSION: u8;

    fn to_message(&self) -> Message {
        let mut m = Message::new(Self::MSG_TYPE, encode_to_bytes(self));
        m.version = Self::HEAD_VERSION as u16;
        m.compat_version = Self::COMPAT_VERSION as u16;
        m
    }
    /// `-EINVAL` for another message type or a malformed body.
    fn from_message(m: &Message) -> Result<Self> {
        if m.ty != Self::MSG_TYPE {
            return Err(Error::inval(format!(
                "message type {} where {} was expected",
                m.ty,
                Self::MSG_TYPE
            )));
        }
        decode_all(&m.front).map_err(to_error)
    }
}

/// `MSG_OSD_BOOT` (71): an OSD announces itself to the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdBoot {
    pub fsid: [u8; 16],
    pub osd: OsdId,
    pub addrs: OsdAddrs,
    /// The newest map epoch the OSD has.
    pub boot_epoch: Epoch,
    pub features: u64,
    /// Free-form daemon metadata (hostname, version, ...).
    pub metadata: BTreeMap<String, String>,
}

impl Encode for MOsdBoot {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            e.put(&self.fsid);
            e.i32(self.osd);
            e.put(&self.addrs);
            e.u32(self.boot_epoch);
            e.u64(self.features);
            e.map(&self.metadata);
        });
    }
}
impl Decode for MOsdBoot {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            Ok(MOsdBoot {
                fsid: d.get()?,
                osd: d.i32()?,
                addrs: d.get()?,
                boot_epoch: d.u32()?,
                features: d.u64()?,
                metadata: d.map()?,
            })
        })
    }
}
impl FrontMessage for MOsdBoot {
    const MSG_TYPE: u16 = MSG_OSD_BOOT;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

/// `CEPH_MSG_OSD_MAP` (41): full maps and/or incrementals, keyed by epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MOsdMap {
    pub fsid: [u8; 16],
    pub maps: BTreeMap<Epoch, OsdMap>,
    pub incrementals: BTreeMap<Epoch, Incremental>,
    /// The oldest and newest epochs the sender holds.
    pub oldest: Epoch,
    pub newest: Epoch,
}

impl MOsdMap {
    /// Advances `map` as far as this message allows: by the incremental for the next epoch
    /// when there is one, else by jumping to the newest full map newer than `map` (and on by
    /// incrementals from there). A map at epoch 0 (none yet) takes the sender's fsid. Returns
    /// whether `map` changed; on an error `map` stays at the last epoch it reached.
    pub fn advance(&self, map: &mut OsdMap) -> Result<bool> {
        if map.epoch != 0 && map.fsid != self.fsid {
            return Err(Error::inval("OSD map message for another cluster (fsid mismatch)"));
        }
        let start = map.epoch;
        while let Some(next) = map.epoch.checked_add(1) {
            if let Some(inc) = self.incrementals.get(&next) {
                if map.epoch == 0 {
                    map.fsid = self.fsid;
                }
                map.apply(inc)?;
            } else if let Some((_, full)) = self.maps.range(next..).next_back() {
                // No incremental path: jump to the newest full map, then go on from there.
                if full.fsid != self.fsid {
                    return Err(Error::inval("full map with another fsid"));
                }
                *map = full.clone();
            } else {
                break;
            }
        }
        Ok(map.epoch != start)
    }
}

impl Encode for MOsdMap {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            e.put(&self.fsid);
            e.map(&self.maps);
            e.map(&self.incrementals);
            e.u32(self.oldest);
            e.u32(self.newest);
        });
    }
}
impl Decode for MOsdMap {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            let m = MOsdMap {
                fsid: d.get()?,
                maps: d.map()?,
                incrementals: d.map()?,
                oldest: d.u32()?,
                newest: d.u32()?,
            };
            let keyed = m.maps.iter().all(|(e, x)| *e == x.epoch) && m.incrementals.iter().all(|(e, x)| *e == x.epoch);
            if !keyed {
                return Err(DecodeError("map keyed under another epoch".into()));
            }
            Ok(m)
        })
    }
}
impl FrontMessage for MOsdMap {
    const MSG_TYPE: u16 = CEPH_MSG_OSD_MAP;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

/// `CEPH_SUBSCRIBE_ONETIME`: send what is asked for once, not every new epoch.
pub const CEPH_SUBSCRIBE_ONETIME: u8 = 1;

/// `ceph_mon_subscribe_item`: from which epoch (or version) on, and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeItem {
    pub start: u64,
    pub flags: u8,
}
impl Encode for SubscribeItem {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.start);
        e.u8(self.flags);
    }
}
impl Decode for SubscribeItem {
    const MIN_LEN: usize = 9;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(SubscribeItem {
            start: d.u64()?,
            flags: d.u8()?,
        })
    }
}

/// `CEPH_MSG_MON_SUBSCRIBE` (15): what a daemon or client wants pushed (`"osdmap"` from an
/// epoch, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MMonSubscribe {
    pub what: BTreeMap<String, SubscribeItem>,
    pub hostname: String,
}
impl Encode for MMonSubscribe {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            e.map(&self.what);
            e.string(&self.hostname);
        });
    }
}
impl Decode for MMonSubscribe {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            Ok(MMonSubscribe {
                what: d.map()?,
                hostname: d.string()?,
            })
        })
    }
}
impl FrontMessage for MMonSubscribe {
    const MSG_TYPE: u16 = CEPH_MSG_MON_SUBSCRIBE;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

/// `CEPH_MSG_MON_SUBSCRIBE_ACK` (16): renew interval and the cluster fsid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MMonSubscribeAck {
    pub interval_secs: u32,
    pub fsid: [u8; 16],
}
impl Encode for MMonSubscribeAck {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            e.u32(self.interval_secs);
            e.put(&self.fsid);
        });
    }
}
impl Decode for MMonSubscribeAck {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            Ok(MMonSubscribeAck {
                interval_secs: d.u32()?,
                fsid: d.get()?,
            })
        })
    }
}
impl FrontMessage for MMonSubscribeAck {
    const MSG_TYPE: u16 = CEPH_MSG_MON_SUBSCRIBE_ACK;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::encoding::test_util::assert_prefixes_fail;
    use super::super::osdmap::tests::{addrs, cluster, FSID};
    use super::super::osdmap::Pool;
    use super::*;

    /// Re-wraps an outermost envelope as a "newer" encoder would: struct version + 1, same
    /// compat, and an unknown field appended to the body.
    pub fn bump_version(front: &[u8]) -> Vec<u8> {
        let body = &front[6..];
        let mut e = Encoder::new();
        e.envelope(front[0] + 1, front[1], |e| {
            e.raw(body);
            e.u64(0x1234_5678_9abc_def0);
            e.string("field from the future");
        });
        e.into_bytes().to_vec()
    }

    fn check<T: FrontMessage + PartialEq + std::fmt::Debug>(v: &T) {
        let m = v.to_message();
        assert_eq!(m.ty, T::MSG_TYPE);
        assert!(m.data.is_empty());
        assert_eq!(&T::from_message(&m).unwrap(), v);
        assert_prefixes_fail(&m.front, decode_all::<T>);
        assert_eq!(&decode_all::<T>(&bump_version(&m.front)).unwrap(), v, "newer encoder");
        let mut wrong = v.to_message();
        wrong.ty = 999;
        assert_eq!(T::from_message(&wrong).unwrap_err().errno, libc::EINVAL);
    }

    #[test]
    fn bodies_round_trip_and_interoperate() {
        check(&MOsdBoot {
            fsid: FSID,
            osd: 3,
            addrs: addrs(3, 42),
            boot_epoch: 17,
            features: u64::MAX,
            metadata: BTreeMap::from([("hostname".into(), "node1".into())]),
        });
        let mut sub = MMonSubscribe {
            hostname: "node1".into(),
            ..Default::default()
        };
        sub.what.insert("osdmap".into(), SubscribeItem { start: 5, flags: 0 });
        sub.what.insert(
            "monmap".into(),
            SubscribeItem {
                start: 0,
                flags: CEPH_SUBSCRIBE_ONETIME,
            },
        );
        check(&sub);
        check(&MMonSubscribeAck {
            interval_secs: 300,
            fsid: FSID,
        });
        let m1 = cluster(3, Pool::new(1, "rbd", 3, 2, 16));
        let mut m2 = m1.clone();
        let mut inc = m2.next_incremental();
        inc.new_down.insert(2);
        m2.apply(&inc).unwrap();
        check(&MOsdMap {
            fsid: FSID,
            maps: BTreeMap::from([(1, m1)]),
            incrementals: BTreeMap::from([(2, inc)]),
            oldest: 1,
            newest: 2,
        });
        assert_eq!(
            (
                CEPH_MSG_MON_SUBSCRIBE,
                CEPH_MSG_MON_SUBSCRIBE_ACK,
                CEPH_MSG_OSD_MAP,
                MSG_OSD_BOOT
            ),
            (15, 16, 41, 71)
        );
    }

    #[test]
    fn osd_map_messages_advance_a_map() {
        let m1 = cluster(4, Pool::new(1, "rbd", 3, 2, 16));
        let mut chain = vec![m1.clone()];
        let mut incs = BTreeMap::new();
        let mut cur = m1.clone();
        for id in 0..3 {
            let mut inc = cur.next_incremental();
            inc.new_out.insert(id);
            cur.apply(&inc).unwrap();
            incs.insert(inc.epoch, inc);
            chain.push(cur.clone());
        }
        // Incrementals only, from epoch 1.
        let msg = MOsdMap {
            fsid: FSID,
            incrementals: incs.clone(),
            oldest: 1,
            newest: 4,
            ..Default::default()
        };
        let mut m = m1.clone();
        assert!(msg.advance(&mut m).unwrap());
        assert_eq!(m, chain[3]);
        assert!(!msg.advance(&mut m).unwrap(), "nothing newer");
        // A fresh holder (epoch 0) takes the full map, then the incrementals after it.
        let msg = MOsdMap {
            fsid: FSID,
            maps: BTreeMap::from([(2, chain[1].clone())]),
            incrementals: incs.clone(),
            oldest: 1,
            newest: 4,
        };
        let mut fresh = OsdMap::default();
        msg.advance(&mut fresh).unwrap();
        assert_eq!(fresh, chain[3]);
        // A holder too old for the incrementals jumps to the newest full map.
        let msg = MOsdMap {
            fsid: FSID,
            maps: BTreeMap::from([(4, chain[3].clone())]),
            ..Default::default()
        };
        let mut old = m1.clone();
        msg.advance(&mut old).unwrap();
        assert_eq!(old, chain[3]);
        // Another cluster's map is refused.
        // A full map at the last epoch there is ends the walk rather than overflowing.
        let mut last = chain[3].clone();
        last.epoch = u32::MAX;
        let end = MOsdMap {
            fsid: FSID,
            maps: BTreeMap::from([(u32::MAX, last.clone())]),
            ..Default::default()
        };
        let mut m = m1.clone();
        assert!(end.advance(&mut m).unwrap());
        assert_eq!(m, last);
        let other = MOsdMap { fsid: [9; 16], ..msg };
        assert!(other.advance(&mut m1.clone()).is_err());
    }
}
