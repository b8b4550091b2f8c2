//! The failure-detection messages (reference §9): `MOSDPing` between OSDs, `MOSDFailure` and
//! `MOSDMarkMeDown` from an OSD to the monitor. Type numbers and fields are Ceph's; the byte
//! layouts are ours (one versioned envelope each), as for the other cluster messages.

use super::encoding::{envelope_message, DResult, Decode, Decoder, Encode, Encoder};
use super::messages::{FrontMessage, MSG_OSD_FAILURE, MSG_OSD_FULL, MSG_OSD_MARK_ME_DOWN, MSG_OSD_PING};
use super::osdmap::{Epoch, OsdAddrs, OsdId};

/// `MOSDPing::op` values (Ceph's numbering; 0, 1 and 3 are legacy and never sent).
pub const PING_YOU_DIED: u8 = 2;
pub const PING: u8 = 4;
pub const PING_REPLY: u8 = 5;

/// `MSG_OSD_PING` (70): a heartbeat request or reply, padded to `osd_heartbeat_min_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdPing {
    pub fsid: [u8; 16],
    /// The sender's map epoch.
    pub map_epoch: Epoch,
    pub op: u8,
    /// The sender's id: pings arrive on a lossy heartbeat session, which carries no OSD id.
    pub from: OsdId,
    /// Wall-clock time of the ping (ns since the epoch), echoed in the reply.
    pub ping_stamp: u64,
    /// The sender's `up_from` epoch.
    pub up_from: Epoch,
    /// The pinger's monotonic stamp, echoed in the reply: matches a reply to its ping.
    pub mono_ping_stamp: i64,
    /// The sender's monotonic time when it sent this message.
    pub mono_send_stamp: i64,
    /// Zero bytes so the message reaches `osd_heartbeat_min_size` (finds MTU problems).
    pub padding: u32,
}

impl Encode for MOsdPing {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            e.put(&self.fsid);
            e.u32(self.map_epoch);
            e.u8(self.op);
            e.i32(self.from);
            e.u64(self.ping_stamp);
            e.u32(self.up_from);
            e.i64(self.mono_ping_stamp);
            e.i64(self.mono_send_stamp);
            e.u32(self.padding);
            e.raw(&vec![0u8; self.padding as usize]);
        });
    }
}
impl Decode for MOsdPing {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            let mut m = MOsdPing {
                fsid: d.get()?,
                map_epoch: d.u32()?,
                op: d.u8()?,
                from: d.i32()?,
                ping_stamp: d.u64()?,
                up_from: d.u32()?,
                mono_ping_stamp: d.i64()?,
                mono_send_stamp: d.i64()?,
                padding: d.u32()?,
            };
            // The padding is checked for length only; its bytes are not kept.
            d.raw(m.padding as usize)?;
            m.padding = m.padding.min(MAX_PADDING);
            Ok(m)
        })
    }
}
impl FrontMessage for MOsdPing {
    const MSG_TYPE: u16 = MSG_OSD_PING;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

/// The most padding a ping is given (`osd_heartbeat_min_size` is capped there).
pub const MAX_PADDING: u32 = 64 << 10;

/// `MOSDFailure::flags`: the target failed (else: it is alive after all).
pub const FAILURE_FLAG_FAILED: u8 = 1;
/// The failure is known, not a timeout (a refused connection): no grace applies.
pub const FAILURE_FLAG_IMMEDIATE: u8 = 2;

/// `MSG_OSD_FAILURE` (72): "osd.N has not answered my pings for `failed_for` seconds", or,
/// without `FAILURE_FLAG_FAILED`, "osd.N answers again" (cancelling an earlier report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdFailure {
    pub fsid: [u8; 16],
    /// The reporter.
    pub from: OsdId,
    pub target: OsdId,
    pub target_addrs: OsdAddrs,
    /// The reporter's map epoch.
    pub epoch: Epoch,
    pub flags: u8,
    pub failed_for: u32,
}

impl MOsdFailure {
    pub fn is_failed(&self) -> bool {
        self.flags & FAILURE_FLAG_FAILED != 0
    }
}

envelope_message!(MOsdFailure, MSG_OSD_FAILURE, {
    fsid: any, from: any, target: any, target_addrs: any, epoch: any, flags: any, failed_for: any,
});

/// `MSG_OSD_MARK_ME_DOWN` (74): a stopping OSD asks to be marked down now. The monitor answers
/// with the same message (`request_ack` false) once the epoch marking it down is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdMarkMeDown {
    pub fsid: [u8; 16],
    pub target: OsdId,
    pub target_addrs: OsdAddrs,
    pub epoch: Epoch,
    pub request_ack: bool,
    /// Octopus+: the OSD is going away for good, not restarting in place.
    pub down_and_dead: bool,
}

envelope_message!(MOsdMarkMeDown, MSG_OSD_MARK_ME_DOWN, {
    fsid: any, target: any, target_addrs: any, epoch: any, request_ack: any, down_and_dead: any,
});

/// An OSD tells the monitor its disk is full or no longer is (Ceph's `MOSDFull`, whose `state`
/// carries `CEPH_OSD_FULL`); the monitor records it in the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MOsdFull {
    pub fsid: [u8; 16],
    pub from: OsdId,
    /// The addresses it booted with: a report from an older incarnation is ignored.
    pub from_addrs: OsdAddrs,
    pub epoch: Epoch,
    pub full: bool,
}

envelope_message!(MOsdFull, MSG_OSD_FULL, {
    fsid: any, from: any, from_addrs: any, epoch: any, full: any,
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::osdmap::OsdAddrs;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let ping = MOsdPing {
            fsid: [7; 16],
            map_epoch: 9,
            op: PING,
            from: 2,
            ping_stamp: 1_700_000_000_000_000_000,
            up_from: 4,
            mono_ping_stamp: 123,
            mono_send_stamp: 456,
            padding: 2000,
        };
        let m = ping.to_message();
        assert!(m.front.len() >= 2000, "padded to the minimum size");
        assert_eq!(MOsdPing::from_message(&m).unwrap(), ping);
        let mut short = ping.to_message();
        short.front = m.front.slice(..m.front.len() - 1);
        assert_eq!(MOsdPing::from_message(&short).unwrap_err().errno, libc::EINVAL);

        let f = MOsdFailure {
            fsid: [7; 16],
            from: 0,
            target: 1,
            target_addrs: OsdAddrs::default(),
            epoch: 3,
            flags: FAILURE_FLAG_FAILED,
            failed_for: 21,
        };
        let back = MOsdFailure::from_message(&f.to_message()).unwrap();
        assert!(back.is_failed());
        assert_eq!(back, f);
        // One message type is not taken for another.
        assert!(MOsdMarkMeDown::from_message(&f.to_message()).is_err());

        let d = MOsdMarkMeDown {
            fsid: [7; 16],
            target: 1,
            target_addrs: OsdAddrs::default(),
            epoch: 5,
            request_ack: true,
            down_and_dead: true,
        };
        assert_eq!(MOsdMarkMeDown::from_message(&d.to_message()).unwrap(), d);
    }
}
