//! The process's memory: what the system has available, faulting pages in ahead of their use,
//! and having the allocator keep what it frees (`memstore_prefault_bytes`).
//!
//! A first touch of anonymous memory costs a page fault and the zeroing of the page; in a VM
//! whose host no longer backs that memory it also waits on the host (about 10 µs a page on the
//! VM the README's figures come from, against well under 1 µs for memory it still backs). A
//! memory store holds every byte written to it, so a write load keeps touching memory for the
//! first time. Like the JVM's `-XX:+AlwaysPreTouch`, `pretouch` pays that cost once, before
//! the load, and has the allocator keep the memory for what comes after.

use super::error::{Error, Result};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
/// `pretouch` allocates, faults in and frees memory in pieces of this size. mimalloc (v3) hands
/// memory freed from pieces of 1 MiB out again for allocations of any size; of pieces of 64 MiB
/// it reused about two thirds (`tests/osd_mem_keep.rs`).
const PIECE: usize = 1 << 20;

/// The kernel's estimate of memory available without swapping (`MemAvailable` in
/// `/proc/meminfo`), in bytes; `None` where there is no such file.
pub fn mem_available() -> Option<u64> {
    parse_mem_available(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Faults in every page of `mem` for writing: one `madvise(MADV_POPULATE_WRITE)` (Linux 5.14),
/// about half again as fast here as a write per page, which older kernels get instead.
pub fn prefault(mem: &mut [MaybeUninit<u8>]) {
    let start = mem.as_mut_ptr() as usize;
    let first = start.next_multiple_of(PAGE) - start;
    let len = (mem.len().saturating_sub(first)) / PAGE * PAGE;
    if len > 0 {
        // SAFETY: [start + first, + len) lies within `mem`, memory this thread owns exclusively
        // and may write; MADV_POPULATE_WRITE only maps its pages in (as a write would) and
        // leaves their contents as they were.
        let r = unsafe { libc::madvise((start + first) as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) };
        if r == 0 {
            return;
        }
    }
    for page in mem.chunks_mut(PAGE) {
        page[0].write(0);
    }
}

/// `total` bytes (rounded up to whole pages) of new memory in pieces of `piece` bytes, each page
/// faulted in, by `threads` threads named `name` at once: here several first touches in flight
/// got 2-3 times the rate of one (12 GiB: 13-20 s with one, 4.8-5.1 s with four).
pub fn fault_in_pieces(total: usize, piece: usize, threads: usize, name: &str) -> Vec<bytes::BytesMut> {
    let total = total.next_multiple_of(PAGE);
    let piece = piece.max(PAGE);
    let n = total.div_ceil(piece);
    let next = AtomicUsize::new(0);
    let pieces = parking_lot::Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|s| {
        let fill = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let mut b = bytes::BytesMut::with_capacity(piece.min(total - i * piece));
            prefault(b.spare_capacity_mut());
            pieces.lock().push(b);
        };
        for _ in 1..threads.clamp(1, n.max(1)) {
            if std::thread::Builder::new()
                .name(name.into())
                .spawn_scoped(s, fill)
                .is_err()
            {
                break;
            }
        }
        fill();
    });
    pieces.into_inner()
}

/// mimalloc's API, from the copy `libmimalloc-sys` builds (v3; its Rust bindings carry these
/// only behind a feature that adds a crate).
mod mi {
    extern crate libmimalloc_sys as _;
    extern "C" {
        pub fn mi_is_in_heap_region(p: *const libc::c_void) -> bool;
        pub fn mi_option_set(option: libc::c_int, value: libc::c_long);
        pub fn mi_option_get(option: libc::c_int) -> libc::c_long;
        pub fn mi_collect(force: bool);
    }
    /// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (v3.3): how long freed memory is
    /// kept before it goes back to the system, -1 for never. `tests/osd_mem_keep.rs` checks that
    /// this is the option that does that.
    pub const OPTION_PURGE_DELAY: libc::c_int = 15;
}

