//! Pid files, as Ceph's `pidfile_write` / `pidfile_remove` (src/global/pidfile.cc).
//!
//! The file holds `"<pid>\n"` and an exclusive `fcntl` write lock for as long as the daemon runs,
//! so a second daemon started on the same file fails instead of overwriting it, and a file left
//! behind by a crash (no lock holder) is simply taken over.
//!
//! POSIX record locks belong to the process and are dropped when the process closes *any*
//! descriptor of the file. This module therefore never opens a second descriptor of a pid file
//! the process holds (it answers [`read_pid`] and [`is_locked`] from the one it has), and code
//! elsewhere in the daemon must not open its own pid file either. Create the pid file in the
//! child after [`prefork`](super::prefork): locks are not inherited by `fork`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::common::error::{Error, Result};

/// Pid files this process holds.
///
/// Also serialises every open of a pid file in this process: a descriptor opened and closed by
/// `is_locked` in one thread while another thread's `create` holds the lock would release it.
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

struct Held {
    dev: u64,
    ino: u64,
    /// A forked child inherits this table but not the locks, so entries count only in `owner`.
    owner: i32,
    file: Arc<File>,
}

/// How often `create` retries when the file changes under it (holder unlocked between our
/// `F_SETLK` and `F_GETLK`, or the path was unlinked/replaced while we locked it).
const CREATE_TRIES: usize = 5;

/// How long `create` waits for a holder that is exiting to let go of the lock. A process killed
/// with SIGKILL shows as a zombie as soon as its main thread is gone, but its other threads
/// still hold the descriptor table (and so the lock) until they have unmapped their memory,
/// which for a daemon with a large heap takes a while; a restart right after `kill -9` must
/// not fail on that.
const HOLDER_EXIT_WAIT: Duration = Duration::from_secs(10);

/// A locked pid file; the lock lives as long as this value.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    file: Arc<File>,
}

