//! The harness behind `fuzz_targets/frame_decode.rs`.
//!
//! One input exercises three things, none of which may panic:
//!
//! 1. `frame::parse_banner` and `frame::decode_frame` on the raw bytes (with the messenger's
//!    default limits and with tight ones), checking that every decoded frame re-encodes to a
//!    frame that decodes to the same value, and that the decoder consumed exactly one frame.
//! 2. A server-side `Protocol` (what a `msgr-worker-N` runs for an accepted socket) fed the
//!    bytes in chunks, with the owner's decisions taken by the messenger's own session code
//!    (`osdkit::msgr::session`): an ident is accepted into a session record, and a reconnect
//!    is judged against the record the server holds, which the input chooses.
//! 3. What that server wrote back: it must be our banner followed by well-formed frames only.
//!
//! The first input byte is a mode byte: bits 0–1 choose a valid client prefix put in front of
//! the rest (none / banner / banner+HELLO+auth / the whole handshake up to CLIENT_IDENT), so
//! that the fuzzer reaches the READY-state handlers without having to discover CRCs; bits 2–4
//! pick what the server holds when a SESSION_RECONNECT arrives (nothing, the accepted
//! session, a closed one, another cookie, a lossy one, a newer global_seq or connect_seq, or
//! a session matching the reconnect), so every answer of `judge_reconnect` is reached; bits
//! 5–7 the chunk size of the feed.

use bytes::{Bytes, BytesMut};
use osdkit::msgr::addr::{EntityAddr, ADDR_TYPE_ANY};
use osdkit::msgr::session::{self, Reconnect, SessionRecord};
use osdkit::msgr::v2::control::SessionReconnect;
use osdkit::msgr::v2::control::{
    auth_signature_none, AuthRequest, ClientIdent, Hello, FEATURES_PACIFIC, FEATURE_MSG_ADDR2,
};
use osdkit::msgr::v2::frame::{self, decode_frame, encode_frame, Frame, FrameLimits, Tag, EPILOGUE_LEN, PREAMBLE_LEN};
use osdkit::msgr::v2::protocol::{Event, LocalInfo, Protocol};
use std::net::SocketAddr;

/// Most frames handled from one input (an input can hold many small frames).
const MAX_FRAMES: usize = 4096;

fn server_addr() -> EntityAddr {
    EntityAddr::msgr2("127.0.0.1:6800".parse().expect("literal"), 7)
}

fn peer_sock() -> SocketAddr {
    "127.0.0.1:50000".parse().expect("literal")
}

fn local() -> LocalInfo {
    LocalInfo {
        entity_type: 4,
        entity_id: "0".into(),
        gid: 0,
        nonce: 7,
        my_addrs: vec![server_addr()],
        features: FEATURES_PACIFIC,
    }
}

fn push_frame(out: &mut Vec<u8>, tag: Tag, payload: Bytes) {
    let mut v = Vec::new();
    encode_frame(tag, &[payload, Bytes::new(), Bytes::new(), Bytes::new()], &mut v);
    for b in v {
        out.extend_from_slice(&b);
    }
}

/// A well-behaved client's first bytes, cut after `level` steps (0..=3).
pub fn client_prefix(level: u8, lossy: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if level == 0 {
        return out;
    }
    out.extend_from_slice(&frame::banner(frame::MSGR2_FEATURE_REVISION_1, 0));
    if level == 1 {
        return out;
    }
    let hello = Hello {
        entity_type: 8,
        peer_addr: server_addr(),
    };
    push_frame(&mut out, Tag::Hello, hello.encode());
    push_frame(&mut out, Tag::AuthRequest, AuthRequest::none(8, "fuzz", 0).encode());
    push_frame(&mut out, Tag::AuthSignature, auth_signature_none());
    if level == 2 {
        return out;
    }
    let ident = ClientIdent {
        addrs: vec![EntityAddr {
            ty: ADDR_TYPE_ANY,
            nonce: 0x1234_5678,
            addr: Some("127.0.0.1:0".parse().expect("literal")),
        }],
        target: server_addr(),
        gid: -1,
        global_seq: 1,
        supported: FEATURES_PACIFIC,
        required: FEATURE_MSG_ADDR2,
        flags: u64::from(lossy),
        cookie: if lossy { 0 } else { 0xc0ff_ee00 },
    };
    push_frame(&mut out, Tag::ClientIdent, ident.encode());
    out
}

