//! A daemon process hosting one osdkit context: admin socket, log, pid file, signals.
//!
//! `context_daemon NAME [-f] [--conf PATH] [--KEY VALUE ...]` forks into the background
//! (unless -f), answers its admin socket (with an extra `echo` command), reopens its log on
//! SIGHUP and stops cleanly on SIGINT/SIGTERM. The same path `osdkit osd` will take.

use osdkit::asok::Request;
use osdkit::daemon::{run_daemon, DaemonOpts};
use std::sync::Arc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = DaemonOpts {
        name: args.next().unwrap_or_else(|| "osd.0".into()),
        ..Default::default()
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "-f" => opts.foreground = true,
            "--conf" => opts.conf = args.next().map(Into::into),
            k if k.starts_with("--") => {
                let v = args.next().unwrap_or_default();
                opts.overrides.push((k.trim_start_matches("--").to_string(), v));
            }
            other => {
                eprintln!("unexpected argument {other}");
                std::process::exit(2);
            }
        }
    }
    let code = run_daemon(opts, |ctx| {
        ctx.register_command(
            "echo name=msg,type=CephString",
            "echo a message back",
            Arc::new(|r: &Request<'_>| Ok(r.arg_str("msg").unwrap_or_default())),
        )?;
        Ok(Box::new(|| {}))
    });
    std::process::exit(code);
}
