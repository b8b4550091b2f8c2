//! OSD heartbeats (reference §9): pings to every peer on the front (public) and back (cluster)
//! networks, failure reports to the monitor, "still alive" when a reported peer answers again,
//! and re-booting when the map says we are down while we are not.
//!
//! Two messengers, `hb_front` on the public address and `hb_back` on the cluster address, each
//! both serves pings and sends them (Ceph splits each into a client and a server messenger; one
//! per network does the same with half the threads). Policy for OSD peers: `lossy_client`, as
//! Ceph's heartbeat messengers: a broken session is not replayed, the next round reconnects.
//!
//! The `osd_srv_heartbt` thread sends a ping round, checks, then sleeps 0.5 s plus a random
//! tenth-multiple of `osd_heartbeat_interval`, as Ceph's `heartbeat_entry`. Each ping's deadline
//! is its send time plus `osd_heartbeat_grace`; a peer whose oldest unanswered ping is past its
//! deadline on either network is reported failed (every round while it stays so), with
//! `failed_for` counted from the last reply on the slower network (or the first ping). A ping
//! counts as answered once replies came on both networks.
//!
//! Peers: every other OSD up in the map. Ceph pings the OSDs it shares PGs with plus
//! neighbours up to `osd_heartbeat_min_peers`; for clusters of up to that many OSDs + 1, that is
//! the same set.

use crate::common::entity::EntityType;
use crate::common::error::{Error, Result};
use crate::mon::client::MonClient;
use crate::msgr::addr::EntityAddr;
use crate::msgr::connection::{ConnStatus, ConnectionRef};
use crate::msgr::dispatcher::Dispatcher;
use crate::msgr::message::Message;
use crate::msgr::messenger::Messenger;
use crate::types::hb_messages::{
    MOsdFailure, MOsdPing, FAILURE_FLAG_FAILED, MAX_PADDING, PING, PING_REPLY, PING_YOU_DIED,
};
use crate::types::messages::{FrontMessage, MOsdBoot, MSG_OSD_PING};
use crate::types::osdmap::{OsdAddrs, OsdId, OsdMap};
use crate::Context;
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The current map, as the OSD holds it.
pub type MapSource = Arc<dyn Fn() -> Arc<OsdMap> + Send + Sync>;

/// Unanswered pings kept per peer; beyond this a dead peer gets no new history (its oldest
/// ping already decides).
const MAX_HISTORY: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Front,
    Back,
}

struct Sent {
    deadline: Instant,
    front: bool,
    back: bool,
}

struct Peer {
    addrs: OsdAddrs,
    front: Option<ConnectionRef>,
    back: Option<ConnectionRef>,
    /// Unanswered pings by their monotonic stamp.
    pings: BTreeMap<i64, Sent>,
    first_tx: Option<Instant>,
    last_rx_front: Option<Instant>,
    last_rx_back: Option<Instant>,
    /// A failure report is standing at the monitor.
    reported: bool,
}

impl Peer {
    fn new(addrs: OsdAddrs) -> Peer {
        Peer {
            addrs,
            front: None,
            back: None,
            pings: BTreeMap::new(),
            first_tx: None,
            last_rx_front: None,
            last_rx_back: None,
            reported: false,
        }
    }

    /// `Some(failed_for)` when the oldest unanswered ping is past its deadline.
    fn failed_for(&self, now: Instant) -> Option<Duration> {
        let (_, oldest) = self.pings.iter().next()?;
        if oldest.deadline > now {
            return None;
        }
        let last_good = match (self.last_rx_front, self.last_rx_back) {
            (Some(f), Some(b)) => Some(f.min(b)),
            _ => self.first_tx,
        };
        Some(now.saturating_duration_since(last_good.unwrap_or(now)))
    }

    fn close(&mut self) {
        for c in [self.front.take(), self.back.take()].into_iter().flatten() {
            c.mark_down();
        }
    }
}

struct State {
    peers: BTreeMap<OsdId, Peer>,
    /// We have seen ourselves up at our addresses: a later map showing us down is a mistake to
    /// correct by booting again.
    was_up: bool,
    /// Marked down while running, since this instant: we boot again once enough peers answer
    /// us on both networks (Ceph's `STATE_WAITING_FOR_HEALTHY`), so that an OSD cut off on
    /// one network stays down instead of flapping.
    waiting_for_healthy: Option<Instant>,
    /// When the map wrongly marked us down, within `osd_max_markdown_period`.
    markdowns: std::collections::VecDeque<Instant>,
}

