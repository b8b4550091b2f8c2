//! The pull-style event queue: messages no dispatcher took and connection events wait here
//! for a thread that asks for the next one (`next`), instead of being pushed to a callback.
//! The C face (`osdkit_messenger_next_event`) and the Python face (`Messenger.recv()`) both
//! wrap this one queue.

use super::connection::ConnectionRef;
use super::message::Message;
use crate::common::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the queue holds.
#[derive(Debug)]
pub enum MsgrEvent {
    /// A message (its connection is `m.conn`).
    Message(Message),
    /// An outgoing session is established.
    Connect(ConnectionRef),
    /// An incoming session is established.
    Accept(ConnectionRef),
    /// A lossy session faulted, or the peer reset it.
    Reset(ConnectionRef),
    /// A peer we had a session with opened a new one (it restarted).
    RemoteReset(ConnectionRef),
    /// The peer refused the connection (nothing listening).
    Refused(ConnectionRef),
}

#[derive(Default)]
struct State {
    q: VecDeque<MsgrEvent>,
    closed: bool,
}

/// Shared by the dispatcher that fills it and the threads that wait on it.
#[derive(Default)]
pub struct EventQueue {
    st: Mutex<State>,
    cv: Condvar,
}

impl EventQueue {
    pub fn new() -> EventQueue {
        EventQueue::default()
    }

    /// Queues `ev` for one waiter; after `close` it is dropped at once.
    pub fn push(&self, ev: MsgrEvent) {
        let mut st = self.st.lock();
        if st.closed {
            drop(st);
            // Dropped outside our lock: a message may hold a caller's buffer whose release
            // runs now.
            drop(ev);
            return;
        }
        st.q.push_back(ev);
        drop(st);
        self.cv.notify_one();
    }

    /// The next event, waiting up to `timeout` (None: no limit). `-ETIMEDOUT` when none came
    /// in time, `-ESHUTDOWN` once the queue is closed (what is still queued is not handed out).
    pub fn next(&self, timeout: Option<Duration>) -> Result<MsgrEvent> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.st.lock();
        loop {
            if st.closed {
                return Err(Error::new(libc::ESHUTDOWN, "the messenger is shut down"));
            }
            if let Some(ev) = st.q.pop_front() {
                return Ok(ev);
            }
            match deadline {
                // No limit, or one too far off to represent.
                None => self.cv.wait(&mut st),
                Some(d) => {
                    if Instant::now() >= d {
                        return Err(Error::new(libc::ETIMEDOUT, "no event before the timeout"));
                    }
                    let _ = self.cv.wait_until(&mut st, d);
                }
            }
        }
    }

    /// Closes the queue: every waiter wakes with `-ESHUTDOWN` and what is queued is dropped.
    pub fn close(&self) {
        let items = {
            let mut st = self.st.lock();
            st.closed = true;
            std::mem::take(&mut st.q)
        };
        self.cv.notify_all();
        drop(items);
    }

    pub fn is_closed(&self) -> bool {
        self.st.lock().closed
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.st.lock().q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn msg(tid: u64) -> MsgrEvent {
        let mut m = Message::new(7, bytes::Bytes::new());
        m.tid = tid;
        MsgrEvent::Message(m)
    }

    fn tid(ev: MsgrEvent) -> u64 {
        match ev {
            MsgrEvent::Message(m) => m.tid,
            e => panic!("not a message: {e:?}"),
        }
    }

    #[test]
    fn events_come_out_in_order_and_a_timeout_is_etimedout() {
        let q = EventQueue::new();
        q.push(msg(1));
        q.push(msg(2));
        assert_eq!(q.len(), 2);
        assert_eq!(tid(q.next(Some(Duration::ZERO)).unwrap()), 1);
        assert_eq!(tid(q.next(None).unwrap()), 2);
        let t0 = Instant::now();
        let e = q.next(Some(Duration::from_millis(30))).unwrap_err();
        assert_eq!(e.errno, libc::ETIMEDOUT);
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn close_wakes_a_waiter_and_drops_what_is_queued() {
        let q = Arc::new(EventQueue::new());
        let q2 = q.clone();
        let waiter = std::thread::spawn(move || q2.next(None).map(tid));
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(waiter.join().unwrap().unwrap_err().errno, libc::ESHUTDOWN);
        q.push(msg(3));
        assert!(q.is_empty() && q.is_closed());
        assert_eq!(q.next(Some(Duration::ZERO)).unwrap_err().errno, libc::ESHUTDOWN);
    }
}
