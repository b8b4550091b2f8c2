//! Command messages: `MMonCommand` (`CEPH_MSG_MON_COMMAND`, 50) and `MMonCommandAck`
//! (`CEPH_MSG_MON_COMMAND_ACK`, 51) for the monitor; `MCommand` (`MSG_COMMAND`, 97) and
//! `MCommandReply` (`MSG_COMMAND_REPLY`, 98) for a daemon (`ceph tell osd.N ...`). Both pairs
//! have the same bodies.
//!
//! The type numbers are Ceph's; the bodies are ours (one versioned envelope in the front
//! segment). A command is one JSON object with a `prefix`, as `ceph` sends them
//! (`{"prefix":"osd pool create","pool":"data","pg_num":32}`); the ack carries Ceph's triple:
//! a result (0 or a negative errno), a status text and output bytes.

use super::encoding::{DResult, Decode, Decoder, Encode, Encoder};
use super::messages::FrontMessage;
use bytes::Bytes;

pub const CEPH_MSG_MON_COMMAND: u16 = 50;
pub const CEPH_MSG_MON_COMMAND_ACK: u16 = 51;

/// A JSON command, matched to its ack by `tid`: for the monitor (`MMonCommand`) or a daemon
/// (`MCommand`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command<const TY: u16> {
    pub tid: u64,
    /// One JSON object with a `prefix` and the command's arguments.
    pub cmd: String,
}

/// `CEPH_MSG_MON_COMMAND` (50).
pub type MMonCommand = Command<CEPH_MSG_MON_COMMAND>;
/// `MSG_COMMAND` (97).
pub type MCommand = Command<{ super::messages::MSG_COMMAND }>;

impl<const TY: u16> Command<TY> {
    /// The message, with `tid` also in the header (a reply to a malformed body uses that one).
    pub fn to_msg(&self) -> crate::msgr::message::Message {
        self.to_message().with_tid(self.tid)
    }
}

impl<const TY: u16> Encode for Command<TY> {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            e.u64(self.tid);
            e.string(&self.cmd);
        });
    }
}
impl<const TY: u16> Decode for Command<TY> {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            Ok(Command {
                tid: d.u64()?,
                cmd: d.string()?,
            })
        })
    }
}
impl<const TY: u16> FrontMessage for Command<TY> {
    const MSG_TYPE: u16 = TY;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

/// The outcome of the command with the same `tid`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandAck<const TY: u16> {
    pub tid: u64,
    /// 0 on success, else a negative errno (`-EEXIST`, `-ENOENT`, `-EINVAL`, ...).
    pub r: i32,
    /// Status text for a human (`pool 'data' created`, or why it failed).
    pub rs: String,
    /// The command's output (JSON for dumps).
    pub outbl: Bytes,
}

/// `CEPH_MSG_MON_COMMAND_ACK` (51).
pub type MMonCommandAck = CommandAck<CEPH_MSG_MON_COMMAND_ACK>;
/// `MSG_COMMAND_REPLY` (98).
pub type MCommandReply = CommandAck<{ super::messages::MSG_COMMAND_REPLY }>;

impl<const TY: u16> CommandAck<TY> {
    pub fn to_msg(&self) -> crate::msgr::message::Message {
        self.to_message().with_tid(self.tid)
    }
}

impl<const TY: u16> Encode for CommandAck<TY> {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
            e.u64(self.tid);
            e.i32(self.r);
            e.string(&self.rs);
            e.bytes(&self.outbl);
        });
    }
}
impl<const TY: u16> Decode for CommandAck<TY> {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(Self::HEAD_VERSION, |_, d| {
            Ok(CommandAck {
                tid: d.u64()?,
                r: d.i32()?,
                rs: d.string()?,
                outbl: Bytes::copy_from_slice(d.bytes()?),
            })
        })
    }
}
impl<const TY: u16> FrontMessage for CommandAck<TY> {
    const MSG_TYPE: u16 = TY;
    const HEAD_VERSION: u8 = 1;
    const COMPAT_VERSION: u8 = 1;
}

#[cfg(test)]
mod tests {
    use super::super::encoding::decode_all;
    use super::super::encoding::test_util::assert_prefixes_fail;
    use super::super::messages::tests::bump_version;
    use super::*;

    fn check<T: FrontMessage + PartialEq + std::fmt::Debug>(v: &T) {
        let m = v.to_message();
        assert_eq!(m.ty, T::MSG_TYPE);
        assert_eq!(&T::from_message(&m).unwrap(), v);
        assert_prefixes_fail(&m.front, decode_all::<T>);
        assert_eq!(&decode_all::<T>(&bump_version(&m.front)).unwrap(), v, "newer encoder");
    }

    #[test]
    fn command_messages_round_trip() {
        let c = MMonCommand {
            tid: 7,
            cmd: r#"{"prefix":"osd pool ls"}"#.into(),
        };
        check(&c);
        assert_eq!(c.to_msg().tid, 7);
        let a = MMonCommandAck {
            tid: 7,
            r: -libc::EEXIST,
            rs: "pool 'data' already exists".into(),
            outbl: Bytes::from_static(b"[\"data\"]"),
        };
        check(&a);
        assert_eq!(a.to_msg().tid, 7);
        assert_eq!((CEPH_MSG_MON_COMMAND, CEPH_MSG_MON_COMMAND_ACK), (50, 51));
        let t = MCommand {
            tid: 8,
            cmd: c.cmd.clone(),
        };
        check(&t);
        assert_eq!(t.to_msg().ty, 97);
        let r = MCommandReply {
            tid: 8,
            r: 0,
            rs: String::new(),
            outbl: Bytes::from_static(b"{}"),
        };
        check(&r);
        assert_eq!(r.to_msg().ty, 98);
    }
}
