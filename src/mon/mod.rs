//! The monitor: one monitor, no quorum yet. It holds the OSD map (fsid,
//! epoch, OSDs, pools) and the recent incrementals, persists them after every epoch change,
//! takes OSD boots, serves `osdmap` subscriptions (pushing every new epoch) and runs the pool and
//! OSD commands that `ceph` sends as `MMonCommand`.
//!
//! Messenger: entity `mon.<id>` of the context, nonce 0 (as Ceph monitors use), bound to the
//! given address. Policy: `stateless_server` for every peer type but monitors, which is what
//! Ceph's `ceph_mon.cc` sets for clients *and* OSDs: the monitor never reconnects to anyone and
//! keeps no replay state for them; a peer whose session faults reconnects, resubscribes (the
//! [`MonClient`] does it from its tick) and re-sends what it needs (an OSD re-boots). Monitor
//! peers get `lossless_peer_reuse` for the quorum to come. A subscriber is forgotten when its
//! connection resets.
//!
//! Messages handled: `MSG_OSD_BOOT` (71), `CEPH_MSG_MON_SUBSCRIBE` (15, answered with
//! `CEPH_MSG_MON_SUBSCRIBE_ACK` (16) and `CEPH_MSG_OSD_MAP` (41)), `CEPH_MSG_MON_COMMAND` (50,
//! answered with `CEPH_MSG_MON_COMMAND_ACK` (51)); the commands are in `commands`. Admin
//! socket: `status` and `dump osdmap`.
//!
//! A boot names its OSD id and addresses. As in Ceph, the id must exist (`osd create`); the
//! boot of one that does not is ignored, and the OSD, seeing itself missing from the map it
//! gets, gives up. A known OSD is marked up with the new addresses (down and up in one epoch if
//! it was still up elsewhere), keeping its in/out and weight, except that a new one (never up)
//! is marked in (`mon_osd_auto_mark_new_in`); a repeat of the same boot is no new epoch. A boot
//! for another fsid is ignored; an all-zero fsid means "not known yet" and is accepted. The
//! booting OSD gets the map from its `boot_epoch + 1` in reply.
//!
//! Subscriptions follow Ceph's `start` rule: the first epoch wanted. `start` ≤ 1 (nothing held)
//! or older than the oldest incremental kept gets the full current map; otherwise the
//! incrementals `start..=epoch`; beyond the current epoch, nothing until the next one.

pub mod client;
mod commands;
mod failure;
pub mod store;

pub use client::MonClient;

use crate::common::entity::EntityType;
use crate::common::formatter::FVal;
use crate::msgr::addr::EntityAddr;
use crate::msgr::connection::ConnectionRef;
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::types::messages::{
    FrontMessage, MMonSubscribe, MMonSubscribeAck, MOsdBoot, MOsdMap, CEPH_MSG_MON_SUBSCRIBE, CEPH_SUBSCRIBE_ONETIME,
    MSG_OSD_BOOT, MSG_OSD_FAILURE, MSG_OSD_FULL, MSG_OSD_MARK_ME_DOWN,
};
use crate::types::mon_messages::{MMonCommand, MMonCommandAck, CEPH_MSG_MON_COMMAND};
use crate::types::osdmap::{fsid_to_string, Epoch, Incremental, OsdMap, MAX_OSD_LIMIT};
use crate::{Context, Error, Result};
use bytes::Bytes;
use parking_lot::Mutex;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use store::MonState;

/// Tunables of a monitor.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Incrementals kept (and persisted) for subscribers that are behind; older ones are
    /// trimmed and such subscribers get a full map. Ceph's `mon_min_osdmap_epochs` (500).
    pub keep_incrementals: usize,
    /// The renew interval told to subscribers in `MMonSubscribeAck`.
    pub subscribe_interval_secs: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            keep_incrementals: 500,
            subscribe_interval_secs: 300,
        }
    }
}

