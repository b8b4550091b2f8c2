//! `OsdManager`: the seed's "admin" process — many OSD instances hosted in one daemon, each a
//! [`HostedDaemon`] on its own `osd_thread`, started and stopped through the manager's admin
//! socket (`osd start|stop|restart|status|ls`), and the set it was told to run persisted, so
//! that a manager restarted after a crash brings the same instances back (glusterd's restore).

use super::instance::{HostedDaemon, InstanceArgs, InstanceCallbacks, InstanceState};
use crate::asok::Request;
use crate::common::error::{Error, Result};
use crate::common::formatter::FVal;
use crate::osd::hosted_set::HostedSet;
use crate::Context;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long `osd stop` and `osd restart` wait for an instance to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

struct Slot {
    d: Arc<HostedDaemon>,
    /// In the persisted set: started on request, or restored from the set.
    wanted: bool,
    restarts: u32,
    started: SystemTime,
    last_error: Option<String>,
}

struct Inner {
    conf: PathBuf,
    cluster: String,
    /// Where the set of instances to run is kept (`osds.json`).
    state_file: PathBuf,
    slots: Mutex<BTreeMap<i32, Slot>>,
    /// One admin command at a time changes the set (a start may take a while).
    ops: Mutex<()>,
    started: Instant,
    /// The messengers every instance is hosted on (`osd_manager_shared_messengers`).
    msgrs: Option<Arc<HostedSet>>,
}

/// The OSD manager of one process.
pub struct OsdManager {
    inner: Arc<Inner>,
    ctx: Context,
    asok_ids: Vec<u64>,
}

fn parse_id(r: &Request<'_>) -> Result<i32> {
    let v = r
        .args
        .get("id")
        .ok_or_else(|| Error::inval("missing id (an OSD number)"))?;
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim_start_matches("osd.").parse().ok(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| Error::inval(format!("'{v}' is not an OSD id")))
}

impl Inner {
    /// The ids to run, as last persisted.
    fn load(&self) -> Result<Vec<i32>> {
        match std::fs::read(&self.state_file) {
            Ok(b) => {
                let v: Value = serde_json::from_slice(&b).map_err(|e| {
                    Error::inval(format!("{}: not the manager's state: {e}", self.state_file.display()))
                })?;
                Ok(v["osds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_i64().and_then(|n| i32::try_from(n).ok()))
                    .collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(e, format!("reading {}", self.state_file.display()))),
        }
    }

    /// Persists the set atomically: a temp file written and synced, renamed over, the
    /// directory synced.
    fn save(&self, ids: &[i32]) -> Result<()> {
        use std::io::Write;
        let dir = self.state_file.parent().unwrap_or(Path::new("."));
        let tmp = self.state_file.with_extension("json.tmp");
        let body = json!({ "osds": ids }).to_string();
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.state_file)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| Error::io(e, format!("saving {}", self.state_file.display())))
    }

    fn persisted_ids(&self, slots: &BTreeMap<i32, Slot>) -> Vec<i32> {
        slots.iter().filter(|(_, s)| s.wanted).map(|(id, _)| *id).collect()
    }

    /// Starts osd.`id` (idempotent): the text for the reply. A failed start stays listed (its
    /// state says why); it joins the persisted set only if it started, or if it was restored
    /// from it (`restoring`).
    fn start(&self, id: i32, restoring: bool) -> Result<String> {
        let _one = self.ops.lock();
        if let Some(s) = self.slots.lock().get(&id) {
            match s.d.state().0 {
                InstanceState::Stopping => {
                    return Err(Error::new(
                        libc::EBUSY,
                        format!("osd.{id} is stopping: try again once it stopped"),
                    ))
                }
                st @ (InstanceState::Starting | InstanceState::Booting | InstanceState::Active) => {
                    return Ok(format!("osd.{id} is already running ({})", st.name()))
                }
                _ => {}
            }
        }
        // A failed or stopped instance is made again: a fresh context from the conf.
        let old = self.slots.lock().remove(&id);
        let restarts = old.as_ref().map_or(0, |s| s.restarts + 1);
        drop(old);
        let d = Arc::new(HostedDaemon::osd(
            InstanceArgs {
                cluster: self.cluster.clone(),
                // Each instance's pid file names the manager's process: `osdkit status` shows
                // where each OSD runs, and `osdkit stop` finds it.
                options: vec![("pid_file".into(), "$run_dir/$name.pid".into())],
                hosted_set: self.msgrs.clone(),
                ..InstanceArgs::new(id.to_string(), &self.conf)
            },
            InstanceCallbacks::default(),
        )?);
        let r = d.start();
        let mut slots = self.slots.lock();
        slots.insert(
            id,
            Slot {
                d,
                wanted: r.is_ok() || restoring,
                restarts,
                started: SystemTime::now(),
                last_error: r.as_ref().err().map(ToString::to_string),
            },
        );
        self.save(&self.persisted_ids(&slots))?;
        r.map(|_| format!("osd.{id} started"))
    }

    /// Stops osd.`id` and starts it again (its restart count goes up).
    fn restart(&self, id: i32) -> Result<String> {
        {
            let _one = self.ops.lock();
            let d = self
                .slots
                .lock()
                .get(&id)
                .map(|s| s.d.clone())
                .ok_or_else(|| Error::noent(format!("osd.{id} is not hosted here")))?;
            d.shutdown();
            d.join(Some(STOP_TIMEOUT))?;
        }
        self.start(id, true)
    }

    /// Stops osd.`id` and removes it from the set to run.
    fn stop(&self, id: i32) -> Result<String> {
        let _one = self.ops.lock();
        let slot = self
            .slots
            .lock()
            .remove(&id)
            .ok_or_else(|| Error::noent(format!("osd.{id} is not hosted here")))?;
        self.save(&self.persisted_ids(&self.slots.lock()))?;
        slot.d.shutdown();
        let st = slot.d.join(Some(STOP_TIMEOUT))?;
        Ok(format!("osd.{id} {}", st.name()))
    }

