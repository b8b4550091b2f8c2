//! The `osdkit` command. Thin: every subcommand calls the library.

mod args;

use args::*;
use clap::Parser;
use osdkit::asok::client::AdminSocketClient;
use osdkit::cli;
use osdkit::cli::conventions::{self, OutFormat};
use std::process::ExitCode;

// The daemons allocate per message on one thread and free on another; glibc's arenas spent
// about a fifth of an OSD's CPU on that (`perf record` under `bench osd`). The library leaves
// the allocator to its host; the command picks mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether the command prints JSON (`-f json|json-pretty`, or `--json`); also sets how.
fn machine(format: Option<OutFormat>, json: bool) -> bool {
    let f = format.unwrap_or(if json { OutFormat::Json } else { OutFormat::Plain });
    conventions::set_format(f);
    f.is_json()
}

/// The config file: `-c`, else `$OSDKIT_CONF`, else the search path; exits with ENOENT.
fn conf_or_exit(cmd: &str, given: Option<std::path::PathBuf>) -> Result<std::path::PathBuf, ExitCode> {
    conventions::find_conf(given.as_deref()).map_err(|e| {
        eprintln!("osdkit {cmd}: {}", e.msg);
        code(e.exit_code())
    })
}

fn bench_msgr(cmd: BenchCmd) -> ExitCode {
    use osdkit::cli::bench_msgr::{self as bench, BenchOpts, Mode, Transport};
    let BenchCmd::Msgr {
        mode,
        size,
        depth,
        conns,
        seconds,
        inject_socket_failures,
        threads,
        transport,
        out,
        serve,
    } = cmd
    else {
        unreachable!("bench_msgr is called for `bench msgr` only");
    };
    let json = out.json();
    let o = BenchOpts {
        mode: if mode == "stream" { Mode::Stream } else { Mode::PingPong },
        transport: if transport == "tcp" {
            Transport::Tcp
        } else {
            Transport::Msgr
        },
        size: size as usize,
        depth,
        conns,
        seconds,
        inject_socket_failures,
        threads,
    };
    if serve {
        return match bench::serve(&o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("osdkit bench msgr --serve: {e}");
                code(e.exit_code())
            }
        };
    }
    if !json {
        println!(
            "bench msgr: {transport} {mode}, {size} bytes, depth {}, {conns} conn(s), {seconds} s{}",
            if o.mode == Mode::PingPong { 1 } else { depth },
            if inject_socket_failures > 0 {
                format!(", ms_inject_socket_failures={inject_socket_failures}")
            } else {
                String::new()
            }
        );
    }
    let mut progress = |t: f64, n: u64| {
        if !json {
            eprintln!("  {t:5.1} s  {n:>9} msgs/s");
        }
    };
    match bench::run(&o, &mut progress) {
        Ok(r) => {
            if json {
                conventions::print_json(&r.to_json(&o));
            } else {
                println!(
                    "{} msgs in {:.2} s: {:.0} msgs/s, {:.1} MiB/s; round trip p50 {:.0} us, p99 {:.0} us",
                    r.messages, r.seconds, r.msgs_per_sec, r.mib_per_sec, r.p50_us, r.p99_us
                );
                println!(
                    "lost {}, duplicated {}, reordered {}{}",
                    r.lost,
                    r.duplicated,
                    r.reordered,
                    if o.inject_socket_failures > 0 {
                        format!(" ({} socket failures injected)", r.injected_failures)
                    } else {
                        String::new()
                    }
                );
            }
            if r.lost + r.duplicated + r.reordered > 0 {
                eprintln!("osdkit bench msgr: messages were lost, duplicated or reordered");
                return code(libc::EIO);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("osdkit bench msgr: {e}");
            code(e.exit_code())
        }
    }
}

