//! The msgr2 session state machine (reference §9–§12), sans I/O: bytes in through
//! `read_buf()`/`process()`, frames out through `take_output()`, happenings out through
//! `poll_event()`. The blocking `ping` client and the messenger's workers both drive it.
//!
//! Decisions that need the messenger's view (accept an ident, resume or reset a session) are
//! handed up as events; the owner answers with `accept_client_ident`, `reconnect_ok`, ...

use super::control::*;
use super::frame::{
    self, decode_frame_with, encode_frame, Frame, FrameLimits, RunningCrc, Tag, MSGR2_FEATURE_REVISION_1,
};
use crate::msgr::addr::{EntityAddr, ADDR_TYPE_ANY};
use crate::msgr::recv_pool::RecvBufPool;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A protocol violation or a peer refusal: the connection must be faulted (closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault(pub String);

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fault {}

fn dec<T>(tag: Tag, r: Result<T, crate::msgr::encoding::DecodeError>) -> Result<T, Fault> {
    r.map_err(|e| Fault(format!("{tag:?}: {e}")))
}

fn fault<T>(s: impl Into<String>) -> Result<T, Fault> {
    Err(Fault(s.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Banner,
    Hello,
    /// Client: AUTH_REQUEST sent, waiting for AUTH_DONE. Server: waiting for AUTH_REQUEST.
    Auth,
    /// Waiting for the peer's AUTH_SIGNATURE.
    AuthSignature,
    /// Client: ident or reconnect sent. Server: waiting for CLIENT_IDENT / SESSION_RECONNECT,
    /// or for the owner's decision about one.
    Ident,
    Ready,
}

/// Who we are, as the handshake tells the peer.
#[derive(Debug, Clone)]
pub struct LocalInfo {
    pub entity_type: u8,
    /// The id part of our entity name (`admin` in `client.admin`), sent in AUTH_REQUEST.
    pub entity_id: String,
    /// Our entity number; -1 when unknown (then the global_id the server assigns is sent).
    pub gid: i64,
    pub nonce: u32,
    /// Addresses we are bound to (empty for a client that did not bind).
    pub my_addrs: Vec<EntityAddr>,
    pub features: u64,
}

/// What the client side sends once authenticated: a new session, or a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSession {
    New { global_seq: u64, cookie: u64, lossy: bool },
    Reconnect(SessionReconnect),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The session is established (both sides).
    Ready {
        peer_type: u8,
        peer_gid: i64,
        peer_addrs: Vec<EntityAddr>,
        peer_lossy: bool,
        server_cookie: u64,
    },
    /// Server side: the client asks for a new session; answer with `accept_client_ident`.
    ClientIdent {
        ident: ClientIdent,
        peer_type: u8,
    },
    /// Server side: the client asks to resume a session; answer with `reconnect_ok`,
    /// `session_reset`, `session_retry`, `session_retry_global` or `wait`.
    Reconnect {
        reconnect: SessionReconnect,
        peer_type: u8,
    },
    /// Client side: the server resumed our session; messages up to `msg_seq` arrived.
    ReconnectOk {
        msg_seq: u64,
    },
    /// Client side: the server reset our session (`full`: drop everything queued).
    SessionReset {
        full: bool,
    },
    SessionRetry {
        connect_seq: u64,
    },
    SessionRetryGlobal {
        global_seq: u64,
    },
    /// Client side: the server asks us to back off (it is connecting to us).
    Wait,
    Message {
        header: MsgHeader,
        segments: [Bytes; 4],
    },
    /// The peer acknowledged our messages up to `seq` (ACK frame or piggy-backed ack_seq).
    Acked {
        seq: u64,
    },
    /// A KEEPALIVE2 arrived (already answered).
    Keepalive,
    KeepaliveAck {
        stamp: (u32, u32),
    },
}

enum Role {
    Client {
        target: EntityAddr,
        expected_type: Option<u8>,
        session: ClientSession,
    },
    Server {
        peer_sock: SocketAddr,
        next_global_id: u64,
    },
}

pub struct Protocol {
    role: Role,
    local: LocalInfo,
    state: State,
    inbuf: BytesMut,
    out: Vec<Bytes>,
    events: VecDeque<Event>,
    limits: FrameLimits,
    peer_type: u8,
    /// Our address as the peer sees it (from its HELLO).
    pub my_addr_seen: Option<EntityAddr>,
    pub global_id: u64,
    /// Highest message seq received in this session (`in_seq`): what came again is dropped.
    in_seq: u64,
    /// What our acks claim (ACK frames, the ack_seq of messages we send): the highest seq the
    /// owner has handed on. Messages parsed but not yet delivered are left out: a send
    /// part-way through a read may be followed by a fault that drops them, and the peer must
    /// then still have them to resend.
    acked_upto: u64,
    /// Server: a CLIENT_IDENT or SESSION_RECONNECT awaits the owner's answer; the client must
    /// wait for it too, so any further frame is a protocol error (a second ident would open a
    /// second session on one socket).
    deciding: bool,
    /// CRCs of the large frame in progress, folded in as it arrives.
    running: RunningCrc,
    /// Where large frames get buffers already faulted in (`ms_prefault_bytes`).
    recv_pool: Option<Arc<RecvBufPool>>,
    /// The frame in progress has had its buffer chosen (from `recv_pool` or not).
    buffer_chosen: bool,
}

impl Protocol {
    fn new(role: Role, local: LocalInfo, limits: FrameLimits) -> Protocol {
        let mut p = Protocol {
            role,
            local,
            state: State::Banner,
            inbuf: BytesMut::with_capacity(64 * 1024),
            out: Vec::new(),
            events: VecDeque::new(),
            limits,
            peer_type: 0,
            my_addr_seen: None,
            global_id: 0,
            in_seq: 0,
            acked_upto: 0,
            deciding: false,
            running: RunningCrc::default(),
            recv_pool: None,
            buffer_chosen: false,
        };
        p.out
            .push(Bytes::copy_from_slice(&frame::banner(MSGR2_FEATURE_REVISION_1, 0)));
        p
    }

    /// The connecting side, talking to `target` (expected to be of `expected_type`).
    pub fn client(
        local: LocalInfo,
        target: EntityAddr,
        expected_type: Option<u8>,
        session: ClientSession,
        limits: FrameLimits,
    ) -> Protocol {
        Self::new(
            Role::Client {
                target,
                expected_type,
                session,
            },
            local,
            limits,
        )
    }

    /// The accepting side of a socket from `peer_sock`.
    pub fn server(local: LocalInfo, peer_sock: SocketAddr, global_id: u64, limits: FrameLimits) -> Protocol {
        Self::new(
            Role::Server {
                peer_sock,
                next_global_id: global_id,
            },
            local,
            limits,
        )
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }
    pub fn peer_type(&self) -> u8 {
        self.peer_type
    }

    /// Large frames are read into buffers from `pool`.
    /// Speak as another identity from now on: a server that learned from CLIENT_IDENT which of
    /// its hosted entities the client wants, before it answers with SERVER_IDENT.
    pub fn set_local(&mut self, local: LocalInfo) {
        self.local = local;
    }

    pub fn set_recv_pool(&mut self, pool: Option<Arc<RecvBufPool>>) {
        self.recv_pool = pool;
    }

    /// Where to read socket bytes into; call `process` after.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.inbuf
    }

    /// Bytes still missing from the frame in progress (0 when none is known): a reader can
    /// stop there, so a large frame's buffer is exactly that frame and the next one starts in
    /// a buffer of its own instead of being copied out of this one.
    pub fn frame_remaining(&self) -> usize {
        if self.state == State::Banner {
            return 0;
        }
        frame::pending_frame_len(&self.inbuf).map_or(0, |t| t.saturating_sub(self.inbuf.len()))
    }

    /// Frames queued for the socket, in order.
    pub fn take_output(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.out)
    }
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn send(&mut self, tag: Tag, payload: Bytes) {
        encode_frame(tag, &[payload, Bytes::new(), Bytes::new(), Bytes::new()], &mut self.out);
    }

    /// Handles every complete frame in the read buffer.
    pub fn process(&mut self) -> Result<(), Fault> {
        if self.state == State::Banner {
            match frame::parse_banner(&self.inbuf).map_err(|e| Fault(e.0))? {
                None => return Ok(()),
                Some((used, sup, req)) => {
                    let _ = self.inbuf.split_to(used);
                    if req & !MSGR2_FEATURE_REVISION_1 != 0 {
                        return fault(format!("peer requires msgr2 features {req:#x} we lack"));
                    }
                    if sup & MSGR2_FEATURE_REVISION_1 == 0 {
                        return fault("peer does not support msgr2.1 framing");
                    }
                    self.state = State::Hello;
                    let peer = match &self.role {
                        Role::Client { target, .. } => *target,
                        Role::Server { peer_sock, .. } => EntityAddr::msgr2(*peer_sock, 0),
                    };
                    let hello = Hello {
                        entity_type: self.local.entity_type,
                        peer_addr: peer,
                    };
                    self.send(Tag::Hello, hello.encode());
                }
            }
        }
        while self.state != State::Banner {
            // Before the session is ready only control frames are legal: a MESSAGE preamble
            // announcing big segments is refused before anything is buffered for it.
            let limits = if self.state == State::Ready {
                self.limits
            } else {
                FrameLimits {
                    max_segment: self.limits.max_control,
                    ..self.limits
                }
            };
            self.running.update(&self.inbuf);
            let Some(f) = decode_frame_with(&mut self.inbuf, &limits, &mut self.running).map_err(|e| Fault(e.0))?
            else {
                // A large frame in progress: start following its CRCs now.
                if let (Some(pool), false) = (&self.recv_pool, self.buffer_chosen) {
                    if let Some(total) = frame::pending_frame_len(&self.inbuf) {
                        pool.adopt(&mut self.inbuf, total);
                        self.buffer_chosen = true;
                    }
                }
                self.running.update(&self.inbuf);
                break;
            };
            self.buffer_chosen = false;
            self.handle(f)?;
        }
        Ok(())
    }

    fn handle(&mut self, f: Frame) -> Result<(), Fault> {
        let p = f.payload().clone();
        let tag = f.tag;
        let is_client = matches!(self.role, Role::Client { .. });
        if self.deciding {
            return fault(format!("{tag:?} frame while the session decision is pending"));
        }
        match (self.state, f.tag) {
            (State::Hello, Tag::Hello) => {
                let h: Hello = dec(tag, Hello::decode(&p))?;
                if let Role::Client {
                    expected_type: Some(t), ..
                } = &self.role
                {
                    if *t != h.entity_type {
                        return fault(format!("peer is entity type {}, expected {t}", h.entity_type));
                    }
                }
                self.peer_type = h.entity_type;
                self.my_addr_seen = Some(h.peer_addr);
                self.state = State::Auth;
                if is_client {
                    let req = AuthRequest::none(self.local.entity_type as u32, &self.local.entity_id, 0);
                    self.send(Tag::AuthRequest, req.encode());
                }
            }
            (State::Auth, Tag::AuthRequest) if !is_client => {
                let r: AuthRequest = dec(tag, AuthRequest::decode(&p))?;
                if r.method != CEPH_AUTH_NONE || !r.preferred_modes.contains(&CEPH_CON_MODE_CRC) {
                    let bad = AuthBadMethod {
                        method: r.method,
                        result: -libc::EOPNOTSUPP,
                        allowed_methods: vec![CEPH_AUTH_NONE],
                        allowed_modes: vec![CEPH_CON_MODE_CRC],
                    };
                    self.send(Tag::AuthBadMethod, bad.encode());
                    return Ok(());
                }
                if let Role::Server { next_global_id, .. } = &self.role {
                    self.global_id = *next_global_id;
                }
                let done = AuthDone {
                    global_id: self.global_id,
                    con_mode: CEPH_CON_MODE_CRC,
                    payload: Bytes::new(),
                };
                self.send(Tag::AuthDone, done.encode());
                self.send(Tag::AuthSignature, auth_signature_none());
                self.state = State::AuthSignature;
            }
            (State::Auth, Tag::AuthDone) if is_client => {
                let d: AuthDone = dec(tag, AuthDone::decode(&p))?;
                if d.con_mode != CEPH_CON_MODE_CRC {
                    return fault(format!(
                        "server chose connection mode {} (only crc is supported)",
                        d.con_mode
                    ));
                }
                self.global_id = d.global_id;
                self.send(Tag::AuthSignature, auth_signature_none());
                self.state = State::AuthSignature;
            }
            (State::Auth, Tag::AuthBadMethod) if is_client => {
                let b: AuthBadMethod = dec(tag, AuthBadMethod::decode(&p))?;
                return fault(format!(
                    "server refused auth method {} ({}); it allows methods {:?}, modes {:?}",
                    b.method,
                    crate::common::error::strerror(b.result),
                    b.allowed_methods,
                    b.allowed_modes
                ));
            }
            (State::AuthSignature, Tag::AuthSignature) => {
                if p.len() != 32 || p.iter().any(|b| *b != 0) {
                    return fault("auth signature mismatch (auth none signs with 32 zero bytes)");
                }
                self.state = State::Ident;
                if is_client {
                    self.send_client_session();
                }
            }
            (State::Ident, Tag::ClientIdent) if !is_client => {
                let ci: ClientIdent = dec(tag, ClientIdent::decode(&p))?;
                if ci.addrs.is_empty() || ci.addrs[0].addr.is_none() {
                    return fault("client ident without an address");
                }
                let missing = FEATURE_MSG_ADDR2 & !ci.supported;
                if missing != 0 {
                    self.send(Tag::IdentMissingFeatures, encode_u64(missing));
                    return Ok(());
                }
                if !self.local.my_addrs.is_empty() && !self.local.my_addrs.iter().any(|a| a.addr == ci.target.addr) {
                    return fault(format!(
                        "client targets {} which is not one of our addresses",
                        ci.target
                    ));
                }
                self.deciding = true;
                self.events.push_back(Event::ClientIdent {
                    ident: ci,
                    peer_type: self.peer_type,
                });
            }
            (State::Ident, Tag::SessionReconnect) if !is_client => {
                let r: SessionReconnect = dec(tag, SessionReconnect::decode(&p))?;
                if r.addrs.is_empty() {
                    return fault("session reconnect without an address");
                }
                self.deciding = true;
                self.events.push_back(Event::Reconnect {
                    reconnect: r,
                    peer_type: self.peer_type,
                });
            }
            (State::Ident, Tag::ServerIdent) if is_client => {
                let si: ServerIdent = dec(tag, ServerIdent::decode(&p))?;
                if let Role::Client { target, .. } = &self.role {
                    if !si.addrs.is_empty() && !si.addrs.iter().any(|a| a.addr == target.addr) {
                        return fault(format!("server identifies as {:?}, not our target {target}", si.addrs));
                    }
                }
                self.state = State::Ready;
                self.events.push_back(Event::Ready {
                    peer_type: self.peer_type,
                    peer_gid: si.gid,
                    peer_addrs: si.addrs,
                    peer_lossy: si.flags & CEPH_MSG_CONNECT_LOSSY != 0,
                    server_cookie: si.cookie,
                });
            }
            (State::Ident, Tag::IdentMissingFeatures) if is_client => {
                let m = dec(tag, decode_u64(&p))?;
                return fault(format!("server requires features we lack: {m:#x}"));
            }
            (State::Ident, Tag::SessionReconnectOk) if is_client => {
                let msg_seq = dec(tag, decode_u64(&p))?;
                self.state = State::Ready;
                self.events.push_back(Event::ReconnectOk { msg_seq });
            }
            (State::Ident, Tag::SessionReset) if is_client => {
                let full = p.first().is_some_and(|b| *b != 0);
                self.events.push_back(Event::SessionReset { full });
            }
            (State::Ident, Tag::SessionRetry) if is_client => {
                let connect_seq = dec(tag, decode_u64(&p))?;
                self.events.push_back(Event::SessionRetry { connect_seq });
            }
            (State::Ident, Tag::SessionRetryGlobal) if is_client => {
                let global_seq = dec(tag, decode_u64(&p))?;
                self.events.push_back(Event::SessionRetryGlobal { global_seq });
            }
            (State::Ident, Tag::Wait) if is_client => self.events.push_back(Event::Wait),
            (State::Ready, Tag::Message) => {
                let header = dec(tag, MsgHeader::decode(&f.segments[0]))?;
                if header.ack_seq > 0 {
                    self.events.push_back(Event::Acked { seq: header.ack_seq });
                }
                if header.seq <= self.in_seq {
                    // Already delivered before a reconnect: Ceph drops it silently.
                    return Ok(());
                }
                if header.seq > self.in_seq + 1 {
                    log::warn!(target: "ms", "message seq {} skips ahead of {}", header.seq, self.in_seq);
                }
                self.in_seq = header.seq;
                self.events.push_back(Event::Message {
                    header,
                    segments: f.segments,
                });
            }
            (State::Ready, Tag::Keepalive2) => {
                dec(tag, decode_stamp(&p))?;
                self.send(Tag::Keepalive2Ack, p);
                self.events.push_back(Event::Keepalive);
            }
            (State::Ready, Tag::Keepalive2Ack) => {
                let stamp = dec(tag, decode_stamp(&p))?;
                self.events.push_back(Event::KeepaliveAck { stamp });
            }
            (State::Ready, Tag::Ack) => {
                let seq = dec(tag, decode_u64(&p))?;
                self.events.push_back(Event::Acked { seq });
            }
            (s, t) => return fault(format!("unexpected {t:?} frame in state {s:?}")),
        }
        Ok(())
    }

    fn send_client_session(&mut self) {
        let Role::Client { target, session, .. } = &self.role else {
            return;
        };
        let target = *target;
        // An unbound client names itself by the IP the server saw, port 0 and its nonce; the
        // same in a reconnect, so the server finds the session again.
        let addrs = if self.local.my_addrs.is_empty() {
            let ip = self.my_addr_seen.and_then(|a| a.addr).map(|a| a.ip());
            let addr = ip.map(|ip| SocketAddr::new(ip, 0));
            vec![EntityAddr {
                ty: ADDR_TYPE_ANY,
                nonce: self.local.nonce,
                addr,
            }]
        } else {
            self.local.my_addrs.clone()
        };
        let payload = match session {
            ClientSession::New {
                global_seq,
                cookie,
                lossy,
            } => {
                let ident = ClientIdent {
                    addrs,
                    target,
                    gid: if self.local.gid >= 0 {
                        self.local.gid
                    } else {
                        self.global_id as i64
                    },
                    global_seq: *global_seq,
                    supported: self.local.features,
                    required: FEATURE_MSG_ADDR2,
                    flags: if *lossy { CEPH_MSG_CONNECT_LOSSY } else { 0 },
                    cookie: *cookie,
                };
                (Tag::ClientIdent, ident.encode())
            }
            ClientSession::Reconnect(r) => {
                let mut r = r.clone();
                if r.addrs.is_empty() {
                    r.addrs = addrs;
                }
                (Tag::SessionReconnect, r.encode())
            }
        };
        self.send(payload.0, payload.1);
    }

    /// Client side, after SESSION_RESET/RETRY/RETRY_GLOBAL: send a new ident or reconnect.
    pub fn resend_session(&mut self, session: ClientSession) {
        if let Role::Client { session: s, .. } = &mut self.role {
            *s = session;
        }
        self.send_client_session();
    }

    /// Server side: accept a new session (after `Event::ClientIdent`).
    pub fn accept_client_ident(&mut self, global_seq: u64, cookie: u64, lossy: bool, peer: &ClientIdent) {
        self.deciding = false;
        let si = ServerIdent {
            addrs: self.local.my_addrs.clone(),
            gid: self.local.gid,
            global_seq,
            supported: self.local.features,
            required: FEATURE_MSG_ADDR2,
            flags: if lossy { CEPH_MSG_CONNECT_LOSSY } else { 0 },
            cookie: if lossy { 0 } else { cookie },
        };
        self.send(Tag::ServerIdent, si.encode());
        self.state = State::Ready;
        self.events.push_back(Event::Ready {
            peer_type: self.peer_type,
            peer_gid: peer.gid,
            peer_addrs: peer.addrs.clone(),
            peer_lossy: peer.flags & CEPH_MSG_CONNECT_LOSSY != 0,
            server_cookie: si.cookie,
        });
    }

    /// Server side: resume the session; we had received up to `in_seq`.
    pub fn reconnect_ok(&mut self, in_seq: u64) {
        self.deciding = false;
        self.set_in_seq(in_seq);
        self.send(Tag::SessionReconnectOk, encode_u64(in_seq));
        self.state = State::Ready;
    }
    pub fn session_reset(&mut self, full: bool) {
        self.deciding = false;
        self.send(Tag::SessionReset, Bytes::copy_from_slice(&[full as u8]));
    }
    pub fn session_retry(&mut self, connect_seq: u64) {
        self.deciding = false;
        self.send(Tag::SessionRetry, encode_u64(connect_seq));
    }
    pub fn session_retry_global(&mut self, global_seq: u64) {
        self.deciding = false;
        self.send(Tag::SessionRetryGlobal, encode_u64(global_seq));
    }
    pub fn wait(&mut self) {
        self.deciding = false;
        self.send(Tag::Wait, Bytes::new());
    }

    pub fn in_seq(&self) -> u64 {
        self.in_seq
    }

    /// The session's receive state, as kept across sockets: everything up to `seq` was
    /// delivered.
    pub fn set_in_seq(&mut self, seq: u64) {
        self.in_seq = seq;
        self.acked_upto = seq;
    }

    /// The owner handed messages up to `seq` on: acks may now claim them.
    pub fn delivered(&mut self, seq: u64) {
        self.acked_upto = seq.min(self.in_seq);
    }

    /// Queues a message; `header.seq` is the session's, `ack_seq` is filled with what was delivered.
    pub fn send_message(&mut self, mut header: MsgHeader, front: Bytes, middle: Bytes, data: Bytes) {
        header.ack_seq = self.acked_upto;
        header.flags = MSG_HEADER_FLAGS;
        if header.compat_version == 0 {
            header.compat_version = header.version;
        }
        encode_frame(Tag::Message, &[header.encode(), front, middle, data], &mut self.out);
    }

    /// KEEPALIVE2 with the current wall-clock time; the ack echoes it.
    pub fn send_keepalive(&mut self) -> (u32, u32) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = (now.as_secs() as u32, now.subsec_nanos());
        self.send(Tag::Keepalive2, encode_stamp(stamp.0, stamp.1));
        stamp
    }

    pub fn send_ack(&mut self) {
        self.send(Tag::Ack, encode_u64(self.acked_upto));
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
