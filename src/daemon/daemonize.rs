//! Going into the background the way Ceph's `Preforker` does (src/common/Preforker.h).
//!
//! The parent forks early, then waits on a pipe until the child says it started (`b"R"`) or
//! failed (`b"E"`, errno, message); only then does it exit, with the child's verdict. So
//! `systemd`/init scripts and the operator at the terminal see startup errors (bad config, pid
//! file locked, port in use) as the command's exit status and stderr, instead of a background
//! process that silently died.
//!
//! ```no_run
//! # use osdkit::daemon::{prefork, Forked};
//! # fn start() -> osdkit::Result<()> { Ok(()) }
//! match prefork().unwrap() {
//!     Forked::Parent(p) => match p.wait() {
//!         Ok(code) => std::process::exit(code),
//!         Err(e) => {
//!             eprintln!("{e}");
//!             std::process::exit(1)
//!         }
//!     },
//!     Forked::Child(c) => match start() {
//!         Ok(()) => c.ready().unwrap(),
//!         Err(e) => {
//!             c.fail(&e);
//!             std::process::exit(1)
//!         }
//!     },
//! }
//! ```
//!
//! Wire format on the pipe: one tag byte; `R` = ready; `E` = failed, followed by the errno as
//! 4 bytes big-endian and the UTF-8 message up to EOF. EOF before any tag means the child died.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::common::error::{Error, Result};

const READY: u8 = b'R';
const FAILED: u8 = b'E';

/// Which side of the fork we are on.
#[derive(Debug)]
pub enum Forked {
    Parent(ParentWait),
    Child(DaemonChild),
}

/// Forks the daemon. The child runs in a new session (`setsid`), detached from the terminal's
/// job control; it keeps the working directory and, until [`DaemonChild::ready`], stdio.
///
/// Must be called before the process starts any thread (signal handler, log writer, timers,
/// anything that spawns one): the child would inherit only the calling thread, along with
/// whatever locks the others held at that instant. On Linux this is checked
/// (`/proc/self/task`) and refused with `EINVAL`.
pub fn prefork() -> Result<Forked> {
    check_single_threaded()?;
    // Bytes still in std's stdout buffer would otherwise be printed twice, once per process.
    let _ = io::stdout().flush();
    let (rd, wr) = pipe_cloexec()?;
    // SAFETY: the process has a single thread (checked above), so no lock can be held by a
    // thread that does not exist in the child; the child then runs as an ordinary process.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::io(io::Error::last_os_error(), "fork")),
        0 => {
            drop(rd);
            let child = DaemonChild { pipe: wr };
            // SAFETY: setsid takes no arguments and affects only this process.
            if unsafe { libc::setsid() } < 0 {
                // Cannot happen to a fresh fork child (it is never a group leader); if it
                // does, the parent is the one who can tell the operator.
                let e = Error::io(io::Error::last_os_error(), "setsid");
                child.fail(&e);
                std::process::exit(1);
            }
            Ok(Forked::Child(child))
        }
        pid => {
            drop(wr);
            Ok(Forked::Parent(ParentWait { pid, pipe: rd }))
        }
    }
}

/// The parent's end: waits for the daemon's verdict.
#[derive(Debug)]
pub struct ParentWait {
    pid: libc::pid_t,
    pipe: File,
}

impl ParentWait {
    /// Blocks until the child reports. `Ok(0)` (the parent's exit code) when it is ready; the
    /// child's error when it failed; an `EIO` error with its exit status when it died first.
    pub fn wait(mut self) -> Result<i32> {
        let mut tag = [0u8; 1];
        let n = read_retrying(&mut self.pipe, &mut tag).map_err(|e| Error::io(e, "read from daemon"))?;
        if n == 0 {
            return Err(self.startup_death());
        }
        match tag[0] {
            // Not waiting for EOF: a process the daemon forked may still hold the write end.
            READY => Ok(0),
            FAILED => {
                let mut rest = Vec::new();
                self.pipe
                    .read_to_end(&mut rest)
                    .map_err(|e| Error::io(e, "read from daemon"))?;
                Err(decode_failure(&rest))
            }
            t => Err(Error::new(
                libc::EIO,
                format!("daemon sent an unknown startup message (tag {t:#04x})"),
            )),
        }
    }