/// Whether this process allocates with mimalloc (the `osdkit` command does; a C or Python host
/// has its own allocator).
pub fn allocator_is_mimalloc() -> bool {
    let probe = Box::new(0u64);
    // SAFETY: mi_is_in_heap_region only looks the address up in mimalloc's page map (which
    // answers false for any address before mimalloc has mapped anything); it reads nothing at
    // the address.
    unsafe { mi::mi_is_in_heap_region(std::ptr::from_ref(&*probe).cast()) }
}

/// Has the allocator keep memory it frees (`keep`), or give it back after its usual delay
/// (mimalloc's default, 10 ms); false, changing nothing, when the allocator is not mimalloc.
pub fn keep_freed_memory(keep: bool) -> bool {
    if !allocator_is_mimalloc() {
        return false;
    }
    // SAFETY: setting an option mimalloc defines, to a value it documents; mimalloc reads it
    // at each purge decision.
    unsafe { mi::mi_option_set(mi::OPTION_PURGE_DELAY, if keep { -1 } else { 10 }) };
    if !keep {
        // SAFETY: mi_collect is safe to call at any time from any thread.
        unsafe { mi::mi_collect(true) };
    }
    true
}

/// Whether freed memory is being kept (`keep_freed_memory(true)`).
pub fn keeps_freed_memory() -> bool {
    // SAFETY: reading an option mimalloc defines.
    allocator_is_mimalloc() && unsafe { mi::mi_option_get(mi::OPTION_PURGE_DELAY) } < 0
}

/// Faults `bytes` of memory in with `threads` threads, through the allocator, and frees it for
/// the allocator to hand out again already backed; returns how long that took. Refused when the
/// allocator would give freed memory back to the system (it is not mimalloc), and for more than
/// the system has available, which would only end in the OOM killer.
pub fn pretouch(bytes: u64, threads: usize) -> Result<Duration> {
    if !keep_freed_memory(true) {
        return Err(Error::inval(
            "pretouching memory needs mimalloc as the process's allocator (the osdkit command has it): \
             another gives freed memory back to the system, and the pages would be cold again",
        ));
    }
    if let Some(avail) = mem_available() {
        if bytes > avail {
            return Err(Error::inval(format!(
                "cannot pretouch {bytes} bytes: the system has {avail} bytes available"
            )));
        }
    }
    let start = Instant::now();
    let bytes = usize::try_from(bytes).map_err(|_| Error::inval(format!("{bytes} bytes is too much")))?;
    // Each piece is held until all are faulted in, so each is memory of its own.
    drop(fault_in_pieces(bytes, PIECE, threads, "pretouch"));
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mem_available_is_read_in_bytes() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(super::parse_mem_available(m), Some(23_000_000 * 1024));
        assert_eq!(super::parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(super::parse_mem_available("MemAvailable: lots kB\n"), None);
        assert!(super::mem_available().is_some_and(|b| b > 0), "this is Linux");
    }

    #[test]
    fn memory_is_faulted_in_as_whole_pages_in_pieces() {
        let mut caps: Vec<usize> = super::fault_in_pieces((10 << 20) + 1, 4 << 20, 3, "t")
            .iter()
            .map(|b| b.capacity())
            .collect();
        caps.sort_unstable();
        assert_eq!(caps, vec![(2 << 20) + 4096, 4 << 20, 4 << 20]);
        assert!(super::fault_in_pieces(0, 4 << 20, 2, "t").is_empty());
    }

    #[test]
    fn without_mimalloc_pretouch_is_refused_and_nothing_changes() {
        // The library's unit tests run on the system allocator.
        assert!(!super::allocator_is_mimalloc());
        assert!(!super::keep_freed_memory(true));
        assert!(!super::keeps_freed_memory());
        let e = super::pretouch(1 << 20, 1).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert!(e.msg.contains("mimalloc"), "{}", e.msg);
    }
}
