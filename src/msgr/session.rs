//! The session decisions of msgr2 (reference §11), with no I/O: what a server answers a
//! reconnect, what an accepted session starts with, and how a client's session state follows
//! the server's answers and its own faults.
//!
//! Workers call these with a session's state locked and do the socket work themselves; the
//! fuzz target (`fuzz/`) drives the public decisions against a `Protocol` exactly as a worker
//! does, so what it explores is the code that runs.

use super::addr::EntityAddr;
use super::connection::{ConnState, ConnStatus};
use super::message::Message;
use super::v2::control::{ClientIdent, SessionReconnect};
use super::v2::protocol::{ClientSession, Protocol};
use std::collections::VecDeque;

/// What a server remembers of one lossless incoming session, as far as a reconnect is judged
/// against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session was marked down or reset: it cannot be resumed.
    pub closed: bool,
    pub client_cookie: u64,
    /// 0 for a lossy session (nothing to resume).
    pub server_cookie: u64,
    pub peer_global_seq: u64,
    pub connect_seq: u64,
    /// What the session has received: the peer resends from after it.
    pub in_seq: u64,
}

/// The answer to a `SESSION_RECONNECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// `SESSION_RESET`: start a new session; `full` also drops what the peer queued.
    Reset { full: bool },
    /// `SESSION_RETRY_GLOBAL`: the peer's global_seq is older than one we saw from it.
    RetryGlobal(u64),
    /// `SESSION_RETRY`: a newer connect of this session already reached us.
    Retry(u64),
    /// `SESSION_RECONNECT_OK`: the session resumes; we had received up to `in_seq`.
    Resume { in_seq: u64 },
}

/// Judges a reconnect against the session we hold for the peer's address (None: none).
/// `resetcheck` is the policy's: a cookie mismatch then resets fully (the peer restarted).
pub fn judge_reconnect(existing: Option<&SessionRecord>, resetcheck: bool, r: &SessionReconnect) -> Reconnect {
    let Some(s) = existing.filter(|s| !s.closed) else {
        return Reconnect::Reset { full: true };
    };
    if r.client_cookie != s.client_cookie {
        return Reconnect::Reset { full: resetcheck };
    }
    if s.server_cookie == 0 {
        return Reconnect::Reset { full: false };
    }
    if s.peer_global_seq > r.global_seq {
        return Reconnect::RetryGlobal(s.peer_global_seq);
    }
    if s.connect_seq > r.connect_seq {
        return Reconnect::Retry(s.connect_seq);
    }
    Reconnect::Resume { in_seq: s.in_seq }
}

/// Sends the decision to the peer on `proto`.
pub fn answer(proto: &mut Protocol, d: Reconnect) {
    match d {
        Reconnect::Reset { full } => proto.session_reset(full),
        Reconnect::RetryGlobal(g) => proto.session_retry_global(g),
        Reconnect::Retry(c) => proto.session_retry(c),
        Reconnect::Resume { in_seq } => proto.reconnect_ok(in_seq),
    }
}

/// The record of a session a server accepts from `ident`: a fresh server cookie for a
/// lossless one (`cookie`, never 0), none for a lossy one.
pub fn accepted(ident: &ClientIdent, lossy: bool, cookie: u64) -> SessionRecord {
    SessionRecord {
        closed: false,
        client_cookie: ident.cookie,
        server_cookie: if lossy { 0 } else { cookie },
        peer_global_seq: ident.global_seq,
        connect_seq: 0,
        in_seq: 0,
    }
}

/// Applies an accepted record, and what the peer told of itself, to a new session's state.
pub(crate) fn open_accepted(st: &mut ConnState, rec: &SessionRecord, ident: &ClientIdent) {
    st.status = ConnStatus::Open;
    st.client_cookie = rec.client_cookie;
    st.server_cookie = rec.server_cookie;
    st.peer_global_seq = rec.peer_global_seq;
    st.peer_gid = ident.gid;
    st.peer_addrs = ident.addrs.clone();
}

/// The record of a session's state, for `judge_reconnect`.
pub(crate) fn record(st: &ConnState) -> SessionRecord {
    SessionRecord {
        closed: st.status == ConnStatus::Closed,
        client_cookie: st.client_cookie,
        server_cookie: st.server_cookie,
        peer_global_seq: st.peer_global_seq,
        connect_seq: st.connect_seq,
        in_seq: st.in_seq,
    }
}

