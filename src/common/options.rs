//! The option table: every configuration option's name, type, default and description.
//!
//! Names, types and defaults follow Ceph's `src/common/options.cc` where the meaning is the same, so
//! operators' `ceph.conf` files, `config help` and tooling that reads `config show` keep working.
//! The table is built once; `debug_<subsys>` options are generated from [`SUBSYSTEMS`].

use super::error::{Error, Result};
use super::subsys::{parse_debug_level, SUBSYSTEMS};
use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptType {
    Str,
    Bool,
    Int,
    Uint,
    Float,
    /// Bytes; accepts `K`/`M`/`G`/`T` (and `KiB`...) suffixes, powers of 1024.
    Size,
    /// Seconds; accepts `s`/`m`/`h`/`d` suffixes.
    Secs,
}

impl OptType {
    /// The names `config help` prints (Ceph's `Option::type_to_str`).
    pub fn as_str(self) -> &'static str {
        match self {
            OptType::Str => "str",
            OptType::Bool => "bool",
            OptType::Int => "int",
            OptType::Uint => "uint",
            OptType::Float => "float",
            OptType::Size => "size",
            OptType::Secs => "secs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptLevel {
    Basic,
    Advanced,
    Dev,
}

impl OptLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            OptLevel::Basic => "basic",
            OptLevel::Advanced => "advanced",
            OptLevel::Dev => "dev",
        }
    }
}

/// Checks a string value beyond its type and returns the form to store (e.g. `5` → `5/5`).
pub type Validator = fn(&str) -> Result<String>;

#[derive(Debug, Clone)]
pub struct OptDef {
    pub name: String,
    pub ty: OptType,
    pub level: OptLevel,
    /// The compiled-in default, in the same text form a config file would use.
    pub default: String,
    pub desc: String,
    pub long_desc: String,
    /// Ceph's `FLAG_RUNTIME`: something observes the option, so a change takes effect without restart.
    pub runtime: bool,
    pub services: &'static [&'static str],
    pub see_also: &'static [&'static str],
    /// For `Str` options: the only accepted values (empty = any).
    pub enum_values: &'static [&'static str],
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub validator: Option<Validator>,
}

impl OptDef {
    fn new(name: &str, ty: OptType, level: OptLevel, default: &str) -> OptDef {
        OptDef {
            name: name.to_string(),
            ty,
            level,
            default: default.to_string(),
            desc: String::new(),
            long_desc: String::new(),
            runtime: false,
            services: &[],
            see_also: &[],
            enum_values: &[],
            min: None,
            max: None,
            validator: None,
        }
    }
    fn desc(mut self, s: &str) -> Self {
        self.desc = s.to_string();
        self
    }
    fn long(mut self, s: &str) -> Self {
        self.long_desc = s.to_string();
        self
    }
    fn runtime(mut self) -> Self {
        self.runtime = true;
        self
    }
    fn services(mut self, s: &'static [&'static str]) -> Self {
        self.services = s;
        self
    }
    fn see_also(mut self, s: &'static [&'static str]) -> Self {
        self.see_also = s;
        self
    }
    fn enums(mut self, s: &'static [&'static str]) -> Self {
        self.enum_values = s;
        self
    }
    fn min_max(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }
    fn validator(mut self, v: Validator) -> Self {
        self.validator = Some(v);
        self
    }
}

/// Ceph's `ConfFile::normalize_key_name`: `debug ms`, `debug-ms` and `debug_ms` are one key.
/// Runs of whitespace count as one separator so hand-aligned config files still match.
pub fn normalize_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    let mut prev_sep = false;
    for c in k.trim().chars() {
        if c.is_whitespace() {
            if !prev_sep {
                out.push('_');
            }
            prev_sep = true;
        } else {
            out.push(if c == '-' { '_' } else { c });
            prev_sep = false;
        }
    }
    out
}

fn validate_debug(s: &str) -> Result<String> {
    let (log, gather) = parse_debug_level(s)?;
    Ok(format!("{log}/{gather}"))
}

fn validate_mode(s: &str) -> Result<String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    // The admin socket applies it with chmod; bits beyond 0777 (setuid...) make no sense on a socket.
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o777 => Ok(s.to_string()),
        _ => Err(Error::inval(format!(
            "'{s}' is not an octal file mode between 0 and 0777"
        ))),
    }
}

