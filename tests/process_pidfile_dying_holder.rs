//! A daemon restarted right after `kill -9` of its predecessor: the killed process's main
//! thread is already a zombie while its other threads still hold the pid file's lock.
//! `PidFile::create` must wait for that holder instead of failing with "already running".
//!
//! The holder is this binary re-executed, so that its main thread can leave alone (with the
//! thread-only `exit` system call) while another thread keeps the process and its lock alive:
//! the state a SIGKILLed multi-threaded daemon is in while it tears down its memory. Hence
//! `harness = false`: the test needs a main thread of its own.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use osdkit::daemon::pidfile::{self, PidFile};

const HOLDER_ENV: &str = "OSDKIT_TEST_PIDFILE_HOLDER";
/// How long the holder's last thread lives on after its main thread has gone.
const LINGER: Duration = Duration::from_millis(1500);

fn holder(path: &str) -> ! {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    // SAFETY: all-zero is a valid `flock` (integers only); l_start = l_len = 0 is the whole file.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: the descriptor is open; fcntl reads only the `flock` we pass.
    assert_eq!(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) }, 0);
    writeln!(&file, "{}", std::process::id()).unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(LINGER);
        let _keep = &file;
        // SAFETY: _exit ends the whole process at once; nothing of ours needs flushing.
        unsafe { libc::_exit(0) }
    });
    println!("locked");
    std::io::stdout().flush().unwrap();
    // SAFETY: SYS_exit ends only the calling (main) thread, which owns nothing the remaining
    // thread uses; the process lives on as a zombie leader with one running thread.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("SYS_exit returned");
}

fn state(pid: u32) -> Option<u8> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().bytes().next()
}

fn main() {
    if let Ok(path) = std::env::var(HOLDER_ENV) {
        holder(&path);
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("osd.0.pid");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(HOLDER_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(child.id()) != Some(b'Z') {
        assert!(
            Instant::now() < deadline,
            "holder's main thread never exited: {:?}",
            state(child.id())
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The gap this is about: the process is a zombie, and its lock is still held.
    assert_eq!(pidfile::is_locked(&path).unwrap(), Some(child.id() as i32));
    let t = Instant::now();
    let ours = PidFile::create(&path).unwrap_or_else(|e| panic!("create with an exiting holder: {e}"));
    let waited = t.elapsed();
    assert_eq!(pidfile::read_pid(&path).unwrap(), std::process::id() as i32);
    assert!(child.wait().unwrap().success());
    drop(ours);
    assert!(!path.exists(), "our pid file was not removed");
    // A live holder is still refused at once: the unit tests in src/daemon/pidfile.rs.
    println!("pidfile_dying_holder: create waited {waited:?} for the exiting holder: ok");
}
