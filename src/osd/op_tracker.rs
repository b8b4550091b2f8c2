//! `OpTracker`: the ops a daemon is working on, with the time of each step, as Ceph's
//! `TrackedOp`/`OpTracker` keep them for `dump_ops_in_flight`, `dump_historic_ops` and
//! `dump_blocked_ops`.
//!
//! An op is registered when it arrives (`create`), marks events as it moves (`queued_for_pg`,
//! `reached_pg`, `started`, `commit_sent`, ...), and moves to the history when its handle is
//! finished or dropped. The history keeps the last `osd_op_history_size` ops younger than
//! `osd_op_history_duration`; an op in flight for longer than `osd_op_complaint_time` is blocked.

use crate::common::formatter::FVal;
use crate::common::log::format_stamp;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

struct Event {
    wall: SystemTime,
    what: String,
}

struct OpState {
    events: Vec<Event>,
    done: Option<Instant>,
}

pub struct TrackedOp {
    seq: u64,
    description: String,
    initiated: Instant,
    initiated_wall: SystemTime,
    state: Mutex<OpState>,
}

impl TrackedOp {
    fn flag_point(st: &OpState) -> String {
        st.events.last().map_or_else(|| "initiated".into(), |e| e.what.clone())
    }

    fn dump(&self, now: Instant) -> FVal {
        let st = self.state.lock();
        let end = st.done.unwrap_or(now);
        let secs = |d: Duration| FVal::F64(d.as_secs_f64());
        let events = std::iter::once(
            FVal::obj()
                .with("event", FVal::str("initiated"))
                .with("time", FVal::str(format_stamp(self.initiated_wall))),
        )
        .chain(st.events.iter().map(|e| {
            FVal::obj()
                .with("event", FVal::str(&e.what))
                .with("time", FVal::str(format_stamp(e.wall)))
        }))
        .collect();
        FVal::obj()
            .with("description", FVal::str(&self.description))
            .with("initiated_at", FVal::str(format_stamp(self.initiated_wall)))
            .with("age", secs(now.duration_since(self.initiated)))
            .with("duration", secs(end.duration_since(self.initiated)))
            .with(
                "type_data",
                FVal::obj()
                    .with("flag_point", FVal::str(Self::flag_point(&st)))
                    .with("events", FVal::Arr(events)),
            )
    }
}

/// Limits, from `osd_op_history_size`, `osd_op_history_duration`, `osd_op_complaint_time`.
#[derive(Debug, Clone, Copy)]
pub struct TrackerLimits {
    pub history_size: usize,
    pub history_duration: Duration,
    pub complaint_time: Duration,
}

impl Default for TrackerLimits {
    fn default() -> Self {
        TrackerLimits {
            history_size: 20,
            history_duration: Duration::from_secs(600),
            complaint_time: Duration::from_secs(30),
        }
    }
}

struct Inner {
    in_flight: Mutex<BTreeMap<u64, Weak<TrackedOp>>>,
    history: Mutex<VecDeque<Arc<TrackedOp>>>,
    limits: Mutex<TrackerLimits>,
    next_seq: AtomicU64,
}

/// Cheap to clone; clones share the tracker.
#[derive(Clone)]
pub struct OpTracker {
    inner: Arc<Inner>,
}

/// The handle of an op in flight: marks its events; finishing (or dropping) it moves the op
/// to the history.
pub struct OpRef {
    op: Arc<TrackedOp>,
    tracker: Weak<Inner>,
}

impl OpRef {
    /// Records that the op reached `what` (Ceph's `mark_event`).
    pub fn mark_event(&self, what: &str) {
        self.op.state.lock().events.push(Event {
            wall: SystemTime::now(),
            what: what.into(),
        });
    }
    pub fn seq(&self) -> u64 {
        self.op.seq
    }
    /// How long the op has been in flight.
    pub fn age(&self) -> Duration {
        self.op.initiated.elapsed()
    }
    /// The op is done: it leaves the in-flight list for the history.
    pub fn finish(self) {}
}

impl Drop for OpRef {
    fn drop(&mut self) {
        let now = Instant::now();
        {
            let mut st = self.op.state.lock();
            st.events.push(Event {
                wall: SystemTime::now(),
                what: "done".into(),
            });
            st.done = Some(now);
        }
        if let Some(t) = self.tracker.upgrade() {
            t.in_flight.lock().remove(&self.op.seq);
            let limits = *t.limits.lock();
            let mut h = t.history.lock();
            h.push_back(self.op.clone());
            trim(&mut h, limits, now);
        }
    }
}