/// Server side, a reconnect was judged `Resume`: the session takes the reconnect's seqs, puts
/// what it sent and was not acked back in front, and drops what the peer says it received.
/// Returns the dropped messages, to be freed after the session's lock.
pub(crate) fn resume(st: &mut ConnState, r: &SessionReconnect) -> Vec<Message> {
    st.connect_seq = r.connect_seq;
    st.peer_global_seq = r.global_seq;
    requeue_unacked(st);
    st.status = ConnStatus::Open;
    drop_acked(&mut st.out_q, r.msg_seq)
}

/// A lossless session lost its socket: what was sent and not acked goes back in front of the
/// queue, keeping its seq, to be sent again on the next socket.
pub(crate) fn requeue_unacked(st: &mut ConnState) {
    let sent = std::mem::take(&mut st.sent);
    for m in sent.into_iter().rev() {
        st.out_q.push_front(m);
    }
}

/// Takes from the front of `q` the messages numbered up to `seq` (received by the peer).
fn drop_acked(q: &mut VecDeque<Message>, seq: u64) -> Vec<Message> {
    let mut gone = Vec::new();
    while q.front().is_some_and(|m| m.seq != 0 && m.seq <= seq) {
        gone.extend(q.pop_front());
    }
    gone
}

/// Client side: what an outgoing session sends on a new socket. A session the server knows
/// (it gave a cookie) reconnects with the next connect_seq; otherwise a new session, with a
/// client cookie made once for a lossless one.
pub(crate) fn client_session(
    st: &mut ConnState,
    lossy: bool,
    my_addrs: Vec<EntityAddr>,
    global_seq: u64,
    new_cookie: impl FnOnce() -> u64,
) -> ClientSession {
    st.status = ConnStatus::Connecting;
    if st.server_cookie != 0 {
        st.connect_seq += 1;
        return ClientSession::Reconnect(reconnect_request(st, my_addrs, global_seq));
    }
    if st.client_cookie == 0 && !lossy {
        st.client_cookie = new_cookie();
    }
    ClientSession::New {
        global_seq,
        cookie: st.client_cookie,
        lossy,
    }
}

/// The `SESSION_RECONNECT` a client sends for its session.
pub(crate) fn reconnect_request(st: &ConnState, my_addrs: Vec<EntityAddr>, global_seq: u64) -> SessionReconnect {
    SessionReconnect {
        addrs: my_addrs,
        client_cookie: st.client_cookie,
        server_cookie: st.server_cookie,
        global_seq,
        connect_seq: st.connect_seq,
        msg_seq: st.in_seq,
    }
}

/// Client side, `SERVER_IDENT`: the session is open.
pub(crate) fn client_ready(st: &mut ConnState, server_cookie: u64, peer_gid: i64, peer_addrs: Vec<EntityAddr>) {
    st.status = ConnStatus::Open;
    st.server_cookie = server_cookie;
    st.peer_gid = peer_gid;
    st.peer_addrs = peer_addrs;
    st.failures = 0;
    st.kicked = true;
}

/// Client side, `SESSION_RECONNECT_OK`: the session resumes; what the server received
/// (`msg_seq`) is dropped from the queue and returned, to be freed after the lock.
pub(crate) fn client_resumed(st: &mut ConnState, msg_seq: u64) -> Vec<Message> {
    let gone = drop_acked(&mut st.out_q, msg_seq);
    st.status = ConnStatus::Open;
    st.failures = 0;
    st.kicked = true;
    gone
}

/// Client side, `SESSION_RESET`: the server does not know the session. The session starts
/// anew (`global_seq` is the next one); `full` also drops every queued message and takes a new
/// client cookie (`new_cookie`). Returns the new session to send and what was dropped.
pub(crate) fn client_reset(
    st: &mut ConnState,
    full: bool,
    lossy: bool,
    global_seq: u64,
    new_cookie: impl FnOnce() -> u64,
) -> (ClientSession, Vec<Message>) {
    let mut gone = Vec::new();
    if full {
        gone.extend(st.out_q.drain(..));
        gone.extend(st.sent.drain(..));
        st.client_cookie = new_cookie();
    }
    for m in st.out_q.iter_mut() {
        m.seq = 0;
    }
    st.out_seq = 0;
    st.in_seq = 0;
    st.server_cookie = 0;
    st.connect_seq = 0;
    let session = ClientSession::New {
        global_seq,
        cookie: st.client_cookie,
        lossy,
    };
    (session, gone)
}

