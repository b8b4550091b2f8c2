//! Tests of the msgr2 Protocol state machine: handshakes, sessions, acks and faults, byte for byte.

use super::*;

fn local(ty: u8, addrs: Vec<EntityAddr>) -> LocalInfo {
    LocalInfo {
        entity_type: ty,
        entity_id: "x".into(),
        gid: -1,
        nonce: 42,
        my_addrs: addrs,
        features: FEATURES_PACIFIC,
    }
}

/// Moves one side's output into the other's input.
fn pump(from: &mut Protocol, to: &mut Protocol) -> Result<(), Fault> {
    for b in from.take_output() {
        to.read_buf().extend_from_slice(&b);
    }
    to.process()
}

fn handshake(lossy: bool) -> (Protocol, Protocol) {
    let srv_addr: EntityAddr = "v2:127.0.0.1:6800/7".parse().unwrap();
    let mut c = Protocol::client(
        local(8, vec![]),
        srv_addr,
        Some(4),
        ClientSession::New {
            global_seq: 1,
            cookie: if lossy { 0 } else { 99 },
            lossy,
        },
        FrameLimits::default(),
    );
    let mut s = Protocol::server(
        local(4, vec![srv_addr]),
        "127.0.0.1:50000".parse().unwrap(),
        4242,
        FrameLimits::default(),
    );
    for _ in 0..6 {
        pump(&mut c, &mut s).unwrap();
        while let Some(e) = s.poll_event() {
            if let Event::ClientIdent { ident, .. } = e {
                assert_eq!(ident.cookie, if lossy { 0 } else { 99 });
                s.accept_client_ident(1, 555, lossy, &ident);
            }
        }
        pump(&mut s, &mut c).unwrap();
    }
    (c, s)
}

#[test]
fn client_and_server_reach_ready_and_exchange() {
    let (mut c, mut s) = handshake(false);
    assert!(c.is_ready() && s.is_ready());
    assert_eq!(c.global_id, 4242);
    match c.poll_event() {
        Some(Event::Ready {
            peer_type: 4,
            server_cookie: 555,
            peer_lossy: false,
            ..
        }) => {}
        e => panic!("{e:?}"),
    }
    assert_eq!(c.my_addr_seen.unwrap().addr, Some("127.0.0.1:50000".parse().unwrap()));
    for seq in 1..=3u64 {
        let h = MsgHeader {
            seq,
            ty: 0x100,
            priority: 127,
            version: 1,
            ..Default::default()
        };
        c.send_message(
            h,
            Bytes::from(format!("front{seq}")),
            Bytes::new(),
            Bytes::from(vec![seq as u8; 5000]),
        );
    }
    // A replayed duplicate (same seq) is dropped by the receiver.
    c.send_message(
        MsgHeader {
            seq: 2,
            ..Default::default()
        },
        Bytes::new(),
        Bytes::new(),
        Bytes::new(),
    );
    let stamp = c.send_keepalive();
    pump(&mut c, &mut s).unwrap();
    let mut got = Vec::new();
    while let Some(e) = s.poll_event() {
        got.push(e);
    }
    let msgs: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            Event::Message { header, segments } => Some((header.seq, segments[1].clone(), segments[3].len())),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[2], (3, Bytes::from("front3"), 5000));
    assert!(got.contains(&Event::Keepalive));
    assert_eq!(s.in_seq, 3);
    // Parsed is not delivered: a reply sent after the owner handed on only two of the
    // three acks those two, and an ACK after all three acks three.
    s.delivered(2);
    s.send_message(
        MsgHeader {
            seq: 1,
            ..Default::default()
        },
        Bytes::new(),
        Bytes::new(),
        Bytes::new(),
    );
    pump(&mut s, &mut c).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(evs.contains(&Event::KeepaliveAck { stamp }));
    assert!(evs.contains(&Event::Acked { seq: 2 }), "{evs:?}");
    assert!(!evs.contains(&Event::Acked { seq: 3 }), "{evs:?}");
    s.delivered(3);
    s.send_ack();
    pump(&mut s, &mut c).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(evs.contains(&Event::Acked { seq: 3 }), "{evs:?}");
}

#[test]
fn out_of_state_frames_and_bad_auth_fault() {
    let (mut c, mut s) = handshake(true);
    // A HELLO in READY is a protocol violation.
    let mut out = Vec::new();
    encode_frame(
        Tag::Hello,
        &[
            Hello {
                entity_type: 8,
                peer_addr: EntityAddr::blank(),
            }
            .encode(),
            Bytes::new(),
            Bytes::new(),
            Bytes::new(),
        ],
        &mut out,
    );
    for b in out {
        s.read_buf().extend_from_slice(&b);
    }
    assert!(s.process().unwrap_err().0.contains("unexpected Hello"));
    // A MESSAGE before READY too.
    let mut fresh = Protocol::server(
        local(4, vec![]),
        "127.0.0.1:1".parse().unwrap(),
        1,
        FrameLimits::default(),
    );
    let mut bytes = frame::banner(1, 0).to_vec();
    let mut out = Vec::new();
    encode_frame(
        Tag::Message,
        &[MsgHeader::default().encode(), Bytes::new(), Bytes::new(), Bytes::new()],
        &mut out,
    );
    bytes.extend(out.concat());
    fresh.read_buf().extend_from_slice(&bytes);
    assert!(fresh.process().is_err());
    let _ = c.take_output();
}
