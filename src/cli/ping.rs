//! `osdkit ping`: a msgr2 handshake (banner, HELLO, auth none, CLIENT_IDENT) with any msgr2
//! peer — a real `ceph-mon` included — then KEEPALIVE2 round trips. Blocking, one connection;
//! it drives the same `Protocol` the messenger's workers use.

use crate::common::entity::EntityType;
use crate::common::error::{Error, Result};
use crate::msgr::addr::EntityAddr;
use crate::msgr::v2::control::FEATURES_PACIFIC;
use crate::msgr::v2::frame::FrameLimits;
use crate::msgr::v2::protocol::{ClientSession, Event, LocalInfo, Protocol};
use std::io::{IoSlice, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct PingReport {
    pub peer_type: u8,
    pub peer_addrs: Vec<EntityAddr>,
    pub global_id: u64,
    /// Our address as the peer saw it.
    pub my_addr: Option<EntityAddr>,
    pub handshake: Duration,
    pub rtts: Vec<Duration>,
}

fn entity_type_name(t: u8) -> &'static str {
    match t {
        0x01 => "mon",
        0x02 => "mds",
        0x04 => "osd",
        0x08 => "client",
        0x10 => "mgr",
        _ => "unknown",
    }
}

impl PingReport {
    pub fn peer_type_name(&self) -> &'static str {
        entity_type_name(self.peer_type)
    }
}

struct Conn {
    sock: TcpStream,
    proto: Protocol,
}

impl Conn {
    fn flush(&mut self) -> Result<()> {
        let out = self.proto.take_output();
        let mut slices: Vec<IoSlice<'_>> = out.iter().map(|b| IoSlice::new(b)).collect();
        let mut bufs = &mut slices[..];
        while !bufs.is_empty() {
            let n = crate::common::net::send_vectored(std::os::fd::AsRawFd::as_raw_fd(&self.sock), bufs)
                .map_err(|e| Error::io(e, "send"))?;
            if n == 0 {
                return Err(Error::new(libc::ECONNRESET, "peer closed the connection"));
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        Ok(())
    }

    /// Reads until `want` returns Some for an event, or the deadline passes.
    fn until<T>(&mut self, deadline: Instant, mut want: impl FnMut(Event) -> Result<Option<T>>) -> Result<T> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Some(ev) = self.proto.poll_event() {
                if let Some(t) = want(ev)? {
                    return Ok(t);
                }
            }
            self.flush()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::new(
                    libc::ETIMEDOUT,
                    format!("no answer (state {:?})", self.proto.state()),
                ));
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|e| Error::io(e, "socket"))?;
            let n = match self.sock.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::new(
                        libc::ECONNRESET,
                        format!("peer closed the connection during {:?}", self.proto.state()),
                    ))
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) => return Err(Error::io(e, "recv")),
            };
            self.proto.read_buf().extend_from_slice(&chunk[..n]);
            self.proto.process().map_err(|f| Error::new(libc::EPROTO, f.0))?;
        }
    }
}

/// Connects to `target`, completes the msgr2 handshake as `client.<id>`, and times `count`
/// KEEPALIVE2 round trips `interval` apart.
pub fn ping(target: &EntityAddr, id: &str, count: usize, interval: Duration, timeout: Duration) -> Result<PingReport> {
    let sa = target.addr.ok_or_else(|| Error::inval("address has no IP and port"))?;
    let start = Instant::now();
    let sock = TcpStream::connect_timeout(&sa, timeout).map_err(|e| Error::io(e, format!("connect {sa}")))?;
    let _ = sock.set_nodelay(true);
    let local = LocalInfo {
        entity_type: EntityType::Client.wire_value(),
        entity_id: id.to_string(),
        gid: -1,
        nonce: crate::msgr::addr::random_nonce(),
        my_addrs: vec![],
        features: FEATURES_PACIFIC,
    };
    let session = ClientSession::New {
        global_seq: 1,
        cookie: 0,
        lossy: true,
    };
    let proto = Protocol::client(local, *target, None, session, FrameLimits::default());
    let mut c = Conn { sock, proto };
    let deadline = start + timeout;
    let (peer_type, peer_addrs) = c.until(deadline, |ev| match ev {
        Event::Ready {
            peer_type, peer_addrs, ..
        } => Ok(Some((peer_type, peer_addrs))),
        Event::Wait => Err(Error::new(libc::EAGAIN, "peer answered WAIT")),
        Event::SessionReset { .. } | Event::SessionRetry { .. } | Event::SessionRetryGlobal { .. } => {
            Err(Error::new(libc::EPROTO, format!("unexpected {ev:?} for a new session")))
        }
        _ => Ok(None),
    })?;
    let handshake = start.elapsed();
    let mut rtts = Vec::with_capacity(count);
    for i in 0..count {
        if i > 0 && !interval.is_zero() {
            std::thread::sleep(interval);
        }
        let t0 = Instant::now();
        let stamp = c.proto.send_keepalive();
        c.until(t0 + timeout, |ev| match ev {
            Event::KeepaliveAck { stamp: s } if s == stamp => Ok(Some(())),
            _ => Ok(None),
        })?;
        rtts.push(t0.elapsed());
    }
    Ok(PingReport {
        peer_type,
        peer_addrs,
        global_id: c.proto.global_id,
        my_addr: c.proto.my_addr_seen,
        handshake,
        rtts,
    })
}