fn validate_uuid(s: &str) -> Result<String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(Error::inval(format!(
            "'{s}' is not a uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        )))
    }
}

const COMMON: &[&str] = &["common"];
const OSD: &[&str] = &["osd"];
const MON: &[&str] = &["mon"];
const MDS: &[&str] = &["mds"];
const MON_OSD: &[&str] = &["mon", "osd"];

fn table() -> Vec<OptDef> {
    use OptLevel::*;
    use OptType::*;
    let o = OptDef::new;
    let mut v = vec![
        // --- process, files, sockets
        o("admin_socket", Str, Advanced, "$run_dir/$cluster-$name.asok")
            .desc("path for the runtime control socket file, used by the 'ceph daemon' command")
            .services(COMMON),
        o("admin_socket_mode", Str, Advanced, "0600")
            .desc("file mode to set for the admin socket file, e.g, '0755'")
            .services(COMMON)
            .see_also(&["admin_socket"])
            .validator(validate_mode),
        o("run_dir", Str, Advanced, "/var/run/ceph")
            .desc("path for the 'run' directory for storing pid and socket files")
            .services(COMMON)
            .see_also(&["admin_socket"]),
        o("pid_file", Str, Advanced, "")
            .desc("path to write a pid file (if any)")
            .services(COMMON),
        o("daemonize", Bool, Advanced, "true")
            .desc("whether to daemonize (background) after startup")
            .services(&["mon", "mgr", "osd", "mds"])
            .see_also(&["pid_file", "chdir"]),
        o("chdir", Str, Advanced, "/")
            .desc("path to chdir(2) to after daemonizing")
            .services(&["mon", "mgr", "osd", "mds"])
            .see_also(&["daemonize"]),
        o("host", Str, Basic, "")
            .desc("local hostname")
            .long("if blank, ceph assumes the short hostname (hostname -s)")
            .services(COMMON),
        o("fsid", Str, Basic, "")
            .desc("cluster fsid (uuid)")
            .services(COMMON)
            .validator(validate_uuid),
        o("mon_host", Str, Basic, "")
            .desc("list of hosts or addresses to search for a monitor")
            .long("This is a comma, whitespace, or semicolon separated list of IP addresses or hostnames.")
            .services(COMMON),
        o("mon_data", Str, Advanced, "/var/lib/ceph/mon/$cluster-$id")
            .desc("path to mon database")
            .services(&["mon"]),
        o("rados_osd_op_timeout", Float, Advanced, "0")
            .desc("how many seconds to wait for a response from OSDs before returning an error from a rados operation; 0 means no limit")
            .services(&["client"]),
        o("public_addr", Str, Basic, "")
            .desc("public-facing address to bind to")
            .services(&["mon", "mds", "osd", "mgr"]),
        o("cluster_addr", Str, Basic, "")
            .desc("cluster-facing address to bind to")
            .services(OSD),
        o("perf", Bool, Advanced, "true")
            .desc("enable internal performance metrics")
            .long("If enabled, collects metrics for the perf counters exposed by 'perf dump'.")
            .services(COMMON),
        o("supervise_start_tries", Uint, Advanced, "3")
            .desc("How many times an osdkit supervisor asks the manager to start its OSD before it gives up starting (osdkit)")
            .services(OSD)
            .see_also(&["supervise_start_interval"]),
        o("supervise_start_interval", Float, Advanced, "10")
            .desc("Seconds between an osdkit supervisor's start requests, and the first back-off after a restart (osdkit)")
            .services(OSD),
        o("supervise_status_interval", Float, Advanced, "5")
            .desc("Seconds between an osdkit supervisor's status checks of its OSD (osdkit)")
            .services(OSD),
        o("supervise_restart_burst", Uint, Advanced, "5")
            .desc("Restarts an osdkit supervisor makes within supervise_restart_window before it stops restarting (systemd's StartLimitBurst) (osdkit)")
            .services(OSD)
            .see_also(&["supervise_restart_window"]),
        o("supervise_restart_window", Float, Advanced, "600")
            .desc("Seconds over which supervise_restart_burst is counted (osdkit)")
            .services(OSD),
        o("supervise_stop_instance", Bool, Advanced, "false")
            .desc("Whether an osdkit supervisor stopped by SIGTERM also stops its OSD (osdkit; default: the OSD keeps running)")
            .services(OSD),
        o("throttler_perf_counter", Bool, Advanced, "true")
            .desc("enable perf counters for throttles")
            .services(COMMON)
            .see_also(&["perf"]),
        o("heartbeat_interval", Int, Advanced, "5")
            .desc("Frequency of internal heartbeat checks (seconds)")
            .services(COMMON)
            .min(1.0)
            .runtime(),
        o("heartbeat_file", Str, Advanced, "")
            .desc("File to touch on successful internal heartbeat")
            .long("If set, this file will be touched every time an internal heartbeat check succeeds.")
            .services(COMMON)
            .see_also(&["heartbeat_interval"])
            .runtime(),
        o("debug_asok_assert_abort", Bool, Dev, "false")
            .desc("allow commands 'assert' and 'abort' via asok for testing crash dumps etc")
            .services(COMMON)
            .runtime(),
        // --- logging
        o("log_file", Str, Basic, "/var/log/ceph/$cluster-$name.log")
            .desc("path to log file")
            .services(COMMON)
            .see_also(&["log_to_file", "log_to_stderr", "err_to_stderr"])
            .runtime(),
        o("log_to_file", Bool, Basic, "true")
            .desc("send log lines to a file")
            .services(COMMON)
            .see_also(&["log_file"])
            .runtime(),
        o("log_to_stderr", Bool, Basic, "false")
            .desc("send log lines to stderr")
            .services(COMMON)
            .runtime(),
        o("err_to_stderr", Bool, Basic, "true")
            .desc("send critical error log lines to stderr")
            .services(COMMON)
            .runtime(),
        o("log_max_new", Uint, Advanced, "1000")
            .desc("max unwritten log entries to allow before waiting to flush to the log")
            .services(COMMON)
            .see_also(&["log_max_recent"])
            .runtime(),
        o("log_max_recent", Uint, Advanced, "10000")
            .desc("recent log entries to keep in memory to dump in the event of a crash")
            .long("Detail above the log level is kept only here and written out on a crash or 'log dump'.")
            .services(COMMON)
            .runtime(),
        o("log_flush_on_exit", Bool, Advanced, "true")
            .desc("set a process exit handler to ensure the log is flushed on exit")
            .services(COMMON)
            .runtime(),
        // --- messenger
        o("ms_type", Str, Advanced, "async+posix")
            .desc("Messenger implementation to use for network communication")
            .services(COMMON)
            .enums(&["async+posix"]),
        o("ms_async_op_threads", Uint, Advanced, "3")
            .desc("Threadpool size for AsyncMessenger (ms_type=async)")
            .services(COMMON)
            .min_max(1.0, 24.0),
        o("ms_async_worker_fill", Uint, Advanced, "16")
            .desc("Sockets a messenger worker takes before new connections go to the next one (osdkit; 0: spread round-robin, as Ceph does)")
            .services(COMMON)
            .see_also(&["ms_async_op_threads"]),
        o("ms_async_flush_every", Uint, Advanced, "8")
            .desc("Messages a worker delivers from one read before it sends what their handling queued (osdkit; 0: only after the whole read)")
            .long("An OSD that runs ops on the messenger thread (osd_op_inline_idle) replies to a read of 16 ops half-way through, so the client sends new ops while the rest are handled: 4 KiB writes at 16 in flight on one OSD went from about 53k to 74k a second here (at 8).")
            .services(COMMON)
            .see_also(&["osd_op_inline_idle"]),
        o("ms_async_idle_poll_us", Uint, Advanced, "100")
            .desc("Microseconds a messenger worker keeps polling its sockets without sleeping after its last event (osdkit; 0: sleep at once, as Ceph does)")
            .long("Like Seastar's idle poll time: an answer that comes within this time is picked up without the cost of waking a sleeping thread (about 40 us a hop on a 2-core VM), at the price of a CPU kept busy meanwhile; the poller yields to threads that have work. One OSD, 4 KiB writes: 1 in flight 109 -> 28 us, 16 in flight 58-68k -> 71-80k writes/s.")
            .services(COMMON)
            .min_max(0.0, 1000000.0),
        o("ms_bind_port_min", Int, Advanced, "6800")
            .desc("Lowest port number to bind daemon(s) to")
            .services(COMMON)
            .min_max(0.0, 65535.0),
        o("ms_bind_port_max", Int, Advanced, "7300")
            .desc("Highest port number to bind daemon(s) to")
            .services(COMMON)
            .min_max(0.0, 65535.0),
        o("ms_dispatch_throttle_bytes", Size, Advanced, "104857600")
            .desc("Limit messages that are read off the network but still being processed")
            .services(COMMON),
        o("ms_prefault_bytes", Size, Advanced, "67108864")
            .desc("Receive buffers for large frames kept faulted in ahead of time, by the ms_prefault thread (osdkit; 0: none)")
            .long("Frames of 1 MiB or more are read into buffers whose pages a helper thread has already touched, so the messenger thread does not spend its time in page faults (most of it, for 4 MiB writes into a memory store). The helper starts with the first such frame and prepares buffers of the size frames last arrived at.")
            .services(COMMON)
            .see_also(&["ms_prefault_threads"]),
        o("ms_prefault_threads", Uint, Advanced, "4")
            .desc("Threads that fault in the ms_prefault_bytes buffers (osdkit)")
            .long("First touches of memory the VM's host no longer backs wait on the host more than they use the CPU; several threads faulting at once keep more of them in progress.")
            .services(COMMON)
            .min_max(1.0, 64.0)
            .see_also(&["ms_prefault_bytes"]),
        o("ms_tcp_nodelay", Bool, Advanced, "true")
            .desc("Disable Nagle's algorithm and send queued network traffic immediately")
            .services(COMMON),
        o("ms_tcp_rcvbuf", Size, Advanced, "0")
            .desc("Size of TCP socket receive buffer")
            .services(COMMON),
        o("ms_crc_data", Bool, Dev, "true")
            .desc("Set and/or verify crc32c checksum on data payload sent over network")
            .services(COMMON),
        o("ms_crc_header", Bool, Dev, "true")
            .desc("Set and/or verify crc32c checksum on header payload sent over network")
            .services(COMMON),
        o("ms_die_on_unhandled_msg", Bool, Dev, "false")
            .desc("Induce a daemon crash/exit when an unrecognized message is received")
            .services(COMMON),
        o("ms_initial_backoff", Float, Advanced, "0.2")
            .desc("Initial backoff after a network error is detected (seconds)")
            .services(COMMON)
            .min(0.0),
        o("ms_max_backoff", Float, Advanced, "15.0")
            .desc("Maximum backoff after a network error before retrying (seconds)")
            .services(COMMON)
            .see_also(&["ms_initial_backoff"])
            .min(0.0),
        o("ms_connection_ready_timeout", Uint, Advanced, "10")
            .desc("Time before we declare a not yet ready connection as dead (seconds)")
            .services(COMMON),
        o("ms_connection_idle_timeout", Uint, Advanced, "900")
            .desc("Time before an idle connection is closed (seconds)")
            .services(COMMON),
        o("ms_pq_max_tokens_per_priority", Uint, Dev, "16777216")
            .desc("Maximum tokens per priority in the dispatch queue's weighted part")
            .services(COMMON),
        o("ms_pq_min_cost", Uint, Dev, "65536")
            .desc("Minimum cost charged for an item in the dispatch queue's weighted part")
            .services(COMMON),
        o("ms_inject_socket_failures", Uint, Dev, "0")
            .desc("Inject a socket failure every Nth socket operation")
            .services(COMMON)
            .runtime(),
        o("ms_inject_delay_type", Str, Dev, "")
            .desc("Entity type to inject delays for")
            .long("Space-separated entity types (osd, mon, mds, client...) whose incoming messages are delayed.")
            .services(COMMON)
            .see_also(&["ms_inject_delay_max", "ms_inject_delay_probability"])
            .runtime(),
        o("ms_inject_delay_max", Float, Dev, "1.0")
            .desc("Max delay to inject (seconds)")
            .services(COMMON)
            .see_also(&["ms_inject_delay_type"])
            .min(0.0)
            .runtime(),
        o("ms_inject_delay_probability", Float, Dev, "0.0")
            .desc("Probability of injecting a delay into a message")
            .services(COMMON)
            .see_also(&["ms_inject_delay_type"])
            .min_max(0.0, 1.0)
            .runtime(),
        // --- OSD
        o("osd_data", Str, Basic, "/var/lib/ceph/osd/$cluster-$id")
            .desc("path to OSD data")
            .services(OSD),
        o("memstore_prefault_bytes", Size, Advanced, "0")
            .desc("Memory a mem-store OSD faults in when it starts, and its allocator keeps from then on (osdkit; 0: none)")
            .long("A memory store keeps every byte written to it, so a write load keeps touching memory for the first time: a page fault and a zeroed page each, and in a VM whose host no longer backs the memory a wait on the host as well (about 10 us a page on the VM the README's figures come from). Like the JVM's -XX:+AlwaysPreTouch, this pays that cost at startup: the OSD boots once its ms_prefault_threads threads have faulted this much in through the allocator, which from then on keeps what is freed instead of giving it back to the system. Needs mimalloc as the process's allocator (the osdkit command's); refused for more than the system has available. Ignored by the kv store.")
            .services(OSD)
            .see_also(&["memstore_prefault_frame_bytes", "ms_prefault_threads", "osd_objectstore"]),
        o("memstore_prefault_frame_bytes", Size, Advanced, "0")
            .desc("Memory a mem-store OSD faults in when it starts, that messages of 1 MiB or more are read into, end to end, until it is used up (osdkit; 0: none)")
            .long("The store keeps those buffers as the objects' data. Unlike memstore_prefault_bytes this memory is the OSD's own, not the allocator's: it works with any allocator, packs frames without gaps (mimalloc leaves 11% of its chunks unused between 4 MiB + 64 KiB buffers), and goes back to the system as the objects cut from it are all deleted. Faulted in with ms_prefault_threads threads before the OSD boots; refused, with memstore_prefault_bytes, beyond the memory the system has available; needs ms_prefault_bytes > 0. Ignored by the kv store.")
            .services(OSD)
            .see_also(&["memstore_prefault_bytes", "ms_prefault_bytes", "ms_prefault_threads"]),
        o("osd_objectstore", Str, Advanced, "mem")
            .desc("backend type for an OSD's object store")
            .long("mem keeps objects in memory (lost on restart); kv keeps them in a durable store under osd_data.")
            .services(OSD)
            .see_also(&["osd_data"])
            .enums(&["mem", "kv"]),
        o("osd_op_num_shards", Int, Advanced, "8")
            .desc("number of shards for the OSD op queue")
            .long("Ops for one placement group always land in the same shard, so they run in order.")
            .services(OSD)
            .see_also(&["osd_op_num_threads_per_shard"])
            .min_max(1.0, 128.0),
        o("osd_op_num_threads_per_shard", Int, Advanced, "2")
            .desc("number of worker threads serving each OSD op queue shard")
            .services(OSD)
            .see_also(&["osd_op_num_shards"])
            .min_max(1.0, 64.0),
        o("osd_op_inline_idle", Bool, Advanced, "true")
            .desc("run an op on the messenger thread that received it when its shard is idle")
            .long("Only with an object store whose commits do not block (mem). An idle shard gains nothing from the hand-off to tp_osd_tp but two thread wake-ups. osdkit's own option; Ceph always hands off.")
            .services(OSD)
            .see_also(&["osd_op_num_shards"]),
        o("osd_op_queue", Str, Advanced, "wpq")
            .desc("which operation priority queue algorithm to use")
            .long("wpq: Ceph's WeightedPriorityQueue (strict above the cut-off, weighted below). mClock is a later step.")
            .services(OSD)
            .see_also(&["osd_op_queue_cut_off"])
            .enums(&["wpq"]),
        o("osd_op_queue_cut_off", Str, Advanced, "high")
            .desc("the threshold between high priority ops and low priority ops")
            .long("Ops at or above the cut-off go to the strict queue: low = 64 (CEPH_MSG_PRIO_LOW), high = 196 (CEPH_MSG_PRIO_HIGH).")
            .services(OSD)
            .see_also(&["osd_op_queue"])
            .enums(&["low", "high"]),
        o("osd_op_history_size", Uint, Advanced, "20")
            .desc("Max number of completed ops to track")
            .services(OSD)
            .see_also(&["osd_op_history_duration"]),
        o("osd_op_history_duration", Uint, Advanced, "600")
            .desc("Oldest completed op to track (seconds)")
            .services(OSD)
            .see_also(&["osd_op_history_size"]),
        o("osd_op_complaint_time", Float, Advanced, "30.0")
            .desc("An op in flight for longer than this is reported blocked (seconds)")
            .services(OSD),
        o("osd_op_thread_timeout", Int, Advanced, "15")
            .desc("seconds an op worker may be busy before its heartbeat is considered unhealthy")
            .services(OSD),
        o("osd_op_thread_suicide_timeout", Int, Advanced, "150")
            .desc("seconds an op worker may be stuck before the daemon aborts")
            .services(OSD),
        o("osd_client_op_priority", Uint, Advanced, "63")
            .desc("priority of client ops in the OSD op queue")
            .services(OSD)
            .min_max(1.0, 255.0),
        o("osd_recovery_op_priority", Uint, Advanced, "3")
            .desc("Priority to use for recovery operations if not specified for the pool")
            .services(OSD)
            .min_max(1.0, 255.0),
        o("osd_recovery_sleep", Float, Advanced, "0")
            .desc("Time in seconds to sleep before next recovery or backfill op")
            .services(OSD)
            .min_max(0.0, 60.0)
            .runtime(),
        o("osd_client_message_size_cap", Size, Advanced, "524288000")
            .desc("maximum memory to devote to in-flight client requests")
            .long("Once exceeded, the OSD reads no new client data off the network until memory is freed.")
            .services(OSD),
        o("osd_client_message_cap", Uint, Advanced, "256")
            .desc("maximum number of in-flight client requests")
            .services(OSD),
        o("osd_heartbeat_interval", Int, Dev, "6")
            .desc("Interval (in seconds) between peer pings")
            .services(OSD)
            .min_max(1.0, 60.0)
            .runtime(),
        o("osd_heartbeat_grace", Int, Advanced, "20")
            .desc("Duration (in seconds) a peer must go without answering before it is reported down")
            .services(MON_OSD)
            .see_also(&["osd_heartbeat_interval"])
            .runtime(),
        o("mon_osd_full_ratio", Float, Advanced, "0.95")
            .desc("Fraction of its disk in use at which an OSD is full: it refuses writes (ENOSPC) and keeps serving reads and deletes")
            .services(MON_OSD),
        o("osd_diskmon_interval", Float, Advanced, "5")
            .desc("Seconds between an OSD's checks of its disk: free space and a timed probe write (osdkit; 0: no checks)")
            .services(OSD)
            .see_also(&["mon_osd_full_ratio", "osd_diskmon_slow_ms"]),
        o("osd_diskmon_slow_ms", Float, Advanced, "5000")
            .desc("A probe write with fdatasync slower than this many milliseconds counts as slow (osdkit; 0: never)")
            .services(OSD)
            .see_also(&["osd_diskmon_slow_count"]),
        o("osd_diskmon_slow_count", Uint, Advanced, "3")
            .desc("Slow probes in a row after which an OSD marks itself down and stops (osdkit)")
            .services(OSD),
        o("osd_diskmon_inject_slow_ms", Float, Dev, "0")
            .desc("Milliseconds added to every disk probe, to test the slow-disk path (osdkit)")
            .services(OSD)
            .runtime(),
        o("osd_manager_data", Str, Advanced, "/var/lib/osdkit/$cluster-$name")
            .desc("Directory where an osdkit manager keeps the set of OSD instances it was told to run, to start them again after a restart (osdkit)")
            .services(OSD),
        o("osd_manager_shared_messengers", Bool, Advanced, "true")
            .desc("An osdkit manager's OSD instances share one set of public, cluster and heartbeat messengers (one socket and one set of threads each), each OSD an identity of its own on them, told apart by its address's nonce (osdkit)")
            .services(OSD),
        o("osd_max_markdown_count", Int, Advanced, "5")
            .desc("Number of times an OSD may be wrongly marked down within osd_max_markdown_period before it stops instead of booting again")
            .services(OSD)
            .see_also(&["osd_max_markdown_period"])
            .runtime(),
        o("osd_max_markdown_period", Int, Advanced, "600")
            .desc("Window (in seconds) over which osd_max_markdown_count is counted")
            .services(OSD)
            .see_also(&["osd_max_markdown_count"])
            .runtime(),
        o("osd_max_pg_log_entries", Uint, Dev, "10000")
            .desc("Maximum number of entries a PG log keeps (writes after which an OSD that was away is backfilled, not caught up from the log)")
            .services(OSD),
        o("osd_pg_log_recovery", Bool, Dev, "true")
            .desc("Catch an OSD that was away up from the PG log when the log covers its absence, instead of backfilling (osdkit; off: always backfill)")
            .services(OSD),
        o("osd_heartbeat_min_healthy_ratio", Float, Advanced, "0.33")
            .desc("Fraction of heartbeat peers that must answer on both networks before an OSD marked down boots again")
            .services(OSD)
            .runtime(),
        o("osd_heartbeat_min_peers", Int, Advanced, "10")
            .desc("Minimum number of peers an OSD pings")
            .services(OSD)
            .runtime(),
        o("osd_heartbeat_min_size", Size, Advanced, "2000")
            .desc("Minimum heartbeat packet size in bytes; smaller heartbeats are padded to it")
            .services(OSD)
            .runtime(),
        o("osd_heartbeat_stale", Int, Advanced, "600")
            .desc("Interval (in seconds) after which an unanswering peer's heartbeat connection is torn down")
            .services(OSD)
            .runtime(),
        o("osd_mon_heartbeat_interval", Int, Advanced, "30")
            .desc("Interval (in seconds) at which an OSD without peers asks the monitor for a new map")
            .services(OSD)
            .runtime(),
        o("osd_fast_fail_on_connection_refused", Bool, Advanced, "true")
            .desc("immediately mark OSDs as down once they refuse to accept connections")
            .services(OSD),
        o("osd_mon_shutdown_timeout", Float, Advanced, "5.0")
            .desc("seconds to wait for the monitor to acknowledge a clean shutdown")
            .services(OSD),
        o("osd_pool_default_size", Uint, Advanced, "3")
            .desc("the number of copies of an object for new replicated pools")
            .services(MON)
            .min_max(0.0, 10.0),
        o("osd_pool_default_min_size", Uint, Advanced, "0")
            .desc("the minimal number of copies allowed to write to a degraded pool for new replicated pools")
            .long("0 means no specific default; ceph will use size-size/2")
            .services(MON)
            .see_also(&["osd_pool_default_size"])
            .min_max(0.0, 255.0),
        o("osd_pool_default_pg_num", Uint, Advanced, "32")
            .desc("number of PGs for new pools")
            .services(MON),
        // --- monitor
        o("mon_osd_min_down_reporters", Uint, Advanced, "2")
            .desc("number of OSDs from different subtrees who need to report a down OSD for it to count")
            .services(MON)
            .see_also(&["mon_osd_reporter_subtree_level"]),
        o("mon_osd_reporter_subtree_level", Str, Advanced, "host")
            .desc("in which level of parent bucket the reporters are counted")
            .services(MON),
        o("mon_osd_down_out_interval", Int, Advanced, "600")
            .desc("number of seconds after which a down OSD is marked out")
            .services(MON),
        o("mon_osd_auto_mark_new_in", Bool, Advanced, "true")
            .desc("mark booting newly-created OSDs 'in'")
            .services(MON),
        o("mon_osd_report_timeout", Int, Advanced, "900")
            .desc("time before OSDs who do not report to the mons are marked down (seconds)")
            .services(MON),
        o("mon_tick_interval", Int, Advanced, "5")
            .desc("interval for internal mon background checks (seconds)")
            .services(MON),
        o("mon_session_timeout", Int, Advanced, "300")
            .desc("close inactive mon client connections after this many seconds")
            .services(MON),
        // --- MDS
        o("mds_beacon_interval", Float, Advanced, "4.0")
            .desc("interval in seconds between MDS beacons to monitors")
            .services(MDS),
        o("mds_beacon_grace", Float, Advanced, "15.0")
            .desc("tolerance in seconds for missed MDS beacons to monitors")
            .services(&["mds", "mon"]),
        o("mds_heartbeat_grace", Float, Advanced, "15.0")
            .desc("tolerance in seconds for MDS internal heartbeat")
            .services(MDS),
        o("mds_tick_interval", Float, Basic, "5.0")
            .desc("time in seconds between upkeep tasks")
            .services(MDS),
        o("mds_join_fs", Str, Basic, "")
            .desc("file system MDS prefers to join")
            .services(MDS),
    ];
    for (sub, log, gather) in SUBSYSTEMS {
        v.push(
            OptDef::new(&format!("debug_{sub}"), Str, Advanced, &format!("{log}/{gather}"))
                .desc(&format!("Debug level for {sub}"))
                .long("N or N/M: N is the level written to the log, M the level kept in memory for a crash dump.")
                .services(COMMON)
                .runtime()
                .validator(validate_debug),
        );
    }
    // `config show` and `config help` list options by name, as Ceph's schema map does.
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

static TABLE: LazyLock<Vec<OptDef>> = LazyLock::new(table);
static INDEX: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| TABLE.iter().enumerate().map(|(i, d)| (d.name.as_str(), i)).collect());

/// Every option, sorted by name.
pub fn all() -> &'static [OptDef] {
    &TABLE
}

