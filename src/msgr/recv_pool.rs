//! Receive buffers for large frames, faulted in ahead of time by a helper thread.
//!
//! A memory store keeps every received data buffer, so each large write needs memory the
//! process has never touched, and the kernel faults and zeroes it page by page inside the
//! `recv(2)` that fills it. In this VM that was 70% of the OSD messenger thread's time on
//! 4 MiB writes while the other core sat idle. The `ms_prefault` thread takes that work off
//! the messenger thread: it keeps `ms_prefault_bytes` of buffers of the size large frames
//! have been arriving at, each page already touched, and a worker that learns from a
//! preamble that such a frame is coming reads it into one of them.
//!
//! There are `ms_prefault_threads` helpers: once a store has used the memory the VM's host
//! keeps backed, a first touch here costs about 10 µs a page in the host, and several threads
//! faulting at once got 2–3 times the rate of one (12 GiB: 13–20 s with one process, 5.6–6.5 s
//! with two, 4.8–5.1 s with four, on this 2-core VM).
//!
//! A memory-store OSD can also fault in a [`PrefaultReserve`] when it starts
//! (`memstore_prefault_frame_bytes`): large frames are then cut from memory already backed, end
//! to end, and only once it is used up do they fall back to the helpers.
//!
//! Not a Ceph mechanism (Ceph's messenger reads into fresh `buffer::ptr`s).

use crate::common::mem::prefault;
use crate::common::perf::{PerfCounters, PerfCountersBuilder, PerfCountersCollection};
use bytes::BytesMut;
use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, OnceLock, Weak};

/// Frames shorter than this are read the usual way: their faults are few, and the hand-over
/// would cost more than it saves.
pub const PREFAULT_MIN: usize = 1 << 20;
/// Buffer sizes are rounded up to this, so frames of one kind (4 MiB of data plus headers
/// that vary by a few bytes) share one size.
const GRAIN: usize = 64 * 1024;

// Counter indices, in the order `build_perf` adds them.
const L_HITS: usize = 0;
const L_MISSES: usize = 1;
const L_PREPARED: usize = 2;
const L_READY_BYTES: usize = 3;
const L_RESERVE_HITS: usize = 4;

fn build_perf(msgr_name: &str) -> Arc<PerfCounters> {
    let mut b = PerfCountersBuilder::new(format!("ms_prefault-{msgr_name}"));
    let idx = [
        b.add_u64_counter("hits", "Large frames read into a buffer faulted in ahead of time"),
        b.add_u64_counter("misses", "Large frames that found no such buffer ready"),
        b.add_u64_counter("prepared", "Buffers faulted in by the ms_prefault thread"),
        b.add_u64("ready_bytes", "Bytes of buffers ready for large frames"),
        b.add_u64_counter(
            "reserve_hits",
            "Large frames read into memory cut from the prefault reserve",
        ),
    ];
    debug_assert_eq!(idx, [L_HITS, L_MISSES, L_PREPARED, L_READY_BYTES, L_RESERVE_HITS]);
    b.build()
}

#[derive(Default)]
struct State {
    /// The buffer size being prepared; 0 until the first large frame.
    size: usize,
    ready: Vec<BytesMut>,
    /// Buffers being faulted in by the helpers now.
    filling: usize,
    /// Helpers waiting for a buffer to be wanted.
    waiting: usize,
    stop: bool,
    /// The helpers were started.
    started: bool,
}

pub struct RecvBufPool {
    budget: usize,
    threads: usize,
    st: Mutex<State>,
    cv: Condvar,
    perf: Arc<PerfCounters>,
    /// Where `perf` is listed (logger `ms_prefault-<messenger>`), until the pool is dropped.
    perf_coll: Option<Weak<PerfCountersCollection>>,
    /// Memory faulted in up front, used before the helpers' buffers (`set_reserve`).
    reserve: OnceLock<Arc<PrefaultReserve>>,
}