/// mimalloc asks for transparent huge pages on its arenas. The daemons free message buffers
/// as fast as they take them, and memory mimalloc gives back and takes again is faulted and
/// zeroed 2 MiB at a time: `clear_page_erms` was an eighth of the machine's CPU under a 3-OSD
/// `bench osd` write load, and turning THP off for the process made those runs 10-20% faster
/// (alternating runs, see the README). The kernel's flag covers the arenas already mapped
/// before `main`, which mimalloc's own option (read at its start) cannot.
fn disable_thp() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes no memory of ours;
    // a kernel without it returns -EINVAL, which leaves things as they were.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        log::debug!("PR_SET_THP_DISABLE: {}", std::io::Error::last_os_error());
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serves = matches!(
        cli.cmd,
        Cmd::Mon { .. }
            | Cmd::Manager { .. }
            | Cmd::Osd { mark: None, .. }
            | Cmd::Vstart { .. }
            | Cmd::Demo { .. }
            | Cmd::Bench { .. }
    );
    if serves {
        disable_thp();
    } else {
        // A command whose output goes to `head` ends quietly when the pipe closes, as Unix
        // tools do (Rust ignores SIGPIPE, which made println! panic). Sockets are written
        // with MSG_NOSIGNAL, so this touches only stdout and stderr.
        // SAFETY: setting a signal's disposition to the default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.cmd {
        Cmd::Daemon {
            target,
            conf,
            words,
            format,
        } => {
            let asok_path = if target.contains('/') {
                std::path::PathBuf::from(&target)
            } else {
                let conf = match conf_or_exit("daemon", conf) {
                    Ok(c) => c,
                    Err(code) => return code,
                };
                match conventions::asok_path_of(&target, &conf) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("osdkit daemon: {target}: {e}");
                        return code(e.exit_code());
                    }
                }
            };
            match AdminSocketClient::new(&asok_path).run_words(&words, format.as_deref()) {
                Ok(reply) => {
                    print!("{reply}");
                    if !reply.is_empty() && !reply.ends_with('\n') {
                        println!();
                    }
                    code(error_reply_errno(&reply).unwrap_or(0))
                }
                Err(e) => {
                    eprintln!("osdkit daemon: {e}");
                    if e.errno == libc::ENOENT || e.errno == libc::ECONNREFUSED {
                        eprintln!("is a daemon running with its admin socket at {}?", asok_path.display());
                    }
                    code(e.exit_code())
                }
            }
        }
        Cmd::Ping {
            addr,
            count,
            interval,
            timeout,
            id,
            out,
        } => ping(&addr, count, interval, timeout, &id, out.json()),
        Cmd::Bench {
            what:
                BenchCmd::Osd {
                    conf,
                    pool,
                    seconds,
                    mode,
                    block_size,
                    concurrent,
                    no_cleanup,
                    out,
                },
        } => {
            // Arguments are checked before the config is read (by `bench_osd::cli`), so a
            // missing config is reported there, after them.
            let conf = conventions::find_conf(conf.as_deref())
                .unwrap_or_else(|_| conf.unwrap_or_else(|| conventions::CONF_SEARCH_PATH[0].into()));
            let o = cli::bench_osd::BenchOpts {
                pool,
                seconds,
                mode: match mode.parse() {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("osdkit bench osd: {e}");
                        return ExitCode::from(2);
                    }
                },
                block_size,
                depth: concurrent as usize,
                no_cleanup,
                json: out.json(),
            };
            code(cli::bench_osd::cli(&conf, &o))
        }
        Cmd::Bench {
            what:
                BenchCmd::Hosting {
                    starts,
                    instances,
                    store,
                    out,
                },
        } => code(cli::bench_hosting::cli(&cli::bench_hosting::HostingBenchOpts {
            starts,
            counts: instances,
            store,
            json: out.json(),
        })),
        Cmd::Bench { what } => bench_msgr(what),
        Cmd::Vstart {
            dir,
            osds,
            store,
            size,
            set,
            manager,
            out,
        } => {
            let mut options = Vec::new();
            for kv in set {
                match kv.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => options.push((k.trim().to_string(), v.trim().to_string())),
                    _ => {
                        eprintln!("osdkit vstart: -o {kv}: give KEY=VALUE");
                        return ExitCode::from(2);
                    }
                }
            }
            let exe = match std::env::current_exe() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("osdkit vstart: cannot find this binary: {e}");
                    return code(e.raw_os_error().unwrap_or(libc::ENOENT));
                }
            };
            let o = cli::vstart::VstartOpts {
                dir,
                osds,
                store,
                size,
                exe,
                options,
                manager,
            };
            code(cli::report::vstart(&o, out.json()))
        }
        Cmd::Stop { dir, out } => code(cli::report::stop(&dir, out.json())),
        Cmd::Status { conf, out } => match conf_or_exit("status", conf) {
            Ok(conf) => code(cli::report::status(&conf, out.json())),
            Err(code) => code,
        },
        Cmd::Pool {
            conf,
            format,
            json,
            what,
        } => {
            let json = machine(format, json);
            let conf = match conf_or_exit("pool", conf) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let cmd = match what {
                PoolSub::Create { name, pg_num, size } => cli::report::PoolCmd::Create { name, pg_num, size },
                PoolSub::Ls => cli::report::PoolCmd::Ls,
                PoolSub::Rm { name } => cli::report::PoolCmd::Rm { name },
            };
            code(cli::report::pool(&conf, cmd, json))
        }
        Cmd::Mon { conf, id, foreground } => match conf_or_exit("mon", conf) {
            Ok(conf) => code(cli::daemons::run_mon(&conf, &id, foreground)),
            Err(code) => code,
        },
        Cmd::Manager { conf, id, foreground } => match conf_or_exit("manager", conf) {
            Ok(conf) => code(cli::daemons::run_manager(&conf, &id, foreground)),
            Err(code) => code,
        },
        Cmd::Supervise {
            conf,
            id,
            manager,
            asok,
            foreground,
        } => match conf_or_exit("supervise", conf) {
            Ok(conf) => code(cli::daemons::run_supervise(
                &conf,
                &id,
                &manager,
                asok.as_deref(),
                foreground,
            )),
            Err(code) => code,
        },
        Cmd::Osd { mark: Some(m), .. } => {
            let (what, a, ids) = match m {
                OsdSub::Down { a, ids } => ("down", a, ids),
                OsdSub::Out { a, ids } => ("out", a, ids),
                OsdSub::In { a, ids } => ("in", a, ids),
                OsdSub::Rm { a, ids } => ("rm", a, ids),
                OsdSub::Create { a, id } => ("create", a, id.into_iter().collect()),
            };
            let json = machine(a.format, a.json);
            match conf_or_exit("osd", a.conf) {
                Ok(conf) => code(cli::report::osd_mark(&conf, what, &ids, json)),
                Err(code) => code,
            }
        }
        Cmd::Osd {
            conf,
            id: Some(id),
            foreground,
            ..
        } => match conf_or_exit("osd", conf) {
            Ok(conf) => code(cli::daemons::run_osd(&conf, &id, foreground)),
            Err(code) => code,
        },
        Cmd::Osd { .. } => {
            eprintln!("osdkit osd: give -i ID to run an OSD, or create [ID], or rm|down|out|in ID...");
            ExitCode::from(2)
        }
        Cmd::Pg { a, what } => {
            let cmd = match what {
                PgSub::Stat => cli::report::PgCmd::Stat,
                PgSub::Dump => cli::report::PgCmd::Dump,
                PgSub::Scrub { targets } => cli::report::PgCmd::Scrub { targets, deep: false },
                PgSub::DeepScrub { targets } => cli::report::PgCmd::Scrub { targets, deep: true },
            };
            let json = machine(a.format, a.json);
            match conf_or_exit("pg", a.conf) {
                Ok(conf) => code(cli::report::pg(&conf, cmd, json)),
                Err(code) => code,
            }
        }
        Cmd::Put { a, obj, file } => obj_cmd(a, cli::report::ObjCmd::Put { obj, file }),
        Cmd::Get { a, obj, file } => obj_cmd(a, cli::report::ObjCmd::Get { obj, file }),
        Cmd::Stat { a, obj } => obj_cmd(a, cli::report::ObjCmd::Stat { obj }),
        Cmd::Rm { a, obj } => obj_cmd(a, cli::report::ObjCmd::Rm { obj }),
        Cmd::Ls { a } => obj_cmd(a, cli::report::ObjCmd::Ls),
        Cmd::Demo { out, dir } => match osdkit::cli::demo::run(out.json(), dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("osdkit demo: {e}");
                code(e.exit_code())
            }
        },
    }
}