/// Position of an option in [`all`]; `name` may use spaces or dashes.
pub fn index_of(name: &str) -> Option<usize> {
    let n = normalize_key(name);
    INDEX.get(n.as_str()).copied()
}

pub fn find(name: &str) -> Option<&'static OptDef> {
    index_of(name).map(|i| &TABLE[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_ceph_spellings() {
        assert_eq!(normalize_key("debug ms"), "debug_ms");
        assert_eq!(normalize_key("  debug-ms "), "debug_ms");
        assert_eq!(normalize_key("debug \t ms"), "debug_ms");
        assert_eq!(normalize_key("osd heartbeat-grace"), "osd_heartbeat_grace");
    }

    #[test]
    fn table_is_sorted_unique_and_findable() {
        let all = all();
        for w in all.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
        for d in all {
            assert_eq!(find(&d.name).unwrap().name, d.name);
            assert!(!d.desc.is_empty(), "{} has no description", d.name);
            for s in d.see_also {
                assert!(find(s).is_some(), "{} sees also unknown {s}", d.name);
            }
            if !d.enum_values.is_empty() {
                assert!(d.enum_values.contains(&d.default.as_str()), "{}", d.name);
            }
            if let Some(v) = d.validator {
                assert_eq!(v(&d.default).unwrap(), d.default, "{}", d.name);
            }
        }
        assert!(find("no_such_option").is_none());
    }

    #[test]
    fn ceph_defaults() {
        let d = |n: &str| find(n).unwrap();
        assert_eq!(d("admin_socket").default, "$run_dir/$cluster-$name.asok");
        assert_eq!(d("ms_dispatch_throttle_bytes").default, (100u64 << 20).to_string());
        assert_eq!(d("osd_client_message_size_cap").default, (500u64 << 20).to_string());
        assert_eq!(d("osd_heartbeat_interval").ty, OptType::Int);
        assert_eq!(d("mds_beacon_interval").ty, OptType::Float);
        for (sub, log, gather) in SUBSYSTEMS {
            let o = d(&format!("debug {sub}"));
            assert_eq!(o.default, format!("{log}/{gather}"));
            assert!(o.runtime);
        }
    }

    #[test]
    fn validators() {
        assert_eq!(validate_debug("5").unwrap(), "5/5");
        assert!(validate_debug("five").is_err());
        assert!(validate_mode("0755").is_ok());
        assert!(validate_mode("").is_ok());
        assert!(validate_mode("4755").is_err());
        assert!(validate_mode("0999").is_err());
        assert_eq!(
            validate_uuid("0A1B2C3D-0000-1111-2222-333344445555").unwrap(),
            "0a1b2c3d-0000-1111-2222-333344445555"
        );
        assert!(validate_uuid("not-a-uuid").is_err());
    }
}
