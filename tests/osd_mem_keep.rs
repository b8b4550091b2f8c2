//! `common::mem` under mimalloc, the `osdkit` command's allocator: memory faulted in with
//! `pretouch` stays with the process and serves later allocations of any size, so they do not
//! fault again. Its own binary: the process's resident size is what is measured.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use osdkit::client::Rados;
use osdkit::common::mem;
use osdkit::hosting::cluster::MiniCluster;
use serde_json::json;

/// The tests measure this process's memory: one at a time.
static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

const MIB: u64 = 1 << 20;

/// Resident bytes of this process (`/proc/self/statm`).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Allocates `bytes` in pieces of `piece`, touching every page, and returns them.
fn touch(bytes: u64, piece: usize) -> Vec<Vec<u8>> {
    (0..bytes / piece as u64)
        .map(|_| {
            let mut v = vec![0u8; piece];
            for p in v.iter_mut().step_by(4096) {
                *p = 1;
            }
            v
        })
        .collect()
}

#[test]
fn pretouched_memory_is_kept_and_reused_for_small_and_large_allocations() {
    let _one = SERIAL.lock();
    assert!(mem::allocator_is_mimalloc());
    let took = mem::pretouch(512 * MIB, 4).unwrap();
    assert!(mem::keeps_freed_memory());
    // All of it was resident at once, and freed it stays.
    let kept = rss();
    assert!(kept >= 512 * MIB, "the memory stays resident: {kept} ({took:?})");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Small objects (a 4 KiB write's copy) and large ones (a 4 MiB frame) come out of it.
    let small = touch(200 * MIB, 4096);
    let large = touch(200 * MIB, 4 << 20);
    let after = rss();
    assert!(
        after < kept + 64 * MIB,
        "new allocations reuse what was kept: {kept} -> {after}"
    );
    drop((small, large));
    assert!(rss() >= kept - 16 * MIB, "and what they free is kept too");

    // Back to mimalloc's default: what is freed goes back to the system (which shows that the
    // option set is the one that keeps it).
    assert!(mem::keep_freed_memory(false));
    assert!(!mem::keeps_freed_memory());
    drop(touch(256 * MIB, 4 << 20));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    drop(touch(64 * MIB, 64 << 10)); // allocator calls, at which it purges
    let end = rss();
    assert!(
        end < kept - 128 * MIB,
        "with the default, freed memory goes back: {kept} -> {end}"
    );
}

#[test]
fn a_mem_store_osd_faults_its_memory_in_before_it_boots() {
    let _one = SERIAL.lock();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let opts = [
        ("memstore_prefault_bytes", "67108864"),
        ("memstore_prefault_frame_bytes", "8388608"),
    ];
    let c = MiniCluster::start_opts(&dir.path().join("c"), 1, "mem", 1, Some(&run), &opts).unwrap();
    assert!(mem::keeps_freed_memory());
    let perf: serde_json::Value = serde_json::from_str(
        &osdkit::asok::client::AdminSocketClient::new(run.join("osd.0.asok"))
            .request(&json!({"prefix": "perf dump"}))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(perf["memstore_prefault"]["prefaulted_bytes"], 64 * MIB);
    assert!(perf["memstore_prefault"]["prefault_time"].as_f64().unwrap() > 0.0);
    assert_eq!(perf["prefault_reserve"]["reserved_bytes"], 8 * MIB);
    // Large writes land in them (one in the frames' reserve, the rest in buffers from the
    // allocator's kept memory) and read back intact.
    let cl = Rados::connect(&c.mon_addr(), "client.admin").unwrap();
    let body = |i: usize| -> Vec<u8> { (0..4 << 20).map(|j: usize| (j * 31 + i * 7) as u8).collect() };
    for i in 0..4 {
        cl.put("data", &format!("big{i}"), &body(i)).unwrap();
    }
    for i in 0..4 {
        assert!(
            cl.get("data", &format!("big{i}")).unwrap() == body(i).as_slice(),
            "object {i}"
        );
    }
    drop(cl);
    c.shutdown();

    // More than the machine has is refused with a clear error, before anything is touched.
    let huge = [("memstore_prefault_bytes", "1125899906842624")];
    let e = MiniCluster::start_opts(&dir.path().join("d"), 1, "mem", 1, None, &huge)
        .err()
        .unwrap();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(
        e.msg.contains("memstore_prefault_bytes") && e.msg.contains("available"),
        "{}",
        e.msg
    );
    mem::keep_freed_memory(false);
}
