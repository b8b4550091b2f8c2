//! `MonClient`: what OSDs and clients use to talk to the monitor (Ceph's `MonClient`, reduced to
//! one monitor): an `osdmap` subscription whose pushes keep the latest [`OsdMap`] (applying
//! incrementals or taking full maps), waiting for an epoch, and commands matched to their acks
//! by tid, with a timeout.
//!
//! It plugs a dispatcher into the caller's messenger (at the head of the chain) and sets that
//! messenger's policy for monitor peers to `lossy_client`, as Ceph daemons do. When the session
//! to the monitor resets, a tick (every 200 ms) reconnects, subscribes again from the epoch it
//! holds and re-sends the commands still waiting for an ack. Messages that are not for it (from
//! other peers, acks of unknown tids) go on to the next dispatcher.

use crate::common::entity::EntityType;
use crate::msgr::addr::EntityAddr;
use crate::msgr::connection::{ConnStatus, ConnectionRef};
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::types::messages::{
    FrontMessage, MMonSubscribe, MMonSubscribeAck, MOsdMap, SubscribeItem, CEPH_MSG_MON_SUBSCRIBE_ACK, CEPH_MSG_OSD_MAP,
};
use crate::types::mon_messages::{MMonCommand, MMonCommandAck, CEPH_MSG_MON_COMMAND_ACK};
use crate::types::osdmap::{Epoch, OsdMap};
use crate::{Error, Result};
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The default timeout of [`MonClient::command`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(200);

type MapCallback = Arc<dyn Fn(&OsdMap) + Send + Sync>;

struct Pending {
    cmd: String,
    reply: Option<(i32, String, Bytes)>,
}

#[derive(Default)]
struct State {
    map: OsdMap,
    fsid: Option<[u8; 16]>,
    conn: Option<ConnectionRef>,
    want_osdmap: bool,
    next_tid: u64,
    pending: HashMap<u64, Pending>,
    on_map: Option<MapCallback>,
}

struct Shared {
    msgr: Messenger,
    mon: EntityAddr,
    st: Mutex<State>,
    cv: Condvar,
    stop: AtomicBool,
}

/// A session with the monitor. Dropping it stops its tick; the messenger stays the caller's.
pub struct MonClient {
    shared: Arc<Shared>,
}

impl Shared {
    fn sub_message(st: &State) -> Message {
        let start = if st.map.epoch == 0 {
            0
        } else {
            u64::from(st.map.epoch) + 1
        };
        let mut sub = MMonSubscribe {
            hostname: String::new(),
            ..Default::default()
        };
        sub.what.insert("osdmap".into(), SubscribeItem { start, flags: 0 });
        sub.to_message()
    }

    /// The open session to the monitor, opening one if needed. A new session gets the
    /// subscription and the pending commands again; returns whether it is new.
    fn ensure_conn(&self, st: &mut State) -> Result<(ConnectionRef, bool)> {
        if let Some(c) = &st.conn {
            if c.status() != ConnStatus::Closed {
                return Ok((c.clone(), false));
            }
        }
        let c = self.msgr.connect_to(EntityType::Mon, &self.mon)?;
        st.conn = Some(c.clone());
        if st.want_osdmap {
            c.send_message(Self::sub_message(st))?;
        }
        let mut tids: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| p.reply.is_none())
            .map(|(t, _)| *t)
            .collect();
        tids.sort_unstable();
        for tid in tids {
            let cmd = st.pending[&tid].cmd.clone();
            c.send_message(MMonCommand { tid, cmd }.to_msg())?;
        }
        Ok((c, true))
    }

    fn lost(&self, c: &ConnectionRef) {
        let mut st = self.st.lock();
        if st.conn.as_ref().is_some_and(|x| Arc::ptr_eq(x, c)) {
            log::debug!(target: "monc", "session to mon {} reset", self.mon);
            st.conn = None;
        }
    }

    fn handle_map(&self, m: &Message) {
        let msg = match MOsdMap::from_message(m) {
            Ok(x) => x,
            Err(e) => {
                log::warn!(target: "monc", "malformed MOSDMap from mon: {}", e.msg);
                return;
            }
        };
        let mut st = self.st.lock();
        if st.fsid.is_some_and(|f| f != msg.fsid) || (st.map.epoch != 0 && st.map.fsid != msg.fsid) {
            log::warn!(target: "monc", "ignoring OSD map of another cluster");
            return;
        }
        let before = st.map.epoch;
        if let Err(e) = msg.advance(&mut st.map) {
            log::warn!(target: "monc", "cannot apply OSD map: {}", e.msg);
        }
        let changed = st.map.epoch != before;
        if st.map.epoch < msg.newest {
            // A gap: ask again from what we have.
            log::debug!(target: "monc", "map at e{} but mon has e{}: resubscribing", st.map.epoch, msg.newest);
            if let Some(c) = st.conn.clone() {
                let _ = c.send_message(Self::sub_message(&st));
            }
        }
        if !changed {
            return;
        }
        self.cv.notify_all();
        let cb = st.on_map.clone();
        let map = cb.as_ref().map(|_| st.map.clone());
        drop(st);
        if let (Some(cb), Some(map)) = (cb, map) {
            cb(&map);
        }
    }
}