/// Client side, `SESSION_RETRY`: a newer connect of ours reached the server; go past it.
pub(crate) fn client_retry(st: &mut ConnState, server_connect_seq: u64) {
    st.connect_seq = server_connect_seq.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconnect(cookie: u64, gseq: u64, cseq: u64) -> SessionReconnect {
        SessionReconnect {
            addrs: Vec::new(),
            client_cookie: cookie,
            server_cookie: 9,
            global_seq: gseq,
            connect_seq: cseq,
            msg_seq: 0,
        }
    }

    fn held() -> SessionRecord {
        SessionRecord {
            closed: false,
            client_cookie: 7,
            server_cookie: 9,
            peer_global_seq: 10,
            connect_seq: 3,
            in_seq: 42,
        }
    }

    #[test]
    fn each_answer_of_reference_11() {
        let r = reconnect(7, 11, 3);
        assert_eq!(judge_reconnect(None, true, &r), Reconnect::Reset { full: true });
        let closed = SessionRecord { closed: true, ..held() };
        assert_eq!(
            judge_reconnect(Some(&closed), true, &r),
            Reconnect::Reset { full: true }
        );
        let other = reconnect(8, 11, 3);
        assert_eq!(
            judge_reconnect(Some(&held()), true, &other),
            Reconnect::Reset { full: true }
        );
        assert_eq!(
            judge_reconnect(Some(&held()), false, &other),
            Reconnect::Reset { full: false }
        );
        let lossy = SessionRecord {
            server_cookie: 0,
            ..held()
        };
        assert_eq!(
            judge_reconnect(Some(&lossy), true, &r),
            Reconnect::Reset { full: false }
        );
        assert_eq!(
            judge_reconnect(Some(&held()), true, &reconnect(7, 9, 3)),
            Reconnect::RetryGlobal(10)
        );
        assert_eq!(
            judge_reconnect(Some(&held()), true, &reconnect(7, 11, 2)),
            Reconnect::Retry(3)
        );
        assert_eq!(
            judge_reconnect(Some(&held()), true, &r),
            Reconnect::Resume { in_seq: 42 }
        );
    }

    fn msg(seq: u64) -> Message {
        let mut m = Message::new(1, bytes::Bytes::new());
        m.seq = seq;
        m
    }

    fn state() -> ConnState {
        ConnState::new()
    }

    #[test]
    fn a_resumed_session_resends_unacked_and_drops_what_the_peer_has() {
        let mut st = state();
        st.sent.extend([msg(1), msg(2), msg(3)]);
        st.out_q.extend([msg(4), msg(0)]);
        let gone = resume(
            &mut st,
            &SessionReconnect {
                msg_seq: 2,
                ..reconnect(7, 11, 4)
            },
        );
        assert_eq!(gone.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(st.out_q.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 0]);
        assert!(st.sent.is_empty());
        assert_eq!(
            (st.connect_seq, st.peer_global_seq, st.status),
            (4, 11, ConnStatus::Open)
        );
    }

    #[test]
    fn a_full_reset_drops_everything_and_takes_a_new_cookie() {
        let mut st = state();
        st.client_cookie = 5;
        st.server_cookie = 6;
        st.sent.push_back(msg(1));
        st.out_q.extend([msg(2), msg(0)]);
        let (s, gone) = client_reset(&mut st, false, false, 77, || 99);
        assert_eq!(gone.len(), 0);
        assert_eq!(st.out_q.iter().map(|m| m.seq).collect::<Vec<_>>(), [0, 0]);
        assert_eq!(
            s,
            ClientSession::New {
                global_seq: 77,
                cookie: 5,
                lossy: false
            }
        );
        let (s, gone) = client_reset(&mut st, true, false, 78, || 99);
        assert_eq!(gone.len(), 3);
        assert!(st.out_q.is_empty() && st.sent.is_empty());
        assert_eq!(
            s,
            ClientSession::New {
                global_seq: 78,
                cookie: 99,
                lossy: false
            }
        );
        assert_eq!((st.server_cookie, st.connect_seq, st.in_seq), (0, 0, 0));
    }

    #[test]
    fn a_known_session_reconnects_with_the_next_connect_seq() {
        let mut st = state();
        let s = client_session(&mut st, false, Vec::new(), 1, || 31);
        assert_eq!(
            s,
            ClientSession::New {
                global_seq: 1,
                cookie: 31,
                lossy: false
            }
        );
        st.server_cookie = 8;
        st.in_seq = 12;
        let s = client_session(&mut st, false, Vec::new(), 2, || unreachable!("cookie kept"));
        let ClientSession::Reconnect(r) = s else {
            panic!("{s:?}")
        };
        assert_eq!(
            (r.client_cookie, r.server_cookie, r.connect_seq, r.msg_seq, r.global_seq),
            (31, 8, 1, 12, 2)
        );
        assert_eq!(
            client_session(&mut state(), true, Vec::new(), 3, || 1),
            ClientSession::New {
                global_seq: 3,
                cookie: 0,
                lossy: true
            }
        );
    }
}