/// On-wire length of a decoded frame (reference §4.2).
fn wire_len(f: &Frame) -> usize {
    let lens: Vec<usize> = f.segments.iter().map(Bytes::len).collect();
    let num = if f.tag == Tag::Message {
        lens.iter().rposition(|l| *l > 0).map_or(1, |i| i + 1)
    } else {
        1
    };
    PREAMBLE_LEN
        + if lens[0] > 0 { lens[0] + 4 } else { 0 }
        + lens[1]
        + lens[2]
        + lens[3]
        + if num > 1 { EPILOGUE_LEN } else { 0 }
}

/// Decodes frames off `bytes` until an error or the need for more; checks each frame.
fn decode_all(bytes: &[u8], limits: &FrameLimits) {
    let mut buf = BytesMut::from(bytes);
    for _ in 0..MAX_FRAMES {
        let before = buf.len();
        match decode_frame(&mut buf, limits) {
            Ok(Some(f)) => {
                let used = before - buf.len();
                // Aborted frames before this one are skipped, so `used` may be larger; it can
                // never be smaller than the frame itself.
                assert!(
                    used >= wire_len(&f),
                    "decoder consumed {used} bytes for a {}-byte frame",
                    wire_len(&f)
                );
                if f.tag != Tag::Message {
                    assert!(
                        f.segments[1..].iter().all(Bytes::is_empty),
                        "control frame with extra segments"
                    );
                    assert!(f.payload().len() <= limits.max_control as usize);
                }
                let mut enc = Vec::new();
                encode_frame(f.tag, &f.segments, &mut enc);
                let mut again = BytesMut::from(&enc.concat()[..]);
                let back = decode_frame(&mut again, limits)
                    .expect("re-encoded frame decodes")
                    .expect("re-encoded frame is complete");
                assert_eq!(back, f, "re-encoded frame decodes to the same frame");
                assert!(again.is_empty(), "re-encoded frame is exactly one frame");
            }
            Ok(None) => {
                // Aborted frames before the partial one are dropped (whole frames, so at
                // least a preamble each); the partial one stays.
                let dropped = before - buf.len();
                assert!(dropped == 0 || dropped >= PREAMBLE_LEN, "dropped {dropped} bytes");
                return;
            }
            Err(_) => return,
        }
    }
}

/// What the server wrote must be our banner and then whole, valid frames.
fn check_server_output(out: &[u8]) {
    if out.is_empty() {
        return;
    }
    let (used, sup, req) = frame::parse_banner(out)
        .expect("server banner parses")
        .expect("server banner is complete");
    assert_eq!((sup, req), (frame::MSGR2_FEATURE_REVISION_1, 0));
    let mut buf = BytesMut::from(&out[used..]);
    let limits = FrameLimits::default();
    while !buf.is_empty() {
        let f = decode_frame(&mut buf, &limits)
            .expect("server output is well-formed")
            .expect("server output holds whole frames only");
        assert_ne!(f.tag, Tag::Message, "no message can be queued in this harness");
    }
}

/// Runs the server-side state machine over `data`, answering as a worker would.
fn drive_server(mode: u8, data: &[u8]) {
    let lossy = mode & 0x04 != 0;
    let mut input = client_prefix(mode & 3, lossy);
    input.extend_from_slice(data);
    let chunk = match mode >> 5 {
        0 => usize::MAX,
        1 => 1,
        2 => 3,
        3 => 7,
        4 => 32,
        5 => 33,
        6 => 100,
        _ => 4096,
    };
    let mut p = Protocol::server(local(), peer_sock(), 4242, FrameLimits::default());
    // What the server's session registry holds for this peer (set when an ident is accepted).
    let mut accepted: Option<SessionRecord> = None;
    let mut out: Vec<u8> = Vec::new();
    let mut last_seq = 0u64;
    let mut frames = 0usize;
    let mut faulted = false;
    for piece in input.chunks(chunk.min(input.len().max(1))) {
        p.read_buf().extend_from_slice(piece);
        if p.process().is_err() {
            faulted = true;
        }
        while let Some(ev) = p.poll_event() {
            frames += 1;
            match ev {
                Event::ClientIdent { ident, .. } => {
                    assert!(!ident.addrs.is_empty(), "an ident without addresses is refused");
                    let lossy = ident.flags & 1 != 0;
                    let rec = session::accepted(&ident, lossy, 0xabcd);
                    assert_eq!(rec.server_cookie == 0, lossy, "only a lossless session gets a cookie");
                    p.accept_client_ident(1, rec.server_cookie, lossy, &ident);
                    accepted = Some(rec);
                }
                Event::Reconnect { reconnect, .. } => {
                    let held = held_session((mode >> 2) & 7, accepted, &reconnect);
                    let verdict = session::judge_reconnect(held.as_ref(), true, &reconnect);
                    if let Reconnect::Resume { in_seq } = verdict {
                        let h = held.expect("only a held session resumes");
                        assert!(!h.closed && h.client_cookie == reconnect.client_cookie && h.server_cookie != 0);
                        // Messages up to what the session had received are duplicates now.
                        last_seq = in_seq;
                    }
                    session::answer(&mut p, verdict);
                }
                Event::Message { header, .. } => {
                    assert!(p.is_ready(), "messages are delivered only in READY");
                    assert!(header.seq > last_seq, "delivered seqs strictly increase");
                    last_seq = header.seq;
                    assert_eq!(p.in_seq(), header.seq);
                }
                Event::Ready { .. } | Event::Acked { .. } | Event::Keepalive | Event::KeepaliveAck { .. } => {}
                e @ (Event::ReconnectOk { .. }
                | Event::SessionReset { .. }
                | Event::SessionRetry { .. }
                | Event::SessionRetryGlobal { .. }
                | Event::Wait) => panic!("client-only event on the server side: {e:?}"),
            }
        }
        for b in p.take_output() {
            out.extend_from_slice(&b);
        }
        if faulted || frames > MAX_FRAMES {
            break;
        }
    }
    check_server_output(&out);
}

