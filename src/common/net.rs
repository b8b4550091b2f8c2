//! Socket writes that never raise SIGPIPE. A write to a socket whose peer has gone raises
//! SIGPIPE, which kills the process unless it is ignored; Rust programs and Python ignore it,
//! but a C or C++ host linking this library need not. So every socket write here is a
//! `sendmsg(2)` with `MSG_NOSIGNAL` (Ceph's messenger does the same): a gone peer is an
//! `EPIPE` error on one connection, not the end of the host.

use std::io::IoSlice;
use std::os::fd::RawFd;

/// Writes as much of `bufs` as the socket `fd` takes, like `writev(2)`, without SIGPIPE.
pub fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
    // IOV_MAX on Linux; callers pass far fewer.
    let n = bufs.len().min(1024);
    // SAFETY: an all-zero msghdr is valid (no name, no control data); the iovec pointer and
    // count set below describe `bufs`, whose IoSlice is ABI-compatible with `struct iovec`
    // (std guarantees it on Unix) and outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = n as _;
    loop {
        // SAFETY: `msg` points at `n` valid iovecs (above); `fd` is the caller's open socket;
        // sendmsg only reads the buffers.
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes all of `buf` to the socket `fd` (blocking sockets; a send timeout surfaces as
/// `WouldBlock`/`TimedOut`), without SIGPIPE.
pub fn send_all(fd: RawFd, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match send_vectored(fd, &[IoSlice::new(buf)])? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_gone_peer_is_epipe_not_sigpipe() {
        // SIGPIPE blocked in this thread only (other tests run beside it): a write that raised
        // it would leave it pending here, where sigpending(2) sees it.
        // SAFETY: plain sigset manipulation on local values and this thread's mask.
        let pending = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            let mut old: libc::sigset_t = std::mem::zeroed();
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old), 0);
            let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
            send_all(a.as_raw_fd(), b"hello").unwrap();
            let mut got = [0u8; 5];
            b.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
            drop(b);
            let e = send_vectored(a.as_raw_fd(), &[IoSlice::new(b"x"), IoSlice::new(b"y")]).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
            let mut p: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut p);
            let pending = libc::sigismember(&p, libc::SIGPIPE) == 1;
            if pending {
                // Consume it before unblocking, so the test fails instead of dying.
                let mut sig = 0;
                libc::sigwait(&set, &mut sig);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            pending
        };
        assert!(!pending, "the write raised SIGPIPE");
    }
}
