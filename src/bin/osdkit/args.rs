//! The `osdkit` command's arguments (clap): every subcommand, its options and their help.

use crate::machine;
use clap::{Parser, Subcommand};
use osdkit::cli::conventions::OutFormat;

#[derive(Parser)]
#[command(
    name = "osdkit",
    version,
    about = "Ceph-style storage daemon runtime: msgr2 messenger, monitor, OSDs, object stores, admin socket",
    after_help = "The config file is -c FILE, else $OSDKIT_CONF, else the first of ./osdkit.conf, \
                  ./osdkit-cluster/osdkit.conf, ~/.osdkit/osdkit.conf, /etc/osdkit/osdkit.conf.\n\
                  Commands that report take -f plain|json|json-pretty (--json: -f json); results go \
                  to stdout, progress and errors to stderr.\n\
                  Exit status: 0 on success; the errno of a failed request (2 ENOENT, 5 EIO, \
                  22 EINVAL, 110 ETIMEDOUT, ...); 2 for bad usage."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Ask a daemon's admin socket, like `ceph daemon osd.0 WORDS...` or `ceph daemon PATH ...`.
    ///
    /// The words are matched against the daemon's own command descriptions
    /// (`get_command_descriptions`), so `osdkit daemon osd.0 config get debug_ms` sends
    /// {"prefix": "config get", "var": "debug_ms"}. The reply is printed as the daemon sent it.
    /// Exits with the errno of an `ERROR:` reply, or of the failure to reach the daemon.
    Daemon {
        /// The daemon's name (osd.0, mon.a: its admin socket is found through the config) or
        /// the path of an admin socket (anything with a '/').
        target: String,
        /// The config file naming the daemon's admin_socket (default: $OSDKIT_CONF, then the
        /// search path); for a daemon name only.
        #[arg(short = 'c', long = "conf")]
        conf: Option<std::path::PathBuf>,
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
        #[arg(long, default_value_t = 5)]
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
        #[command(flatten)]
        out: FormatArgs,
    },
    /// Benchmarks: `bench osd` (a running cluster, like rados bench), `bench msgr`
    /// (messenger over loopback, against raw TCP) and `bench hosting` (daemons hosted in one
    /// process: start time, threads, sockets, memory).
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
        /// Host the OSDs in one `osdkit manager` process (client.manager-a), each kept running
        /// by its own `osdkit supervise` process, instead of one process per OSD.
        #[arg(long)]
        manager: bool,
        #[command(flatten)]
        out: FormatArgs,
    },
    /// Stop the cluster in DIR: SIGTERM every daemon with a pid file under DIR/run, wait for it
    /// to exit (SIGKILL after 10 s, with a message). Nothing in DIR is removed.
    Stop {
        /// The cluster's directory, as given to vstart.
        #[arg(long, default_value = "osdkit-cluster")]
        dir: std::path::PathBuf,
        #[command(flatten)]
        out: FormatArgs,
    },
    /// Cluster status, like `ceph -s`: fsid, health, OSDs up/in, pools, and each OSD's state,
    /// address and pid (from its pid file under run_dir, when on this host).
    Status {
        /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
        #[arg(short = 'c', long = "conf")]
        conf: Option<std::path::PathBuf>,
        #[command(flatten)]
        out: FormatArgs,
    },
    /// Pools: `pool create NAME [--pg-num N] [--size R]`, `pool ls`, `pool rm NAME`.
    Pool {
        /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
        #[arg(short = 'c', long = "conf", global = true)]
        conf: Option<std::path::PathBuf>,
        /// Output format: plain, json or json-pretty.
        #[arg(short = 'f', long = "format", value_name = "FORMAT", global = true)]
        format: Option<OutFormat>,
        /// Same as -f json.
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
        /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
        #[arg(short = 'c', long = "conf")]
        conf: Option<std::path::PathBuf>,
        /// The monitor's id (mon.ID).
        #[arg(short = 'i', long = "id")]
        id: String,
        /// Stay in the foreground and log to stderr.
        #[arg(short = 'f', long = "foreground")]
        foreground: bool,
    },
    /// Run the OSD manager: one daemon hosting many OSD instances, each started and stopped
    /// through its admin socket ($run_dir/$cluster-client.manager-NAME.asok): `osd start ID`,
    /// `osd stop ID`, `osd restart ID`, `osd status [ID]`, `osd ls`.
    ///
    /// The set of instances it was told to run is kept in osd_manager_data, so a manager
    /// started again after a crash restores them. Forks into the background unless -f.
    Manager {
        /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
        #[arg(short = 'c', long = "conf")]
        conf: Option<std::path::PathBuf>,
        /// The manager's name (client.manager-NAME).
        #[arg(short = 'i', long = "id", default_value = "a")]
        id: String,
        /// Stay in the foreground and log to stderr.
        #[arg(short = 'f', long = "foreground")]
        foreground: bool,
    },
    /// Supervise osd.ID hosted by an `osdkit manager`: ask the manager to start it, then
    /// check it every supervise_status_interval and start it again when it failed or vanished
    /// (a back-off, at most supervise_restart_burst restarts per supervise_restart_window).
    ///
    /// Forks into the background unless -f; the parent exits 0 once the manager accepted the
    /// start. Its admin socket ($run_dir/$cluster-client.supervise-ID.asok) answers `status`.
    /// SIGTERM stops it and leaves the OSD running (unless supervise_stop_instance).
    Supervise {
        /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
        #[arg(short = 'c', long = "conf")]
        conf: Option<std::path::PathBuf>,
        /// The OSD's id.
        #[arg(short = 'i', long = "id")]
        id: String,
        /// The manager's name (its socket is $run_dir/$cluster-client.manager-NAME.asok).
        #[arg(long, default_value = "a", conflicts_with = "asok")]
        manager: String,
        /// The manager's admin socket, instead of --manager.
        #[arg(long)]
        asok: Option<std::path::PathBuf>,
        /// Stay in the foreground and log to stderr.
        #[arg(short = 'f', long = "foreground")]
        foreground: bool,
    },
    /// Run one OSD (osd.ID): its store per osd_objectstore/osd_data, bound to public_addr (or
    /// 127.0.0.1:0), booted to mon_host. Or, with a subcommand, change the map: `osd create [ID]`, `osd rm|down|out|in ID...`.
    ///
    /// Forks into the background unless -f; the parent exits 0 once the monitor's map shows the
    /// OSD up, or 1 with the reason. Pid file $run_dir/$name.pid, admin socket per admin_socket,
    /// log to log_file; SIGTERM stops it cleanly.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Osd {
        #[command(subcommand)]
        mark: Option<OsdSub>,
        /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
        #[arg(short = 'c', long = "conf")]
        conf: Option<std::path::PathBuf>,
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
        #[command(flatten)]
        out: FormatArgs,
        /// Keep the context's files (socket, log) in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// `-f/--format` and `--json`, for the commands that report.