struct Inner {
    ctx: Context,
    whoami: OsdId,
    map: MapSource,
    monc: Arc<MonClient>,
    /// What the OSD boots with; sent again when the map wrongly marks us down.
    boot: Mutex<Option<MOsdBoot>>,
    front: Messenger,
    back: Messenger,
    my_addrs: Mutex<Option<OsdAddrs>>,
    st: Mutex<State>,
    wake: Condvar,
    stop: AtomicBool,
    /// Stopping cleanly: marked down on purpose, so no re-boot.
    stopping: AtomicBool,
    /// Marked down more than `osd_max_markdown_count` times in `osd_max_markdown_period`:
    /// why the OSD stops instead of booting again (Ceph shuts the daemon down then).
    gave_up: Mutex<Option<String>>,
    anchor: Instant,
    /// The shared thread that runs this OSD's rounds, when it is hosted on a `HostedSet`.
    timer: Option<Arc<HbTimer>>,
    /// The disk under the store is full (`DiskMon`): told to the monitor until the map says so.
    full: Arc<AtomicBool>,
}

/// The heartbeat messengers and thread of one OSD.
pub struct Heartbeat {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Inner {
    /// A round now rather than at the next tick.
    fn kick(&self) {
        match &self.timer {
            Some(t) => t.kick(),
            None => {
                self.wake.notify_all();
            }
        }
    }

    fn mono(&self) -> i64 {
        self.anchor.elapsed().as_nanos() as i64
    }

    fn padding(&self) -> u32 {
        // The envelope and fields take about 70 bytes; the rest of the minimum is padding.
        let min = self.ctx.conf().get_u64("osd_heartbeat_min_size");
        (min.saturating_sub(70) as u32).min(MAX_PADDING)
    }

    fn ping(&self, map: &OsdMap, op: u8, mono_ping_stamp: i64, ping_stamp: u64) -> Message {
        MOsdPing {
            fsid: map.fsid,
            map_epoch: map.epoch,
            op,
            from: self.whoami,
            ping_stamp,
            up_from: map.osd(self.whoami).map_or(0, |o| o.up_from),
            mono_ping_stamp,
            mono_send_stamp: self.mono(),
            padding: self.padding(),
        }
        .to_message()
    }

    fn handle_ping(&self, side: Side, m: &Message) {
        let Some(conn) = m.conn.clone() else { return };
        let p = match MOsdPing::from_message(m) {
            Ok(p) => p,
            Err(e) => {
                log::warn!(target: "osd", "osd.{}: bad ping from {}: {e}", self.whoami, conn.peer_addr());
                return;
            }
        };
        let map = (self.map)();
        if p.fsid != map.fsid {
            log::debug!(target: "osd", "osd.{}: ping from another cluster", self.whoami);
            return;
        }
        match p.op {
            PING => {
                let _ = conn.send_message(self.ping(&map, PING_REPLY, p.mono_ping_stamp, p.ping_stamp));
                // Ceph's rule: a sender our map holds down since after its ping's epoch (or
                // does not know) is told so, and will fetch a newer map.
                let dead = match map.osd(p.from) {
                    None => true,
                    Some(o) => !o.up && o.down_at > p.map_epoch,
                };
                if dead {
                    let _ = conn.send_message(self.ping(&map, PING_YOU_DIED, p.mono_ping_stamp, p.ping_stamp));
                }
            }
            PING_REPLY => self.handle_reply(side, &p, &map),
            PING_YOU_DIED => {
                log::info!(
                    target: "osd",
                    "osd.{}: osd.{} says we are down in its map e{}",
                    self.whoami,
                    p.from,
                    p.map_epoch
                );
                self.kick();
            }
            other => log::debug!(target: "osd", "osd.{}: ping op {other} ignored", self.whoami),
        }
    }