    /// Reaps the child that closed the pipe without a word and says how it ended.
    fn startup_death(&self) -> Error {
        let mut status = 0;
        loop {
            // SAFETY: `self.pid` is our child, not reaped before (only `wait` reaps, once), and
            // `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Error::io(e, "daemon exited during startup; waitpid");
            }
        }
        if libc::WIFEXITED(status) {
            Error::new(
                libc::EIO,
                format!("daemon exited during startup (status {})", libc::WEXITSTATUS(status)),
            )
        } else if libc::WIFSIGNALED(status) {
            Error::new(
                libc::EIO,
                format!("daemon killed by signal {} during startup", libc::WTERMSIG(status)),
            )
        } else {
            Error::new(
                libc::EIO,
                format!("daemon ended during startup (wait status {status:#x})"),
            )
        }
    }
}

/// The daemon's end: report the outcome of startup exactly once.
#[derive(Debug)]
pub struct DaemonChild {
    pipe: File,
}

impl DaemonChild {
    /// Detaches stdin/stdout/stderr (to `/dev/null`, so the daemon neither holds the terminal
    /// nor keeps a caller's output pipe open) and tells the parent to exit 0.
    ///
    /// Fails only if stdio cannot be redirected, after telling the parent so. A parent that
    /// has gone away is not an error: the daemon is up all the same.
    pub fn ready(mut self) -> Result<()> {
        if let Err(e) = redirect_stdio_to_null() {
            self.fail(&e);
            return Err(e);
        }
        if let Err(e) = self.pipe.write_all(&[READY]) {
            log::debug!("could not tell the parent the daemon is ready: {e}");
        }
        Ok(())
    }

    /// Sends `err` to the parent, which prints it and exits 1. The caller then exits.
    pub fn fail(mut self, err: &Error) {
        // Too late to do anything reasonable if the parent is gone; the caller exits anyway.
        if let Err(e) = self.pipe.write_all(&encode_failure(err)) {
            log::debug!("could not send startup failure to the parent: {e}");
        }
    }
}

fn encode_failure(err: &Error) -> Vec<u8> {
    let mut msg = Vec::with_capacity(5 + err.msg.len());
    msg.push(FAILED);
    msg.extend_from_slice(&err.errno.to_be_bytes());
    msg.extend_from_slice(err.msg.as_bytes());
    msg
}

/// The error carried after an `E` tag.
fn decode_failure(rest: &[u8]) -> Error {
    if rest.len() < 4 {
        return Error::new(libc::EIO, "daemon failed during startup (truncated error report)");
    }
    let errno = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let errno = if errno == 0 { libc::EIO } else { errno };
    Error::new(errno, String::from_utf8_lossy(&rest[4..]).into_owned())
}

fn read_retrying(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn check_single_threaded() -> Result<()> {
    #[cfg(target_os = "linux")]
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        let n = dir.count();
        if n > 1 {
            return Err(Error::inval(format!(
                "prefork() must run before any thread is started, but this process has {n} threads"
            )));
        }
    }
    Ok(())
}

/// A pipe whose ends are not inherited by programs the daemon execs: the parent must see EOF
/// when the daemon dies, not when its last helper does.
fn pipe_cloexec() -> Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::io(io::Error::last_os_error(), "pipe2"));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nothing else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(rd), File::from(wr)))
}

fn redirect_stdio_to_null() -> Result<()> {
    // What was printed before `ready` belongs on the terminal, not in /dev/null.
    let _ = io::stdout().flush();
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io(e, "open /dev/null"))?;
    for fd in 0..=2 {
        loop {
            // SAFETY: `null` is open for the call; dup2 atomically replaces descriptor `fd`,
            // and no Rust value owns 0-2 (std's stdio handles use the numbers and keep working).
            let r = unsafe { libc::dup2(null.as_raw_fd(), fd) };
            if r >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io(e, format_args!("redirect descriptor {fd} to /dev/null")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_round_trips() {
        let err = Error::new(libc::EADDRINUSE, "bind 127.0.0.1:6800: in use — ü");
        let wire = encode_failure(&err);
        assert_eq!(wire[0], FAILED);
        assert_eq!(&wire[1..5], &(libc::EADDRINUSE).to_be_bytes());
        assert_eq!(decode_failure(&wire[1..]), err);
    }

    #[test]
    fn malformed_failures_are_eio() {
        assert_eq!(decode_failure(b"\0\0").errno, libc::EIO);
        let e = decode_failure(b"\0\0\0\0boom");
        assert_eq!((e.errno, e.msg.as_str()), (libc::EIO, "boom"));
        assert_eq!(decode_failure(b"\0\0\0\x02\xffx").msg, "\u{fffd}x");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn refuses_to_fork_a_threaded_process() {
        // The harness runs this test on its own thread; one more makes sure regardless.
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let err = prefork().unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);
        assert!(err.msg.contains("before any thread"), "{}", err.msg);
        drop(tx);
        t.join().unwrap();
    }
}
