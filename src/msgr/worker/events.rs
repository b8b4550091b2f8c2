//! What a worker does with the protocol's events after a read: messages to fast dispatch or
//! the `DispatchQueue` (with `ms_inject_delay_*`), acks, keepalives, and the session events,
//! which it answers through the decisions in `msgr::session`.

use super::*;

impl Worker {
    /// Handles what the protocol reported after a read.
    pub(super) fn events(&mut self, t: usize) -> Verdict {
        let Some(msgr) = self.msgr.upgrade() else {
            return Verdict::Fault("messenger gone".into());
        };
        let mut got_messages = false;
        let mut drain = false;
        let mut delivered = 0usize;
        loop {
            let s = self.socks.get_mut(&t).expect("token checked");
            let Some(ev) = s.proto.poll_event() else { break };
            match ev {
                Event::Message { header, segments } => {
                    got_messages = true;
                    let conn = s.conn.clone().expect("messages only after ready");
                    let seq = header.seq;
                    self.deliver(&msgr, &conn, header, segments);
                    // The replies handling queued go out now and then, not only after the whole
                    // read: the client can send its next ops while the rest are handled here.
                    delivered += 1;
                    if self.conf.flush_every > 0 && delivered % self.conf.flush_every == 0 {
                        // What was delivered counts as received should a send fault the socket
                        // (a reconnect would otherwise have it sent and delivered again).
                        conn.state.lock().in_seq = seq;
                        if let Some(s) = self.socks.get_mut(&t) {
                            s.proto.delivered(seq);
                        }
                        self.run_deferred();
                        if !self.socks.contains_key(&t) {
                            // A send failed and closed this very socket (its fault is
                            // handled): nothing is left to read or flush here.
                            return Verdict::Moved;
                        }
                    }
                }
                Event::Acked { seq } => {
                    if let Some(c) = &s.conn {
                        // Dropped after the lock (see `Connection::close_and_discard`).
                        let mut st = c.state.lock();
                        while st.sent.front().is_some_and(|m| m.seq <= seq) {
                            self.graveyard.extend(st.sent.pop_front());
                        }
                        drop(st);
                        self.graveyard.clear();
                    }
                }
                Event::Keepalive => {}
                Event::KeepaliveAck { .. } => {
                    if let Some(c) = &s.conn {
                        c.state.lock().last_keepalive_ack = Some(Instant::now());
                    }
                }
                Event::Ready {
                    peer_gid,
                    peer_addrs,
                    server_cookie,
                    ..
                } => {
                    if !s.outgoing {
                        // The accepting side learned this when it accepted the ident.
                        continue;
                    }
                    let conn = s.conn.clone().expect("outgoing sockets carry their session");
                    s.ready = true;
                    session::client_ready(&mut conn.state.lock(), server_cookie, peer_gid, peer_addrs);
                    msgr.dq().queue_event(ConnEvent::Connect, conn);
                    drain = true;
                }
                Event::ReconnectOk { msg_seq } => {
                    let conn = s.conn.clone().expect("outgoing sockets carry their session");
                    s.ready = true;
                    // Freed after the lock (see `Connection::close_and_discard`).
                    let gone = session::client_resumed(&mut conn.state.lock(), msg_seq);
                    drop(gone);
                    msgr.dq().queue_event(ConnEvent::Connect, conn);
                    drain = true;
                }
                Event::SessionReset { full } => {
                    let conn = s.conn.clone().expect("outgoing sockets carry their session");
                    let gseq = msgr.sessions.next_global_seq();
                    let (session, gone) = session::client_reset(
                        &mut conn.state.lock(),
                        full,
                        conn.policy.lossy,
                        gseq,
                        crate::msgr::addr::random_cookie,
                    );
                    drop(gone);
                    s.proto.set_in_seq(0);
                    s.proto.resend_session(session);
                    if full {
                        msgr.dq().queue_event(ConnEvent::BadRemoteReset, conn);
                    }
                }
                Event::SessionRetry { connect_seq } => {
                    let conn = s.conn.clone().expect("outgoing sockets carry their session");
                    let gseq = msgr.sessions.next_global_seq();
                    let r = {
                        let mut st = conn.state.lock();
                        session::client_retry(&mut st, connect_seq);
                        session::reconnect_request(&st, msgr.addrs_for(conn.local_nonce), gseq)
                    };
                    s.proto.resend_session(ClientSession::Reconnect(r));
                }
                Event::SessionRetryGlobal { global_seq } => {
                    let conn = s.conn.clone().expect("outgoing sockets carry their session");
                    msgr.sessions.bump_global_seq(global_seq);
                    let gseq = msgr.sessions.next_global_seq();
                    let r = session::reconnect_request(&conn.state.lock(), msgr.addrs_for(conn.local_nonce), gseq);
                    s.proto.resend_session(ClientSession::Reconnect(r));
                }
                Event::Wait => return Verdict::Fault("peer asked us to wait (connection race)".into()),
                Event::ClientIdent { ident, peer_type } => {
                    if !msgr.serves(ident.target.nonce) {
                        let why = format!(
                            "refused {}: it targets {}, which is not hosted here",
                            ident.addrs[0], ident.target
                        );
                        log::warn!(target: "ms", "{}: {why}", msgr.name);
                        return Verdict::Fault(why);
                    }
                    if msgr.hosting.load(std::sync::atomic::Ordering::Acquire) {
                        s.proto.set_local(msgr.local_info(ident.target.nonce));
                    }
                    let conn = msgr.accept_session(&ident, peer_type, self.idx);
                    let (cookie, lossy) = {
                        let st = conn.state.lock();
                        (st.server_cookie, conn.policy.lossy)
                    };
                    s.proto
                        .accept_client_ident(msgr.sessions.next_global_seq(), cookie, lossy, &ident);
                    s.ready = true;
                    s.conn = Some(conn.clone());
                    msgr.dq().queue_event(ConnEvent::Accept, conn.clone());
                    drain = true;
                    if self.attach(t, conn) {
                        return Verdict::Moved;
                    }
                }
                Event::Reconnect { reconnect, .. } => {
                    // The session's receive state (in_seq) is only final once its old socket
                    // stopped reading: decide on the worker that owns the session, after
                    // closing that socket. Otherwise the old socket could still deliver what
                    // the peer is about to resend.
                    match msgr.in_session(&reconnect) {
                        Some(c) if c.worker != self.idx => {
                            let mut s = self.socks.remove(&t).expect("token checked");
                            let _ = self.poll.registry().deregister(&mut s.stream);
                            s.wq.extend(s.proto.take_output());
                            self.perf.set(L_ACTIVE, self.socks.len() as u64);
                            msgr.worker(c.worker).send(Cmd::Resume(c, Box::new(s), reconnect));
                            return Verdict::Moved;
                        }
                        _ => {
                            // Validated before anything is closed; `attach` replaces the
                            // session's old socket once the reconnect is accepted.
                            let s = self.socks.get_mut(&t).expect("token checked");
                            if let Some(conn) = msgr.resume_session(&reconnect, &mut s.proto) {
                                s.ready = true;
                                s.conn = Some(conn.clone());
                                drain = true;
                                self.attach(t, conn);
                            }
                        }
                    }
                }
            }
        }
        if got_messages {
            let s = self.socks.get_mut(&t).expect("token checked");
            let all = s.proto.in_seq();
            s.proto.delivered(all);
            if let Some(c) = &s.conn {
                let idle = {
                    let mut st = c.state.lock();
                    st.in_seq = all;
                    st.out_q.is_empty()
                };
                if !c.policy.lossy && idle {
                    s.proto.send_ack();
                }
            }
        }
        if drain {
            self.drain(t)
        } else {
            self.flush(t)
        }
    }

