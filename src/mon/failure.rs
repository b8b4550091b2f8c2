//! The monitor's side of failure detection (reference §9.4-9.5): failure reports from OSDs,
//! marking an OSD down once enough reporters agree and the grace has passed, mark-me-down from a
//! cleanly stopping OSD, marking out an OSD that stayed down `mon_osd_down_out_interval`, and
//! an OSD's own report that its disk is full (`MOSDFull`, recorded in the map).
//!
//! Reporters are counted by `mon_osd_reporter_subtree_level`: `osd` counts each reporting OSD,
//! anything else (the default `host`) counts the hosts the reporters named in their boot
//! metadata, as Ceph counts CRUSH subtrees. There is no CRUSH map here, so `host` is the only
//! grouping above the OSD; vstart clusters, like Ceph's, set the level to `osd`.
//!
//! The failure time is the first reporter's: a target is down once it has failed for
//! `osd_heartbeat_grace` since the earliest `failed_since` (report time − `failed_for`) among
//! its reporters. Ceph's laggy-history grace adjustment (`mon_osd_adjust_heartbeat_grace`) is
//! not done.

use super::{Core, Inner};
use crate::msgr::message::Message;
use crate::types::hb_messages::{MOsdFailure, MOsdFull, MOsdMarkMeDown};
use crate::types::messages::FrontMessage;
use crate::types::osdmap::OsdId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// `m` as `T`, or None after a warning naming `what`: a malformed report changes nothing.
fn decode<T: FrontMessage>(m: &Message, what: &str) -> Option<T> {
    T::from_message(m)
        .map_err(|e| log::warn!(target: "mon", "malformed {what}: {}", e.msg))
        .ok()
}

/// Failure state kept by the monitor (not persisted: reporters re-send while a peer fails).
#[derive(Default)]
pub(super) struct Failures {
    /// Target → reporter → when the reporter says the target stopped answering.
    reports: BTreeMap<OsdId, BTreeMap<OsdId, Instant>>,
    /// When each down OSD went down, for `mon_osd_down_out_interval`.
    down_since: BTreeMap<OsdId, Instant>,
    /// Each OSD's host, from its boot metadata.
    pub(super) hosts: BTreeMap<OsdId, String>,
    /// OSDs the monitor marked out itself (down too long): marked in again when they boot, as
    /// Ceph's `mon_osd_auto_mark_auto_out_in` does. An operator's `osd out` stays.
    pub(super) auto_out: BTreeSet<OsdId>,
}

impl Failures {
    /// Called after every committed epoch: OSDs that went down start their down-out clock,
    /// OSDs that came up lose it and any reports against them (and from their old life).
    pub(super) fn note_epoch(&mut self, down: &BTreeSet<OsdId>, up: impl Iterator<Item = OsdId>) {
        let now = Instant::now();
        for id in down {
            self.down_since.insert(*id, now);
            self.reports.remove(id);
            for r in self.reports.values_mut() {
                r.remove(id);
            }
        }
        for id in up {
            self.down_since.remove(&id);
            self.reports.remove(&id);
        }
        self.reports.retain(|_, r| !r.is_empty());
    }

