//! KvStore durability under kill -9: every write whose `on_commit` fired must read back intact
//! after the process dies and the store is mounted again.
//!
//! The parent test re-runs this test binary as a child (`child_writer`, selected with an env
//! var) that mounts a KvStore and writes objects continuously, up to 32 transactions in flight,
//! printing `ACK <name> <len> <hash>` once each commit callback fires. The parent reads the
//! lines, SIGKILLs the child at a random moment after the first ack, remounts the store and
//! checks every acknowledged object (data, xattr, omap entry), across all rounds so far.

use osdkit::os::kv::KvStore;
use osdkit::os::{CollId, ObjectId, ObjectStore, Transaction};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENV_DIR: &str = "OSDKIT_DURABILITY_CHILD_DIR";
const ENV_ROUND: &str = "OSDKIT_DURABILITY_ROUND";
const ROUNDS: u32 = 12;
const COLL: CollId = CollId { pool: 1, seed: 0 };

fn oid(name: &str) -> ObjectId {
    ObjectId::new(1, "", name)
}

/// FNV-1a 64.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn content(round: u32, i: u64) -> Vec<u8> {
    let mut x = ((round as u64) << 40 | i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let len = if i % 16 == 5 {
        150_000
    } else {
        1 + (x % 20_000) as usize
    };
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The child: write until killed.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return; // only meaningful when started by `kill9_acknowledged_writes_survive`
    };
    let round: u32 = std::env::var(ENV_ROUND).unwrap().parse().unwrap();
    let store = KvStore::new(&dir);
    store.mount().unwrap();
    if !store.collection_exists(&COLL).unwrap() {
        let mut t = Transaction::new();
        t.create_collection().touch(&oid("index")).touch(&oid("head"));
        store.apply_transaction(&COLL, t).unwrap();
    }
    let (tokens_tx, tokens_rx) = crossbeam_channel::bounded::<()>(32);
    for i in 0u64.. {
        tokens_tx.send(()).unwrap();
        let name = format!("r{round:02}-{i:08}");
        let data = content(round, i);
        let h = hash(&data);
        let len = data.len();
        let o = oid(&name);
        let mut t = Transaction::new();
        t.write(&o, 0, data)
            .setattr(&o, "hash", h.to_string().into_bytes())
            .omap_setkeys(&oid("index"), [(name.clone(), h.to_string().into())].into())
            .truncate(&oid("head"), 0)
            .write(&oid("head"), 0, format!("{round} {i}").into_bytes());
        let rx = tokens_rx.clone();
        store.queue_transaction(
            &COLL,
            t,
            Box::new(move |r| {
                if let Err(e) = r {
                    eprintln!("child: {name}: {e}");
                    std::process::exit(3);
                }
                let line = format!("ACK {name} {len} {h}\n");
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).unwrap();
                out.flush().unwrap();
                let _ = rx.recv();
            }),
        );
    }
}

struct Ack {
    name: String,
    len: usize,
    hash: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut it = line.strip_prefix("ACK ")?.trim_end().split(' ');
    Some(Ack {
        name: it.next()?.to_string(),
        len: it.next()?.parse().ok()?,
        hash: it.next()?.parse().ok()?,
    })
}

#[test]
fn kill9_acknowledged_writes_survive() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("osd0");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeMap<String, Ack> = BTreeMap::new();
    let mut total_acks_at_kill = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(ENV_DIR, &store_dir)
            .env(ENV_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    // A line cut by the kill has no newline: it was never fully acknowledged.
                    Ok(n) if n > 0 && buf.ends_with(b"\n") => {
                        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
                    }
                    _ => break,
                }
            }
        });
        let mut round_acks: Vec<Ack> = Vec::new();
        let take = |line: String, round_acks: &mut Vec<Ack>| {
            if let Some(a) = parse_ack(&line) {
                round_acks.push(a);
            }
        };
        // Wait for the first ack, then let it run for a random 5..300 ms.
        let first_deadline = Instant::now() + Duration::from_secs(20);
        while round_acks.is_empty() {
            let line = rx
                .recv_timeout(first_deadline.saturating_duration_since(Instant::now()))
                .expect("child acknowledged nothing within 20 s");
            take(line, &mut round_acks);
        }
        let kill_at = Instant::now() + Duration::from_millis(5 + rand(295));
        while let Ok(line) = rx.recv_timeout(kill_at.saturating_duration_since(Instant::now())) {
            take(line, &mut round_acks);
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "child exited on its own: {status:?}");
        reader.join().unwrap();
        for line in rx.try_iter() {
            take(line, &mut round_acks);
        }
        total_acks_at_kill.push(round_acks.len());
        let last_i: u64 = round_acks.last().unwrap().name[4..].parse().unwrap();
        for a in round_acks {
            acked.insert(a.name.clone(), a);
        }

        // Remount and check everything acknowledged so far.
        let store = KvStore::new(&store_dir);
        store.mount().unwrap();
        let (index, _) = store.omap_get_vals(&COLL, &oid("index"), None, usize::MAX).unwrap();
        for (name, a) in &acked {
            let o = oid(name);
            let data = store
                .read(&COLL, &o, 0, 0)
                .unwrap_or_else(|e| panic!("round {round}: acknowledged {name} lost: {e}"));
            assert_eq!(data.len(), a.len, "round {round}: {name} length");
            assert_eq!(hash(&data), a.hash, "round {round}: {name} content");
            let round_of: u32 = name[1..3].parse().unwrap();
            let i: u64 = name[4..].parse().unwrap();
            assert!(data == content(round_of, i), "round {round}: {name} bytes");
            assert_eq!(
                store.getattr(&COLL, &o, "hash").unwrap(),
                a.hash.to_string().into_bytes(),
                "{name} xattr"
            );
            assert_eq!(
                index.get(name).map(|v| v.to_vec()),
                Some(a.hash.to_string().into_bytes()),
                "{name} omap"
            );
        }
        // The overwritten head object is at least as new as the last acknowledged write.
        let head = String::from_utf8(store.read(&COLL, &oid("head"), 0, 0).unwrap().to_vec()).unwrap();
        let (hr, hi) = head.split_once(' ').unwrap();
        assert_eq!(hr.parse::<u32>().unwrap(), round, "head from an older round: {head}");
        assert!(
            hi.parse::<u64>().unwrap() >= last_i,
            "head {head} older than ack {last_i}"
        );
        // Whatever committed beyond the acks is whole: every object has its xattr and omap entry.
        let (objs, _) = store.list_objects(&COLL, None, usize::MAX).unwrap();
        for o in objs.iter().filter(|o| o.name.starts_with('r')) {
            let h = store.getattr(&COLL, o, "hash").unwrap();
            assert_eq!(index.get(&o.name), Some(&h), "{o}: partially applied transaction");
            let h: u64 = String::from_utf8(h.to_vec()).unwrap().parse().unwrap();
            assert_eq!(hash(&store.read(&COLL, o, 0, 0).unwrap()), h, "{o}: torn data");
        }
        store.umount().unwrap();
    }
    eprintln!(
        "{ROUNDS} rounds, acks per round {total_acks_at_kill:?}, {} objects verified, {:?}",
        acked.len(),
        started.elapsed()
    );
}