/// The session the server holds when `reconnect` arrives, by `pick` (0..=7): none, the one it
/// accepted on this socket, or one made to reach each answer of `judge_reconnect`.
fn held_session(pick: u8, accepted: Option<SessionRecord>, r: &SessionReconnect) -> Option<SessionRecord> {
    let matching = SessionRecord {
        closed: false,
        client_cookie: r.client_cookie,
        server_cookie: r.server_cookie.max(1),
        peer_global_seq: r.global_seq,
        connect_seq: r.connect_seq,
        in_seq: r.msg_seq,
    };
    match pick {
        0 => None,
        1 => accepted,
        2 => Some(SessionRecord {
            closed: true,
            ..matching
        }),
        3 => Some(SessionRecord {
            client_cookie: r.client_cookie.wrapping_add(1),
            ..matching
        }),
        4 => Some(SessionRecord {
            server_cookie: 0,
            ..matching
        }),
        5 => Some(SessionRecord {
            peer_global_seq: r.global_seq.saturating_add(1),
            ..matching
        }),
        6 => Some(SessionRecord {
            connect_seq: r.connect_seq.saturating_add(1),
            ..matching
        }),
        _ => Some(matching),
    }
}

/// Structured inputs: the bytes are a list of frame recipes, so the fuzzer can produce frames
/// with valid CRCs (and then break them on purpose). Each recipe is `tag, kind, len, ...`:
/// kind & 3 = 0: a frame of that tag (MESSAGE: with a data segment of `kind >> 2` × 512 bytes);
/// 1: a bare preamble with the lengths and count read from the input and a valid CRC (absurd
/// or lying lengths); 2: a frame with one bit flipped at an input-chosen offset; 3: raw bytes.
pub fn build_frames(spec: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut next = |n: usize| -> &[u8] {
        let s = &spec[i.min(spec.len())..(i + n).min(spec.len())];
        i += n;
        s
    };
    for _ in 0..64 {
        let head = next(3);
        if head.len() < 3 {
            break;
        }
        let (tag, kind, len) = (head[0], head[1], head[2] as usize);
        match kind & 3 {
            0 | 2 => {
                let Some(tag) = Tag::from_u8(tag) else { continue };
                let mut segs: [Bytes; 4] = Default::default();
                segs[0] = Bytes::copy_from_slice(next(len));
                if tag == Tag::Message {
                    segs[3] = Bytes::from(vec![0x5a; (kind as usize >> 2) * 512]);
                }
                let mut v = Vec::new();
                encode_frame(tag, &segs, &mut v);
                let mut bytes = v.concat();
                if kind & 3 == 2 {
                    let at = next(2);
                    if at.len() == 2 {
                        let at = u16::from_le_bytes([at[0], at[1]]) as usize % bytes.len();
                        bytes[at] ^= 1 << (kind >> 5);
                    }
                }
                out.extend_from_slice(&bytes);
            }
            1 => {
                let f = next(25);
                let mut p = [0u8; PREAMBLE_LEN];
                p[0] = tag;
                p[1..1 + f.len()].copy_from_slice(f);
                let crc = frame::ceph_crc32c(0, &p[..28]);
                p[28..].copy_from_slice(&crc.to_le_bytes());
                out.extend_from_slice(&p);
            }
            _ => out.extend_from_slice(next(len)),
        }
    }
    out
}