/// The errno of an admin socket's `ERROR: (22) Invalid argument` reply, as an exit code.
fn error_reply_errno(reply: &str) -> Option<i32> {
    osdkit::asok::client::reply_error(reply).map(|e| e.errno.clamp(1, 255))
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

fn obj_cmd(a: ObjArgs, cmd: cli::report::ObjCmd) -> ExitCode {
    let json = a.out.json();
    match conf_or_exit("object", a.conf) {
        Ok(conf) => code(cli::report::object(&conf, &a.pool, cmd, json)),
        Err(code) => code,
    }
}

fn ping(addr: &str, count: usize, interval: f64, timeout: f64, id: &str, json: bool) -> ExitCode {
    use osdkit::{cli::ping, msgr::addr::EntityAddr};
    let target: EntityAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("osdkit ping: {e}");
            return ExitCode::from(2);
        }
    };
    if !(interval.is_finite() && interval >= 0.0 && timeout.is_finite() && timeout > 0.0) {
        eprintln!("osdkit ping: --interval must be >= 0 and --timeout > 0");
        return ExitCode::from(2);
    }
    let secs = std::time::Duration::from_secs_f64;
    match ping::ping(&target, id, count, secs(interval), secs(timeout)) {
        Ok(r) => {
            let us = |d: &std::time::Duration| d.as_secs_f64() * 1e6;
            let mut sorted = r.rtts.clone();
            sorted.sort();
            let med = sorted.get(sorted.len() / 2).map(us).unwrap_or(0.0);
            if json {
                let v = serde_json::json!({
                    "addr": target.to_string(),
                    "peer_type": r.peer_type_name(),
                    "peer_addrs": r.peer_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "global_id": r.global_id,
                    "my_addr": r.my_addr.map(|a| a.to_string()),
                    "handshake_us": us(&r.handshake),
                    "rtt_us": r.rtts.iter().map(us).collect::<Vec<_>>(),
                    "rtt_median_us": med,
                });
                conventions::print_json(&v);
            } else {
                println!(
                    "msgr2 session with {} {} (peer addrs {}), global_id {}, handshake {:.0} us",
                    r.peer_type_name(),
                    target,
                    r.peer_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(","),
                    r.global_id,
                    us(&r.handshake)
                );
                for (i, d) in r.rtts.iter().enumerate() {
                    println!("keepalive {} from {target}: time={:.0} us", i + 1, us(d));
                }
                println!("{} keepalives, median {:.0} us", r.rtts.len(), med);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("osdkit ping {target}: {e}");
            code(e.exit_code())
        }
    }
}