/// A running monitor. Dropping it shuts it down.
pub struct Monitor {
    core: Arc<Core>,
    ctx: Context,
    msgr: Messenger,
    addr: EntityAddr,
    asok_ids: Mutex<Vec<u64>>,
    stopped: AtomicBool,
    tick_stop: Arc<AtomicBool>,
    tick: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How often the monitor looks at failure reports and down OSDs: finer than any grace or
/// interval it enforces (whole seconds).
const TICK: std::time::Duration = std::time::Duration::from_millis(250);

fn tick(core: &std::sync::Weak<Core>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(TICK);
        let Some(core) = core.upgrade() else { return };
        let mut g = core.inner.lock();
        core.check_failures(&mut g);
    }
}

struct Sub {
    conn: ConnectionRef,
    /// The first epoch this subscriber still lacks.
    next: u64,
    onetime: bool,
}

struct Inner {
    state: MonState,
    /// `osdmap` subscribers, by connection id.
    subs: HashMap<u64, Sub>,
    failures: failure::Failures,
}

struct Core {
    ctx: Context,
    data_dir: PathBuf,
    conf: MonitorConfig,
    inner: Mutex<Inner>,
}

/// A random (version 4) UUID for a new cluster.
fn new_fsid() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut f = [0u8; 16];
    for (i, chunk) in f.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(now);
        h.write_u32(std::process::id());
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    f[6] = (f[6] & 0x0f) | 0x40;
    f[8] = (f[8] & 0x3f) | 0x80;
    f
}

/// What a subscriber that lacks epochs `start..` gets: the incrementals when the monitor still
/// holds all of them, else the full current map (also when it has nothing: `start` ≤ 1).
/// `None` when it lacks nothing yet.
pub fn update_for(st: &MonState, start: u64) -> Option<MOsdMap> {
    let cur = st.map.epoch;
    if start > u64::from(cur) {
        return None;
    }
    let oldest = st.incrementals.keys().next().copied().unwrap_or(cur);
    let mut m = MOsdMap {
        fsid: st.map.fsid,
        oldest,
        newest: cur,
        ..Default::default()
    };
    if start > 1 && start >= u64::from(oldest) {
        m.incrementals = st
            .incrementals
            .range(start as Epoch..=cur)
            .map(|(e, i)| (*e, i.clone()))
            .collect();
    } else {
        m.maps.insert(cur, st.map.clone());
    }
    Some(m)
}

impl Core {
    /// Applies `inc` as the next epoch, persists, then publishes it. Nothing changes on error.
    fn propose(&self, g: &mut Inner, inc: Incremental) -> Result<Epoch> {
        let mut map = g.state.map.clone();
        map.apply(&inc)?;
        let mut incrementals = g.state.incrementals.clone();
        incrementals.insert(inc.epoch, inc);
        while incrementals.len() > self.conf.keep_incrementals.max(1) {
            incrementals.pop_first();
        }
        let (down, up) = {
            let inc = &incrementals[&map.epoch];
            (inc.new_down.clone(), inc.new_up.keys().copied().collect::<Vec<_>>())
        };
        let next = MonState { map, incrementals };
        store::save(&self.data_dir, &next)?;
        g.state = next;
        g.failures.note_epoch(&down, up.into_iter());
        log::info!(target: "mon", "osdmap e{}", g.state.map.epoch);
        self.publish(g);
        Ok(g.state.map.epoch)
    }

    /// Sends every subscriber what it lacks.
    fn publish(&self, g: &mut Inner) {
        let epoch = u64::from(g.state.map.epoch);
        let mut drop_ids = Vec::new();
        for (id, sub) in g.subs.iter_mut() {
            if sub.next > epoch {
                continue;
            }
            if let Some(m) = update_for(&g.state, sub.next) {
                if sub.conn.send_message(m.to_message()).is_err() {
                    drop_ids.push(*id);
                    continue;
                }
            }
            sub.next = epoch + 1;
            if sub.onetime {
                drop_ids.push(*id);
            }
        }
        for id in drop_ids {
            g.subs.remove(&id);
        }
    }