impl RecvBufPool {
    /// A pool for messenger `msgr_name` keeping up to `budget` bytes ready (at least one
    /// buffer) with `threads` helpers (at least one), its counters added to `perf`; `None` for
    /// a budget of 0.
    pub fn new(
        budget: usize,
        threads: usize,
        msgr_name: &str,
        perf: Option<&Arc<PerfCountersCollection>>,
    ) -> Option<Arc<RecvBufPool>> {
        (budget > 0).then(|| {
            let pc = build_perf(msgr_name);
            if let Some(coll) = perf {
                coll.add(&pc);
            }
            Arc::new(RecvBufPool {
                budget,
                threads: threads.max(1),
                st: Mutex::new(State::default()),
                cv: Condvar::new(),
                perf: pc,
                perf_coll: perf.map(Arc::downgrade),
                reserve: OnceLock::new(),
            })
        })
    }

    /// Moves the start of a large frame in `buf` (`total` bytes long once complete) into a
    /// prepared buffer, if one of its size is ready; false leaves `buf` as it was. Either way
    /// the helper learns the size and prepares more.
    pub fn adopt(self: &Arc<Self>, buf: &mut BytesMut, total: usize) -> bool {
        if total < PREFAULT_MIN || buf.len() >= total {
            return false;
        }
        if let Some(b) = self.reserve.get().and_then(|r| r.take(total)) {
            self.perf.inc(L_RESERVE_HITS, 1);
            Self::move_into(buf, b);
            return true;
        }
        let size = total.div_ceil(GRAIN) * GRAIN;
        if size > self.budget.max(PREFAULT_MIN) {
            // More than the whole budget for one frame: not worth holding ready.
            return false;
        }
        let (taken, stale) = {
            let mut st = self.st.lock();
            let stale = if st.size != size {
                st.size = size;
                std::mem::take(&mut st.ready)
            } else {
                Vec::new()
            };
            if !st.started && !st.stop {
                st.started = true;
                for _ in 0..self.threads {
                    if !self.spawn() {
                        break;
                    }
                }
            }
            let taken = st.ready.pop();
            self.perf.set(L_READY_BYTES, (st.ready.len() * st.size) as u64);
            (taken, stale)
        };
        self.cv.notify_one();
        drop(stale);
        let Some(b) = taken else {
            self.perf.inc(L_MISSES, 1);
            return false;
        };
        self.perf.inc(L_HITS, 1);
        Self::move_into(buf, b);
        true
    }

    /// Makes `b`, holding what `buf` held so far, the frame's buffer.
    fn move_into(buf: &mut BytesMut, mut b: BytesMut) {
        b.extend_from_slice(buf);
        *buf = b;
    }

    /// Has large frames cut from `reserve` while it lasts; false if a reserve was set already.
    pub fn set_reserve(&self, reserve: Arc<PrefaultReserve>) -> bool {
        self.reserve.set(reserve).is_ok()
    }

    /// Frames read into a prepared buffer, and large frames that found none ready.
    pub fn stats(&self) -> (u64, u64) {
        (self.perf.get(L_HITS), self.perf.get(L_MISSES))
    }

    /// Ends the helper and frees what it prepared.
    pub fn stop(&self) {
        let ready = {
            let mut st = self.st.lock();
            st.stop = true;
            std::mem::take(&mut st.ready)
        };
        self.cv.notify_all();
        drop(ready);
        self.perf.set(L_READY_BYTES, 0);
    }

    fn spawn(self: &Arc<Self>) -> bool {
        let me = Arc::downgrade(self);
        crate::common::log::ThreadBuilder::new()
            .name("ms_prefault".into())
            .spawn(move || {
                while let Some(p) = me.upgrade() {
                    if !p.fill_one() {
                        break;
                    }
                }
            })
            .is_ok()
    }