    fn handle_reply(&self, side: Side, p: &MOsdPing, map: &OsdMap) {
        let now = Instant::now();
        let mut st = self.st.lock();
        let Some(peer) = st.peers.get_mut(&p.from) else { return };
        match side {
            Side::Front => peer.last_rx_front = Some(now),
            Side::Back => peer.last_rx_back = Some(now),
        }
        if let Some(s) = peer.pings.get_mut(&p.mono_ping_stamp) {
            match side {
                Side::Front => s.front = false,
                Side::Back => s.back = false,
            }
            if !s.front && !s.back {
                // Answered on both networks: this ping and every older one are settled.
                peer.pings = peer.pings.split_off(&(p.mono_ping_stamp + 1));
            }
        }
        if peer.reported && peer.failed_for(now).is_none() {
            peer.reported = false;
            let alive = MOsdFailure {
                fsid: map.fsid,
                from: self.whoami,
                target: p.from,
                target_addrs: peer.addrs,
                epoch: map.epoch,
                flags: 0,
                failed_for: 0,
            };
            drop(st);
            log::info!(target: "osd", "osd.{}: osd.{} answers again", self.whoami, p.from);
            let _ = self.monc.send_message(alive.to_message());
        }
    }

    /// Peers = every other OSD up in `map`; changed addresses start a fresh history.
    fn update_peers(&self, st: &mut State, map: &OsdMap) {
        st.peers.retain(|id, p| {
            let keep = map.osd(*id).is_some_and(|o| o.up && o.addrs == p.addrs);
            if !keep {
                p.close();
            }
            keep
        });
        for (id, o) in &map.osds {
            if *id != self.whoami && o.up && !st.peers.contains_key(id) {
                st.peers.insert(*id, Peer::new(o.addrs));
            }
        }
    }

    fn conn(&self, side: Side, slot: &mut Option<ConnectionRef>, addr: &EntityAddr) -> Option<ConnectionRef> {
        if let Some(c) = slot.as_ref().filter(|c| c.status() != ConnStatus::Closed) {
            return Some(c.clone());
        }
        let msgr = match side {
            Side::Front => &self.front,
            Side::Back => &self.back,
        };
        *slot = msgr.connect_to(EntityType::Osd, addr).ok();
        slot.clone()
    }

    /// One round: ping every peer on both networks, report the failed ones, re-boot if the map
    /// wrongly shows us down.
    /// Tells the monitor our disk is full, or no longer is, while the map says otherwise (as
    /// Ceph's OSD sends `MOSDFull` from its tick).
    fn report_full(&self, map: &OsdMap) {
        let Some(addrs) = *self.my_addrs.lock() else { return };
        let full = self.full.load(Ordering::Acquire);
        let Some(me) = map.osd(self.whoami).filter(|o| o.up && o.addrs == addrs) else {
            return;
        };
        if me.full == full {
            return;
        }
        let m = crate::types::hb_messages::MOsdFull {
            fsid: map.fsid,
            from: self.whoami,
            from_addrs: addrs,
            epoch: map.epoch,
            full,
        };
        if let Err(e) = self.monc.send_message(m.to_message()) {
            log::debug!(target: "osd", "osd.{}: telling the monitor we are full: {e}", self.whoami);
        }
    }

    /// For a peer hosted on our `HostedSet` (our heartbeat socket, another nonce): whether the
    /// set hosts it still. No socket is needed to ask, and N OSDs in one process need not ping
    /// each other over N² connections; an OSD the process stopped hosting (killed, without a
    /// mark-me-down) stops answering and is reported after the grace, as a silent one is.
    /// None for any other peer.
    fn cohosted(&self, peer: &OsdAddrs) -> Option<bool> {
        self.timer.as_ref()?;
        let mine = self.front.my_addrs().first()?.addr;
        (mine.is_some() && mine == peer.hb_front.addr).then(|| self.front.hosts_nonce(peer.hb_front.nonce))
    }