#[derive(clap::Args, Clone, Copy)]
pub(crate) struct FormatArgs {
    /// Output format: plain, json or json-pretty.
    #[arg(short = 'f', long = "format", value_name = "FORMAT")]
    pub(crate) format: Option<OutFormat>,
    /// Same as -f json.
    #[arg(long)]
    pub(crate) json: bool,
}

impl FormatArgs {
    /// Whether the command prints JSON; also sets how.
    pub(crate) fn json(self) -> bool {
        machine(self.format, self.json)
    }
}

#[derive(Subcommand)]
pub(crate) enum PoolSub {
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
pub(crate) struct CmdArgs {
    /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
    #[arg(short = 'c', long = "conf", global = true)]
    pub(crate) conf: Option<std::path::PathBuf>,
    /// Output format: plain, json or json-pretty.
    #[arg(short = 'f', long = "format", value_name = "FORMAT", global = true)]
    pub(crate) format: Option<OutFormat>,
    /// Same as -f json.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum OsdSub {
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
        /// OSD ids (`3` or `osd.3`).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Mark OSDs in again (like `ceph osd in`).
    In {
        #[command(flatten)]
        a: CmdArgs,
        /// OSD ids (`3` or `osd.3`).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Create an OSD in the map, so that it may boot, and print its id (like `ceph osd create`):
    /// the given id (an existing one is no change), else the lowest free one.
    Create {
        #[command(flatten)]
        a: CmdArgs,
        /// The OSD id to create (`3` or `osd.3`).
        id: Option<String>,
    },
    /// Remove OSDs from the map; they must be down (like `ceph osd rm`).
    Rm {
        #[command(flatten)]
        a: CmdArgs,
        /// OSD ids (`3` or `osd.3`).
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum PgSub {
    /// PGs by state, objects and bytes, in one line (like `ceph pg stat`).
    Stat,
    /// Every PG: state, objects, bytes, last_update, acting set, scrub stamps (like
    /// `ceph pg dump pgs`).
    Dump,
    /// Compare the replicas of PGs (the given PGs like 1.a, every PG of the named pools, or
    /// every PG): presence, size, version and xattrs of each object. Exits 5 (EIO) on any
    /// inconsistency, listing each.
    Scrub {
        /// PGs (1.a), pools (by name), or nothing for every PG.
        targets: Vec<String>,
    },
    /// As scrub, reading all data and omap too (crc32c digests compared).
    DeepScrub {
        /// PGs (1.a), pools (by name), or nothing for every PG.
        targets: Vec<String>,
    },
}

#[derive(clap::Args)]
pub(crate) struct ObjArgs {
    /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
    #[arg(short = 'c', long = "conf")]
    pub(crate) conf: Option<std::path::PathBuf>,
    /// The pool.
    #[arg(short = 'p', long = "pool")]
    pub(crate) pool: String,
    #[command(flatten)]
    pub(crate) out: FormatArgs,
}

#[derive(Subcommand)]
pub(crate) enum BenchCmd {
    /// Load a running cluster like `rados bench`: a line a second, then IOPS, MB/s,
    /// average/p50/p99 latency and errors.
    ///
    /// write: keep -t writefulls of -b bytes in flight for SECONDS, objects
    /// benchmark_data_<host>_<pid>_object<N>; deleted at the end unless --no-cleanup, which
    /// leaves them and benchmark_last_metadata for seq (in order) and rand (random) to read back,
    /// and cleanup (like `rados -p POOL cleanup`; SECONDS is not used) to delete.
    /// Every read is checked for length and content. Exits 5 (EIO) if any op failed.
    Osd {
        /// The cluster's config file (default: $OSDKIT_CONF, then the search path).
        #[arg(short = 'c', long = "conf")]
        conf: Option<std::path::PathBuf>,
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
        #[command(flatten)]
        out: FormatArgs,
    },
    /// What hosting daemons in one process costs: a monitor hosted here, one OSD instance
    /// started and stopped --starts times (start-to-active time: median, p90, min, max), then
    /// N instances at once for each N of --instances, with messengers of their own and on one
    /// shared set (threads, sockets, RSS per instance), and one `osdkit osd` process to compare.
    Hosting {
        /// Start/stop rounds of one instance.
        #[arg(long, default_value_t = 20)]
        starts: usize,
        /// Instance counts to measure the footprint at, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        instances: Vec<usize>,
        /// osd_objectstore of the instances (mem or kv).
        #[arg(long, value_parser = ["mem", "kv"], default_value = "mem")]
        store: String,
        #[command(flatten)]
        out: FormatArgs,
    },
    /// A server process and a client process over loopback, like Ceph's perf_msgr_server/client.
    ///
    /// pingpong: one message in flight per connection, echoed whole (round-trip p50/p99).
    /// stream: --depth messages in flight per connection, each acked (msgs/s, MiB/s).
    /// Every run counts lost, duplicated and reordered messages. --transport tcp runs the same
    /// load over plain sockets, the baseline to compare with.
    Msgr {
        /// pingpong (one message in flight, round-trip latency) or stream (throughput).
        #[arg(long, value_parser = ["pingpong", "stream"], default_value = "pingpong")]
        mode: String,
        /// Data-segment bytes per message (K, M suffixes allowed).
        #[arg(long, default_value = "4096", value_parser = parse_size)]
        size: u64,
        /// Messages in flight per connection (stream mode).
        #[arg(long, default_value_t = 128)]
        depth: usize,
        /// Connections (each its own stream of messages).
        #[arg(long, default_value_t = 1)]
        conns: usize,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// ms_inject_socket_failures on both ends.
        #[arg(long, default_value_t = 0)]
        inject_socket_failures: u64,
        /// ms_async_op_threads on both ends.
        #[arg(long, default_value_t = 3)]
        threads: u64,
        /// msgr (the messenger) or tcp (the same load over plain sockets, the baseline).
        #[arg(long, value_parser = ["msgr", "tcp"], default_value = "msgr")]
        transport: String,
        #[command(flatten)]
        out: FormatArgs,
        /// Internal: be the server process.
        #[arg(long, hide = true)]
        serve: bool,
    },
}

pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
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
