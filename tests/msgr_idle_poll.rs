//! `ms_async_idle_poll_us`: a worker keeps polling for that long after its last event, then
//! sleeps. Its own test binary, so the only messenger workers in the process are this test's.

use osdkit::common::entity::EntityType;
use osdkit::msgr::dispatcher::Dispatcher;
use osdkit::msgr::message::Message;
use osdkit::msgr::messenger::Messenger;
use osdkit::msgr::policy::Policy;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{ctx, wait_for};

const T_PING: u16 = 0x7101;
const T_PONG: u16 = 0x7102;

#[derive(Default)]
struct Echo {
    pongs: AtomicU64,
}

impl Dispatcher for Echo {
    fn ms_dispatch(&self, m: Message) -> Option<Message> {
        match m.ty {
            T_PING => {
                m.conn
                    .clone()
                    .unwrap()
                    .send_message(Message::new(T_PONG, m.front.clone()))
                    .unwrap();
                None
            }
            T_PONG => {
                self.pongs.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => Some(m),
        }
    }
}

/// CPU time (user + system, in clock ticks) of this process's messenger worker threads.
fn worker_ticks() -> u64 {
    let mut ticks = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("msgr-worker") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the ")" that closes the name: state is the 1st, utime the 12th.
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<u64> = rest
            .split(' ')
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        ticks += f.iter().sum::<u64>();
    }
    ticks
}

#[test]
fn workers_poll_for_the_idle_time_after_an_event_then_sleep() {
    // 300 ms of polling: long enough to show in clock ticks (10 ms) on a busy machine.
    let opts = [("ms_async_idle_poll_us", "300000"), ("ms_async_op_threads", "1")];
    let sc = ctx("osd.0", &opts);
    let srv = Messenger::new(&sc, "osd.0", None).unwrap();
    srv.set_default_policy(Policy::stateless_server());
    let echo = Arc::new(Echo::default());
    srv.add_dispatcher_tail(echo.clone());
    srv.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    srv.start().unwrap();
    let cc = ctx("client.1", &opts);
    let cli = Messenger::new(&cc, "client.1", None).unwrap();
    cli.set_default_policy(Policy::lossy_client());
    let crec = Arc::new(Echo::default());
    cli.add_dispatcher_tail(crec.clone());
    cli.start().unwrap();
    let conn = cli.connect_to(EntityType::Osd, &srv.my_addrs()[0]).unwrap();

    // Messages flow with polling on.
    for i in 0..100u64 {
        conn.send_message(Message::new(T_PING, i.to_le_bytes().to_vec()))
            .unwrap();
    }
    wait_for("100 pongs", 30, || crec.pongs.load(Ordering::Relaxed) == 100);

    // Right after: the two workers (one a side) poll. Then, long after, they sleep.
    let t0 = worker_ticks();
    std::thread::sleep(Duration::from_millis(600));
    let polling = worker_ticks() - t0;
    let t1 = worker_ticks();
    std::thread::sleep(Duration::from_millis(1000));
    let idle = worker_ticks() - t1;
    cli.shutdown();
    srv.shutdown();
    assert!(polling >= 3, "workers polled after their last event: {polling} ticks");
    assert!(
        idle <= 10,
        "workers slept once the idle time passed: {idle} ticks in 1 s"
    );
}
