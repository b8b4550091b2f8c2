//! A worker's socket I/O: reading into the protocol's buffer (`recv(2)` straight into spare
//! capacity, large frames into prefaulted buffers), and writing queued frames with `writev`.

use super::*;

impl Worker {
    pub(super) fn read(&mut self, t: usize, to_eagain: bool) -> Verdict {
        loop {
            if self.recv_throttled(t) {
                if !self.throttled.contains(&t) {
                    self.throttled.push(t);
                }
                break;
            }
            if self.inject_failure() {
                return Verdict::Fault("injected socket failure (ms_inject_socket_failures)".into());
            }
            let s = self.socks.get_mut(&t).expect("token checked");
            // A large frame in progress is read exactly (see `frame_remaining`); otherwise a
            // fixed chunk holds many small frames. A bigger chunk would only pull in the start
            // of a large frame that then gets copied when its buffer is sized.
            let remaining = s.proto.frame_remaining();
            // Large frames come in pieces of at most LARGE_READ, small enough to be still in
            // cache when the protocol checksums them (`RunningCrc`).
            let chunk = remaining.clamp(READ_CHUNK, LARGE_READ);
            // Room for the rest of the frame is enough: a large frame's buffer was sized to it,
            // and growing it for a whole chunk would copy the frame into memory never touched.
            let need = if remaining > 0 { remaining.min(chunk) } else { chunk };
            let (n, room) = match recv_into(&s.stream, s.proto.read_buf(), chunk, need) {
                Ok((0, _)) => return Verdict::Fault("peer closed the connection".into()),
                Ok(r) => r,
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => break,
                    ErrorKind::Interrupted => continue,
                    _ => return Verdict::Fault(format!("read: {e}")),
                },
            };
            self.perf.inc(L_RECV_BYTES, n as u64);
            s.last_active = Instant::now();
            // Less than was room for: the socket is empty (its edge-triggered readiness fires
            // again on new data). A full buffer says nothing of the socket.
            let drained = n < room && !to_eagain;
            // The valid frames before a bad one are handled first (a lossy session would
            // otherwise lose those messages), then the connection is closed.
            let processed = s.proto.process();
            match (self.events(t), processed) {
                (Verdict::Keep, Err(f)) => return Verdict::Fault(format!("protocol error: {f}")),
                (Verdict::Keep, Ok(())) if drained => break,
                (Verdict::Keep, Ok(())) => {}
                (v, _) => return v,
            }
        }
        Verdict::Keep
    }

    /// Frames everything queued on the socket's session and writes it.
    pub(super) fn drain(&mut self, t: usize) -> Verdict {
        let s = self.socks.get_mut(&t).expect("token checked");
        if !s.ready {
            return self.flush(t);
        }
        let Some(conn) = s.conn.clone() else {
            return self.flush(t);
        };
        let mut sent = 0u64;
        {
            let mut st = conn.state.lock();
            st.kicked = false;
            while let Some(mut m) = st.out_q.pop_front() {
                if m.seq == 0 {
                    st.out_seq += 1;
                    m.seq = st.out_seq;
                }
                let h = MsgHeader {
                    seq: m.seq,
                    tid: m.tid,
                    ty: m.ty,
                    priority: m.priority,
                    version: m.version,
                    compat_version: m.compat_version,
                    ..Default::default()
                };
                s.proto
                    .send_message(h, m.front.clone(), m.middle.clone(), m.data.clone());
                sent += 1;
                if !conn.policy.lossy {
                    st.sent.push_back(m);
                }
            }
        }
        self.perf.inc(L_SEND_MSGS, sent);
        self.flush(t)
    }

    pub(super) fn flush(&mut self, t: usize) -> Verdict {
        let inject = self.inject_failure();
        let s = self.socks.get_mut(&t).expect("token checked");
        s.wq.extend(s.proto.take_output());
        if !s.connected || s.wq.is_empty() {
            return Verdict::Keep;
        }
        if inject {
            return Verdict::Fault("injected socket failure (ms_inject_socket_failures)".into());
        }
        while !s.wq.is_empty() {
            let slices: Vec<IoSlice<'_>> = s.wq.iter().take(64).map(|b| IoSlice::new(b)).collect();
            match crate::common::net::send_vectored(std::os::fd::AsRawFd::as_raw_fd(&s.stream), &slices) {
                Ok(0) => return Verdict::Fault("write returned 0".into()),
                Ok(mut n) => {
                    self.perf.inc(L_SEND_BYTES, n as u64);
                    s.last_active = Instant::now();
                    while n > 0 {
                        let front = s.wq.front_mut().expect("bytes written came from the queue");
                        if n >= front.len() {
                            n -= front.len();
                            s.wq.pop_front();
                        } else {
                            let _ = front.split_to(n);
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Verdict::Fault(format!("write: {e}")),
            }
        }
        Verdict::Keep
    }
}

/// One `recv(2)` of at most `want` bytes straight into the spare capacity of `buf` (no
/// zeroing first, no copy after), which is grown to `want` only if it has less than `need`;
/// returns the bytes read and how many there was room for.
pub(super) fn recv_into(
    stream: &TcpStream,
    buf: &mut bytes::BytesMut,
    want: usize,
    need: usize,
) -> std::io::Result<(usize, usize)> {
    use std::os::fd::AsRawFd;
    if buf.capacity() - buf.len() < need {
        buf.reserve(want);
    }
    let spare = buf.spare_capacity_mut();
    let room = want.min(spare.len());
    let spare = &mut spare[..room];
    // SAFETY: `spare` is writable memory owned by `buf`, `spare.len()` bytes long; recv(2)
    // writes at most that many bytes into it and reports how many. The fd belongs to `stream`,
    // which outlives the call.
    let r = unsafe { libc::recv(stream.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = r as usize;
    // SAFETY: recv initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok((n, room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connected pair: a std stream to write with, a mio stream to read with.
    fn pair() -> (std::net::TcpStream, TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let w = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (r, _) = l.accept().unwrap();
        (w, TcpStream::from_std(r))
    }

    fn recv_all(r: &TcpStream, buf: &mut bytes::BytesMut, want: usize, need: usize) -> (usize, usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match recv_into(r, buf, want, need) {
                Ok(r) => return r,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    #[test]
    fn the_end_of_a_frame_is_read_into_its_buffer_without_growing_it() {
        let (mut w, r) = pair();
        w.write_all(&[7u8; 100]).unwrap();
        // A buffer cut to a frame's size, 100 bytes short of full: asking for a whole chunk
        // but needing only the 100 reads into it, where it is.
        let mut buf = bytes::BytesMut::with_capacity(1 << 20);
        buf.resize((1 << 20) - 100, 1);
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        // Room for 100, 100 read: not a sign the socket is drained (the reader must go on).
        assert_eq!(recv_all(&r, &mut buf, READ_CHUNK, 100), (100, 100));
        assert_eq!((buf.as_ptr(), buf.capacity(), buf.len()), (ptr, cap, 1 << 20));
        assert!(buf[(1 << 20) - 100..].iter().all(|&b| b == 7));
        // With less room than it needs, the buffer grows to what is asked for.
        w.write_all(&[9u8; 10]).unwrap();
        assert_eq!(recv_all(&r, &mut buf, READ_CHUNK, READ_CHUNK), (10, READ_CHUNK));
        assert!(buf.capacity() - (1 << 20) >= READ_CHUNK - 10);
        assert_eq!(&buf[1 << 20..], &[9u8; 10]);
    }
}