    fn handle_boot(&self, m: &Message) {
        let Some(conn) = m.conn.clone() else { return };
        let boot = match MOsdBoot::from_message(m) {
            Ok(b) => b,
            Err(e) => {
                log::warn!(target: "mon", "malformed MOSDBoot from {}: {}", conn.peer_addr(), e.msg);
                return;
            }
        };
        let mut g = self.inner.lock();
        let fsid = g.state.map.fsid;
        if boot.fsid != [0; 16] && boot.fsid != fsid {
            log::warn!(
                target: "mon",
                "ignoring boot of osd.{} for cluster {} (we are {})",
                boot.osd,
                fsid_to_string(&boot.fsid),
                fsid_to_string(&fsid)
            );
            return;
        }
        let id = boot.osd;
        if !(0..MAX_OSD_LIMIT).contains(&id) {
            log::warn!(target: "mon", "ignoring boot of osd.{id}: id out of range");
            return;
        }
        if let Some(h) = boot.metadata.get("hostname") {
            g.failures.hosts.insert(id, h.clone());
        }
        let map = &g.state.map;
        let mut inc = map.next_incremental();
        match map.osd(id) {
            Some(o) if o.up && o.addrs == boot.addrs => {
                log::debug!(target: "mon", "osd.{id} boot: already up with these addresses");
            }
            Some(o) => {
                if o.up {
                    // A restart we had not noticed: down and up again in one epoch.
                    inc.new_down.insert(id);
                }
                inc.new_up.insert(id, boot.addrs);
                // Never up before: a new OSD, which Ceph marks in on its first boot.
                let new_osd = o.up_from == 0 && o.down_at == 0;
                let auto_in = (new_osd && self.ctx.conf().get_bool("mon_osd_auto_mark_new_in"))
                    || g.failures.auto_out.contains(&id);
                if !o.in_ && auto_in {
                    inc.new_in.insert(id);
                }
            }
            None => {
                // As Ceph's preprocess_boot: an OSD must be created (`osd create`) first. The
                // OSD sees its id missing from the map we send it, and gives up.
                log::warn!(target: "mon", "ignoring boot of osd.{id}: it does not exist (osd create {id})");
            }
        }
        if !inc.new_up.is_empty() {
            g.failures.auto_out.remove(&id);
            match self.propose(&mut g, inc) {
                Ok(e) => log::info!(target: "mon", "osd.{id} boot at {} (e{e})", boot.addrs.public),
                Err(e) => {
                    log::error!(target: "mon", "osd.{id} boot failed: {}", e.msg);
                    return;
                }
            }
        }
        // The booting OSD learns the result; a subscriber already got it from publish.
        if !g.subs.contains_key(&conn.id()) {
            if let Some(u) = update_for(&g.state, u64::from(boot.boot_epoch) + 1) {
                let _ = conn.send_message(u.to_message());
            }
        }
    }

    fn handle_subscribe(&self, m: &Message) {
        let Some(conn) = m.conn.clone() else { return };
        let sub = match MMonSubscribe::from_message(m) {
            Ok(s) => s,
            Err(e) => {
                log::warn!(target: "mon", "malformed MMonSubscribe from {}: {}", conn.peer_addr(), e.msg);
                return;
            }
        };
        let mut g = self.inner.lock();
        let ack = MMonSubscribeAck {
            interval_secs: self.conf.subscribe_interval_secs,
            fsid: g.state.map.fsid,
        };
        let _ = conn.send_message(ack.to_message());
        for what in sub.what.keys().filter(|w| *w != "osdmap") {
            log::debug!(target: "mon", "subscription to '{what}' not served");
        }
        let Some(item) = sub.what.get("osdmap") else { return };
        let onetime = item.flags & CEPH_SUBSCRIBE_ONETIME != 0;
        let mut next = item.start;
        if let Some(u) = update_for(&g.state, item.start) {
            if conn.send_message(u.to_message()).is_err() {
                return;
            }
            next = u64::from(g.state.map.epoch) + 1;
            if onetime {
                g.subs.remove(&conn.id());
                return;
            }
        }
        g.subs.insert(conn.id(), Sub { conn, next, onetime });
    }

    fn handle_command(&self, m: &Message) {
        let Some(conn) = m.conn.clone() else { return };
        let (tid, res) = match MMonCommand::from_message(m) {
            Ok(c) => (c.tid, self.run_command(&c.cmd)),
            Err(e) => (m.tid, Err(Error::inval(format!("malformed MMonCommand: {}", e.msg)))),
        };
        let ack = match res {
            Ok((rs, outbl)) => MMonCommandAck { tid, r: 0, rs, outbl },
            Err(e) => {
                log::info!(target: "mon", "command tid {tid} failed: {}", e.msg);
                MMonCommandAck {
                    tid,
                    r: -e.errno,
                    rs: e.msg,
                    outbl: Bytes::new(),
                }
            }
        };
        let _ = conn.send_message(ack.to_msg());
    }
}

