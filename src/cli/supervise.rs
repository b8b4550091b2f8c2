//! `osdkit supervise -c CONF -i ID [--manager NAME | --asok PATH]`: the seed's "pseudo"
//! process, one per OSD id. It asks an `osdkit manager` to start osd.ID (up to
//! `supervise_start_tries` times, `supervise_start_interval` apart), then checks `osd status ID`
//! every `supervise_status_interval`; when the instance failed or vanished (also when the manager
//! came back without it) it starts it again, with a back-off and at most
//! `supervise_restart_burst` restarts per `supervise_restart_window` (systemd's start limit),
//! logging why each time. An unreachable manager is retried at the status interval and
//! reported, never in a busy loop. Its own admin socket answers `status`. SIGTERM stops it and
//! leaves the OSD running, unless `supervise_stop_instance`.

use crate::asok::client::AdminSocketClient;
use crate::asok::Request;
use crate::common::formatter::FVal;
use crate::{Context, Error, Result};
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long one request to the manager may take (a start waits for the instance to be made).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Seen {
    /// The instance's state as the manager last reported it ("unreachable" when it did not
    /// answer, "absent" when it did not host the instance).
    state: String,
    manager_reachable: bool,
    restarts: u32,
    last_restart_reason: Option<String>,
    last_error: Option<String>,
    gave_up: Option<String>,
    checks: u64,
    last_check: Option<SystemTime>,
}

struct Shared {
    id: i32,
    manager: PathBuf,
    ctx: Context,
    seen: Mutex<Seen>,
    stop: Mutex<bool>,
    wake: Condvar,
}

fn secs(ctx: &Context, key: &str) -> Duration {
    Duration::from_secs_f64(ctx.conf().get_f64(key).clamp(0.01, 86_400.0))
}

impl Shared {
    /// One request to the manager. The outer error: the manager did not answer (no socket,
    /// timeout); the inner one: it answered with Ceph's `ERROR: (errno) text`.
    fn request(&self, words: &str) -> Result<Result<String>> {
        let w: Vec<String> = words.split(' ').map(String::from).collect();
        let r = AdminSocketClient::new(&self.manager)
            .with_timeout(REQUEST_TIMEOUT)
            .run_words(&w, Some("json"))?;
        Ok(match crate::asok::client::reply_error(&r) {
            Some(e) => Err(e),
            None => Ok(r),
        })
    }

    /// `request`, either failure as the error.
    fn ask(&self, words: &str) -> Result<String> {
        self.request(words)?
    }