    /// Server side: the socket now carries `conn`'s session. Returns true when it moved to
    /// the worker owning the session (which then handles the events still pending on it).
    pub(super) fn attach(&mut self, t: usize, conn: ConnectionRef) -> bool {
        conn.state.lock().kicked = true;
        if conn.worker == self.idx {
            if let Some(old) = self.by_conn.insert(conn.id(), t) {
                if old != t {
                    if let Some(mut o) = self.socks.remove(&old) {
                        let _ = self.poll.registry().deregister(&mut o.stream);
                    }
                }
            }
            return false;
        }
        let Some(msgr) = self.msgr.upgrade() else { return false };
        let mut s = self.socks.remove(&t).expect("token checked");
        let _ = self.poll.registry().deregister(&mut s.stream);
        s.wq.extend(s.proto.take_output());
        self.perf.set(L_ACTIVE, self.socks.len() as u64);
        msgr.worker(conn.worker).send(Cmd::Adopt(conn, Box::new(s)));
        true
    }

    /// `ms_inject_delay_*` first: a message from a peer of a listed type is held back with the
    /// configured probability, and the connection's later messages queue behind it (Ceph's
    /// DelayedDelivery keeps a connection's order too).
    pub(super) fn deliver(&mut self, msgr: &Arc<Inner>, conn: &ConnectionRef, h: MsgHeader, segs: [Bytes; 4]) {
        let delaying =
            !self.conf.inject_delay_types.is_empty() && self.conf.inject_delay_types.contains(&conn.peer_type());
        if delaying || self.delayed.contains_key(&conn.id()) {
            let now = Instant::now();
            let mut release = now;
            if delaying && (self.next_rand() as f64 / u64::MAX as f64) < self.conf.inject_delay_probability {
                let frac = self.next_rand() as f64 / u64::MAX as f64;
                release = now + self.conf.inject_delay_max.mul_f64(frac);
                self.perf.inc(L_DELAYED, 1);
            }
            let q = self.delayed.entry(conn.id()).or_default();
            if let Some(last) = q.back() {
                release = release.max(last.release);
            }
            if release > now || !q.is_empty() {
                q.push_back(Delayed {
                    release,
                    conn: conn.clone(),
                    header: h,
                    segments: segs,
                });
                return;
            }
        }
        self.dispatch(msgr, conn, h, segs);
    }