struct MonDispatcher {
    core: Arc<Core>,
}

impl Dispatcher for MonDispatcher {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        match m.ty {
            MSG_OSD_BOOT => self.core.handle_boot(&m),
            MSG_OSD_FAILURE => self.core.handle_failure(&m),
            MSG_OSD_MARK_ME_DOWN => self.core.handle_mark_me_down(&m),
            MSG_OSD_FULL => self.core.handle_full(&m),
            CEPH_MSG_MON_SUBSCRIBE => self.core.handle_subscribe(&m),
            CEPH_MSG_MON_COMMAND => self.core.handle_command(&m),
            _ => return Some(m),
        }
        None
    }
    fn ms_handle_reset(&self, c: &ConnectionRef) -> bool {
        self.core.inner.lock().subs.remove(&c.id());
        false
    }
    fn ms_handle_remote_reset(&self, c: &ConnectionRef) {
        self.core.inner.lock().subs.remove(&c.id());
    }
}

impl Monitor {
    /// Starts the monitor of `ctx` (entity `mon.<id>`) with its store in `data_dir` (created if
    /// missing; a new cluster with a fresh fsid at epoch 1 when empty) listening on `bind`.
    pub fn start(ctx: &Context, data_dir: &Path, bind: SocketAddr) -> Result<Monitor> {
        Self::start_with(ctx, data_dir, bind, MonitorConfig::default())
    }

    pub fn start_with(ctx: &Context, data_dir: &Path, bind: SocketAddr, conf: MonitorConfig) -> Result<Monitor> {
        if ctx.name().ty != EntityType::Mon {
            return Err(Error::inval(format!(
                "a monitor needs a mon.* context, not {}",
                ctx.name()
            )));
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::io(e, format!("creating monitor data dir {}", data_dir.display())))?;
        let state = match store::load(data_dir)? {
            Some(st) => st,
            None => {
                let mut map = OsdMap::new(new_fsid());
                let inc = map.next_incremental();
                map.apply(&inc)?;
                let st = MonState {
                    map,
                    incrementals: [(inc.epoch, inc)].into_iter().collect(),
                };
                store::save(data_dir, &st)?;
                log::info!(
                    target: "mon",
                    "created cluster {} in {}",
                    fsid_to_string(&st.map.fsid),
                    data_dir.display()
                );
                st
            }
        };
        let core = Arc::new(Core {
            ctx: ctx.clone(),
            data_dir: data_dir.to_path_buf(),
            conf,
            inner: Mutex::new(Inner {
                state,
                subs: HashMap::new(),
                failures: failure::Failures::default(),
            }),
        });
        let msgr = Messenger::new(ctx, &ctx.name().to_string(), Some(0))?;
        msgr.set_default_policy(Policy::stateless_server());
        msgr.set_policy(EntityType::Mon, Policy::lossless_peer_reuse());
        msgr.add_dispatcher_tail(Arc::new(MonDispatcher { core: core.clone() }));
        let addr = msgr.bind(bind)?;
        msgr.start()?;
        let stop = Arc::new(AtomicBool::new(false));
        let tick = {
            let (core, stop) = (Arc::downgrade(&core), stop.clone());
            crate::common::log::ThreadBuilder::new()
                .name("mon_tick".into())
                .spawn(move || tick(&core, &stop))
                .map_err(|e| Error::io(e, "spawning mon_tick"))?
        };
        let mon = Monitor {
            core,
            ctx: ctx.clone(),
            msgr,
            addr,
            asok_ids: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            tick_stop: stop,
            tick: Mutex::new(Some(tick)),
        };
        if let Err(e) = mon.register_commands() {
            mon.shutdown();
            return Err(e);
        }
        log::info!(target: "mon", "{} listening on {addr}", ctx.name());
        Ok(mon)
    }

