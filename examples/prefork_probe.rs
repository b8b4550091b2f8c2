//! Test helper for `daemon::prefork`: behaves like a daemon's `main()`.
//!
//! `prefork_probe MODE [REPORT]`, MODE one of:
//! - `ready REPORT`: the child prints to stdout, calls `ready()`, prints again (which must go to
//!   /dev/null), then writes `"<pid> <sid>"` to REPORT;
//! - `fail`: the child reports ENOENT "no such thing" and exits 1;
//! - `exit`: the child exits 3 without a word;
//! - `kill`: the child dies of SIGKILL without a word;
//! - `threads`: a thread is started before `prefork`, which must refuse.

use std::process::exit;

use osdkit::daemon::{prefork, Forked};
use osdkit::Error;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    if mode == "threads" {
        std::thread::spawn(std::thread::park);
    }
    let child = match prefork() {
        Ok(Forked::Parent(p)) => match p.wait() {
            Ok(code) => exit(code),
            Err(e) => {
                eprintln!("{e}");
                exit(1)
            }
        },
        Ok(Forked::Child(c)) => c,
        Err(e) => {
            eprintln!("prefork: {e}");
            exit(2)
        }
    };
    match mode {
        "ready" => {
            println!("child before ready");
            if let Err(e) = child.ready() {
                eprintln!("ready: {e}");
                exit(1);
            }
            println!("child after ready");
            eprintln!("child after ready");
            // SAFETY: getsid(0) only queries this process's session id.
            let sid = unsafe { libc::getsid(0) };
            let report = std::path::Path::new(&args[2]);
            let tmp = report.with_extension("tmp");
            std::fs::write(&tmp, format!("{} {sid}", std::process::id())).unwrap();
            // Renamed into place so the test never reads a half-written report.
            std::fs::rename(&tmp, report).unwrap();
        }
        "fail" => {
            child.fail(&Error::new(libc::ENOENT, "no such thing"));
            exit(1);
        }
        "exit" => exit(3),
        "kill" => {
            // SAFETY: sends a signal to this very process; no memory is involved. SIGKILL
            // rather than abort(), which would leave a core file behind.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        _ => {
            child.fail(&Error::inval(format!("unknown mode {mode:?}")));
            exit(1);
        }
    }
}
