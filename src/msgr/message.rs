//! `Message`: what the messenger carries. The three payload segments are `Bytes`, handed to the
//! socket and back without copies; the header fields are Ceph's `ceph_msg_header2`.

use super::connection::ConnectionRef;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// Ceph's message priorities (`CEPH_MSG_PRIO_*`).
pub const CEPH_MSG_PRIO_LOW: u16 = 64;
pub const CEPH_MSG_PRIO_DEFAULT: u16 = 127;
pub const CEPH_MSG_PRIO_HIGH: u16 = 196;
pub const CEPH_MSG_PRIO_HIGHEST: u16 = 255;

/// Returns throttle units when the message that holds them is dropped (Ceph returns a
/// message's policy-throttle share in the Message destructor).
pub struct ThrottleRelease {
    pub(crate) throttle: Arc<crate::common::throttle::Throttle>,
    pub(crate) amount: u64,
}

impl Drop for ThrottleRelease {
    fn drop(&mut self) {
        if self.amount > 0 {
            self.throttle.put(self.amount);
        }
    }
}

pub struct Message {
    pub ty: u16,
    pub priority: u16,
    pub tid: u64,
    pub version: u16,
    pub compat_version: u16,
    pub front: Bytes,
    pub middle: Bytes,
    pub data: Bytes,
    /// Receive side: the session sequence number it arrived with.
    pub seq: u64,
    /// Receive side: the connection it arrived on (None for local delivery).
    pub conn: Option<ConnectionRef>,
    pub recv_stamp: Option<Instant>,
    /// Bytes this message holds of the messenger's dispatch throttle (returned after dispatch).
    pub(crate) dispatch_throttle_size: u64,
    /// Policy throttle shares (messages, bytes), returned when the message is dropped.
    pub(crate) throttle_release: Vec<ThrottleRelease>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("ty", &self.ty)
            .field("priority", &self.priority)
            .field("tid", &self.tid)
            .field("seq", &self.seq)
            .field("front", &self.front.len())
            .field("middle", &self.middle.len())
            .field("data", &self.data.len())
            .finish()
    }
}

impl Message {
    /// A message of type `ty` with a front payload, at the default priority.
    pub fn new(ty: u16, front: impl Into<Bytes>) -> Message {
        Message {
            ty,
            priority: CEPH_MSG_PRIO_DEFAULT,
            tid: 0,
            version: 1,
            compat_version: 1,
            front: front.into(),
            middle: Bytes::new(),
            data: Bytes::new(),
            seq: 0,
            conn: None,
            recv_stamp: None,
            dispatch_throttle_size: 0,
            throttle_release: Vec::new(),
        }
    }
    pub fn with_data(mut self, data: impl Into<Bytes>) -> Message {
        self.data = data.into();
        self
    }
    pub fn with_priority(mut self, p: u16) -> Message {
        self.priority = p;
        self
    }
    pub fn with_tid(mut self, tid: u64) -> Message {
        self.tid = tid;
        self
    }
    /// Ceph's `Message::get_cost`: the data length.
    pub fn cost(&self) -> u64 {
        self.data.len() as u64
    }
    /// Front + middle + data.
    pub fn payload_len(&self) -> u64 {
        (self.front.len() + self.middle.len() + self.data.len()) as u64
    }
    /// A copy for sending again (segments are shared, not copied); receive-side fields reset.
    pub fn clone_for_send(&self) -> Message {
        Message {
            ty: self.ty,
            priority: self.priority,
            tid: self.tid,
            version: self.version,
            compat_version: self.compat_version,
            front: self.front.clone(),
            middle: self.middle.clone(),
            data: self.data.clone(),
            ..Message::new(self.ty, Bytes::new())
        }
    }
}
