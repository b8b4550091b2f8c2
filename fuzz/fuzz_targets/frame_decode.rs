//! libFuzzer target: arbitrary bytes into the msgr2 frame decoder and into a server-side
//! `Protocol` (as a messenger worker drives it). Must never panic, whatever the bytes.
//!
//! The harness itself lives in `src/lib.rs` so that the same code also runs on stable as a
//! deterministic replay (`cargo test --manifest-path fuzz/Cargo.toml`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    osdkit_fuzz::frame_decode(data);
});