    /// Sleeps `d` unless asked to stop; true when asked to stop.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stop = self.stop.lock();
        while !*stop {
            if self.wake.wait_until(&mut stop, deadline).timed_out() {
                break;
            }
        }
        *stop
    }

    /// The first start: up to `supervise_start_tries` requests. Err: why it never started.
    fn first_start(&self) -> Result<String> {
        let tries = self.ctx.conf().get_u64("supervise_start_tries").max(1);
        let interval = secs(&self.ctx, "supervise_start_interval");
        let mut last = Error::inval("no start request sent");
        for n in 1..=tries {
            match self.ask(&format!("osd start {}", self.id)) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    log::warn!(target: "osd", "supervise osd.{}: start request {n} of {tries}: {e}", self.id);
                    last = e;
                }
            }
            if n < tries && self.sleep(interval) {
                break;
            }
        }
        Err(last)
    }

    /// Asks the manager for the instance's state: `Ok(Some(state))`, `Ok(None)` when the manager
    /// does not host it, `Err` when the manager did not answer.
    fn state(&self) -> Result<Option<String>> {
        match self.request(&format!("osd status {}", self.id))? {
            Ok(s) => {
                let v: Value =
                    serde_json::from_str(&s).map_err(|e| Error::new(libc::EIO, format!("bad status: {e}")))?;
                Ok(Some(v["state"].as_str().unwrap_or("?").to_string()))
            }
            // The manager answered that it does not host the instance.
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The watch loop: status checks, restarts within the start limit.
    fn run(&self) {
        let check = secs(&self.ctx, "supervise_status_interval");
        let base_backoff = secs(&self.ctx, "supervise_start_interval");
        let burst = self.ctx.conf().get_u64("supervise_restart_burst") as usize;
        let window = secs(&self.ctx, "supervise_restart_window");
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut backoff = base_backoff;
        while !self.sleep(check) {
            let observed = self.state();
            let reason = {
                let mut s = self.seen.lock();
                s.checks += 1;
                s.last_check = Some(SystemTime::now());
                match &observed {
                    Err(e) => {
                        if s.manager_reachable || s.checks == 1 {
                            log::warn!(target: "osd", "supervise osd.{}: the manager does not answer: {e}", self.id);
                        }
                        s.manager_reachable = false;
                        s.state = "unreachable".into();
                        s.last_error = Some(e.to_string());
                        None
                    }
                    Ok(st) => {
                        if !s.manager_reachable {
                            log::info!(target: "osd", "supervise osd.{}: the manager answers again", self.id);
                        }
                        s.manager_reachable = true;
                        s.state = st.clone().unwrap_or_else(|| "absent".into());
                        match st.as_deref() {
                            None => Some("the manager does not host it".to_string()),
                            Some("failed") | Some("stopped") => Some(format!("it is {}", s.state)),
                            _ => {
                                backoff = base_backoff;
                                None
                            }
                        }
                    }
                }
            };
            let Some(reason) = reason else { continue };
            let now = Instant::now();
            restarts.retain(|t| now.duration_since(*t) < window);
            if restarts.len() >= burst {
                let why = format!(
                    "{} restarts within {:?}: not restarting any more ({reason})",
                    restarts.len(),
                    window
                );
                let mut s = self.seen.lock();
                if s.gave_up.is_none() {
                    log::error!(target: "osd", "supervise osd.{}: {why}", self.id);
                    s.gave_up = Some(why);
                }
                continue;
            }
            log::warn!(target: "osd", "supervise osd.{}: restarting: {reason}", self.id);
            restarts.push_back(now);
            let r = self.ask(&format!("osd start {}", self.id));
            {
                let mut s = self.seen.lock();
                s.restarts += 1;
                s.last_restart_reason = Some(reason);
                s.last_error = r.as_ref().err().map(ToString::to_string);
            }
            if let Err(e) = r {
                log::warn!(target: "osd", "supervise osd.{}: restart failed: {e}; next try in {backoff:?}", self.id);
                if self.sleep(backoff) {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
    }

    fn status(&self) -> Value {
        let s = self.seen.lock();
        json!({
            "osd": self.id,
            "manager": self.manager.display().to_string(),
            "manager_reachable": s.manager_reachable,
            "state": s.state,
            "restarts": s.restarts,
            "last_restart_reason": s.last_restart_reason,
            "last_error": s.last_error,
            "gave_up": s.gave_up,
            "checks": s.checks,
            "last_check": s.last_check.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
        })
    }
}

/// The manager's admin socket path: `--asok`, else `$run_dir/$cluster-client.manager-NAME.asok`.
pub fn manager_asok(ctx: &Context, manager: &str, asok: Option<&Path>) -> PathBuf {
    match asok {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(ctx.conf().get_str("run_dir"))
            .join(format!("{}-client.manager-{manager}.asok", ctx.cluster())),
    }
}

/// The supervisor of osd.`id` on `ctx` (started): first start, then the watch thread. What
/// `run_daemon` gets back stops it.
pub fn start(ctx: &Context, id: i32, manager: PathBuf) -> Result<crate::daemon::host::Stopper> {
    let sh = Arc::new(Shared {
        id,
        manager,
        ctx: ctx.clone(),
        seen: Mutex::new(Seen::default()),
        stop: Mutex::new(false),
        wake: Condvar::new(),
    });
    let s2 = sh.clone();
    let cmd = ctx.register_command(
        "status",
        "what this supervisor last saw of its OSD and the manager",
        Arc::new(move |r: &Request<'_>| Ok(r.render(&FVal::from(&s2.status())))),
    )?;
    let started = sh.first_start()?;
    log::info!(target: "osd", "supervise osd.{id}: {started}");
    {
        let mut s = sh.seen.lock();
        s.manager_reachable = true;
        s.state = "starting".into();
    }
    let s3 = sh.clone();
    let thread = crate::common::log::ThreadBuilder::new()
        .name("supervise".into())
        .spawn(move || s3.run())
        .map_err(|e| Error::io(e, "spawning the supervise thread"))?;
    Ok(Box::new(move || {
        *sh.stop.lock() = true;
        sh.wake.notify_all();
        let _ = thread.join();
        sh.ctx.admin_socket().unregister_command(cmd);
        if sh.ctx.conf().get_bool("supervise_stop_instance") {
            match sh.ask(&format!("osd stop {}", sh.id)) {
                Ok(s) => log::info!(target: "osd", "supervise osd.{}: {s}", sh.id),
                Err(e) => log::warn!(target: "osd", "supervise osd.{}: stopping it: {e}", sh.id),
            }
        }
    }))
}