    /// Prepares one buffer, after waiting until one is wanted; false once stopped, or once
    /// only the helpers hold the pool (it was dropped without `stop`).
    fn fill_one(self: &Arc<Self>) -> bool {
        let size = {
            let mut st = self.st.lock();
            loop {
                if st.stop {
                    return false;
                }
                let want = (self.budget / st.size.max(1)).max(1);
                if st.size > 0 && st.ready.len() + st.filling < want {
                    st.filling += 1;
                    break st.size;
                }
                // Timed, to look now and again for an owner. The helpers waiting here are
                // counted; others hold references too, which only makes this later.
                st.waiting += 1;
                let timed_out = self.cv.wait_for(&mut st, std::time::Duration::from_secs(1)).timed_out();
                st.waiting -= 1;
                if timed_out && Arc::strong_count(self) <= st.waiting + 1 {
                    return false;
                }
            }
        };
        let mut b = BytesMut::with_capacity(size);
        prefault(b.spare_capacity_mut());
        self.perf.inc(L_PREPARED, 1);
        let mut st = self.st.lock();
        st.filling -= 1;
        if st.size == size && !st.stop {
            st.ready.push(b);
            self.perf.set(L_READY_BYTES, (st.ready.len() * size) as u64);
        }
        true
    }
}

/// The reserve is faulted in as slabs of this size, one thread to a slab, and frames are cut
/// from them: a slab's memory goes back only when every frame cut from it is dropped.
const SLAB: usize = 256 << 20;
/// Cuts start on a cache line.
const CUT_ALIGN: usize = 64;

const R_RESERVED: usize = 0;
const R_LEFT: usize = 1;
const R_TIME: usize = 2;

/// Memory faulted in once, up front, that large frames are cut from until it is used up. Its
/// memory is its own (not the allocator's to hand out), so it serves with any allocator.
pub struct PrefaultReserve {
    slabs: Mutex<Vec<BytesMut>>,
    /// Logger `prefault_reserve`: `reserved_bytes`, `left_bytes`, `fault_in_time`.
    perf: Arc<PerfCounters>,
}

impl PrefaultReserve {
    /// Faults in `bytes` (rounded up to whole pages) with `threads` threads, and returns when
    /// every page is; `bytes` must be at least [`PREFAULT_MIN`].
    pub fn fault_in(bytes: usize, threads: usize) -> crate::common::error::Result<Arc<PrefaultReserve>> {
        if bytes < PREFAULT_MIN {
            return Err(crate::common::error::Error::inval(format!(
                "a prefault reserve of {bytes} bytes is smaller than one large frame ({PREFAULT_MIN})"
            )));
        }
        let start = std::time::Instant::now();
        let slabs = crate::common::mem::fault_in_pieces(bytes, SLAB, threads, "ms_prefault");
        let bytes: usize = slabs.iter().map(BytesMut::capacity).sum();
        let slabs = Mutex::new(slabs);
        let mut b = PerfCountersBuilder::new("prefault_reserve");
        let idx = [
            b.add_u64("reserved_bytes", "Bytes faulted in at startup for large frames"),
            b.add_u64("left_bytes", "Bytes of the reserve not yet cut for large frames"),
            b.add_time("fault_in_time", "Time faulting the reserve in took"),
        ];
        debug_assert_eq!(idx, [R_RESERVED, R_LEFT, R_TIME]);
        let perf = b.build();
        perf.set(R_RESERVED, bytes as u64);
        perf.set(R_LEFT, bytes as u64);
        perf.tset(R_TIME, start.elapsed());
        Ok(Arc::new(PrefaultReserve { slabs, perf }))
    }

    /// A buffer of at least `size` bytes cut from the reserve, if that much is left in one slab.
    fn take(&self, size: usize) -> Option<BytesMut> {
        let size = size.next_multiple_of(CUT_ALIGN);
        let mut slabs = self.slabs.lock();
        loop {
            let last = slabs.last_mut()?;
            let cap = last.capacity();
            if cap >= size {
                let rest = last.split_off(size);
                let piece = std::mem::replace(last, rest);
                self.perf.dec(R_LEFT, size as u64);
                return Some(piece);
            }
            // Too little left for this frame: the rest of this slab goes unused.
            slabs.pop();
            self.perf.dec(R_LEFT, cap as u64);
        }
    }

