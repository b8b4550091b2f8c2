//! `run_daemon`: the whole life of a daemon process around a `Context`, in Ceph's order —
//! block signals, fork (unless foreground), pid file, start, tell the parent, then serve until
//! SIGINT/SIGTERM, reopening the log on SIGHUP.
//!
//! Each daemon (`osdkit osd`, `mon`, ...) supplies only its `setup`: what to start once the
//! context runs, and how to stop it.

use super::{prefork, DaemonChild, Forked, PidFile, Sig, SignalHandler};
use crate::common::error::{Error, Result};
use crate::Context;
use crossbeam_channel::unbounded;
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct DaemonOpts {
    /// Entity name, e.g. `osd.3`.
    pub name: String,
    pub conf: Option<PathBuf>,
    /// Stay in the foreground and log to stderr (`-f`).
    pub foreground: bool,
    /// `--key value` overrides, applied at the command-line level.
    pub overrides: Vec<(String, String)>,
}

/// What `setup` hands back: called once when the daemon is asked to stop.
pub type Stopper = Box<dyn FnOnce() + Send>;

/// Runs a daemon to completion and returns the process exit code (0, or the errno of what
/// failed). Must be called while the
/// process has a single thread (it may fork).
pub fn run_daemon(opts: DaemonOpts, setup: impl FnOnce(&Context) -> Result<Stopper>) -> i32 {
    if let Err(e) = SignalHandler::block_signals() {
        eprintln!("{}: {e}", opts.name);
        return e.exit_code();
    }
    let child = if opts.foreground {
        None
    } else {
        match prefork() {
            Ok(Forked::Parent(p)) => {
                return match p.wait() {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("{}: failed to start: {e}", opts.name);
                        e.exit_code()
                    }
                };
            }
            Ok(Forked::Child(c)) => Some(c),
            Err(e) => {
                eprintln!("{}: {e}", opts.name);
                return e.exit_code();
            }
        }
    };
    match serve(&opts, setup, child) {
        Ok(()) => 0,
        Err((e, child)) => {
            match child {
                Some(c) => c.fail(&e),
                None => eprintln!("{}: {e}", opts.name),
            }
            e.exit_code()
        }
    }
}

type Failed = (Error, Option<DaemonChild>);

fn serve(
    opts: &DaemonOpts,
    setup: impl FnOnce(&Context) -> Result<Stopper>,
    child: Option<DaemonChild>,
) -> std::result::Result<(), Failed> {
    let ctx = match Context::new(&opts.name, opts.conf.as_deref()) {
        Ok(c) => c,
        Err(e) => return Err((e, child)),
    };
    let apply = || -> Result<()> {
        for (k, v) in &opts.overrides {
            ctx.set_option(k, v)?;
        }
        if opts.foreground {
            ctx.set_option("log_to_stderr", "true")?;
        }
        Ok(())
    };
    if let Err(e) = apply() {
        return Err((e, child));
    }
    let pid_path = ctx.conf().get_str("pid_file");
    let _pidfile = if pid_path.is_empty() {
        None
    } else {
        match PidFile::create(std::path::Path::new(&pid_path)) {
            Ok(p) => Some(p),
            Err(e) => return Err((e, child)),
        }
    };
    if let Err(e) = ctx.start() {
        return Err((e, child));
    }
    let stop = match setup(&ctx) {
        Ok(s) => s,
        Err(e) => {
            ctx.shutdown();
            return Err((e, child));
        }
    };
    let (tx, rx) = unbounded();
    let handler = match SignalHandler::start(move |s| {
        let _ = tx.send(s);
    }) {
        Ok(h) => h,
        Err(e) => {
            stop();
            ctx.shutdown();
            return Err((e, child));
        }
    };
    if let Some(c) = child {
        if let Err(e) = c.ready() {
            log::error!(target: "context", "cannot detach: {e}");
        }
    }
    log::info!(target: "context", "{} running (pid {})", opts.name, std::process::id());
    while let Ok(sig) = rx.recv() {
        match sig {
            Sig::Hup => {
                log::info!(target: "context", "SIGHUP: reopening log");
                ctx.reopen_logs();
            }
            Sig::Int | Sig::Term => {
                log::info!(target: "context", "{sig:?}: stopping");
                break;
            }
        }
    }
    handler.stop();
    stop();
    ctx.shutdown();
    Ok(())
}
