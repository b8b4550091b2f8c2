//! The `osdkit` command. Thin: every subcommand calls the library.

use clap::{Parser, Subcommand};
use osdkit::asok::client::AdminSocketClient;
use osdkit::cli;
use std::process::ExitCode;

// The daemons allocate per message on one thread and free on another; glibc's arenas spent
// about a fifth of an OSD's CPU on that (`perf record` under `bench osd`). The library leaves
// the allocator to its host; the command picks mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "osdkit",
    version,
    about = "Ceph-style storage daemon runtime: msgr2 messenger, monitor, OSDs, object stores, admin socket"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ask a daemon's admin socket, like `ceph daemon PATH WORDS...`.
    ///
    /// The words are matched against the daemon's own command descriptions
    /// (`get_command_descriptions`), so `osdkit daemon /run/x.asok config get debug_ms` sends
    /// {"prefix": "config get", "var": "debug_ms"}. The reply is printed as the daemon sent it.
    /// Exits 1 when the daemon answered with an `ERROR:` reply, 2 when it could not be asked.
    Daemon {
        /// Path of the admin socket (e.g. /var/run/ceph/ceph-osd.0.asok).
        asok_path: String,
        /// The command words and arguments (e.g. `perf dump`, `config set debug_ms 5`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
        /// Output format asked of the daemon: json, json-pretty (default: the daemon's, json-pretty).
        #[arg(short = 'f', long = "format")]
        format: Option<String>,
    },
    /// msgr2 handshake and KEEPALIVE2 round trips to any msgr2 peer (a real ceph-mon included).
    ///
    /// Connects to ADDR (e.g. v2:127.0.0.1:3300), completes banner, HELLO, auth "none" and
    /// CLIENT_IDENT, then times keepalive round trips like ping(8).
    Ping {
        /// The peer's msgr2 address: v2:IP:PORT[/NONCE], or IP:PORT.
        addr: String,
        /// Number of keepalive round trips.
        #[arg(short = 'c', long, default_value_t = 5)]
        count: usize,
        /// Seconds between round trips.
        #[arg(short = 'i', long, default_value_t = 0.2)]
        interval: f64,
        /// Give up after this many seconds without an answer.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Our entity id (we are client.<id>).
        #[arg(long, default_value = "admin")]
        id: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks: `bench osd` (a running cluster, like rados bench) and `bench msgr`
    /// (messenger over loopback, against raw TCP).
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Start a local cluster in the background, like Ceph's vstart.sh: one monitor and N OSD
    /// processes, DIR/osdkit.conf, pool `data` (size R, 32 PGs).
    ///
    /// Pid files and admin sockets go under DIR/run, logs to DIR/<name>.log, monitor and OSD
    /// data to DIR/mon.a and DIR/osd.N. Stop it with `osdkit stop --dir DIR`.
    Vstart {
        /// The cluster's directory (created if missing).
        #[arg(long, default_value = "osdkit-cluster")]
        dir: std::path::PathBuf,
        /// Number of OSDs.
        #[arg(long, default_value_t = 3)]
        osds: u32,
        /// The OSDs' object store.
        #[arg(long, value_parser = ["mem", "kv"], default_value = "mem")]
        store: String,
        /// Replicas of pool `data`.
        #[arg(long, default_value_t = 1)]
        size: u32,
        /// An option for every daemon, KEY=VALUE, into [global] of the config (repeatable;
        /// like Ceph's `vstart.sh -o`).
        #[arg(short = 'o', long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print one JSON object (the summary) instead of progress and text.
        #[arg(long)]
        json: bool,
    },
    /// Stop the cluster in DIR: SIGTERM every daemon with a pid file under DIR/run, wait for it
    /// to exit (SIGKILL after 10 s, with a message). Nothing in DIR is removed.
    Stop {
        /// The cluster's directory, as given to vstart.
        #[arg(long, default_value = "osdkit-cluster")]
        dir: std::path::PathBuf,
        /// Print one JSON object listing the daemons stopped.
        #[arg(long)]
        json: bool,
    },
    /// Cluster status, like `ceph -s`: fsid, health, OSDs up/in, pools, and each OSD's state,
    /// address and pid (from its pid file under run_dir, when on this host).
    Status {
        /// The cluster's config file.
        #[arg(short = 'c', long = "conf", default_value = DEFAULT_CONF)]
        conf: std::path::PathBuf,
        /// Print one JSON object, with every OSD's id, up, in, pid and addr.
        #[arg(long)]
        json: bool,
    },
    /// Pools: `pool create NAME [--pg-num N] [--size R]`, `pool ls`, `pool rm NAME`.
    Pool {
        /// The cluster's config file.
        #[arg(short = 'c', long = "conf", default_value = DEFAULT_CONF, global = true)]
        conf: std::path::PathBuf,
        /// Print one JSON object.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        what: PoolSub,
    },
    /// Run one monitor (mon.ID): binds the address in mon_host, keeps its map in mon_data.
    ///
    /// Forks into the background unless -f; the parent exits 0 once the monitor serves, or 1
    /// with the reason. Pid file $run_dir/$name.pid, admin socket per admin_socket, log to
    /// log_file; SIGTERM stops it cleanly.
    Mon {
        /// The cluster's config file.
        #[arg(short = 'c', long = "conf", default_value = DEFAULT_CONF)]
        conf: std::path::PathBuf,
        /// The monitor's id (mon.ID).
        #[arg(short = 'i', long = "id")]
        id: String,
        /// Stay in the foreground and log to stderr.
        #[arg(short = 'f', long = "foreground")]
        foreground: bool,
    },
    /// Run one OSD (osd.ID): its store per osd_objectstore/osd_data, bound to public_addr (or
    /// 127.0.0.1:0), booted to mon_host. Or, with a subcommand, mark OSDs: `osd down|out|in ID...`.
    ///
    /// Forks into the background unless -f; the parent exits 0 once the monitor's map shows the
    /// OSD up, or 1 with the reason. Pid file $run_dir/$name.pid, admin socket per admin_socket,
    /// log to log_file; SIGTERM stops it cleanly.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Osd {
        #[command(subcommand)]
        mark: Option<OsdSub>,
        /// The cluster's config file.
        #[arg(short = 'c', long = "conf", default_value = DEFAULT_CONF)]
        conf: std::path::PathBuf,
        /// The OSD's id (osd.ID), a number.
        #[arg(short = 'i', long = "id", required = true)]
        id: Option<String>,
        /// Stay in the foreground and log to stderr.
        #[arg(short = 'f', long = "foreground")]
        foreground: bool,
    },
    /// Placement groups, asked of the OSDs that lead them: `pg stat`, `pg dump`,
    /// `pg scrub|deep-scrub [PGID|POOL]...`.
    Pg {
        #[command(flatten)]
        a: CmdArgs,
        #[command(subcommand)]
        what: PgSub,
    },
    /// Write FILE (`-`: stdin) as object OBJ, replacing it (like `rados put`).
    Put {
        #[command(flatten)]
        a: ObjArgs,
        /// The object's name.
        obj: String,
        /// The file to read, or `-` for stdin.
        file: String,
    },
    /// Read object OBJ into FILE (`-`: stdout) (like `rados get`).
    Get {
        #[command(flatten)]
        a: ObjArgs,
        /// The object's name.
        obj: String,
        /// The file to write (replaced only once the whole object is read), or `-` for stdout.
        file: String,
    },
    /// Print an object's size and mtime (like `rados stat`).
    Stat {
        #[command(flatten)]
        a: ObjArgs,
        /// The object's name.
        obj: String,
    },
    /// Remove an object (like `rados rm`).
    Rm {
        #[command(flatten)]
        a: ObjArgs,
        /// The object's name.
        obj: String,
    },
    /// List a pool's objects, one name a line (like `rados ls`).
    Ls {
        #[command(flatten)]
        a: ObjArgs,
    },
    /// The main job on an embedded default: a daemon context and its admin socket, a messenger
    /// pair, and a cluster (a monitor and three OSDs) in this process, with a short workload
    /// and a summary.
    Demo {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Keep the context's files (socket, log) in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// The default config file of the cluster commands: what `osdkit vstart` writes by default.
const DEFAULT_CONF: &str = "osdkit-cluster/osdkit.conf";

#[derive(Subcommand)]
enum PoolSub {
    /// Create a pool (like `ceph osd pool create NAME PG_NUM --size R`).
    Create {
        /// The new pool's name.
        name: String,
        /// Placement groups.
        #[arg(long, default_value_t = 32)]
        pg_num: u32,
        /// Replicas.
        #[arg(long, default_value_t = 1)]
        size: u32,
    },
    /// List the pools, one name a line.
    Ls,
    /// Remove a pool and its objects.
    Rm {
        /// The pool to remove.
        name: String,
    },
}

/// `-c CONF` and `--json`, for the cluster commands.
#[derive(clap::Args)]
struct CmdArgs {
    /// The cluster's config file.
    #[arg(short = 'c', long = "conf", default_value = DEFAULT_CONF, global = true)]
    conf: std::path::PathBuf,
    /// Print one JSON object.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum OsdSub {
    /// Mark OSDs down (like `ceph osd down`); a running OSD boots again.
    Down {
        #[command(flatten)]
        a: CmdArgs,
        /// OSD ids (`3` or `osd.3`).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Mark OSDs out: their PGs move elsewhere (like `ceph osd out`).
    Out {
        #[command(flatten)]
        a: CmdArgs,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Mark OSDs in again (like `ceph osd in`).
    In {
        #[command(flatten)]
        a: CmdArgs,
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PgSub {
    /// PGs by state, objects and bytes, in one line (like `ceph pg stat`).
    Stat,
    /// Every PG: state, objects, bytes, last_update, acting set, scrub stamps (like
    /// `ceph pg dump pgs`).
    Dump,
    /// Compare the replicas of PGs (the given PGs like 1.a, every PG of the named pools, or
    /// every PG): presence, size, version and xattrs of each object. Exits 1 on any
    /// inconsistency, listing each.
    Scrub { targets: Vec<String> },
    /// As scrub, reading all data and omap too (crc32c digests compared).
    DeepScrub { targets: Vec<String> },
}

#[derive(clap::Args)]
struct ObjArgs {
    /// The cluster's config file.
    #[arg(short = 'c', long = "conf", default_value = DEFAULT_CONF)]
    conf: std::path::PathBuf,
    /// The pool.
    #[arg(short = 'p', long = "pool")]
    pool: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Load a running cluster like `rados bench`: a line a second, then IOPS, MB/s,
    /// average/p50/p99 latency and errors.
    ///
    /// write: keep -t writefulls of -b bytes in flight for SECONDS, objects
    /// benchmark_data_<host>_<pid>_object<N>; deleted at the end unless --no-cleanup, which
    /// leaves them and benchmark_last_metadata for seq (in order) and rand (random) to read back,
    /// and cleanup (like `rados -p POOL cleanup`; SECONDS is not used) to delete.
    /// Every read is checked for length and content. Exits 1 if any op failed.
    Osd {
        /// The cluster's config file.
        #[arg(short = 'c', long = "conf", default_value = DEFAULT_CONF)]
        conf: std::path::PathBuf,
        /// The pool.
        #[arg(short = 'p', long = "pool")]
        pool: String,
        /// How long to run, in seconds.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        seconds: u64,
        /// write, seq, rand or cleanup.
        #[arg(value_parser = ["write", "seq", "rand", "cleanup"])]
        mode: String,
        /// Bytes per object (K, M suffixes allowed), like rados bench -b.
        #[arg(short = 'b', long = "block-size", default_value = "4M", value_parser = parse_size)]
        block_size: u64,
        /// Ops in flight, like rados bench -t.
        #[arg(short = 't', long = "concurrent-ios", default_value_t = 16,
              value_parser = clap::value_parser!(u64).range(1..=4096))]
        concurrent: u64,
        /// Leave the objects written (and benchmark_last_metadata) for seq and rand.
        #[arg(long)]
        no_cleanup: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A server process and a client process over loopback, like Ceph's perf_msgr_server/client.
    ///
    /// pingpong: one message in flight per connection, echoed whole (round-trip p50/p99).
    /// stream: --depth messages in flight per connection, each acked (msgs/s, MiB/s).
    /// Every run counts lost, duplicated and reordered messages. --transport tcp runs the same
    /// load over plain sockets, the baseline to compare with.
    Msgr {
        #[arg(long, value_parser = ["pingpong", "stream"], default_value = "pingpong")]
        mode: String,
        /// Data-segment bytes per message (K, M suffixes allowed).
        #[arg(long, default_value = "4096", value_parser = parse_size)]
        size: u64,
        /// Messages in flight per connection (stream mode).
        #[arg(long, default_value_t = 128)]
        depth: usize,
        #[arg(long, default_value_t = 1)]
        conns: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// ms_inject_socket_failures on both ends.
        #[arg(long, default_value_t = 0)]
        inject_socket_failures: u64,
        /// ms_async_op_threads on both ends.
        #[arg(long, default_value_t = 3)]
        threads: u64,
        #[arg(long, value_parser = ["msgr", "tcp"], default_value = "msgr")]
        transport: String,
        #[arg(long)]
        json: bool,
        /// Internal: be the server process.
        #[arg(long, hide = true)]
        serve: bool,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with("KIB") || t.ends_with('K') => {
            (t.trim_end_matches("IB").trim_end_matches('K').to_string(), 1024)
        }
        t if t.ends_with("MIB") || t.ends_with('M') => {
            (t.trim_end_matches("IB").trim_end_matches('M').to_string(), 1 << 20)
        }
        t => (t, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("not a size: {s} (e.g. 4096, 4K, 4M)"))
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
        json,
        serve,
    } = cmd
    else {
        unreachable!("bench_msgr is called for `bench msgr` only");
    };
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
                ExitCode::from(1)
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
            println!("  {t:5.1} s  {n:>9} msgs/s");
        }
    };
    match bench::run(&o, &mut progress) {
        Ok(r) => {
            if json {
                println!("{}", r.to_json(&o));
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
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("osdkit bench msgr: {e}");
            ExitCode::from(1)
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
        Cmd::Mon { .. } | Cmd::Osd { mark: None, .. } | Cmd::Vstart { .. } | Cmd::Demo { .. } | Cmd::Bench { .. }
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
            asok_path,
            words,
            format,
        } => match AdminSocketClient::new(&asok_path).run_words(&words, format.as_deref()) {
            Ok(reply) => {
                print!("{reply}");
                if !reply.is_empty() && !reply.ends_with('\n') {
                    println!();
                }
                if reply.starts_with("ERROR:") {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("osdkit daemon: {e}");
                if e.errno == libc::ENOENT || e.errno == libc::ECONNREFUSED {
                    eprintln!("is a daemon running with its admin socket at {asok_path}?");
                }
                ExitCode::from(2)
            }
        },
        Cmd::Ping {
            addr,
            count,
            interval,
            timeout,
            id,
            json,
        } => ping(&addr, count, interval, timeout, &id, json),
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
                    json,
                },
        } => {
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
                json,
            };
            code(cli::bench_osd::cli(&conf, &o))
        }
        Cmd::Bench { what } => bench_msgr(what),
        Cmd::Vstart {
            dir,
            osds,
            store,
            size,
            set,
            json,
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
                    return ExitCode::from(1);
                }
            };
            let o = cli::vstart::VstartOpts {
                dir,
                osds,
                store,
                size,
                exe,
                options,
            };
            code(cli::report::vstart(&o, json))
        }
        Cmd::Stop { dir, json } => code(cli::report::stop(&dir, json)),
        Cmd::Status { conf, json } => code(cli::report::status(&conf, json)),
        Cmd::Pool { conf, json, what } => {
            let cmd = match what {
                PoolSub::Create { name, pg_num, size } => cli::report::PoolCmd::Create { name, pg_num, size },
                PoolSub::Ls => cli::report::PoolCmd::Ls,
                PoolSub::Rm { name } => cli::report::PoolCmd::Rm { name },
            };
            code(cli::report::pool(&conf, cmd, json))
        }
        Cmd::Mon { conf, id, foreground } => code(cli::daemons::run_mon(&conf, &id, foreground)),
        Cmd::Osd { mark: Some(m), .. } => {
            let (what, a, ids) = match m {
                OsdSub::Down { a, ids } => ("down", a, ids),
                OsdSub::Out { a, ids } => ("out", a, ids),
                OsdSub::In { a, ids } => ("in", a, ids),
            };
            code(cli::report::osd_mark(&a.conf, what, &ids, a.json))
        }
        Cmd::Osd {
            conf,
            id: Some(id),
            foreground,
            ..
        } => code(cli::daemons::run_osd(&conf, &id, foreground)),
        Cmd::Osd { .. } => {
            eprintln!("osdkit osd: give -i ID to run an OSD, or down|out|in ID...");
            ExitCode::from(2)
        }
        Cmd::Pg { a, what } => {
            let cmd = match what {
                PgSub::Stat => cli::report::PgCmd::Stat,
                PgSub::Dump => cli::report::PgCmd::Dump,
                PgSub::Scrub { targets } => cli::report::PgCmd::Scrub { targets, deep: false },
                PgSub::DeepScrub { targets } => cli::report::PgCmd::Scrub { targets, deep: true },
            };
            code(cli::report::pg(&a.conf, cmd, a.json))
        }
        Cmd::Put { a, obj, file } => obj_cmd(a, cli::report::ObjCmd::Put { obj, file }),
        Cmd::Get { a, obj, file } => obj_cmd(a, cli::report::ObjCmd::Get { obj, file }),
        Cmd::Stat { a, obj } => obj_cmd(a, cli::report::ObjCmd::Stat { obj }),
        Cmd::Rm { a, obj } => obj_cmd(a, cli::report::ObjCmd::Rm { obj }),
        Cmd::Ls { a } => obj_cmd(a, cli::report::ObjCmd::Ls),
        Cmd::Demo { json, dir } => match osdkit::cli::demo::run(json, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("osdkit demo: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

fn obj_cmd(a: ObjArgs, cmd: cli::report::ObjCmd) -> ExitCode {
    code(cli::report::object(&a.conf, &a.pool, cmd, a.json))
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
                println!("{v}");
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
            ExitCode::from(1)
        }
    }
}