    /// Bytes faulted in, bytes not yet cut, and how long faulting them in took.
    pub fn stats(&self) -> (u64, u64, std::time::Duration) {
        (self.perf.get(R_RESERVED), self.perf.get(R_LEFT), self.perf.tget(R_TIME))
    }

    /// Frees what is not cut yet; nothing is cut from it afterwards.
    pub fn release(&self) {
        let slabs = std::mem::take(&mut *self.slabs.lock());
        self.perf.set(R_LEFT, 0);
        drop(slabs);
    }

    /// Its counters, to list in a daemon's `perf dump`.
    pub fn perf(&self) -> &Arc<PerfCounters> {
        &self.perf
    }
}

impl Drop for RecvBufPool {
    fn drop(&mut self) {
        if let Some(coll) = self.perf_coll.as_ref().and_then(Weak::upgrade) {
            coll.remove(&self.perf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_ready(p: &RecvBufPool, n: usize) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if p.st.lock().ready.len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn zero_budget_is_no_pool() {
        assert!(RecvBufPool::new(0, 1, "t", None).is_none());
    }

    #[test]
    fn small_frames_and_complete_frames_are_left_alone() {
        let p = RecvBufPool::new(8 << 20, 2, "t", None).unwrap();
        let mut b = BytesMut::from(&b"preamble"[..]);
        assert!(!p.adopt(&mut b, PREFAULT_MIN - 1));
        assert!(!p.adopt(&mut b, 8));
        assert_eq!(&b[..], b"preamble");
        assert_eq!(p.stats(), (0, 0));
        assert!(!p.st.lock().started, "no helper before a large frame");
    }

    #[test]
    fn a_large_frame_gets_a_prepared_buffer_with_its_first_bytes() {
        let total = (4 << 20) + 300;
        let p = RecvBufPool::new(16 << 20, 3, "t", None).unwrap();
        let mut b = BytesMut::from(&b"first bytes"[..]);
        // The first frame of a size only teaches the helper that size.
        assert!(!p.adopt(&mut b, total));
        assert_eq!(&b[..], b"first bytes");
        assert_eq!(p.stats(), (0, 1));
        // 16 MiB of budget: three buffers of 4 MiB + 64 KiB.
        assert!(wait_ready(&p, 3), "the helper prepares buffers");
        assert!(p.adopt(&mut b, total));
        assert_eq!(&b[..], b"first bytes");
        assert!(b.capacity() >= total && b.capacity() < total + GRAIN);
        assert_eq!(p.stats(), (1, 1));
        // A frame of another size drops the ready buffers of the old one.
        let mut c = BytesMut::from(&b"x"[..]);
        assert!(!p.adopt(&mut c, 2 << 20));
        assert!(p.st.lock().ready.iter().all(|r| r.capacity() == 2 << 20));
        assert!(wait_ready(&p, 8));
        assert!(p.adopt(&mut c, 2 << 20));
        assert_eq!(p.stats(), (2, 2));
    }

    #[test]
    fn several_helpers_keep_to_the_budget() {
        let size = (2 << 20) + GRAIN;
        let p = RecvBufPool::new(5 * size, 4, "t", None).unwrap();
        let mut b = BytesMut::new();
        assert!(!p.adopt(&mut b, size));
        assert!(wait_ready(&p, 5), "the helpers fill the budget");
        // They stop there: nothing more is made or being made, however long they run.
        std::thread::sleep(Duration::from_millis(200));
        {
            let st = p.st.lock();
            assert_eq!((st.ready.len(), st.filling), (5, 0));
        }
        assert_eq!(p.perf.get(L_PREPARED), 5);
        // Taking two has two made again, by whichever helpers wake.
        for _ in 0..2 {
            let mut c = BytesMut::new();
            assert!(p.adopt(&mut c, size));
        }
        assert!(wait_ready(&p, 5));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(p.perf.get(L_PREPARED), 7);
        p.stop();
    }

    #[test]
    fn frames_over_the_budget_are_not_prepared_for() {
        let p = RecvBufPool::new(2 << 20, 2, "t", None).unwrap();
        let mut b = BytesMut::from(&b"x"[..]);
        assert!(!p.adopt(&mut b, 3 << 20));
        assert_eq!(p.stats(), (0, 0));
        assert!(!p.st.lock().started);
    }

    #[test]
    fn stop_ends_the_helper_and_frees_its_buffers() {
        let p = RecvBufPool::new(4 << 20, 2, "t", None).unwrap();
        let mut b = BytesMut::new();
        assert!(!p.adopt(&mut b, 2 << 20));
        assert!(wait_ready(&p, 2));
        p.stop();
        assert!(p.st.lock().ready.is_empty());
        assert!(!p.adopt(&mut b, 2 << 20), "nothing is prepared after stop");
    }

    #[test]
    fn a_reserve_is_cut_into_frames_until_it_is_used_up() {
        assert_eq!(
            PrefaultReserve::fault_in(PREFAULT_MIN - 1, 2).err().map(|e| e.errno),
            Some(libc::EINVAL)
        );
        let r = PrefaultReserve::fault_in(10 << 20, 2).unwrap();
        assert_eq!(r.stats().0, 10 << 20);
        let span = {
            let slabs = r.slabs.lock();
            assert_eq!(slabs.len(), 1);
            let p = slabs[0].as_ptr() as usize;
            p..p + (10 << 20)
        };
        let total: usize = (3 << 20) + 101;
        let cut = total.next_multiple_of(CUT_ALIGN);
        let mut got = Vec::new();
        while let Some(b) = r.take(total) {
            assert!(
                b.is_empty() && b.capacity() == cut,
                "a cut is exactly the frame, aligned"
            );
            got.push(b);
        }
        // Three fit in 10 MiB, end to end; the 1 MiB left over cannot hold a fourth and is let go.
        let starts: Vec<usize> = got.iter().map(|b| b.as_ptr() as usize).collect();
        assert_eq!(starts, vec![span.start, span.start + cut, span.start + 2 * cut]);
        assert_eq!(r.stats().1, 0);
        assert!(r.take(PREFAULT_MIN).is_none(), "a smaller frame does not fit either");
    }

    #[test]
    fn large_frames_use_the_reserve_first_then_the_helpers() {
        let total = (2 << 20) + 300;
        let p = RecvBufPool::new(8 << 20, 2, "t", None).unwrap();
        let r = PrefaultReserve::fault_in(5 << 20, 2).unwrap();
        assert!(p.set_reserve(r.clone()));
        assert!(!p.set_reserve(r.clone()), "one reserve per pool");
        for _ in 0..2 {
            let mut b = BytesMut::from(&b"head"[..]);
            assert!(p.adopt(&mut b, total));
            assert_eq!(&b[..], b"head");
            assert!(b.capacity() >= total);
        }
        assert_eq!(p.perf.get(L_RESERVE_HITS), 2);
        assert_eq!(p.stats(), (0, 0), "the helpers were not needed yet");
        assert!(!p.st.lock().started);
        // The reserve has 1 MiB left: the next frame goes the usual way.
        let mut b = BytesMut::from(&b"head"[..]);
        assert!(!p.adopt(&mut b, total));
        assert_eq!(p.stats(), (0, 1));
        assert_eq!(p.perf.get(L_RESERVE_HITS), 2);
        // Released, nothing more is cut from it.
        let r2 = PrefaultReserve::fault_in(4 << 20, 1).unwrap();
        r2.release();
        assert_eq!(r2.stats().1, 0);
        assert!(r2.take(PREFAULT_MIN).is_none());
        p.stop();
    }

    #[test]
    fn the_helpers_end_when_the_pool_is_dropped_without_stop() {
        let p = RecvBufPool::new(4 << 20, 3, "t", None).unwrap();
        let mut b = BytesMut::new();
        assert!(!p.adopt(&mut b, 2 << 20));
        assert!(wait_ready(&p, 2));
        let weak = Arc::downgrade(&p);
        drop(p);
        let end = Instant::now() + Duration::from_secs(10);
        while weak.strong_count() > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(weak.strong_count(), 0, "the helpers let go of the pool");
    }
}