    fn round(&self) {
        let map = (self.map)();
        self.report_full(&map);
        let grace = Duration::from_secs(self.ctx.conf().get_i64("osd_heartbeat_grace").max(1) as u64);
        let now = Instant::now();
        let mut reports = Vec::new();
        let mut st = self.st.lock();
        self.update_peers(&mut st, &map);
        for (id, peer) in st.peers.iter_mut() {
            let local = self.cohosted(&peer.addrs);
            if peer.pings.len() < MAX_HISTORY {
                let stamp = self.mono();
                let wall = now_ns();
                peer.pings.insert(
                    stamp,
                    Sent {
                        deadline: now + grace,
                        front: true,
                        back: true,
                    },
                );
                peer.first_tx.get_or_insert(now);
                let addrs = peer.addrs;
                for (side, slot, addr) in [
                    (Side::Front, &mut peer.front, addrs.hb_front),
                    (Side::Back, &mut peer.back, addrs.hb_back),
                ] {
                    if local.is_some() {
                        break;
                    }
                    if let Some(c) = self.conn(side, slot, &addr) {
                        let _ = c.send_message(self.ping(&map, PING, stamp, wall));
                    }
                }
            }
            if local == Some(true) {
                // Answered as soon as asked: it is hosted here.
                peer.pings.clear();
                peer.last_rx_front = Some(now);
                peer.last_rx_back = Some(now);
            }
            if let Some(failed_for) = peer.failed_for(now) {
                if !peer.reported {
                    log::info!(
                        target: "osd",
                        "osd.{}: no reply from osd.{id} for {:.1} s (grace {} s): reporting it failed",
                        self.whoami,
                        failed_for.as_secs_f64(),
                        grace.as_secs()
                    );
                }
                peer.reported = true;
                reports.push(MOsdFailure {
                    fsid: map.fsid,
                    from: self.whoami,
                    target: *id,
                    target_addrs: peer.addrs,
                    epoch: map.epoch,
                    flags: FAILURE_FLAG_FAILED,
                    failed_for: failed_for.as_secs() as u32,
                });
            }
        }
        let me = *self.my_addrs.lock();
        let mine = map.osd(self.whoami).copied();
        if mine.is_none() && map.epoch > 0 && self.gave_up.lock().is_none() {
            // As Ceph's "map says i do not exist": never created, or removed (`osd rm`).
            let why = format!(
                "osd.{} does not exist in the osdmap (e{}): create it first (osd create {})",
                self.whoami, map.epoch, self.whoami
            );
            log::error!(target: "osd", "{why}");
            *self.gave_up.lock() = Some(why);
            self.stopping.store(true, Ordering::Release);
        }
        let marked_down = match (mine, me) {
            (Some(o), Some(a)) if o.up && o.addrs == a => {
                st.was_up = true;
                st.waiting_for_healthy = None;
                false
            }
            (Some(o), Some(_)) => st.was_up && !o.up && !self.stopping.load(Ordering::Acquire),
            _ => false,
        };
        if marked_down {
            st.was_up = false;
            let conf = self.ctx.conf();
            let (max, period) = (
                conf.get_i64("osd_max_markdown_count").max(0) as usize,
                Duration::from_secs(conf.get_i64("osd_max_markdown_period").max(0) as u64),
            );
            st.markdowns.retain(|t| now.duration_since(*t) < period);
            st.markdowns.push_back(now);
            if st.markdowns.len() > max {
                let why = format!(
                    "wrongly marked down {} times in the last {}s (osd_max_markdown_count {max}): not booting again",
                    st.markdowns.len(),
                    period.as_secs()
                );
                log::error!(target: "osd", "osd.{}: map e{}: {why}", self.whoami, map.epoch);
                *self.gave_up.lock() = Some(why);
                self.stopping.store(true, Ordering::Release);
            } else {
                log::warn!(
                    target: "osd",
                    "osd.{}: map e{} wrongly marked me down: booting again once my peers answer",
                    self.whoami,
                    map.epoch
                );
                st.waiting_for_healthy = Some(now);
            }
        }
        let reboot = match st.waiting_for_healthy {
            Some(since) => {
                let ratio = self
                    .ctx
                    .conf()
                    .get_f64("osd_heartbeat_min_healthy_ratio")
                    .clamp(0.0, 1.0);
                let fresh = |t: Option<Instant>| t.is_some_and(|t| t > since && now.duration_since(t) < grace);
                let healthy = st
                    .peers
                    .values()
                    .filter(|p| fresh(p.last_rx_front) && fresh(p.last_rx_back))
                    .count();
                let total = st.peers.len();
                let ok = total == 0 || healthy as f64 >= ratio * total as f64;
                if ok {
                    st.waiting_for_healthy = None;
                } else {
                    log::debug!(target: "osd", "osd.{}: waiting for healthy heartbeats: {healthy} of {total} peers", self.whoami);
                }
                ok
            }
            None => false,
        };
        drop(st);
        for r in reports {
            let _ = self.monc.send_message(r.to_message());
        }
        if reboot {
            log::warn!(target: "osd", "osd.{}: heartbeats healthy: booting again (e{})", self.whoami, map.epoch);
            let boot = self.boot.lock().clone();
            if let Some(mut b) = boot {
                b.boot_epoch = map.epoch;
                let _ = self.monc.send_message(b.to_message());
            }
        }
    }
}

struct HbDispatcher {
    inner: std::sync::Weak<Inner>,
    side: Side,
}

impl Dispatcher for HbDispatcher {
    fn ms_can_fast_dispatch(&self, m: &Message) -> bool {
        m.ty == MSG_OSD_PING
    }
    fn ms_fast_dispatch(&self, m: Message) {
        if let Some(i) = self.inner.upgrade() {
            i.handle_ping(self.side, &m);
        }
    }
}

fn hb_messenger(ctx: &Context, whoami: OsdId, bind: SocketAddr) -> Result<(Messenger, EntityAddr)> {
    let m = Messenger::new(ctx, &format!("osd.{whoami}"), None)?;
    super::hosted_set::hb_policies(&m);
    let a = m.bind(bind)?;
    Ok((m, a))
}

/// Where the heartbeat messengers come from.
pub enum HbNet {
    /// Its own, `hb_front` bound on the first address and `hb_back` on the second (port 0:
    /// any).
    Bind(SocketAddr, SocketAddr),
    /// The OSD's identities on a shared set's front and back messengers (running already),
    /// and the set's heartbeat thread.
    Hosted((Messenger, Messenger), Arc<HbTimer>),
}

/// The single `osd_srv_heartbt` thread of a `HostedSet`: one round for each of its OSDs, then
/// 0.5 s plus a random tenth-multiple of `osd_heartbeat_interval` (as each OSD's own thread
/// waits), or less when one of them asks (a new map, "you died").
pub struct HbTimer {
    members: Mutex<Vec<std::sync::Weak<Inner>>>,
    /// Held while rounds run: `remove` waits on it, so no round of a removed OSD is under way.
    running: Mutex<()>,
    kicked: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl HbTimer {
    /// Starts the thread; `interval` reads `osd_heartbeat_interval` each round.
    pub fn start(interval: impl Fn() -> u64 + Send + 'static) -> Result<Arc<HbTimer>> {
        let t = Arc::new(HbTimer {
            members: Mutex::new(Vec::new()),
            running: Mutex::new(()),
            kicked: Mutex::new(false),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let w = Arc::downgrade(&t);
        let h = crate::common::log::ThreadBuilder::new()
            .name("osd_srv_heartbt".into())
            .spawn(move || {
                let mut k: u64 = 0x9e37_79b9_7f4a_7c15;
                while let Some(t) = w.upgrade() {
                    if t.stop.load(Ordering::Acquire) {
                        return;
                    }
                    {
                        let _r = t.running.lock();
                        let members: Vec<Arc<Inner>> = t.members.lock().iter().filter_map(|m| m.upgrade()).collect();
                        for m in members {
                            // Each OSD's round logs to its own log.
                            let _log = crate::common::log::ThreadLogScope::enter(m.ctx.log());
                            m.round();
                        }
                    }
                    k ^= k << 13;
                    k ^= k >> 7;
                    k ^= k << 17;
                    let wait = Duration::from_millis(500 + (k % 10) * interval().clamp(1, 60) * 100);
                    let mut kicked = t.kicked.lock();
                    if !*kicked && !t.stop.load(Ordering::Acquire) {
                        t.cv.wait_for(&mut kicked, wait);
                    }
                    *kicked = false;
                }
            })
            .map_err(|e| Error::io(e, "spawning osd_srv_heartbt"))?;
        *t.thread.lock() = Some(h);
        Ok(t)
    }

    fn kick(&self) {
        *self.kicked.lock() = true;
        self.cv.notify_all();
    }

    fn add(&self, m: &Arc<Inner>) {
        self.members.lock().push(Arc::downgrade(m));
        self.kick();
    }

    /// Removes `m`, waiting for a round under way to end.
    fn remove(&self, m: &Arc<Inner>) {
        let _r = self.running.lock();
        self.members
            .lock()
            .retain(|x| x.upgrade().is_some_and(|x| !Arc::ptr_eq(&x, m)));
    }

    /// Stops the thread (after its OSDs stopped).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.kick();
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}

impl Heartbeat {
    /// Makes (or takes) `hb_front` and `hb_back`; `start` begins the rounds. The addresses go
    /// into the OSD's boot.
    pub fn new(
        ctx: &Context,
        whoami: OsdId,
        net: HbNet,
        map: MapSource,
        monc: Arc<MonClient>,
        full: Arc<AtomicBool>,
    ) -> Result<(Heartbeat, EntityAddr, EntityAddr)> {
        let (timer, (fm, fa), (bm, ba)) = match net {
            HbNet::Bind(front, back) => (
                None,
                hb_messenger(ctx, whoami, front)?,
                hb_messenger(ctx, whoami, back)?,
            ),
            HbNet::Hosted((f, b), timer) => {
                let (fa, ba) = (f.my_addrs()[0], b.my_addrs()[0]);
                (Some(timer), (f, fa), (b, ba))
            }
        };
        let own = timer.is_none();
        let inner = Arc::new(Inner {
            ctx: ctx.clone(),
            whoami,
            map,
            monc,
            boot: Mutex::new(None),
            front: fm,
            back: bm,
            my_addrs: Mutex::new(None),
            st: Mutex::new(State {
                peers: BTreeMap::new(),
                was_up: false,
                waiting_for_healthy: None,
                markdowns: Default::default(),
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            gave_up: Mutex::new(None),
            anchor: Instant::now(),
            timer,
            full,
        });
        for (m, side) in [(&inner.front, Side::Front), (&inner.back, Side::Back)] {
            m.add_dispatcher_head(Arc::new(HbDispatcher {
                inner: Arc::downgrade(&inner),
                side,
            }));
            if own {
                m.start()?;
            }
        }
        Ok((
            Heartbeat {
                inner,
                thread: Mutex::new(None),
            },
            fa,
            ba,
        ))
    }

    /// Starts the rounds; `addrs` and `boot` are what this OSD booted with.
    pub fn start(&self, addrs: OsdAddrs, boot: MOsdBoot) -> Result<()> {
        *self.inner.my_addrs.lock() = Some(addrs);
        *self.inner.boot.lock() = Some(boot);
        if let Some(t) = &self.inner.timer {
            t.add(&self.inner);
            return Ok(());
        }
        let inner = self.inner.clone();
        let t = crate::common::log::ThreadBuilder::new()
            .name("osd_srv_heartbt".into())
            .spawn(move || {
                let mut k: u64 = u64::from(inner.whoami as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                while !inner.stop.load(Ordering::Acquire) {
                    inner.round();
                    // 0.5 s + k/10 of the interval, k random in 0..=9 (Ceph's heartbeat_entry).
                    k ^= k << 13;
                    k ^= k >> 7;
                    k ^= k << 17;
                    let interval = inner.ctx.conf().get_i64("osd_heartbeat_interval").clamp(1, 60) as u64;
                    let wait = Duration::from_millis(500 + (k % 10) * interval * 100);
                    let mut st = inner.st.lock();
                    if !inner.stop.load(Ordering::Acquire) {
                        inner.wake.wait_for(&mut st, wait);
                    }
                }
            })
            .map_err(|e| Error::io(e, "spawning osd_srv_heartbt"))?;
        *self.thread.lock() = Some(t);
        Ok(())
    }

    /// A new map arrived: a round now would see it (peers added or gone, us marked down).
    pub fn notify_map(&self) {
        self.inner.kick();
    }

    /// From now on being marked down is expected (mark-me-down on the way out).
    /// Why the OSD gave up (marked down too often), once it has: it should stop.
    pub fn gave_up(&self) -> Option<String> {
        self.inner.gave_up.lock().clone()
    }

    pub fn set_stopping(&self) {
        self.inner.stopping.store(true, Ordering::Release);
    }

    /// The peers pinged now, and whether each is reported failed.
    pub fn peers(&self) -> Vec<(OsdId, bool)> {
        self.inner
            .st
            .lock()
            .peers
            .iter()
            .map(|(id, p)| (*id, p.reported))
            .collect()
    }

    /// Stops the thread and both messengers. Idempotent.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        if let Some(t) = &self.inner.timer {
            t.remove(&self.inner);
        }
        for p in self.inner.st.lock().peers.values_mut() {
            p.close();
        }
        self.inner.front.shutdown();
        self.inner.back.shutdown();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.shutdown();
    }
}