struct ClientDispatcher {
    shared: Weak<Shared>,
}

impl Dispatcher for ClientDispatcher {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        if !matches!(
            m.ty,
            CEPH_MSG_OSD_MAP | CEPH_MSG_MON_SUBSCRIBE_ACK | CEPH_MSG_MON_COMMAND_ACK
        ) {
            return Some(m);
        }
        if m.conn.as_ref().map(|c| c.peer_type()) != Some(EntityType::Mon.wire_value()) {
            return Some(m);
        }
        let Some(sh) = self.shared.upgrade() else {
            return Some(m);
        };
        match m.ty {
            CEPH_MSG_OSD_MAP => sh.handle_map(&m),
            CEPH_MSG_MON_SUBSCRIBE_ACK => match MMonSubscribeAck::from_message(&m) {
                Ok(a) => sh.st.lock().fsid = Some(a.fsid),
                Err(e) => log::warn!(target: "monc", "malformed MMonSubscribeAck: {}", e.msg),
            },
            _ => {
                let ack = match MMonCommandAck::from_message(&m) {
                    Ok(a) => a,
                    Err(e) => {
                        log::warn!(target: "monc", "malformed MMonCommandAck: {}", e.msg);
                        return None;
                    }
                };
                let mut st = sh.st.lock();
                match st.pending.get_mut(&ack.tid) {
                    Some(p) => {
                        p.reply = Some((ack.r, ack.rs, ack.outbl));
                        sh.cv.notify_all();
                    }
                    None => return Some(m),
                }
            }
        }
        None
    }
    fn ms_handle_reset(&self, c: &ConnectionRef) -> bool {
        if let Some(sh) = self.shared.upgrade() {
            sh.lost(c);
        }
        false
    }
    fn ms_handle_remote_reset(&self, c: &ConnectionRef) {
        if let Some(sh) = self.shared.upgrade() {
            sh.lost(c);
        }
    }
    fn ms_handle_refused(&self, c: &ConnectionRef) -> bool {
        if let Some(sh) = self.shared.upgrade() {
            sh.lost(c);
        }
        false
    }
}

impl MonClient {
    /// A client of the monitor at `mon` on `msgr` (which must be started before anything is
    /// sent). Sets `msgr`'s policy for monitors to `lossy_client` and adds its dispatcher.
    pub fn new(msgr: &Messenger, mon: EntityAddr) -> Result<MonClient> {
        msgr.set_policy(EntityType::Mon, Policy::lossy_client());
        let shared = Arc::new(Shared {
            msgr: msgr.clone(),
            mon,
            st: Mutex::new(State::default()),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        msgr.add_dispatcher_head(Arc::new(ClientDispatcher {
            shared: Arc::downgrade(&shared),
        }));
        ticker::add(&shared)?;
        Ok(MonClient { shared })
    }

    pub fn mon_addr(&self) -> EntityAddr {
        self.shared.mon
    }

    /// Subscribes to `osdmap` from the epoch after the one held (everything when none); from
    /// then on the monitor pushes every new epoch, and the subscription is renewed after a reset.
    pub fn subscribe_osdmap(&self) -> Result<()> {
        let mut st = self.shared.st.lock();
        st.want_osdmap = true;
        let (c, new) = self.shared.ensure_conn(&mut st)?;
        if !new {
            c.send_message(Shared::sub_message(&st))?;
        }
        Ok(())
    }

    /// Sends `m` to the monitor (an `MOsdBoot`, ...), opening the session if needed.
    pub fn send_message(&self, m: Message) -> Result<()> {
        let mut st = self.shared.st.lock();
        let (c, _) = self.shared.ensure_conn(&mut st)?;
        c.send_message(m)
    }

    /// The latest map (epoch 0 before the first one arrives).
    pub fn osdmap(&self) -> OsdMap {
        self.shared.st.lock().map.clone()
    }
    pub fn epoch(&self) -> Epoch {
        self.shared.st.lock().map.epoch
    }
    /// The cluster fsid, once the monitor told it (subscribe ack or a map).
    pub fn fsid(&self) -> Option<[u8; 16]> {
        let st = self.shared.st.lock();
        st.fsid.or((st.map.epoch != 0).then_some(st.map.fsid))
    }
    /// Called (on the dispatch thread, without locks held) with each new map.
    pub fn set_map_callback(&self, f: impl Fn(&OsdMap) + Send + Sync + 'static) {
        self.shared.st.lock().on_map = Some(Arc::new(f));
    }

    /// Waits until the map is at least at epoch `e`; `-ETIMEDOUT` after `timeout`.
    pub fn wait_for_epoch(&self, e: Epoch, timeout: Duration) -> Result<OsdMap> {
        self.wait_for_map(timeout, |m| m.epoch >= e)
            .map_err(|_| Error::new(libc::ETIMEDOUT, format!("no OSD map epoch {e} after {timeout:?}")))
    }

    /// Waits until the map satisfies `pred`; `-ETIMEDOUT` after `timeout`.
    pub fn wait_for_map(&self, timeout: Duration, pred: impl Fn(&OsdMap) -> bool) -> Result<OsdMap> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.st.lock();
        while !pred(&st.map) {
            if self.shared.cv.wait_until(&mut st, deadline).timed_out() && !pred(&st.map) {
                return Err(Error::new(
                    libc::ETIMEDOUT,
                    format!("OSD map condition not met after {timeout:?} (at e{})", st.map.epoch),
                ));
            }
        }
        Ok(st.map.clone())
    }

    /// Runs a JSON command on the monitor: `(result, status, output)`, result 0 or a negative
    /// errno. Fails (`-ETIMEDOUT`) after [`DEFAULT_COMMAND_TIMEOUT`].
    pub fn command(&self, json: &str) -> Result<(i32, String, Bytes)> {
        self.command_timeout(json, DEFAULT_COMMAND_TIMEOUT)
    }

    pub fn command_timeout(&self, json: &str, timeout: Duration) -> Result<(i32, String, Bytes)> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.st.lock();
        st.next_tid += 1;
        let tid = st.next_tid;
        st.pending.insert(
            tid,
            Pending {
                cmd: json.to_string(),
                reply: None,
            },
        );
        // A new session re-sends every pending command, this one included.
        match self.shared.ensure_conn(&mut st) {
            Ok((c, false)) => {
                if let Err(e) = c.send_message(
                    MMonCommand {
                        tid,
                        cmd: json.to_string(),
                    }
                    .to_msg(),
                ) {
                    log::debug!(target: "monc", "command tid {tid}: {}; resent on reconnect", e.msg);
                }
            }
            Ok((_, true)) => {}
            Err(e) => log::debug!(target: "monc", "command tid {tid}: {}; retrying from the tick", e.msg),
        }
        loop {
            if let Some(r) = st.pending.get_mut(&tid).and_then(|p| p.reply.take()) {
                st.pending.remove(&tid);
                return Ok(r);
            }
            if self.shared.cv.wait_until(&mut st, deadline).timed_out()
                && st.pending.get(&tid).is_some_and(|p| p.reply.is_none())
            {
                st.pending.remove(&tid);
                return Err(Error::new(
                    libc::ETIMEDOUT,
                    format!("monitor command timed out after {timeout:?}: {json}"),
                ));
            }
        }
    }