    pub(super) fn dispatch(&mut self, msgr: &Arc<Inner>, conn: &ConnectionRef, h: MsgHeader, segs: [Bytes; 4]) {
        let [_, front, middle, data] = segs;
        let len = (front.len() + middle.len() + data.len()) as u64;
        self.perf.inc(L_RECV_MSGS, 1);
        let mut m = Message::new(h.ty, front);
        m.middle = middle;
        m.data = data;
        m.priority = h.priority;
        m.tid = h.tid;
        m.version = h.version;
        m.compat_version = h.compat_version;
        m.seq = h.seq;
        m.conn = Some(conn.clone());
        m.recv_stamp = Some(Instant::now());
        // Held until the message is dropped; reads stop while a throttle is full
        // (`recv_throttled`), so a slow dispatcher bounds what a peer can make us buffer.
        if let Some(th) = &conn.policy.throttler_messages {
            th.take(1);
            m.throttle_release.push(ThrottleRelease {
                throttle: th.clone(),
                amount: 1,
            });
        }
        if let Some(th) = &conn.policy.throttler_bytes {
            th.take(len);
            m.throttle_release.push(ThrottleRelease {
                throttle: th.clone(),
                amount: len,
            });
        }
        if let Some(m) = msgr.chain.try_fast_dispatch(m) {
            let mut m = m;
            msgr.dispatch_throttle.take(len);
            m.dispatch_throttle_size = len;
            let prio = m.priority;
            msgr.dq().enqueue(m, prio, conn.id());
        }
    }
}