    fn register_commands(&self) -> Result<()> {
        let c = self.core.clone();
        let status = Arc::new(move |r: &crate::asok::Request<'_>| {
            let v = commands::status_json(&c.inner.lock().state.map);
            Ok(r.render(&FVal::from(&v)))
        });
        let c = self.core.clone();
        let dump = Arc::new(move |r: &crate::asok::Request<'_>| {
            let v = c.inner.lock().state.map.to_json();
            Ok(r.render(&FVal::from(&v)))
        });
        let mut ids = self.asok_ids.lock();
        ids.push(
            self.ctx
                .register_command("status", "show cluster status: fsid, epoch, OSD counts, pools", status)?,
        );
        ids.push(
            self.ctx
                .register_command("dump osdmap", "dump the current OSD map", dump)?,
        );
        Ok(())
    }

    /// The address OSDs and clients connect to.
    pub fn addr(&self) -> EntityAddr {
        self.addr
    }
    pub fn messenger(&self) -> &Messenger {
        &self.msgr
    }
    pub fn data_dir(&self) -> &Path {
        &self.core.data_dir
    }
    pub fn fsid(&self) -> [u8; 16] {
        self.core.inner.lock().state.map.fsid
    }
    pub fn epoch(&self) -> Epoch {
        self.core.inner.lock().state.map.epoch
    }
    pub fn osdmap(&self) -> OsdMap {
        self.core.inner.lock().state.map.clone()
    }
    /// The epochs whose incrementals are held: `(oldest, newest)`.
    pub fn incremental_range(&self) -> Option<(Epoch, Epoch)> {
        let g = self.core.inner.lock();
        let i = &g.state.incrementals;
        Some((*i.keys().next()?, *i.keys().next_back()?))
    }
    pub fn num_subscribers(&self) -> usize {
        self.core.inner.lock().subs.len()
    }
    /// Runs a command in-process, as an `MMonCommand` would: `(result, status, output)`.
    pub fn command(&self, cmd: &str) -> (i32, String, Bytes) {
        match self.core.run_command(cmd) {
            Ok((rs, out)) => (0, rs, out),
            Err(e) => (-e.errno, e.msg, Bytes::new()),
        }
    }

    /// Stops the messenger and unregisters the admin commands. Idempotent.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        for id in self.asok_ids.lock().drain(..) {
            self.ctx.admin_socket().unregister_command(id);
        }
        self.tick_stop.store(true, Ordering::Release);
        if let Some(t) = self.tick.lock().take() {
            let _ = t.join();
        }
        self.msgr.shutdown();
        self.core.inner.lock().subs.clear();
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(n: u32, keep: usize) -> MonState {
        let mut map = OsdMap::new([5; 16]);
        let mut incs = std::collections::BTreeMap::new();
        for i in 0..n {
            let mut inc = map.next_incremental();
            inc.new_pool_max = Some(i64::from(i));
            map.apply(&inc).unwrap();
            incs.insert(inc.epoch, inc);
            while incs.len() > keep {
                incs.pop_first();
            }
        }
        MonState {
            map,
            incrementals: incs,
        }
    }

    #[test]
    fn subscribers_get_incrementals_when_held_else_a_full_map() {
        let st = state_with(10, 4); // epochs 1..=10, incrementals 7..=10
        let u = update_for(&st, 8).unwrap();
        assert!(u.maps.is_empty());
        assert_eq!(u.incrementals.keys().copied().collect::<Vec<_>>(), vec![8, 9, 10]);
        assert_eq!((u.oldest, u.newest), (7, 10));
        let u = update_for(&st, 7).unwrap();
        assert_eq!(u.incrementals.len(), 4);
        for start in [0, 1, 3, 6] {
            let u = update_for(&st, start).unwrap();
            assert!(u.incrementals.is_empty(), "start {start}");
            assert_eq!(u.maps.keys().copied().collect::<Vec<_>>(), vec![10]);
        }
        assert!(update_for(&st, 11).is_none());
        assert!(update_for(&st, u64::MAX).is_none());
        // What a holder of epoch 7 makes of the incrementals is the monitor's map.
        let old = state_with(7, 4).map;
        let mut m = old.clone();
        update_for(&st, 8).unwrap().advance(&mut m).unwrap();
        assert_eq!(m, st.map);
    }

    #[test]
    fn fsids_are_random_uuids() {
        let (a, b) = (new_fsid(), new_fsid());
        assert_ne!(a, b);
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] >> 6, 2);
    }
}
