//! The `osdkit` command (DESIGN.md §6). Thin: every subcommand calls the library.

use clap::{Parser, Subcommand};
use osdkit::asok::client::AdminSocketClient;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "osdkit",
    version,
    about = "Ceph-style daemon runtime: admin socket, timers, perf counters, ..."
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
    /// Start an embedded daemon context (admin socket, timer, finisher, throttle, perf
    /// counters), exercise it through its own admin socket and print a summary.
    Demo {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Keep the context's files (socket, log) in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Cmd::Demo { json, dir } => match osdkit::demo::run(json, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("osdkit demo: {e}");
                ExitCode::from(1)
            }
        },
    }
}
