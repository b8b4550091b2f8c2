//! The messenger's session registry: outgoing sessions by the address dialled, lossless
//! incoming sessions by the peer's announced address, every connection not yet closed by id,
//! and the counters sessions draw their ids and sequence numbers from. Sessions are filed per
//! local identity (its nonce): a messenger hosting several (`Messenger::host`) keeps one
//! session per identity and peer, as separate messengers would.

use super::addr::{EntityAddr, ADDR_TYPE_MSGR2};
use super::connection::{ConnStatus, ConnectionRef};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The key a session is filed under: the address types differ between what a peer announces
/// (ANY) and what we dial (v2).
pub(crate) fn session_key(a: &EntityAddr) -> EntityAddr {
    EntityAddr {
        ty: ADDR_TYPE_MSGR2,
        ..*a
    }
}

/// A local identity's nonce and a peer's session key.
type Key = (u32, EntityAddr);

pub(crate) struct SessionMap {
    outgoing: Mutex<HashMap<Key, ConnectionRef>>,
    incoming: Mutex<HashMap<Key, ConnectionRef>>,
    all: Mutex<HashMap<u64, ConnectionRef>>,
    next_id: AtomicU64,
    global_seq: AtomicU64,
    next_global_id: AtomicU64,
}

impl SessionMap {
    pub(crate) fn new() -> SessionMap {
        SessionMap {
            outgoing: Mutex::new(HashMap::new()),
            incoming: Mutex::new(HashMap::new()),
            all: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            global_seq: AtomicU64::new(0),
            next_global_id: AtomicU64::new(4096),
        }
    }

    /// A connection id, unique in this messenger and never 0.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
    /// The next global_seq of ours (every new socket of every session takes one).
    pub(crate) fn next_global_seq(&self) -> u64 {
        self.global_seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }
    /// A peer told us of a global_seq of ours it saw: go past it.
    pub(crate) fn bump_global_seq(&self, seen: u64) {
        self.global_seq.fetch_max(seen, Ordering::Relaxed);
    }
    /// A gid for a client that announced none.
    pub(crate) fn next_global_id(&self) -> u64 {
        self.next_global_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Identity `local`'s session to `addr` if it is not closed; otherwise the one `make`
    /// builds (given its id and key), registered. The bool is true for a new session.
    pub(crate) fn outgoing(
        &self,
        local: u32,
        addr: &EntityAddr,
        make: impl FnOnce(u64, EntityAddr) -> ConnectionRef,
    ) -> (ConnectionRef, bool) {
        let key = session_key(addr);
        let mut map = self.outgoing.lock();
        if let Some(c) = map.get(&(local, key)) {
            if c.status() != ConnStatus::Closed {
                return (c.clone(), false);
            }
        }
        let c = make(self.next_id(), key);
        map.insert((local, key), c.clone());
        drop(map);
        self.all.lock().insert(c.id(), c.clone());
        (c, true)
    }

    /// Identity `local`'s outgoing session to `addr`, if any.
    pub(crate) fn outgoing_to(&self, local: u32, addr: &EntityAddr) -> Option<ConnectionRef> {
        self.outgoing.lock().get(&(local, session_key(addr))).cloned()
    }

    /// The lossless incoming session of the peer at `addr` that a reconnect with
    /// `server_cookie` names. A reconnect does not say which identity it is for: with one
    /// identity that is its session whatever the cookie (a stale cookie is then judged, and
    /// reset, by `session::judge_reconnect`); with several, the cookie picks it.
    pub(crate) fn incoming_from(&self, addr: &EntityAddr, server_cookie: u64) -> Option<ConnectionRef> {
        let key = session_key(addr);
        let m = self.incoming.lock();
        let mut found = m.iter().filter(|((_, a), _)| *a == key).map(|(_, c)| c);
        let first = found.next()?;
        let rest: Vec<&ConnectionRef> = found.collect();
        if rest.is_empty() {
            return Some(first.clone());
        }
        std::iter::once(first)
            .chain(rest)
            .find(|c| c.state.lock().server_cookie == server_cookie)
            .cloned()
    }

    /// Files an accepted session: by the peer's address when it is lossless (replacing, and
    /// returning, the one filed there before: the peer restarted), and by id.
    pub(crate) fn accept(&self, c: &ConnectionRef, lossless: bool) -> Option<ConnectionRef> {
        let old = if lossless {
            self.incoming
                .lock()
                .insert((c.local_nonce, session_key(&c.peer_addr())), c.clone())
        } else {
            None
        };
        if let Some(o) = &old {
            self.all.lock().remove(&o.id());
        }
        self.all.lock().insert(c.id(), c.clone());
        old
    }

    /// Drops a connection from every map (it closed).
    pub(crate) fn forget(&self, c: &ConnectionRef) {
        let key = (c.local_nonce, session_key(&c.peer_addr()));
        for map in [&self.outgoing, &self.incoming] {
            let mut m = map.lock();
            if m.get(&key).is_some_and(|x| Arc::ptr_eq(x, c)) {
                m.remove(&key);
            }
        }
        self.all.lock().remove(&c.id());
    }

    /// Every connection not closed, by id.
    pub(crate) fn list(&self) -> Vec<ConnectionRef> {
        let mut v: Vec<ConnectionRef> = self.all.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id());
        v
    }

    /// Empties the registry (the messenger stops); returns every connection it held.
    pub(crate) fn drain(&self) -> Vec<ConnectionRef> {
        let all: Vec<ConnectionRef> = self.all.lock().drain().map(|(_, c)| c).collect();
        self.outgoing.lock().clear();
        self.incoming.lock().clear();
        all
    }
}