    fn status_of(&self, id: i32, s: &Slot) -> Value {
        let (state, since) = s.d.state();
        let (up, inn) =
            s.d.with_osd(|o| {
                let m = o.osdmap();
                (m.is_up(id), m.is_in(id))
            })
            .unwrap_or((false, false));
        let why = match &state {
            InstanceState::Failed(w) => Some(w.clone()),
            _ => s.last_error.clone(),
        };
        json!({
            "id": id,
            "state": state.name(),
            "state_for_secs": since.elapsed().as_secs_f64(),
            "up": up,
            "in": inn,
            "started": s.started.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "restarts": s.restarts,
            "last_error": why,
            "asok": s.d.asok_path().map(|p| p.display().to_string()),
        })
    }
}

impl OsdManager {
    /// A manager hosting the OSDs of `conf` (their own conf sections apply to each) for
    /// cluster `cluster`, keeping its set in `data_dir` (created), with its commands on `ctx`'s
    /// admin socket. Restores the instances the set names, logging any that fail.
    pub fn start(ctx: &Context, conf: &Path, cluster: &str, data_dir: &Path) -> Result<OsdManager> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(e, format!("creating {}", data_dir.display())))?;
        let c = ctx.conf();
        let msgrs = if c.get_bool("osd_manager_shared_messengers") {
            let public = super::instance::public_bind(c)?;
            let cluster = match c.get_str("cluster_addr").is_empty() {
                true => None,
                false => Some(crate::osd::cluster_ip(c, public)?),
            };
            let set = HostedSet::start(ctx, &format!("osd.{}", ctx.name().id), public, cluster)?;
            log::info!(target: "osd", "manager: OSD instances share messengers at {}", set.messengers().public.my_addrs()[0]);
            Some(Arc::new(set))
        } else {
            None
        };
        let inner = Arc::new(Inner {
            conf: conf.to_path_buf(),
            cluster: cluster.to_string(),
            state_file: data_dir.join("osds.json"),
            slots: Mutex::new(BTreeMap::new()),
            ops: Mutex::new(()),
            started: Instant::now(),
            msgrs,
        });
        let restore = inner.load()?;
        let mut asok_ids = Vec::new();
        type Cmd = fn(&Inner, &Request<'_>) -> Result<String>;
        let cmds: [(&str, &str, Cmd); 5] = [
            (
                "osd start name=id,type=CephInt,range=0",
                "start hosting osd.<id> (already running: success)",
                |i, r| i.start(parse_id(r)?, false),
            ),
            (
                "osd stop name=id,type=CephInt,range=0",
                "stop osd.<id> and forget it",
                |i, r| i.stop(parse_id(r)?),
            ),
            (
                "osd restart name=id,type=CephInt,range=0",
                "stop osd.<id> and start it again",
                |i, r| i.restart(parse_id(r)?),
            ),
            (
                "osd status name=id,type=CephInt,range=0,req=false",
                "state of one or every hosted OSD",
                |i, r| {
                    let slots = i.slots.lock();
                    let v = if r.args.contains_key("id") {
                        let id = parse_id(r)?;
                        let s = slots
                            .get(&id)
                            .ok_or_else(|| Error::noent(format!("osd.{id} is not hosted here")))?;
                        i.status_of(id, s)
                    } else {
                        json!({
                            "uptime_secs": i.started.elapsed().as_secs_f64(),
                            "shared_messengers": i.msgrs.as_ref().map(|m| m.messengers().public.my_addrs()[0].to_string()),
                            "osds": slots.iter().map(|(id, s)| i.status_of(*id, s)).collect::<Vec<_>>(),
                        })
                    };
                    Ok(r.render(&FVal::from(&v)))
                },
            ),
            ("osd ls", "the hosted OSD ids", |i, r| {
                let ids: Vec<i32> = i.slots.lock().keys().copied().collect();
                Ok(r.render(&FVal::from(&json!(ids))))
            }),
        ];
        for (desc, help, f) in cmds {
            let w = Arc::downgrade(&inner);
            asok_ids.push(ctx.register_command(
                desc,
                help,
                Arc::new(move |r: &Request<'_>| {
                    let i = w
                        .upgrade()
                        .ok_or_else(|| Error::new(libc::ESHUTDOWN, "the manager is stopping"))?;
                    f(&i, r)
                }),
            )?);
        }
        let m = OsdManager {
            inner,
            ctx: ctx.clone(),
            asok_ids,
        };
        for id in restore {
            match m.inner.start(id, true) {
                Ok(s) => log::info!(target: "osd", "manager: restored: {s}"),
                Err(e) => log::error!(target: "osd", "manager: restoring osd.{id}: {e}"),
            }
        }
        Ok(m)
    }

    /// The hosted ids and their states.
    pub fn states(&self) -> Vec<(i32, InstanceState)> {
        self.inner
            .slots
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.d.state().0))
            .collect()
    }

    /// Stops every instance (the set stays persisted: a manager started again restores it).
    pub fn shutdown(&self) {
        for id in &self.asok_ids {
            self.ctx.admin_socket().unregister_command(*id);
        }
        let all: Vec<Arc<HostedDaemon>> = self.inner.slots.lock().values().map(|s| s.d.clone()).collect();
        for d in &all {
            d.shutdown();
        }
        for d in &all {
            let _ = d.join(Some(STOP_TIMEOUT));
        }
        self.inner.slots.lock().clear();
        if let Some(m) = &self.inner.msgrs {
            m.shutdown();
        }
    }
}