    /// How many distinct subtrees (OSDs, or their hosts) `reporters` come from.
    fn subtrees(&self, reporters: &BTreeMap<OsdId, Instant>, level: &str) -> usize {
        if level == "osd" {
            return reporters.len();
        }
        reporters
            .keys()
            .map(|r| self.hosts.get(r).cloned().unwrap_or_else(|| format!("osd.{r}")))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// What the failure options say now (read per check: they may change at runtime).
struct Rules {
    grace: Duration,
    min_reporters: usize,
    level: String,
    down_out: Option<Duration>,
}

impl Core {
    fn rules(&self) -> Rules {
        let conf = self.ctx.conf();
        let down_out = conf.get_i64("mon_osd_down_out_interval");
        Rules {
            grace: Duration::from_secs(conf.get_i64("osd_heartbeat_grace").max(1) as u64),
            min_reporters: conf.get_u64("mon_osd_min_down_reporters").max(1) as usize,
            level: conf.get_str("mon_osd_reporter_subtree_level"),
            down_out: (down_out > 0).then(|| Duration::from_secs(down_out as u64)),
        }
    }

    pub(super) fn handle_failure(&self, m: &Message) {
        let Some(f) = decode::<MOsdFailure>(m, "MOSDFailure") else {
            return;
        };
        let mut g = self.inner.lock();
        let map = &g.state.map;
        // A report about another incarnation of the target, or from a reporter the map does
        // not hold up, says nothing about the OSD that is up now.
        let current = map.osd(f.target).is_some_and(|o| o.up && o.addrs == f.target_addrs);
        if f.fsid != map.fsid || !current || !map.is_up(f.from) || f.from == f.target {
            log::debug!(
                target: "mon",
                "ignoring failure report of osd.{} from osd.{} (e{})",
                f.target,
                f.from,
                f.epoch
            );
            return;
        }
        if f.is_failed() {
            let since = Instant::now()
                .checked_sub(Duration::from_secs(u64::from(f.failed_for)))
                .unwrap_or_else(Instant::now);
            let first = !g
                .failures
                .reports
                .get(&f.target)
                .is_some_and(|r| r.contains_key(&f.from));
            if first {
                log::info!(
                    target: "mon",
                    "osd.{} reported failed by osd.{} (failed for {} s)",
                    f.target,
                    f.from,
                    f.failed_for
                );
            }
            g.failures.reports.entry(f.target).or_default().insert(f.from, since);
            self.check_failures(&mut g);
        } else if let Some(r) = g.failures.reports.get_mut(&f.target) {
            if r.remove(&f.from).is_some() {
                log::info!(target: "mon", "osd.{} is alive again for osd.{}", f.target, f.from);
            }
            if r.is_empty() {
                g.failures.reports.remove(&f.target);
            }
        }
    }

    pub(super) fn handle_mark_me_down(&self, m: &Message) {
        let Some(conn) = m.conn.clone() else { return };
        let Some(req) = decode::<MOsdMarkMeDown>(m, "MOSDMarkMeDown") else {
            return;
        };
        let mut g = self.inner.lock();
        let map = &g.state.map;
        if req.fsid != map.fsid {
            log::warn!(target: "mon", "ignoring mark-me-down of osd.{} for another cluster", req.target);
            return;
        }
        let current = map.osd(req.target).is_some_and(|o| o.up && o.addrs == req.target_addrs);
        if current {
            let mut inc = map.next_incremental();
            inc.new_down.insert(req.target);
            match self.propose(&mut g, inc) {
                Ok(e) => log::info!(target: "mon", "osd.{} marked itself down (e{e})", req.target),
                Err(e) => {
                    log::error!(target: "mon", "marking osd.{} down: {}", req.target, e.msg);
                    return;
                }
            }
        }
        // Acked also when it was down already: the OSD waits for this to finish stopping.
        if req.request_ack {
            let ack = MOsdMarkMeDown {
                request_ack: false,
                epoch: g.state.map.epoch,
                ..req
            };
            let _ = conn.send_message(ack.to_message());
        }
    }

    /// An OSD says its disk is full (or no longer is): recorded in the map when it is up at the
    /// addresses it reports from and the state changed.
    pub(super) fn handle_full(&self, m: &Message) {
        let Some(req) = decode::<MOsdFull>(m, "MOSDFull") else {
            return;
        };
        let mut g = self.inner.lock();
        let map = &g.state.map;
        if req.fsid != map.fsid {
            log::warn!(target: "mon", "ignoring MOSDFull of osd.{} for another cluster", req.from);
            return;
        }
        let Some(o) = map.osd(req.from).filter(|o| o.up && o.addrs == req.from_addrs) else {
            log::debug!(target: "mon", "ignoring MOSDFull of osd.{}: not up at its addresses", req.from);
            return;
        };
        if o.full == req.full {
            return;
        }
        let mut inc = map.next_incremental();
        inc.new_full.insert(req.from, req.full);
        match self.propose(&mut g, inc) {
            Ok(e) => log::info!(
                target: "mon",
                "osd.{} is {} (e{e})",
                req.from,
                if req.full { "full" } else { "no longer full" }
            ),
            Err(e) => log::error!(target: "mon", "recording osd.{} full: {}", req.from, e.msg),
        }
    }

    /// Marks down every target with enough reporters whose failure outlasted the grace, and
    /// out every OSD down longer than `mon_osd_down_out_interval`. One epoch for all of it.
    pub(super) fn check_failures(&self, g: &mut Inner) {
        let rules = self.rules();
        let now = Instant::now();
        let map = &g.state.map;
        let mut inc = map.next_incremental();
        for (target, reporters) in &g.failures.reports {
            let live: BTreeMap<OsdId, Instant> = reporters
                .iter()
                .filter(|(r, _)| map.is_up(**r))
                .map(|(r, t)| (*r, *t))
                .collect();
            let Some(first) = live.values().min() else { continue };
            let failed_for = now.saturating_duration_since(*first);
            let subtrees = g.failures.subtrees(&live, &rules.level);
            if map.is_up(*target) && failed_for >= rules.grace && subtrees >= rules.min_reporters {
                log::info!(
                    target: "mon",
                    "osd.{target} failed ({subtrees} reporters from different {}, after {:.1} s >= grace {} s): marking down",
                    rules.level,
                    failed_for.as_secs_f64(),
                    rules.grace.as_secs()
                );
                inc.new_down.insert(*target);
            }
        }
        let mut auto_out = Vec::new();
        if let Some(limit) = rules.down_out {
            for (id, since) in &g.failures.down_since {
                if map.osd(*id).is_some_and(|o| !o.up && o.in_) && now.saturating_duration_since(*since) >= limit {
                    log::info!(target: "mon", "osd.{id} down for {} s: marking out", limit.as_secs());
                    inc.new_out.insert(*id);
                    auto_out.push(*id);
                }
            }
        }
        if inc.new_down.is_empty() && inc.new_out.is_empty() {
            return;
        }
        match self.propose(g, inc) {
            Ok(_) => g.failures.auto_out.extend(auto_out),
            Err(e) => log::error!(target: "mon", "failure handling epoch: {}", e.msg),
        }
    }
}
