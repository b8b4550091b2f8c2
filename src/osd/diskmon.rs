//! `DiskMon`: the seed's full/slow-disk thread, one per OSD with a disk (`kv` store). Every
//! `osd_diskmon_interval` it reads the free space under `osd_data` (statvfs): at or above
//! `mon_osd_full_ratio` used, the OSD is full and refuses writes with `ENOSPC` while it keeps
//! serving reads and deletes, until space returns. And it times a probe (a 4 KiB write and an
//! fdatasync in `osd_data`): `osd_diskmon_slow_count` probes in a row over `osd_diskmon_slow_ms`
//! make the OSD give up, so that whoever hosts it marks it down and stops it ("slow disk").

use crate::common::error::{Error, Result};
use crate::Context;
use parking_lot::{Condvar, Mutex};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Inner {
    ctx: Context,
    whoami: i32,
    dir: PathBuf,
    full: Arc<AtomicBool>,
    gave_up: Mutex<Option<String>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The disk monitor of one OSD; stops with it.
pub(super) struct DiskMon {
    inner: Arc<Inner>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The fraction of the filesystem under `dir` in use (Ceph counts what is not available to
/// unprivileged writers as used).
pub fn used_ratio(dir: &Path) -> Result<f64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::inval(format!("{} holds a NUL byte", dir.display())))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path; `st` has room for one statvfs, which the kernel
    // fills completely on success (checked).
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(Error::io(
            std::io::Error::last_os_error(),
            format!("statvfs {}", dir.display()),
        ));
    }
    // SAFETY: statvfs returned 0, so `st` is initialized.
    let st = unsafe { st.assume_init() };
    if st.f_blocks == 0 {
        return Ok(0.0);
    }
    Ok(1.0 - st.f_bavail as f64 / st.f_blocks as f64)
}

impl Inner {
    fn secs(&self, key: &str) -> Duration {
        Duration::from_secs_f64(self.ctx.conf().get_f64(key).clamp(0.0, 86_400.0))
    }

    /// One timed probe write, with the injected delay: milliseconds.
    fn probe(&self) -> Result<f64> {
        let t0 = Instant::now();
        let p = self.dir.join(".diskmon_probe");
        let mut f = std::fs::File::create(&p).map_err(|e| Error::io(e, format!("probe {}", p.display())))?;
        f.write_all(&[0u8; 4096])
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::io(e, "probe write"))?;
        let inject = self.ctx.conf().get_f64("osd_diskmon_inject_slow_ms").max(0.0);
        Ok(t0.elapsed().as_secs_f64() * 1e3 + inject)
    }

    fn run(&self) {
        let mut slow_in_a_row = 0u64;
        loop {
            let interval = self.secs("osd_diskmon_interval").max(Duration::from_millis(10));
            {
                let mut stop = self.stop.lock();
                if !*stop {
                    self.wake.wait_for(&mut stop, interval);
                }
                if *stop {
                    return;
                }
            }
            let ratio = self.ctx.conf().get_f64("mon_osd_full_ratio").clamp(0.0, 1.0);
            match used_ratio(&self.dir) {
                Ok(used) => {
                    let full = used >= ratio;
                    if self.full.swap(full, Ordering::AcqRel) != full {
                        if full {
                            log::error!(target: "osd", "osd.{}: disk full: {:.1}% used (mon_osd_full_ratio {ratio}): refusing writes", self.whoami, used * 100.0);
                        } else {
                            log::warn!(target: "osd", "osd.{}: disk no longer full ({:.1}% used): taking writes again", self.whoami, used * 100.0);
                        }
                    }
                }
                Err(e) => log::warn!(target: "osd", "osd.{}: diskmon: {e}", self.whoami),
            }
            let threshold = self.ctx.conf().get_f64("osd_diskmon_slow_ms").max(0.0);
            let need = self.ctx.conf().get_u64("osd_diskmon_slow_count").max(1);
            match self.probe() {
                Ok(ms) if threshold > 0.0 && ms > threshold => {
                    slow_in_a_row += 1;
                    log::warn!(target: "osd", "osd.{}: slow disk probe: {ms:.0} ms ({slow_in_a_row} of {need})", self.whoami);
                    if slow_in_a_row >= need {
                        let why = format!(
                            "slow disk: {slow_in_a_row} probes in a row over osd_diskmon_slow_ms {threshold} (last {ms:.0} ms)"
                        );
                        log::error!(target: "osd", "osd.{}: {why}: giving up", self.whoami);
                        *self.gave_up.lock() = Some(why);
                        return;
                    }
                }
                Ok(_) => slow_in_a_row = 0,
                Err(e) => log::warn!(target: "osd", "osd.{}: diskmon: {e}", self.whoami),
            }
        }
    }
}

impl DiskMon {
    /// Starts watching `dir` for `ctx`'s OSD; `full` is the flag the op path reads.
    pub(super) fn start(ctx: &Context, whoami: i32, dir: &Path, full: Arc<AtomicBool>) -> Result<DiskMon> {
        let inner = Arc::new(Inner {
            ctx: ctx.clone(),
            whoami,
            dir: dir.to_path_buf(),
            full,
            gave_up: Mutex::new(None),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let i2 = inner.clone();
        let t = crate::common::log::ThreadBuilder::new()
            .name("osd_diskmon".into())
            .spawn(move || i2.run())
            .map_err(|e| Error::io(e, "spawning osd_diskmon"))?;
        Ok(DiskMon {
            inner,
            thread: Mutex::new(Some(t)),
        })
    }

    /// Why the OSD should stop (a slow disk), once it should.
    pub(super) fn gave_up(&self) -> Option<String> {
        self.inner.gave_up.lock().clone()
    }

    pub(super) fn stop(&self) {
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}