fn trim(h: &mut VecDeque<Arc<TrackedOp>>, limits: TrackerLimits, now: Instant) {
    while h.len() > limits.history_size {
        h.pop_front();
    }
    while h.front().is_some_and(|op| {
        op.state
            .lock()
            .done
            .is_some_and(|d| now.duration_since(d) > limits.history_duration)
    }) {
        h.pop_front();
    }
}

impl Default for OpTracker {
    fn default() -> Self {
        Self::new(TrackerLimits::default())
    }
}

impl OpTracker {
    pub fn new(limits: TrackerLimits) -> Self {
        OpTracker {
            inner: Arc::new(Inner {
                in_flight: Mutex::new(BTreeMap::new()),
                history: Mutex::new(VecDeque::new()),
                limits: Mutex::new(limits),
                next_seq: AtomicU64::new(1),
            }),
        }
    }

    /// Limits from a context's options (`osd_op_history_size`, `osd_op_history_duration`,
    /// `osd_op_complaint_time`).
    pub fn from_conf(conf: &crate::common::config::Config) -> Self {
        Self::new(TrackerLimits {
            history_size: conf.get_u64("osd_op_history_size") as usize,
            history_duration: Duration::from_secs(conf.get_u64("osd_op_history_duration")),
            complaint_time: Duration::try_from_secs_f64(conf.get_f64("osd_op_complaint_time")).unwrap_or_default(),
        })
    }

    pub fn set_limits(&self, l: TrackerLimits) {
        *self.inner.limits.lock() = l;
    }

    /// Registers an op that just arrived (Ceph's `create_request`).
    pub fn create(&self, description: impl Into<String>) -> OpRef {
        let op = Arc::new(TrackedOp {
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            description: description.into(),
            initiated: Instant::now(),
            initiated_wall: SystemTime::now(),
            state: Mutex::new(OpState {
                events: Vec::new(),
                done: None,
            }),
        });
        self.inner.in_flight.lock().insert(op.seq, Arc::downgrade(&op));
        OpRef {
            op,
            tracker: Arc::downgrade(&self.inner),
        }
    }

    fn live(&self) -> Vec<Arc<TrackedOp>> {
        self.inner.in_flight.lock().values().filter_map(Weak::upgrade).collect()
    }

    pub fn num_in_flight(&self) -> usize {
        self.inner.in_flight.lock().len()
    }

    /// `dump_ops_in_flight`: `{"ops": [...], "num_ops": N}`, oldest first.
    pub fn dump_ops_in_flight(&self) -> FVal {
        let now = Instant::now();
        let ops: Vec<FVal> = self.live().iter().map(|op| op.dump(now)).collect();
        let n = ops.len() as u64;
        FVal::obj().with("ops", FVal::Arr(ops)).with("num_ops", FVal::U64(n))
    }

    /// `dump_blocked_ops`: the ops in flight for longer than the complaint time.
    pub fn dump_blocked_ops(&self) -> FVal {
        let now = Instant::now();
        let limit = self.inner.limits.lock().complaint_time;
        let ops: Vec<FVal> = self
            .live()
            .iter()
            .filter(|op| now.duration_since(op.initiated) > limit)
            .map(|op| op.dump(now))
            .collect();
        let n = ops.len() as u64;
        FVal::obj()
            .with("ops", FVal::Arr(ops))
            .with("complaint_time", FVal::F64(limit.as_secs_f64()))
            .with("num_blocked_ops", FVal::U64(n))
    }

    /// `dump_historic_ops`: the last finished ops, oldest first.
    pub fn dump_historic_ops(&self) -> FVal {
        let now = Instant::now();
        let limits = *self.inner.limits.lock();
        let mut h = self.inner.history.lock();
        trim(&mut h, limits, now);
        let ops: Vec<FVal> = h.iter().map(|op| op.dump(now)).collect();
        FVal::obj()
            .with("size", FVal::U64(limits.history_size as u64))
            .with("duration", FVal::F64(limits.history_duration.as_secs_f64()))
            .with("ops", FVal::Arr(ops))
    }