impl PidFile {
    /// Creates (or takes over) `path`, locks it and writes our pid into it.
    ///
    /// The directory must exist. Fails with `EEXIST` when another process (or this one) holds
    /// the lock.
    pub fn create(path: &Path) -> Result<PidFile> {
        let mut held = HELD.lock();
        let me = our_pid();
        let exit_deadline = Instant::now() + HOLDER_EXIT_WAIT;
        let mut tries = 0;
        while tries < CREATE_TRIES {
            // Checked before opening: opening and closing a descriptor of a file we hold would
            // release our own lock.
            if find_held(&held, path, me)?.is_some() {
                return Err(locked_by(path, me));
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| Error::io(e, format_args!("open pid file {}", path.display())))?;
            match fcntl_lock(&file, libc::F_SETLK, libc::F_WRLCK) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
                    match lock_holder(&file, path)? {
                        Some(pid) if pid != me && exiting(pid) && Instant::now() < exit_deadline => {
                            drop(file);
                            // Other threads may use pid files meanwhile; ours is not open.
                            MutexGuard::unlocked(&mut held, || std::thread::sleep(Duration::from_millis(5)));
                            continue;
                        }
                        Some(pid) => return Err(locked_by(path, pid)),
                        None => {
                            tries += 1;
                            continue;
                        }
                    }
                }
                Err(e) => return Err(Error::io(e, format_args!("lock pid file {}", path.display()))),
            }
            // Another daemon may have removed the file between our open and our lock; writing
            // into an unlinked inode would leave a pid file nobody can see.
            if !same_file(&file, path)? {
                tries += 1;
                continue;
            }
            file.set_len(0)
                .and_then(|()| file.write_all_at(format!("{me}\n").as_bytes(), 0))
                .map_err(|e| Error::io(e, format_args!("write pid file {}", path.display())))?;
            let meta = file
                .metadata()
                .map_err(|e| Error::io(e, format_args!("stat pid file {}", path.display())))?;
            let file = Arc::new(file);
            held.push(Held {
                dev: meta.dev(),
                ino: meta.ino(),
                owner: me,
                file: file.clone(),
            });
            return Ok(PidFile {
                path: path.to_path_buf(),
                file,
            });
        }
        Err(Error::new(
            libc::EAGAIN,
            format!("pid file {} kept changing while we tried to lock it", path.display()),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `path` still names our file and the file still holds our pid; if an operator or
    /// a newer daemon replaced it, it is not ours to delete.
    fn still_ours(&self) -> Result<bool> {
        if !same_file(&self.file, &self.path)? {
            return Ok(false);
        }
        Ok(pid_from_file(&self.file, &self.path).ok() == Some(our_pid()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Held across the unlink so a `create` of the same path in another thread cannot slip
        // between our check and the removal.
        let mut held = HELD.lock();
        held.retain(|h| !Arc::ptr_eq(&h.file, &self.file));
        match self.still_ours() {
            Ok(true) => {
                if let Err(e) = fs::remove_file(&self.path) {
                    log::warn!("could not remove pid file {}: {e}", self.path.display());
                }
            }
            Ok(false) => log::debug!("pid file {} is no longer ours; leaving it", self.path.display()),
            Err(e) => log::warn!(
                "could not check pid file {} before removing it: {e}",
                self.path.display()
            ),
        }
        // Unlinking before the descriptor closes (when `self.file` drops) keeps the lock until
        // the name is gone, so a starting daemon cannot lock the file and then lose it to us.
    }
}

/// The pid written in the pid file at `path`.
pub fn read_pid(path: &Path) -> Result<i32> {
    let held = HELD.lock();
    if let Some(h) = find_held(&held, path, our_pid())? {
        return pid_from_file(&h.file, path);
    }
    let file = File::open(path).map_err(|e| Error::io(e, format_args!("open pid file {}", path.display())))?;
    pid_from_file(&file, path)
}

/// `Some(pid)` when a live process holds the lock on the pid file at `path` (this process
/// included); `None` when the file is missing or unlocked (left by a daemon that died).
pub fn is_locked(path: &Path) -> Result<Option<i32>> {
    let held = HELD.lock();
    let me = our_pid();
    if find_held(&held, path, me)?.is_some() {
        return Ok(Some(me));
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(e, format_args!("open pid file {}", path.display()))),
    };
    lock_holder(&file, path)
}

fn our_pid() -> i32 {
    std::process::id() as i32
}

fn locked_by(path: &Path, pid: i32) -> Error {
    Error::exists(format!(
        "pid file {} is locked by pid {pid}: is the daemon already running?",
        path.display()
    ))
}

/// Whether `pid`'s main thread has exited (zombie or dead): the process is going away and its
/// locks go with its last thread.
fn exiting(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain any byte.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| matches!(rest.trim_start().as_bytes().first(), Some(b'Z' | b'X'))),
        Err(_) => false,
    }
}

fn find_held<'a>(held: &'a [Held], path: &Path, me: i32) -> Result<Option<&'a Held>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(e, format_args!("stat pid file {}", path.display()))),
    };
    Ok(held
        .iter()
        .find(|h| h.owner == me && h.dev == meta.dev() && h.ino == meta.ino()))
}

fn same_file(file: &File, path: &Path) -> Result<bool> {
    let ours = file
        .metadata()
        .map_err(|e| Error::io(e, format_args!("stat pid file {}", path.display())))?;
    match fs::metadata(path) {
        Ok(m) => Ok(m.dev() == ours.dev() && m.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(e, format_args!("stat pid file {}", path.display()))),
    }
}

fn pid_from_file(file: &File, path: &Path) -> Result<i32> {
    // A pid is at most 10 digits; more than this is not a pid file.
    let mut buf = [0u8; 32];
    let n = file
        .read_at(&mut buf, 0)
        .map_err(|e| Error::io(e, format_args!("read pid file {}", path.display())))?;
    let text = String::from_utf8_lossy(&buf[..n]);
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(Error::inval(format!(
            "pid file {} does not hold a pid: {:?}",
            path.display(),
            text
        ))),
    }
}

/// The pid holding a lock that conflicts with a write lock, or `None` if nobody does.
fn lock_holder(file: &File, path: &Path) -> Result<Option<i32>> {
    let fl = fcntl_lock(file, libc::F_GETLK, libc::F_WRLCK)
        .map_err(|e| Error::io(e, format_args!("query lock on pid file {}", path.display())))?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    // A holder in another pid namespace shows as 0; the file is the next best witness.
    if fl.l_pid > 0 {
        return Ok(Some(fl.l_pid));
    }
    Ok(Some(pid_from_file(file, path).unwrap_or(0)))
}

