//! Runtime-core benchmarks (criterion): admin-socket round trip, SafeTimer add+cancel, perf
//! counter increments under contention from both cores. Run: `cargo bench --bench runtime`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use osdkit::asok::client::AdminSocketClient;
use osdkit::common::perf::PerfCountersBuilder;
use osdkit::timer::SafeTimer;
use osdkit::Context;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

fn asok(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::new("osd.0", None).unwrap();
    ctx.set_option("run_dir", dir.path().to_str().unwrap()).unwrap();
    ctx.set_option("log_file", "").unwrap();
    ctx.start().unwrap();
    let client = AdminSocketClient::new(ctx.asok_path().unwrap());
    let mut g = c.benchmark_group("asok");
    g.bench_function("roundtrip_ping", |b| b.iter(|| client.ping().unwrap()));
    let req = serde_json::json!({"prefix": "version", "format": "json"});
    g.bench_function("roundtrip_version", |b| b.iter(|| client.request(&req).unwrap()));
    g.finish();
    ctx.shutdown();
}

fn timer(c: &mut Criterion) {
    let t = SafeTimer::new("bench", None);
    t.init().unwrap();
    c.bench_function("timer/add_cancel", |b| {
        b.iter(|| {
            let id = t.add_event_after(Duration::from_secs(3600), || {}).unwrap();
            assert!(t.cancel_event(id));
        })
    });
    t.shutdown();
}

/// Both cores increment one counter: our striped counter against one shared atomic.
fn perf_contention(c: &mut Criterion) {
    let mut b = PerfCountersBuilder::new("bench");
    let idx = b.add_u64_counter("ops", "ops");
    let pc = b.build();
    let shared = AtomicU64::new(0);
    const THREADS: usize = 2;
    let run = |iters: u64, f: &(dyn Fn() + Sync)| {
        let barrier = Barrier::new(THREADS);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..iters {
                        f();
                    }
                });
            }
        });
        start.elapsed()
    };
    let mut g = c.benchmark_group("perf_inc_2threads");
    // One iteration = one increment on each of the two threads.
    g.throughput(Throughput::Elements(THREADS as u64));
    g.bench_function("perfcounter", |b| b.iter_custom(|iters| run(iters, &|| pc.inc(idx, 1))));
    g.bench_function("shared_atomic_baseline", |b| {
        b.iter_custom(|iters| {
            run(iters, &|| {
                shared.fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    g.finish();
    assert!(pc.get(idx) > 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = asok, timer, perf_contention
}
criterion_main!(benches);