    /// Registers `dump_ops_in_flight` (alias `ops`), `dump_blocked_ops` and `dump_historic_ops`
    /// on `ctx`'s admin socket. Returns the command ids (for unregistering).
    pub fn register_commands(&self, ctx: &crate::Context) -> crate::Result<Vec<u64>> {
        type Dump = fn(&OpTracker) -> FVal;
        let cmds: [(&str, &str, Dump); 4] = [
            (
                "dump_ops_in_flight",
                "show the ops currently in flight",
                OpTracker::dump_ops_in_flight,
            ),
            ("ops", "show the ops currently in flight", OpTracker::dump_ops_in_flight),
            (
                "dump_blocked_ops",
                "show the blocked ops currently in flight",
                OpTracker::dump_blocked_ops,
            ),
            ("dump_historic_ops", "show recent ops", OpTracker::dump_historic_ops),
        ];
        let mut ids = Vec::new();
        for (name, help, f) in cmds {
            let t = self.clone();
            ids.push(ctx.register_command(
                name,
                help,
                Arc::new(move |r: &crate::asok::Request<'_>| Ok(r.render(&f(&t)))),
            )?);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::formatter::{render, Format};

    fn json(v: &FVal) -> serde_json::Value {
        serde_json::from_str(&render(v, Format::Json)).unwrap()
    }

    #[test]
    fn ops_in_flight_show_their_events_and_move_to_the_history_when_done() {
        let t = OpTracker::default();
        let a = t.create("osd_op(client.4123.0:1 1.7 obj-a [write 0~4096])");
        a.mark_event("queued_for_pg");
        a.mark_event("reached_pg");
        let b = t.create("osd_op(client.4123.0:2 1.7 obj-b [read 0~4096])");
        let v = json(&t.dump_ops_in_flight());
        assert_eq!(v["num_ops"], 2);
        assert_eq!(
            v["ops"][0]["description"],
            "osd_op(client.4123.0:1 1.7 obj-a [write 0~4096])"
        );
        assert_eq!(v["ops"][0]["type_data"]["flag_point"], "reached_pg");
        let events: Vec<&str> = v["ops"][0]["type_data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["initiated", "queued_for_pg", "reached_pg"]);
        assert!(v["ops"][0]["initiated_at"].as_str().unwrap().ends_with("+0000"));
        assert_eq!(v["ops"][1]["type_data"]["flag_point"], "initiated");
        a.finish();
        assert_eq!(json(&t.dump_ops_in_flight())["num_ops"], 1);
        let h = json(&t.dump_historic_ops());
        assert_eq!(h["size"], 20);
        assert_eq!(h["ops"].as_array().unwrap().len(), 1);
        assert_eq!(h["ops"][0]["type_data"]["flag_point"], "done");
        drop(b);
        assert_eq!(t.num_in_flight(), 0);
        assert_eq!(json(&t.dump_historic_ops())["ops"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn history_keeps_the_last_n_and_blocked_ops_are_the_old_ones() {
        let t = OpTracker::new(TrackerLimits {
            history_size: 3,
            history_duration: Duration::from_secs(600),
            complaint_time: Duration::from_millis(30),
        });
        for i in 0..5 {
            t.create(format!("op {i}")).finish();
        }
        let h = json(&t.dump_historic_ops());
        let names: Vec<&str> = h["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["description"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["op 2", "op 3", "op 4"]);
        let slow = t.create("slow");
        assert_eq!(json(&t.dump_blocked_ops())["num_blocked_ops"], 0);
        std::thread::sleep(Duration::from_millis(50));
        let fresh = t.create("fresh");
        let b = json(&t.dump_blocked_ops());
        assert_eq!(b["num_blocked_ops"], 1);
        assert_eq!(b["ops"][0]["description"], "slow");
        assert!(b["ops"][0]["age"].as_f64().unwrap() >= 0.05);
        drop((slow, fresh));
    }

    #[test]
    fn old_history_expires() {
        let t = OpTracker::new(TrackerLimits {
            history_size: 10,
            history_duration: Duration::from_millis(20),
            complaint_time: Duration::from_secs(30),
        });
        t.create("old").finish();
        std::thread::sleep(Duration::from_millis(40));
        t.create("new").finish();
        let h = json(&t.dump_historic_ops());
        let names: Vec<&str> = h["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["description"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["new"]);
    }

    #[test]
    fn the_dumps_are_admin_socket_commands() {
        let ctx = crate::Context::new("osd.9", None).unwrap();
        ctx.set_option("admin_socket", "").unwrap();
        ctx.set_option("log_file", "").unwrap();
        let t = OpTracker::from_conf(ctx.conf());
        t.register_commands(&ctx).unwrap();
        let _op = t.create("osd_op(client.1.0:7 2.3 x [stat])");
        let r = ctx
            .admin_socket()
            .execute(br#"{"prefix": "dump_ops_in_flight", "format": "json"}"#);
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["num_ops"], 1);
        let r = ctx.admin_socket().execute(br#"{"prefix": "dump_historic_ops"}"#);
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["size"], 20, "osd_op_history_size default");
        let r = ctx.admin_socket().execute(br#"{"prefix": "dump_blocked_ops"}"#);
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["complaint_time"], 30.0, "osd_op_complaint_time default");
    }
}