/// `fcntl(cmd)` with a whole-file lock of type `ty`; returns the struct as the kernel left it
/// (`F_GETLK` fills in the conflicting lock).
fn fcntl_lock(file: &File, cmd: libc::c_int, ty: libc::c_int) -> io::Result<libc::flock> {
    // SAFETY: `flock` is a plain C struct (integers only) for which all-zero bytes are a valid
    // value; l_start = l_len = 0 with SEEK_SET means "the whole file".
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: the descriptor is open for the duration of the borrow of `file`, and for the lock
    // commands fcntl reads and writes only the `flock` we pass, which outlives the call.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// A forked process that takes (or tries to take) the lock on `path`, for checking what
    /// other processes see: fcntl locks never conflict within one process.
    ///
    /// The test harness is multi-threaded, so between `fork` and `_exit` the child makes only
    /// async-signal-safe calls (open, fcntl, read, write, _exit) on data prepared before the
    /// fork. Parent and child talk with single bytes, not EOF: a child forked by a concurrent
    /// test inherits our pipe ends and would hold an EOF back.
    struct LockProbe {
        pid: libc::pid_t,
        to_child: File,
    }

    /// Exit codes of the probe child.
    const LOCKED: i32 = 10;
    const BUSY: i32 = 11;
    const FAILED: i32 = 12;

    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into the array, which we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors were just created and are owned by nothing else.
        unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        }
    }

    impl LockProbe {
        /// Forks a child that tries `F_SETLK` on `path` and reports LOCKED or BUSY with one
        /// byte; a LOCKED child keeps the lock until `release`.
        fn spawn(path: &Path) -> (LockProbe, i32) {
            let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
            let (down_r, down_w) = pipe();
            let (up_r, up_w) = pipe();
            // SAFETY: all-zero is a valid `flock`; prepared here because the child must not
            // allocate.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            // SAFETY: the child only makes async-signal-safe calls on pre-built data and ends
            // with `_exit`, so locks held by other threads at the fork cannot bite it.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                // SAFETY: see above; every pointer passed refers to memory built before fork.
                unsafe {
                    // Should the test fail before `release`, do not linger.
                    libc::alarm(30);
                    let fd = libc::open(cpath.as_ptr(), libc::O_RDWR);
                    let code = if fd < 0 {
                        FAILED
                    } else if libc::fcntl(fd, libc::F_SETLK, &mut fl) == 0 {
                        LOCKED
                    } else {
                        BUSY
                    };
                    let b = code as u8;
                    libc::write(up_w.as_raw_fd(), (&b as *const u8).cast(), 1);
                    if code == LOCKED {
                        let mut x = 0u8;
                        libc::read(down_r.as_raw_fd(), (&mut x as *mut u8).cast(), 1);
                    }
                    libc::_exit(code);
                }
            }
            drop((down_r, up_w));
            let mut b = [0u8];
            (&up_r).read_exact(&mut b).unwrap();
            (LockProbe { pid, to_child: down_w }, b[0] as i32)
        }

        /// Lets the child drop its lock and exit; returns its exit code.
        fn release(self) -> i32 {
            use std::io::Write;
            let _ = (&self.to_child).write_all(b"x");
            let mut status = 0;
            // SAFETY: `self.pid` is our own unreaped child; status is a valid out-pointer.
            assert_eq!(unsafe { libc::waitpid(self.pid, &mut status, 0) }, self.pid);
            assert!(libc::WIFEXITED(status));
            libc::WEXITSTATUS(status)
        }
    }

    #[test]
    fn create_writes_pid_and_drop_removes_it() {
        let dir = tmp();
        let path = dir.path().join("osd.0.pid");
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(pf.path(), path);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        assert_eq!(read_pid(&path).unwrap(), our_pid());
        drop(pf);
        assert!(!path.exists());
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tmp();
        let err = PidFile::create(&dir.path().join("nope/osd.0.pid")).unwrap_err();
        assert_eq!(err.errno, libc::ENOENT);
    }

    #[test]
    fn stale_file_is_taken_over() {
        let dir = tmp();
        let path = dir.path().join("osd.0.pid");
        fs::write(&path, "999999999\nleftover junk that is longer than a pid\n").unwrap();
        assert_eq!(is_locked(&path).unwrap(), None);
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        drop(pf);
        assert!(!path.exists());
    }

    #[test]
    fn other_processes_cannot_lock_ours_even_after_we_read_it() {
        let dir = tmp();
        let path = dir.path().join("osd.0.pid");
        let pf = PidFile::create(&path).unwrap();
        // These must not open a second descriptor: closing it would drop our lock.
        assert_eq!(read_pid(&path).unwrap(), our_pid());
        assert_eq!(is_locked(&path).unwrap(), Some(our_pid()));
        let (probe, code) = LockProbe::spawn(&path);
        assert_eq!(code, BUSY);
        assert_eq!(probe.release(), BUSY);
        drop(pf);
        // Now free: a probe takes the lock.
        fs::write(&path, "1\n").unwrap();
        let (probe, code) = LockProbe::spawn(&path);
        assert_eq!(code, LOCKED);
        assert_eq!(probe.release(), LOCKED);
    }

    #[test]
    fn lock_held_by_another_process_is_eexist() {
        let dir = tmp();
        let path = dir.path().join("osd.0.pid");
        fs::write(&path, "4242\n").unwrap();
        let (probe, code) = LockProbe::spawn(&path);
        assert_eq!(code, LOCKED);
        let err = PidFile::create(&path).unwrap_err();
        assert_eq!(err.errno, libc::EEXIST);
        let want = format!(
            "pid file {} is locked by pid {}: is the daemon already running?",
            path.display(),
            probe.pid
        );
        assert_eq!(err.msg, want);
        assert_eq!(is_locked(&path).unwrap(), Some(probe.pid));
        // The holder's file is left alone.
        assert_eq!(fs::read_to_string(&path).unwrap(), "4242\n");
        assert_eq!(probe.release(), LOCKED);
        assert_eq!(is_locked(&path).unwrap(), None);
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(pf.path()).unwrap(), our_pid());
    }

    #[test]
    fn second_create_in_same_process_is_eexist_and_keeps_the_first() {
        let dir = tmp();
        let path = dir.path().join("osd.0.pid");
        let pf = PidFile::create(&path).unwrap();
        let err = PidFile::create(&path).unwrap_err();
        assert_eq!(err.errno, libc::EEXIST);
        assert!(err.msg.contains(&format!("locked by pid {}", our_pid())), "{}", err.msg);
        let (probe, code) = LockProbe::spawn(&path);
        assert_eq!(code, BUSY);
        probe.release();
        drop(pf);
        assert!(!path.exists());
    }

    #[test]
    fn drop_leaves_a_file_that_is_no_longer_ours() {
        let dir = tmp();
        let path = dir.path().join("osd.0.pid");
        let pf = PidFile::create(&path).unwrap();
        // Another daemon's file renamed over ours.
        let other = dir.path().join("other");
        fs::write(&other, "777\n").unwrap();
        fs::rename(&other, &path).unwrap();
        drop(pf);
        assert_eq!(fs::read_to_string(&path).unwrap(), "777\n");

        // Our own inode, but someone rewrote the pid.
        fs::remove_file(&path).unwrap();
        let pf = PidFile::create(&path).unwrap();
        pf.file.set_len(0).unwrap();
        pf.file.write_all_at(b"778\n", 0).unwrap();
        drop(pf);
        assert_eq!(fs::read_to_string(&path).unwrap(), "778\n");
    }

    #[test]
    fn read_pid_errors() {
        let dir = tmp();
        let path = dir.path().join("x.pid");
        assert_eq!(read_pid(&path).unwrap_err().errno, libc::ENOENT);
        assert_eq!(is_locked(&path).unwrap(), None);
        fs::write(&path, "not a pid\n").unwrap();
        assert_eq!(read_pid(&path).unwrap_err().errno, libc::EINVAL);
        fs::write(&path, "-5\n").unwrap();
        assert_eq!(read_pid(&path).unwrap_err().errno, libc::EINVAL);
        fs::write(&path, " 123 \n").unwrap();
        assert_eq!(read_pid(&path).unwrap(), 123);
    }
}
