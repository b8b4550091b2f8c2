//! `Policy`: how a messenger treats peers of one entity type (Ceph's `Messenger::Policy`).

use crate::common::throttle::Throttle;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Policy {
    /// Drop the session (and queued messages) on a fault, telling the dispatcher; no replay.
    pub lossy: bool,
    /// We never initiate reconnects to these peers: they reconnect to us.
    pub server: bool,
    /// Keep a faulted lossless session waiting (queueing) instead of reconnecting at once.
    pub standby: bool,
    /// Detect a restarted peer (new client cookie) and reset the session.
    pub resetcheck: bool,
    /// Per-peer-type receive throttles: message count and payload bytes.
    pub throttler_messages: Option<Arc<Throttle>>,
    pub throttler_bytes: Option<Arc<Throttle>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Policy {
    pub fn lossy_client() -> Policy {
        Policy {
            lossy: true,
            ..Default::default()
        }
    }
    pub fn lossless_client() -> Policy {
        Policy {
            resetcheck: true,
            ..Default::default()
        }
    }
    pub fn lossless_peer() -> Policy {
        Policy {
            resetcheck: true,
            ..Default::default()
        }
    }
    pub fn lossless_peer_reuse() -> Policy {
        Policy {
            standby: true,
            resetcheck: true,
            ..Default::default()
        }
    }
    pub fn stateful_server() -> Policy {
        Policy {
            server: true,
            standby: true,
            resetcheck: true,
            ..Default::default()
        }
    }
    pub fn stateless_server() -> Policy {
        Policy {
            lossy: true,
            server: true,
            ..Default::default()
        }
    }
    /// The policy's Ceph name, for the connection listing.
    pub fn name(&self) -> &'static str {
        match (self.lossy, self.server, self.standby) {
            (true, true, _) => "stateless_server",
            (true, false, _) => "lossy_client",
            (false, true, _) => "stateful_server",
            (false, false, true) => "lossless_peer_reuse",
            (false, false, false) => "lossless_peer",
        }
    }
    pub fn with_throttlers(mut self, messages: Option<Arc<Throttle>>, bytes: Option<Arc<Throttle>>) -> Policy {
        self.throttler_messages = messages;
        self.throttler_bytes = bytes;
        self
    }
}
