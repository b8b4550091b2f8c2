//! `osdkit bench osd` against a real local cluster (`osdkit vstart --osds 2`): write with and
//! without clean up, seq and rand reading back what `write --no-cleanup` left, cleanup deleting
//! it, a corrupted object caught by the read check, a missing pool, and bad arguments. A guard
//! runs `osdkit stop` whatever happens.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn osdkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_osdkit"))
}

fn run(args: &[&str]) -> Output {
    osdkit().args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "osdkit {args:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn ok_json(args: &[&str]) -> Value {
    let s = ok(args);
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("osdkit {args:?}: not one JSON object ({e}): {s}"))
}

struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let c = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("osdkit.conf").to_str().unwrap().to_string(),
        };
        ok(&["vstart", "--osds", "2", "--dir", dir.to_str().unwrap(), "--json"]);
        c
    }
    fn bench(&self, rest: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = ["bench", "osd", "-c", &self.conf, "-p", "data"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    }
    fn ls(&self) -> Vec<String> {
        ok(&["ls", "-c", &self.conf, "-p", "data"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = osdkit()
            .args(["stop", "--dir", self.dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `osdkit args`: it must exit with `errno` and say `needle` on stderr.
fn fails_with(args: &[&str], errno: i32, needle: &str) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(errno), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains(needle), "{}", text(&o.stderr));
}

fn bench_json(c: &Cluster, rest: &[&str]) -> Value {
    ok_json(&refs(&c.bench(rest)))
}

fn assert_clean_run(v: &Value, mode: &str, bs: u64, depth: u64) {
    assert_eq!(v["mode"], mode, "{v}");
    assert!(v["ops"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["block_size"], bs, "{v}");
    assert_eq!(v["depth"], depth, "{v}");
    assert!(v["iops"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["mb_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    let lat = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no {k}: {v}"));
    assert!(lat("min_latency") > 0.0, "{v}");
    assert!(lat("min_latency") <= lat("p50_latency"), "{v}");
    assert!(lat("p50_latency") <= lat("p99_latency"), "{v}");
    assert!(lat("p99_latency") <= lat("max_latency"), "{v}");
    assert!(lat("avg_latency") <= lat("max_latency"), "{v}");
    assert!(lat("seconds") > 0.0 && lat("seconds") < 10.0, "{v}");
}

#[test]
fn bench_osd_write_seq_rand_against_a_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::start(&tmp.path().join("cluster"));

    // seq before any write --no-cleanup: nothing to read, said so.
    fails_with(&refs(&c.bench(&["1", "seq"])), libc::ENOENT, "benchmark_last_metadata");

    // write with clean up (text output): the rados bench lines, then nothing left behind.
    let out = ok(&refs(&c.bench(&["1", "write", "-b", "4096", "-t", "8"])));
    for want in [
        "Object prefix: benchmark_data_",
        "sec Cur ops   started  finished  avg MB/s  cur MB/s last lat(s)  avg lat(s)",
        "Total time run:",
        "Total writes made:",
        "Bandwidth (MB/sec):",
        "Average IOPS:",
        "Stddev IOPS:",
        "Average Latency(s):",
        "Max latency(s):",
        "Min latency(s):",
        "p50 latency(s):",
        "p99 latency(s):",
        "Errors:                 0",
    ] {
        assert!(out.contains(want), "no '{want}' in:\n{out}");
    }
    let left = c.ls();
    assert!(left.iter().all(|n| !n.starts_with("benchmark_")), "{left:?}");

    // write --no-cleanup: objects and the metadata object stay.
    let w = bench_json(&c, &["2", "write", "-b", "4096", "-t", "8", "--no-cleanup", "--json"]);
    assert_clean_run(&w, "write", 4096, 8);
    let written = w["ops"].as_u64().unwrap();
    let prefix = w["object_prefix"].as_str().unwrap().to_string();
    let names = c.ls();
    let ours = names.iter().filter(|n| n.starts_with(&prefix)).count() as u64;
    assert_eq!(ours, written, "{w}");
    assert!(names.iter().any(|n| n == "benchmark_last_metadata"));

    // seq reads them back in order (all of them or for 2 s), each checked.
    let s = bench_json(&c, &["2", "seq", "-t", "8", "--json"]);
    assert_clean_run(&s, "seq", 4096, 8);
    assert!(s["ops"].as_u64().unwrap() <= written, "{s}");

    // rand: random picks among them, for the whole time.
    let r = bench_json(&c, &["1", "rand", "-t", "4", "--json"]);
    assert_clean_run(&r, "rand", 4096, 4);
    assert!(r["seconds"].as_f64().unwrap() >= 1.0, "{r}");

    // Overwrite one object with other bytes: seq catches it, counts an error, exits EIO.
    let bad = tmp.path().join("bad.bin");
    std::fs::write(&bad, vec![0x5a; 4096]).unwrap();
    let victim = format!("{prefix}_object0");
    ok(&["put", "-c", &c.conf, "-p", "data", &victim, bad.to_str().unwrap()]);
    let o = run(&refs(&c.bench(&["2", "seq", "-t", "8", "--json"])));
    assert_eq!(o.status.code(), Some(libc::EIO), "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    assert_eq!(v["errors"], 1, "{v}");
    assert!(
        text(&o.stderr).contains("object0: header mismatch"),
        "{}",
        text(&o.stderr)
    );
    // A short object too: the length check.
    std::fs::write(&bad, b"short").unwrap();
    ok(&["put", "-c", &c.conf, "-p", "data", &victim, bad.to_str().unwrap()]);
    fails_with(
        &refs(&c.bench(&["2", "seq", "--json"])),
        libc::EIO,
        "read 5 bytes, expected 4096",
    );

    // cleanup deletes every object the write left and the metadata object, and says how many.
    let v = bench_json(&c, &["1", "cleanup", "--json"]);
    assert_eq!(v["mode"], "cleanup", "{v}");
    assert_eq!(v["objects_removed"].as_u64(), Some(written), "{v}");
    assert_eq!(v["cleanup_errors"], 0, "{v}");
    let left = c.ls();
    assert!(left.iter().all(|n| !n.starts_with("benchmark_")), "{left:?}");
    // Nothing left to clean: said so, exit ENOENT.
    fails_with(
        &refs(&c.bench(&["1", "cleanup"])),
        libc::ENOENT,
        "no benchmark_last_metadata",
    );

    // A missing pool: exit ENOENT, said clearly.
    fails_with(
        &["bench", "osd", "-c", &c.conf, "-p", "nosuchpool", "1", "write"],
        libc::ENOENT,
        "pool 'nosuchpool' does not exist",
    );
}

#[test]
fn bench_osd_bad_arguments_are_refused() {
    for args in [
        &["bench", "osd", "-p", "data", "1", "write", "-t", "0"][..],
        &["bench", "osd", "-p", "data", "1", "scribble"],
        &["bench", "osd", "-p", "data", "0", "write"],
        &["bench", "osd", "-p", "data", "1", "write", "-b", "lots"],
        &["bench", "osd", "1", "write"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(!text(&o.stderr).is_empty(), "{args:?}");
    }
    // -b 0 gets past the parser, not past the check.
    let o = run(&[
        "bench",
        "osd",
        "-c",
        "/nonexistent.conf",
        "-p",
        "data",
        "1",
        "write",
        "-b",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(libc::EINVAL));
    assert!(text(&o.stderr).contains("-b must be"), "{}", text(&o.stderr));
}
