//! One messenger hosting several identities (`Messenger::host`): each gets only the sessions
//! opened for its address (nonce included) and answers as itself; two identities of one
//! messenger talk to each other over its own socket; a peer naming an address not hosted
//! (never, or no longer) is refused while the others go on; sessions from several hosted
//! identities to one peer stay apart.

use osdkit::common::entity::EntityType;
use osdkit::msgr::connection::ConnStatus;
use osdkit::msgr::dispatcher::Dispatcher;
use osdkit::msgr::message::Message;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{ctx, wait_for};

const T_PING: u16 = 0x7101;
const T_PONG: u16 = 0x7102;

/// Records what reached one identity (the sender's gid, the body), answering pings with its own
/// name.
struct Who {
    me: String,
    got: Mutex<Vec<(i64, String)>>,
}

impl Who {
    fn new(me: &str) -> Arc<Who> {
        Arc::new(Who {
            me: me.into(),
            got: Mutex::new(Vec::new()),
        })
    }
    fn got(&self) -> Vec<(i64, String)> {
        self.got.lock().clone()
    }
}

impl Dispatcher for Who {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        let c = m.conn.clone()?;
        let body = String::from_utf8_lossy(&m.front).to_string();
        self.got.lock().push((c.peer_gid(), body));
        if m.ty == T_PING {
            c.send_message(Message::new(T_PONG, self.me.clone().into_bytes()))
                .unwrap();
        }
        None
    }
}

fn msgr(c: &osdkit::Context, name: &str, bind: bool) -> Messenger {
    let m = Messenger::new(c, name, None).unwrap();
    m.set_default_policy(Policy::stateless_server());
    m.set_policy(EntityType::Osd, Policy::lossless_peer());
    if bind {
        m.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    }
    m.start().unwrap();
    m
}

#[test]
fn hosted_identities_get_their_own_sessions_and_unhosted_ones_are_refused() {
    let c = ctx("osd.manager-a", &[]);
    let host = msgr(&c, "osd.manager-a", true);
    let (a, b) = (host.host("osd.1").unwrap(), host.host("osd.2").unwrap());
    let (wa, wb) = (Who::new("osd.1"), Who::new("osd.2"));
    a.add_dispatcher_tail(wa.clone());
    b.add_dispatcher_tail(wb.clone());
    assert_eq!(
        host.host("osd.1").err().map(|e| e.errno),
        Some(libc::EEXIST),
        "one name hosted twice"
    );
    assert_eq!(host.hosted().len(), 2);
    // Same socket, own nonce.
    let (aa, ba) = (a.my_addrs()[0], b.my_addrs()[0]);
    assert_eq!(aa.addr, host.my_addrs()[0].addr);
    assert_eq!(ba.addr, host.my_addrs()[0].addr);
    assert!(aa.nonce != ba.nonce && aa.nonce != host.nonce());
    assert_eq!(a.name().to_string(), "osd.1");

    // A peer reaches each identity at its own address, and is answered by it.
    let pc = ctx("osd.7", &[]);
    let peer = msgr(&pc, "osd.7", true);
    let wp = Who::new("osd.7");
    peer.add_dispatcher_tail(wp.clone());
    let to_a = peer.connect_to(EntityType::Osd, &aa).unwrap();
    let to_b = peer.connect_to(EntityType::Osd, &ba).unwrap();
    to_a.send_message(Message::new(T_PING, b"for a".to_vec())).unwrap();
    to_b.send_message(Message::new(T_PING, b"for b".to_vec())).unwrap();
    wait_for("both pings answered", 10, || wp.got().len() == 2);
    assert_eq!(wa.got(), vec![(7, "for a".to_string())]);
    assert_eq!(wb.got(), vec![(7, "for b".to_string())]);
    let mut pongs: Vec<(i64, String)> = wp.got();
    pongs.sort();
    assert_eq!(
        pongs,
        vec![(1, "osd.1".into()), (2, "osd.2".into())],
        "SERVER_IDENT names the identity"
    );
    assert_eq!(to_a.peer_gid(), 1);
    assert_eq!(to_b.peer_gid(), 2);

    // Two identities of one messenger talk over its own socket, each as itself.
    let a_to_b = a.connect_to(EntityType::Osd, &ba).unwrap();
    a_to_b.send_message(Message::new(T_PING, b"a to b".to_vec())).unwrap();
    wait_for("b hears a", 10, || {
        wb.got().iter().any(|(g, s)| *g == 1 && s == "a to b")
    });
    wait_for("a hears b's answer", 10, || {
        wa.got().iter().any(|(g, s)| *g == 2 && s == "osd.2")
    });

    // Both identities open a session to one peer: two sessions, each answered to its sender.
    let pa = peer.my_addrs()[0];
    a.connect_to(EntityType::Osd, &pa)
        .unwrap()
        .send_message(Message::new(T_PING, b"from a".to_vec()))
        .unwrap();
    b.connect_to(EntityType::Osd, &pa)
        .unwrap()
        .send_message(Message::new(T_PING, b"from b".to_vec()))
        .unwrap();
    wait_for("the peer hears both", 10, || {
        let g = wp.got();
        g.contains(&(1, "from a".into())) && g.contains(&(2, "from b".into()))
    });
    wait_for("each gets its own answer", 10, || {
        wa.got().contains(&(7, "osd.7".into())) && wb.got().contains(&(7, "osd.7".into()))
    });
    assert_eq!(a.connections().len() + b.connections().len(), host.connections().len());

    // The host's own address is not an identity it serves: refused.
    let mut own = host.my_addrs()[0];
    own.nonce = host.nonce();
    let lossy = ctx("client.x", &[]);
    let cm = msgr(&lossy, "client.x", false);
    let to_host = cm.connect_to(EntityType::Osd, &own).unwrap();
    to_host.send_message(Message::new(T_PING, b"nobody".to_vec())).unwrap();
    // a stops being hosted: a new session for it is refused too; b goes on.
    a.shutdown();
    assert_eq!(host.hosted().len(), 1);
    let late = cm.connect_to(EntityType::Osd, &aa).unwrap();
    late.send_message(Message::new(T_PING, b"too late".to_vec())).unwrap();
    let to_b2 = cm.connect_to(EntityType::Osd, &ba).unwrap();
    to_b2
        .send_message(Message::new(T_PING, b"still here".to_vec()))
        .unwrap();
    wait_for("b still served", 10, || wb.got().iter().any(|(_, s)| s == "still here"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(wa.got().iter().all(|(_, s)| s != "too late" && s != "nobody"));
    assert!(wb.got().iter().all(|(_, s)| s != "too late" && s != "nobody"));
    assert!(
        [&to_host, &late].iter().all(|c| c.status() != ConnStatus::Open),
        "refused sessions never open"
    );
    assert!(
        a.connect_to(EntityType::Osd, &pa).is_err(),
        "a stopped identity opens nothing"
    );
    for m in [&cm, &peer, &host] {
        m.shutdown();
    }
}