    /// Stops the tick thread (the dispatcher stays in the chain, inert). Idempotent.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        ticker::remove(&self.shared);
    }
}

impl Drop for MonClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The process's one `monc-tick` thread: every `TICK`, each live `MonClient` that needs its
/// monitor and lost the session opens a new one. Started by the first client, it ends once
/// there is none (a process with many hosted daemons has one such thread, not one each).
mod ticker {
    use super::{Shared, TICK};
    use crate::common::error::{Error, Result};
    use crate::msgr::connection::ConnStatus;
    use parking_lot::{Condvar, Mutex};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Weak};

    struct Ticker {
        members: Vec<Weak<Shared>>,
        running: bool,
    }

    static TICKER: Mutex<Ticker> = Mutex::new(Ticker {
        members: Vec::new(),
        running: false,
    });
    static WAKE: Condvar = Condvar::new();

    pub(super) fn add(sh: &Arc<Shared>) -> Result<()> {
        let mut t = TICKER.lock();
        t.members.push(Arc::downgrade(sh));
        if !t.running {
            crate::common::log::ThreadBuilder::new()
                .name("monc-tick".into())
                .spawn(run)
                .map_err(|e| Error::io(e, "spawning the monclient tick thread"))?;
            t.running = true;
        }
        Ok(())
    }

    /// Once this returns no tick of `sh` is under way or to come.
    pub(super) fn remove(sh: &Arc<Shared>) {
        let mut t = TICKER.lock();
        t.members.retain(|m| m.upgrade().is_some_and(|m| !Arc::ptr_eq(&m, sh)));
        WAKE.notify_all();
    }

    fn run() {
        let mut t = TICKER.lock();
        loop {
            t.members.retain(|m| m.strong_count() > 0);
            if t.members.is_empty() {
                t.running = false;
                return;
            }
            WAKE.wait_for(&mut t, TICK);
            // Under the lock: `remove` waits for a tick under way.
            for sh in t.members.iter().filter_map(Weak::upgrade) {
                if sh.stop.load(Ordering::Acquire) {
                    continue;
                }
                let mut st = sh.st.lock();
                let needed = st.want_osdmap || st.pending.values().any(|p| p.reply.is_none());
                let down = st.conn.as_ref().is_none_or(|c| c.status() == ConnStatus::Closed);
                if needed && down {
                    if let Err(e) = sh.ensure_conn(&mut st) {
                        log::debug!(target: "monc", "reconnecting to mon {}: {}", sh.mon, e.msg);
                    }
                }
            }
        }
    }
}
