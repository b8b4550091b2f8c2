//! Process plumbing for a daemon's `main()`: forking into the background, the pid file, and the
//! thread that turns SIGHUP/SIGINT/SIGTERM into ordinary calls.
//!
//! The order matters, as in Ceph's `global_init_prefork` / `global_init_postfork_finish`:
//!
//! 1. [`SignalHandler::block_signals`] first, while the process has one thread, so every thread
//!    started later inherits the mask and a SIGTERM can only be taken by the handler thread.
//! 2. [`prefork`], still single-threaded: the parent waits for the child's verdict.
//! 3. In the child: [`PidFile::create`] (record locks are not inherited by `fork`, so it must be
//!    the child that takes it), start the daemon's threads, [`SignalHandler::start`].
//! 4. [`DaemonChild::ready`] once the daemon serves, or [`DaemonChild::fail`] and exit.

pub mod daemonize;
pub mod host;
pub mod pidfile;
pub mod signals;

pub use daemonize::{prefork, DaemonChild, Forked, ParentWait};
pub use host::{run_daemon, DaemonOpts};
pub use pidfile::{is_locked, read_pid, PidFile};
pub use signals::{Sig, SignalHandler};
