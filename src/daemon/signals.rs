//! The `signal_handler` thread, as in Ceph's src/global/signal_handler.cc: SIGHUP (reopen logs),
//! SIGINT and SIGTERM (shut down) are taken synchronously with `sigwait` on one thread and
//! handed to an ordinary closure, so the daemon's reaction may lock, allocate and log, which an
//! asynchronous signal handler may not.
//!
//! This only works if no other thread can receive these signals: the kernel hands a
//! process-directed signal to any thread that does not block it, and with the default action
//! that terminates the process. Hence [`SignalHandler::block_signals`] in `main()` before the
//! first thread is spawned; threads inherit the mask.

use std::mem::MaybeUninit;
use std::os::unix::thread::JoinHandleExt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::common::error::{strerror, Error, Result};

/// The signals a daemon reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sig {
    Hup,
    Int,
    Term,
}

/// SIGUSR2 is ours: `stop` sends it to the thread to get it out of `sigwait`.
const WAKE: libc::c_int = libc::SIGUSR2;
const HANDLED: [libc::c_int; 4] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, WAKE];

/// The running `signal_handler` thread; stopped and joined by [`stop`](Self::stop) or on drop.
#[derive(Debug)]
pub struct SignalHandler {
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SignalHandler {
    /// Blocks SIGHUP, SIGINT, SIGTERM and SIGUSR2 in the calling thread.
    ///
    /// Call it in `main()` before spawning any thread (and before
    /// [`prefork`](super::prefork), whose child inherits the mask): threads inherit the mask of
    /// their creator, and one that does not block these signals may be handed a SIGTERM and
    /// terminate the process before the handler thread sees it.
    pub fn block_signals() -> Result<()> {
        let set = handled_set();
        // SAFETY: `set` is an initialised signal set; a null old-set pointer is allowed.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(Error::new(r, "pthread_sigmask(SIG_BLOCK)"));
        }
        Ok(())
    }

    /// Starts the `signal_handler` thread, which calls `handler` for each signal received.
    ///
    /// Blocks the signals in the calling thread too: the new thread inherits its mask, and a
    /// signal arriving before its first `sigwait` must stay pending rather than kill us.
    /// A panic in `handler` is logged and the thread keeps serving, since with the signals
    /// blocked everywhere nothing else would ever take a SIGTERM.
    pub fn start(handler: impl Fn(Sig) + Send + 'static) -> Result<SignalHandler> {
        Self::block_signals()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = thread::Builder::new()
            .name("signal_handler".into())
            .spawn(move || serve(&flag, handler))
            .map_err(|e| Error::io(e, "spawn signal_handler thread"))?;
        Ok(SignalHandler {
            stopping,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it; signals arriving later stay pending.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stopping.store(true, Ordering::Release);
        // SAFETY: we own the JoinHandle and have neither joined nor detached the thread, so its
        // pthread_t stays valid even if the thread already returned.
        let r = unsafe { libc::pthread_kill(thread.as_pthread_t(), WAKE) };
        if r != 0 && r != libc::ESRCH {
            // Joining a thread we could not wake would hang the caller.
            log::error!("signal_handler: could not wake thread to stop it: {}", strerror(r));
            return;
        }
        if thread.join().is_err() {
            log::error!("signal_handler thread panicked");
        }
    }
}

impl Drop for SignalHandler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(stopping: &AtomicBool, handler: impl Fn(Sig)) {
    let set = handled_set();
    loop {
        let mut signo: libc::c_int = 0;
        // SAFETY: `set` is initialised and `signo` is a valid out-pointer for the call.
        let r = unsafe { libc::sigwait(&set, &mut signo) };
        if r != 0 {
            // Only EINVAL (a bad set) is possible; looping would spin.
            log::error!("signal_handler: sigwait failed: {}", strerror(r));
            return;
        }
        let sig = match signo {
            libc::SIGHUP => Sig::Hup,
            libc::SIGINT => Sig::Int,
            libc::SIGTERM => Sig::Term,
            // A stray SIGUSR2 from outside is not a stop request.
            _ if stopping.load(Ordering::Acquire) => return,
            _ => continue,
        };
        log::debug!("signal_handler: received {sig:?}");
        if panic::catch_unwind(AssertUnwindSafe(|| handler(sig))).is_err() {
            log::error!("signal_handler: handler panicked on {sig:?}");
        }
    }
}

fn handled_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set (it cannot fail for a valid pointer), after
    // which it is valid to read; sigaddset only fails for invalid signal numbers, and ours are
    // the libc constants.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        let mut set = set.assume_init();
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{unbounded, RecvTimeoutError};
    use std::time::Duration;

    const T: Duration = Duration::from_secs(10);

    /// Signals go to the handler thread only: the harness's other threads do not block them,
    /// so a process-wide `kill` could terminate the test binary.
    fn send(h: &SignalHandler, signo: libc::c_int) {
        let t = h.thread.as_ref().unwrap().as_pthread_t();
        // SAFETY: the thread is running and not joined, so its pthread_t is valid.
        assert_eq!(unsafe { libc::pthread_kill(t, signo) }, 0);
    }

    #[test]
    fn delivers_signals_then_stops() {
        let (tx, rx) = unbounded();
        let h = SignalHandler::start(move |s| tx.send(s).unwrap()).unwrap();
        assert_eq!(h.thread.as_ref().unwrap().thread().name(), Some("signal_handler"));
        for (signo, want) in [
            (libc::SIGHUP, Sig::Hup),
            (libc::SIGTERM, Sig::Term),
            (libc::SIGINT, Sig::Int),
        ] {
            send(&h, signo);
            assert_eq!(rx.recv_timeout(T).unwrap(), want);
        }
        h.stop();
        // The closure, and the sender in it, went with the joined thread.
        assert_eq!(rx.recv_timeout(T), Err(RecvTimeoutError::Disconnected));
    }

    #[test]
    fn stray_usr2_does_not_stop_it_and_drop_does() {
        let (tx, rx) = unbounded();
        let h = SignalHandler::start(move |s| tx.send(s).unwrap()).unwrap();
        send(&h, libc::SIGUSR2);
        send(&h, libc::SIGHUP);
        assert_eq!(rx.recv_timeout(T).unwrap(), Sig::Hup);
        drop(h);
        assert_eq!(rx.recv_timeout(T), Err(RecvTimeoutError::Disconnected));
    }

    #[test]
    fn survives_a_panicking_handler() {
        let (tx, rx) = unbounded();
        let h = SignalHandler::start(move |s| {
            assert_ne!(s, Sig::Hup, "deliberate panic");
            tx.send(s).unwrap();
        })
        .unwrap();
        send(&h, libc::SIGHUP);
        send(&h, libc::SIGTERM);
        assert_eq!(rx.recv_timeout(T).unwrap(), Sig::Term);
        h.stop();
    }

    #[test]
    fn block_signals_blocks_them_in_this_thread() {
        // On a fresh thread so the harness's thread keeps its mask.
        thread::spawn(|| {
            SignalHandler::block_signals().unwrap();
            let mut cur = MaybeUninit::<libc::sigset_t>::uninit();
            // SAFETY: a null new-set only queries; the kernel fills `cur` completely.
            let cur = unsafe {
                assert_eq!(
                    libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), cur.as_mut_ptr()),
                    0
                );
                cur.assume_init()
            };
            for s in HANDLED {
                // SAFETY: `cur` is an initialised set.
                assert_eq!(unsafe { libc::sigismember(&cur, s) }, 1, "signal {s}");
            }
        })
        .join()
        .unwrap();
    }
}