/// The fuzz entry point. Byte 0 is the mode byte (see the module doc); if bit 0 of byte 1 is
/// set, the rest is a list of frame recipes (`build_frames`), else raw bytes.
pub fn frame_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = frame::parse_banner(data);
    let built;
    let rest = match rest.split_first() {
        Some((&fmt, spec)) if fmt & 1 == 1 => {
            built = build_frames(spec);
            &built[..]
        }
        _ => rest,
    };
    decode_all(rest, &FrameLimits::default());
    decode_all(
        rest,
        &FrameLimits {
            max_control: 64,
            max_segment: 4096,
        },
    );
    drive_server(mode, rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// Stable-toolchain replay: seeded inputs of every mode — random bytes, bit flips of a
    /// whole valid handshake, valid frames after a valid prefix, random frame recipes — through
    /// the same harness libFuzzer runs.
    #[test]
    fn deterministic_replay() {
        let mut s = 0x5eed_1234_abcd_ef01u64;
        let full = client_prefix(3, false);
        for i in 0..40_000u32 {
            let mode = (i % 256) as u8;
            let mut input = vec![mode];
            match i % 4 {
                0 => {
                    let n = (xorshift(&mut s) % 300) as usize;
                    input.extend((0..n).map(|_| xorshift(&mut s) as u8));
                }
                1 => {
                    // Prefix 0 and raw format, so the flipped handshake is all there is.
                    input[0] = mode & !3;
                    input.push(0);
                    input.extend_from_slice(&full);
                    for _ in 0..1 + xorshift(&mut s) % 3 {
                        let at = 2 + (xorshift(&mut s) as usize) % full.len();
                        input[at] ^= 1 << (xorshift(&mut s) % 8);
                    }
                }
                2 => {
                    // Valid frames of any tag after the mode's prefix.
                    input.push(0);
                    for _ in 0..1 + xorshift(&mut s) % 6 {
                        let tag = Tag::from_u8(1 + (xorshift(&mut s) % 20) as u8).expect("1..=20");
                        let len = (xorshift(&mut s) % 60) as usize;
                        let seg: Vec<u8> = (0..len).map(|_| xorshift(&mut s) as u8).collect();
                        let mut segs: [Bytes; 4] = Default::default();
                        segs[0] = Bytes::from(seg);
                        if tag == Tag::Message && xorshift(&mut s) & 1 == 0 {
                            segs[3] = Bytes::from(vec![9u8; 5000]);
                        }
                        let mut v = Vec::new();
                        encode_frame(tag, &segs, &mut v);
                        input.extend(v.concat());
                    }
                }
                _ => {
                    // Random frame recipes (valid CRCs, lying preambles, flipped bits).
                    input.push(1);
                    let n = (xorshift(&mut s) % 200) as usize;
                    input.extend((0..n).map(|_| xorshift(&mut s) as u8));
                }
            }
            frame_decode(&input);
        }
        // Preambles that pass the CRC and announce the largest segments the limits allow.
        for (tag, num, len) in [
            (17u8, 4u8, 1u32 << 30),
            (17, 1, u32::MAX),
            (1, 1, 1 << 20),
            (1, 1, (1 << 20) + 1),
        ] {
            let mut spec = vec![mode_byte(3), 1, tag, 1, 0, num];
            for _ in 0..4 {
                spec.extend_from_slice(&len.to_le_bytes());
                spec.extend_from_slice(&8u16.to_le_bytes());
            }
            spec.extend_from_slice(&[0, 0]);
            frame_decode(&spec);
        }
    }

    /// Every answer of the real `judge_reconnect` is reachable from the mode byte's bits 2–4.
    #[test]
    fn every_reconnect_answer_is_reached() {
        let r = SessionReconnect {
            addrs: Vec::new(),
            client_cookie: 5,
            server_cookie: 6,
            global_seq: 7,
            connect_seq: 8,
            msg_seq: 9,
        };
        let got: Vec<Reconnect> = (0..8)
            .map(|pick| session::judge_reconnect(held_session(pick, None, &r).as_ref(), true, &r))
            .collect();
        assert_eq!(
            got,
            [
                Reconnect::Reset { full: true },
                Reconnect::Reset { full: true },
                Reconnect::Reset { full: true },
                Reconnect::Reset { full: true },
                Reconnect::Reset { full: false },
                Reconnect::RetryGlobal(8),
                Reconnect::Retry(9),
                Reconnect::Resume { in_seq: 9 },
            ]
        );
    }

    fn mode_byte(prefix: u8) -> u8 {
        prefix & 3
    }
}
