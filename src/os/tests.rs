//! The conformance suite: every case runs against both stores (`mem::` and `kv::` test modules).

use super::kv::KvStore;
use super::mem::MemStore;
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Holds a store and, for kv, its directory.
struct Fixture {
    store: Arc<dyn ObjectStore>,
    _dir: Option<tempfile::TempDir>,
}

fn mem_store() -> Fixture {
    let s = MemStore::new();
    s.mount().unwrap();
    Fixture {
        store: Arc::new(s),
        _dir: None,
    }
}

fn kv_store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::new(dir.path().join("osd"));
    s.mount().unwrap();
    Fixture {
        store: Arc::new(s),
        _dir: Some(dir),
    }
}

const C: CollId = CollId { pool: 1, seed: 7 };

fn oid(name: &str) -> ObjectId {
    ObjectId::new(1, "", name)
}

fn errno<T: std::fmt::Debug>(r: Result<T>) -> i32 {
    r.expect_err("expected an error").errno
}

fn apply(s: &dyn ObjectStore, coll: &CollId, f: impl FnOnce(&mut Transaction)) -> Result<()> {
    let mut t = Transaction::new();
    f(&mut t);
    s.apply_transaction(coll, t)
}

fn mkcoll(s: &dyn ObjectStore, c: &CollId) {
    apply(s, c, |t| {
        t.create_collection();
    })
    .unwrap();
}

fn omap(pairs: &[(&str, &str)]) -> BTreeMap<String, Bytes> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

// ---- cases

fn collections(s: &dyn ObjectStore) {
    assert_eq!(C.to_string(), "1.7_head");
    assert_eq!(CollId::new(3, 0x1f).to_string(), "3.1f_head");
    assert_eq!("3.1f_head".parse::<CollId>().unwrap(), CollId::new(3, 0x1f));
    assert_eq!("-1.0".parse::<CollId>().unwrap(), CollId::new(-1, 0));
    assert_eq!(errno("x.1_head".parse::<CollId>()), libc::EINVAL);

    assert!(s.list_collections().unwrap().is_empty());
    assert!(!s.collection_exists(&C).unwrap());
    mkcoll(s, &C);
    assert!(s.collection_exists(&C).unwrap());
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.create_collection();
        })),
        libc::EEXIST
    );
    let others = [
        CollId::new(-2, 5),
        CollId::new(1, 0x10),
        CollId::new(0, u32::MAX),
        CollId::new(1, 6),
    ];
    for c in &others {
        mkcoll(s, c);
    }
    let mut want: Vec<CollId> = others.to_vec();
    want.push(C);
    want.sort();
    assert_eq!(s.list_collections().unwrap(), want);

    // The largest collection id (its key prefix has no successor in kv).
    let top = CollId::new(i64::MAX, u32::MAX);
    mkcoll(s, &top);
    apply(s, &top, |t| {
        t.touch(&oid("x"));
    })
    .unwrap();
    assert_eq!(
        errno(apply(s, &top, |t| {
            t.remove_collection();
        })),
        libc::ENOTEMPTY
    );
    assert_eq!(s.list_objects(&top, None, 10).unwrap(), (vec![oid("x")], false));
    apply(s, &top, |t| {
        t.remove(&oid("x")).remove_collection();
    })
    .unwrap();

    // Object ops and reads on a missing collection.
    let missing = CollId::new(9, 9);
    assert_eq!(
        errno(apply(s, &missing, |t| {
            t.touch(&oid("a"));
        })),
        libc::ENOENT
    );
    assert_eq!(errno(s.list_objects(&missing, None, 10)), libc::ENOENT);
    assert_eq!(errno(s.read(&missing, &oid("a"), 0, 0)), libc::ENOENT);
    assert_eq!(errno(s.stat(&missing, &oid("a"))), libc::ENOENT);
    assert_eq!(errno(s.exists(&missing, &oid("a"))), libc::ENOENT);
    assert_eq!(errno(s.getattrs(&missing, &oid("a"))), libc::ENOENT);
    assert_eq!(
        errno(apply(s, &missing, |t| {
            t.remove_collection();
        })),
        libc::ENOENT
    );

    // Not empty, then emptied and removed in one transaction.
    apply(s, &C, |t| {
        t.touch(&oid("a")).touch(&oid("b"));
    })
    .unwrap();
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.remove_collection();
        })),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.remove(&oid("a")).remove_collection();
        })),
        libc::ENOTEMPTY
    );
    assert!(s.exists(&C, &oid("a")).unwrap(), "failed transaction left a trace");
    apply(s, &C, |t| {
        t.remove(&oid("a")).remove(&oid("b")).remove_collection();
    })
    .unwrap();
    assert!(!s.collection_exists(&C).unwrap());
    // Created again it is empty; create + fill + remove + create in one transaction works.
    apply(s, &C, |t| {
        t.create_collection()
            .touch(&oid("x"))
            .remove(&oid("x"))
            .remove_collection()
            .create_collection();
    })
    .unwrap();
    assert_eq!(s.list_objects(&C, None, 10).unwrap(), (vec![], false));
    for c in &others {
        apply(s, c, |t| {
            t.remove_collection();
        })
        .unwrap();
    }
    assert_eq!(s.list_collections().unwrap(), vec![C]);
    // An empty transaction is fine.
    s.apply_transaction(&C, Transaction::new()).unwrap();
}

fn write_read_stat(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("a");
    assert!(!s.exists(&C, &a).unwrap());
    assert_eq!(errno(s.stat(&C, &a)), libc::ENOENT);
    assert_eq!(errno(s.read(&C, &a, 0, 10)), libc::ENOENT);
    apply(s, &C, |t| {
        t.touch(&a);
    })
    .unwrap();
    assert!(s.exists(&C, &a).unwrap());
    let st = s.stat(&C, &a).unwrap();
    assert_eq!(st.size, 0);
    assert!(st.mtime.is_some());
    assert_eq!(s.read(&C, &a, 0, 0).unwrap(), Bytes::new());
    // Touching again keeps the data.
    apply(s, &C, |t| {
        t.write(&a, 0, &b"hello world"[..]);
    })
    .unwrap();
    apply(s, &C, |t| {
        t.touch(&a);
    })
    .unwrap();
    assert_eq!(s.stat(&C, &a).unwrap().size, 11);
    assert_eq!(&s.read(&C, &a, 0, 0).unwrap()[..], b"hello world");
    assert_eq!(&s.read(&C, &a, 6, 5).unwrap()[..], b"world");
    assert_eq!(&s.read(&C, &a, 6, 100).unwrap()[..], b"world", "short read at the end");
    assert_eq!(&s.read(&C, &a, 6, 0).unwrap()[..], b"world", "len 0 reads to the end");
    assert!(s.read(&C, &a, 11, 10).unwrap().is_empty());
    assert!(s.read(&C, &a, 1 << 40, 10).unwrap().is_empty());
    assert_eq!(errno(s.read(&C, &a, u64::MAX - 1, 10)), libc::EINVAL);
    // Overwrite in the middle; write creates.
    apply(s, &C, |t| {
        t.write(&a, 0, &b"J"[..]).write(&oid("b"), 3, &b"xyz"[..]);
    })
    .unwrap();
    assert_eq!(&s.read(&C, &a, 0, 0).unwrap()[..], b"Jello world");
    assert_eq!(&s.read(&C, &oid("b"), 0, 0).unwrap()[..], b"\0\0\0xyz");
    // Empty write at an offset creates but does not extend.
    apply(s, &C, |t| {
        t.write(&oid("c"), 100, Bytes::new());
    })
    .unwrap();
    assert_eq!(s.stat(&C, &oid("c")).unwrap().size, 0);
    // Remove.
    apply(s, &C, |t| {
        t.remove(&a);
    })
    .unwrap();
    assert!(!s.exists(&C, &a).unwrap());
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.remove(&a);
        })),
        libc::ENOENT
    );
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.truncate(&a, 0);
        })),
        libc::ENOENT
    );
}

fn bad_extents_and_names(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("a");
    let max = StoreLimits::default().max_object_size;
    let e = apply(s, &C, |t| {
        t.write(&a, u64::MAX - 2, &b"abcd"[..]);
    })
    .unwrap_err();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(e.msg.contains("op 0 (write)"), "{e}");
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.zero(&a, 1, u64::MAX);
        })),
        libc::EINVAL
    );
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.write(&a, max, &b"x"[..]);
        })),
        libc::EFBIG
    );
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.zero(&a, max - 1, 2);
        })),
        libc::EFBIG
    );
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.truncate(&a, max + 1);
        })),
        libc::EFBIG
    );
    // Exactly at the limit is allowed (sparse, so cheap for kv; mem allocates it).
    apply(s, &C, |t| {
        t.write(&a, max - 1, &b"z"[..]);
    })
    .unwrap();
    assert_eq!(s.stat(&C, &a).unwrap().size, max);
    assert_eq!(&s.read(&C, &a, max - 2, 0).unwrap()[..], b"\0z");
    apply(s, &C, |t| {
        t.remove(&a);
    })
    .unwrap();

    let long = "n".repeat(2049);
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.touch(&oid(&long));
        })),
        libc::ENAMETOOLONG
    );
    apply(s, &C, |t| {
        t.touch(&oid(&long[..2048]));
    })
    .unwrap();
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.touch(&ObjectId::new(1, "s".repeat(257), "x"));
        })),
        libc::ENAMETOOLONG
    );
    let k = "k".repeat(4097);
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.omap_setkeys(&oid("o"), omap(&[(&k, "v")]));
        })),
        libc::ENAMETOOLONG
    );
    assert!(!s.exists(&C, &a).unwrap());
}

/// Sparse writes, zero and truncate against a simple model, with chunk-crossing extents.
fn sparse_zero_truncate(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("sparse");
    // A write far out leaves a hole that reads as zeros.
    apply(s, &C, |t| {
        t.write(&a, 200_000, &b"tail"[..]);
    })
    .unwrap();
    assert_eq!(s.stat(&C, &a).unwrap().size, 200_004);
    let all = s.read(&C, &a, 0, 0).unwrap();
    assert_eq!(all.len(), 200_004);
    assert!(all[..200_000].iter().all(|b| *b == 0));
    assert_eq!(&all[200_000..], b"tail");
    // Zero past the end extends with zeros (BlueStore); zero creates.
    apply(s, &C, |t| {
        t.zero(&a, 200_002, 10).zero(&oid("z"), 5, 5);
    })
    .unwrap();
    assert_eq!(s.stat(&C, &a).unwrap().size, 200_012);
    assert_eq!(&s.read(&C, &a, 199_999, 0).unwrap()[..], b"\0ta\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(&s.read(&C, &oid("z"), 0, 0).unwrap()[..], &[0u8; 10][..]);
    // Truncate down then up: the cut bytes do not come back.
    apply(s, &C, |t| {
        t.write(&a, 0, vec![7u8; 150_000])
            .truncate(&a, 70_000)
            .truncate(&a, 140_000);
    })
    .unwrap();
    let all = s.read(&C, &a, 0, 0).unwrap();
    assert_eq!(all.len(), 140_000);
    assert!(all[..70_000].iter().all(|b| *b == 7));
    assert!(all[70_000..].iter().all(|b| *b == 0));
    apply(s, &C, |t| {
        t.truncate(&a, 0);
    })
    .unwrap();
    assert_eq!(s.stat(&C, &a).unwrap().size, 0);
    assert!(s.read(&C, &a, 0, 0).unwrap().is_empty());

    // Randomized against a model: extents around the 64 KiB chunk boundary.
    let mut rng = Rng(0x5eed);
    let mut model: Vec<u8> = Vec::new();
    let b = oid("model");
    for i in 0..150 {
        let off = match rng.below(3) {
            0 => rng.below(300_000),
            1 => 65_536 * (rng.below(4) + 1) - 8 + rng.below(16),
            _ => rng.below(model.len() as u64 + 1),
        };
        let len = match rng.below(3) {
            0 => rng.below(16),
            1 => rng.below(70_000),
            _ => 65_536,
        };
        let mut t = Transaction::new();
        match rng.below(4) {
            0 | 1 => {
                let data = pattern(i, len as usize);
                let end = (off + len) as usize;
                if len > 0 && model.len() < end {
                    model.resize(end, 0);
                }
                if len > 0 {
                    model[off as usize..end].copy_from_slice(&data);
                }
                t.write(&b, off, data);
            }
            2 => {
                let end = (off + len) as usize;
                if len > 0 && model.len() < end {
                    model.resize(end, 0);
                }
                if len > 0 {
                    model[off as usize..end].fill(0);
                }
                t.zero(&b, off, len);
            }
            _ => {
                if i == 0 {
                    t.touch(&b);
                }
                model.resize(off as usize, 0);
                t.truncate(&b, off);
            }
        }
        s.apply_transaction(&C, t).unwrap();
        assert_eq!(s.stat(&C, &b).unwrap().size, model.len() as u64, "step {i}");
        if i % 10 == 0 || i == 149 {
            assert!(s.read(&C, &b, 0, 0).unwrap() == model, "step {i}: content differs");
        }
        let (ro, rl) = (rng.below(model.len() as u64 + 10), rng.below(140_000) + 1);
        let got = s.read(&C, &b, ro, rl).unwrap();
        let lo = (ro as usize).min(model.len());
        let hi = ((ro + rl) as usize).min(model.len());
        assert!(got == model[lo..hi], "step {i}: read {ro}~{rl}");
    }
}

fn large_write(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("big");
    let data = pattern(42, 1 << 20);
    apply(s, &C, |t| {
        t.write(&a, 0, data.clone());
    })
    .unwrap();
    assert_eq!(s.stat(&C, &a).unwrap().size, 1 << 20);
    assert!(s.read(&C, &a, 0, 0).unwrap() == data);
    // A read taken before an overwrite keeps what it read (the store may share buffers).
    let held = s.read(&C, &a, 0, 0).unwrap();
    // Overwrite across chunk boundaries, unaligned.
    let patch = pattern(43, 200_000);
    apply(s, &C, |t| {
        t.write(&a, 65_000, patch.clone());
    })
    .unwrap();
    let mut want = data.clone();
    want[65_000..265_000].copy_from_slice(&patch);
    assert!(s.read(&C, &a, 0, 0).unwrap() == want);
    assert!(held == data, "an earlier read changed under a later write");
    assert!(s.read(&C, &a, 65_530, 70_000).unwrap() == want[65_530..135_530]);
    // A shorter write at 0 keeps the tail; a longer one replaces the whole object.
    let head = pattern(45, 100_000);
    apply(s, &C, |t| {
        t.write(&a, 0, head.clone());
    })
    .unwrap();
    want[..100_000].copy_from_slice(&head);
    assert!(s.read(&C, &a, 0, 0).unwrap() == want);
    let whole = pattern(46, (1 << 20) + 5);
    apply(s, &C, |t| {
        t.write(&a, 0, whole.clone());
    })
    .unwrap();
    assert!(s.read(&C, &a, 0, 0).unwrap() == whole);
    assert_eq!(s.stat(&C, &a).unwrap().size, (1 << 20) + 5);
    // A 4 MiB object (the rados bench default size).
    let four = pattern(44, 4 << 20);
    apply(s, &C, |t| {
        t.write(&oid("four"), 0, four.clone());
    })
    .unwrap();
    assert!(s.read(&C, &oid("four"), 0, 0).unwrap() == four);
}

fn xattrs(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("a");
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.setattr(&a, "k", &b"v"[..]);
        })),
        libc::ENOENT
    );
    assert_eq!(errno(s.getattrs(&C, &a)), libc::ENOENT);
    apply(s, &C, |t| {
        t.touch(&a)
            .setattr(&a, "_", &b"oi"[..])
            .setattr(&a, "snapset", &b"ss"[..])
            .setattr(&a, "empty", Bytes::new());
    })
    .unwrap();
    assert_eq!(&s.getattr(&C, &a, "_").unwrap()[..], b"oi");
    assert_eq!(s.getattr(&C, &a, "empty").unwrap(), Bytes::new());
    assert_eq!(errno(s.getattr(&C, &a, "nope")), libc::ENODATA);
    let all = s.getattrs(&C, &a).unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["_", "empty", "snapset"]);
    // Replace, remove, remove-absent (ok, like Ceph's stores).
    apply(s, &C, |t| {
        t.setattr(&a, "_", &b"oi2"[..])
            .rmattr(&a, "snapset")
            .rmattr(&a, "never-set");
    })
    .unwrap();
    assert_eq!(&s.getattr(&C, &a, "_").unwrap()[..], b"oi2");
    assert_eq!(errno(s.getattr(&C, &a, "snapset")), libc::ENODATA);
    assert_eq!(s.getattrs(&C, &a).unwrap().len(), 2);
    // Limits: value 64 KiB ok, one more byte EFBIG; name 100 ok, 101 ENAMETOOLONG.
    let lim = StoreLimits::default();
    apply(s, &C, |t| {
        t.setattr(&a, "big", vec![1u8; lim.max_attr_size]);
    })
    .unwrap();
    assert_eq!(s.getattr(&C, &a, "big").unwrap().len(), lim.max_attr_size);
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.setattr(&a, "bigger", vec![1u8; lim.max_attr_size + 1]);
        })),
        libc::EFBIG
    );
    let name = "x".repeat(lim.max_attr_name_len);
    apply(s, &C, |t| {
        t.setattr(&a, &name, &b"1"[..]);
    })
    .unwrap();
    let long = "x".repeat(lim.max_attr_name_len + 1);
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.setattr(&a, &long, &b"1"[..]);
        })),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.rmattr(&a, &long);
        })),
        libc::ENAMETOOLONG
    );
    assert_eq!(errno(s.getattr(&C, &a, "bigger")), libc::ENODATA);
    // Xattrs of one object do not leak into another whose name extends it.
    apply(s, &C, |t| {
        t.touch(&oid("a\0")).touch(&oid("ab"));
    })
    .unwrap();
    assert!(s.getattrs(&C, &oid("a\0")).unwrap().is_empty());
    assert!(s.getattrs(&C, &oid("ab")).unwrap().is_empty());
}

fn omap_ops(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("dir");
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.omap_setkeys(&a, omap(&[("k", "v")]));
        })),
        libc::ENOENT
    );
    assert_eq!(errno(s.omap_get_keys(&C, &a, None, 10)), libc::ENOENT);
    let keys: Vec<String> = (0..50).map(|i| format!("key{i:03}")).collect();
    let kv: BTreeMap<String, Bytes> = keys
        .iter()
        .map(|k| (k.clone(), Bytes::from(format!("val-{k}"))))
        .collect();
    apply(s, &C, |t| {
        t.touch(&a).omap_setkeys(&a, kv.clone());
    })
    .unwrap();
    // Paging with start_after and max.
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, more) = s.omap_get_keys(&C, &a, after.as_deref(), 7).unwrap();
        assert!(page.len() <= 7);
        got.extend(page.iter().cloned());
        after = page.last().cloned();
        if !more {
            break;
        }
        assert_eq!(page.len(), 7);
    }
    assert_eq!(got, keys);
    let (vals, more) = s.omap_get_vals(&C, &a, Some("key010"), 3).unwrap();
    assert!(more);
    assert_eq!(vals.keys().collect::<Vec<_>>(), ["key011", "key012", "key013"]);
    assert_eq!(&vals["key012"][..], b"val-key012");
    // start_after need not be a present key.
    let (vals, more) = s.omap_get_vals(&C, &a, Some("key0455"), 100).unwrap();
    assert!(!more);
    assert_eq!(
        vals.keys().collect::<Vec<_>>(),
        ["key046", "key047", "key048", "key049"]
    );
    let (k, more) = s.omap_get_keys(&C, &a, Some("key049"), 10).unwrap();
    assert!(k.is_empty() && !more);
    let (k, more) = s.omap_get_keys(&C, &a, None, 50).unwrap();
    assert_eq!(k.len(), 50);
    assert!(!more);
    let (k, more) = s.omap_get_keys(&C, &a, None, 0).unwrap();
    assert!(k.is_empty() && more);
    // Overwrite, rm (present and absent), then clear.
    apply(s, &C, |t| {
        t.omap_setkeys(
            &a,
            omap(&[("key000", "new"), ("\u{e9}t\u{e9}", "u"), ("", "empty key")]),
        )
        .omap_rmkeys(&a, ["key001".to_string(), "absent".to_string()].into());
    })
    .unwrap();
    let (all, _) = s.omap_get_vals(&C, &a, None, usize::MAX).unwrap();
    assert_eq!(all.len(), 51);
    assert_eq!(&all["key000"][..], b"new");
    assert_eq!(&all[""][..], b"empty key");
    assert!(!all.contains_key("key001"));
    let (k, _) = s.omap_get_keys(&C, &a, None, usize::MAX).unwrap();
    let mut sorted = k.clone();
    sorted.sort();
    assert_eq!(k, sorted, "keys sorted bytewise");
    assert_eq!(k.first().map(String::as_str), Some(""));
    assert_eq!(k.last().map(String::as_str), Some("\u{e9}t\u{e9}"));
    // Omap of another object is separate.
    apply(s, &C, |t| {
        t.touch(&oid("dir2")).omap_setkeys(&oid("dir2"), omap(&[("x", "y")]));
    })
    .unwrap();
    apply(s, &C, |t| {
        t.omap_clear(&a);
    })
    .unwrap();
    assert_eq!(s.omap_get_keys(&C, &a, None, 10).unwrap(), (vec![], false));
    assert_eq!(s.omap_get_keys(&C, &oid("dir2"), None, 10).unwrap().0, ["x"]);
}

/// Removing an object drops its data, xattrs and omap; recreating it starts empty.
fn remove_drops_everything(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("a");
    apply(s, &C, |t| {
        t.write(&a, 0, vec![5u8; 300_000])
            .setattr(&a, "x", &b"1"[..])
            .omap_setkeys(&a, omap(&[("k", "v")]));
    })
    .unwrap();
    apply(s, &C, |t| {
        t.remove(&a).touch(&a);
    })
    .unwrap();
    assert_eq!(s.stat(&C, &a).unwrap().size, 0);
    assert!(s.getattrs(&C, &a).unwrap().is_empty());
    assert_eq!(s.omap_get_keys(&C, &a, None, 10).unwrap(), (vec![], false));
    apply(s, &C, |t| {
        t.truncate(&a, 100_000);
    })
    .unwrap();
    assert!(
        s.read(&C, &a, 0, 0).unwrap().iter().all(|b| *b == 0),
        "stale data after remove"
    );
}

/// A transaction whose last op fails leaves no trace, whatever came before it.
fn atomicity(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let (a, b, base) = (oid("a"), oid("b"), oid("base"));
    apply(s, &C, |t| {
        t.write(&base, 0, &b"original"[..])
            .setattr(&base, "v", &b"1"[..])
            .omap_setkeys(&base, omap(&[("k", "1")]));
    })
    .unwrap();
    let snapshot = |s: &dyn ObjectStore| {
        (
            s.list_objects(&C, None, 100).unwrap(),
            s.read(&C, &base, 0, 0).unwrap(),
            s.getattrs(&C, &base).unwrap(),
            s.omap_get_vals(&C, &base, None, 100).unwrap(),
        )
    };
    let before = snapshot(s);
    let failing_last: Vec<(Op, i32)> = vec![
        (
            Op::Truncate {
                oid: oid("missing"),
                size: 0,
            },
            libc::ENOENT,
        ),
        (Op::Remove(oid("missing")), libc::ENOENT),
        (
            Op::Write {
                oid: a.clone(),
                off: u64::MAX,
                data: Bytes::from_static(b"x"),
            },
            libc::EINVAL,
        ),
        (
            Op::Zero {
                oid: a.clone(),
                off: 1 << 40,
                len: 1,
            },
            libc::EFBIG,
        ),
        (
            Op::SetAttr {
                oid: a.clone(),
                name: "x".repeat(101),
                value: Bytes::new(),
            },
            libc::ENAMETOOLONG,
        ),
        (Op::CreateCollection, libc::EEXIST),
        (Op::RemoveCollection, libc::ENOTEMPTY),
        (Op::OmapClear(oid("gone")), libc::ENOENT),
    ];
    for (last, want) in failing_last {
        let mut t = Transaction::new();
        t.write(&a, 0, vec![9u8; 100_000])
            .setattr(&a, "x", &b"y"[..])
            .omap_setkeys(&a, omap(&[("k", "v")]))
            .write(&base, 0, &b"CHANGED!"[..])
            .truncate(&base, 3)
            .rmattr(&base, "v")
            .omap_clear(&base)
            .touch(&b)
            .touch(&oid("gone"))
            .remove(&oid("gone"));
        let name = last.name();
        t.push(last);
        let e = s.apply_transaction(&C, t).unwrap_err();
        assert_eq!(e.errno, want, "last op {name}: {e}");
        assert!(e.msg.starts_with("op 10 "), "{e}");
        assert_eq!(snapshot(s), before, "failed transaction ending in {name} left a trace");
    }
    // Ops see the transaction's own earlier ops.
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.touch(&a).remove(&a).setattr(&a, "x", &b"1"[..]);
        })),
        libc::ENOENT
    );
    assert!(!s.exists(&C, &a).unwrap());
    apply(s, &C, |t| {
        t.touch(&a)
            .setattr(&a, "x", &b"1"[..])
            .remove(&a)
            .write(&a, 0, &b"again"[..]);
    })
    .unwrap();
    assert_eq!(&s.read(&C, &a, 0, 0).unwrap()[..], b"again");
    assert!(s.getattrs(&C, &a).unwrap().is_empty());
    // A new collection with a failing op is not created.
    let nc = CollId::new(5, 1);
    assert_eq!(
        errno(apply(s, &nc, |t| {
            t.create_collection().touch(&a).truncate(&b, 0);
        })),
        libc::ENOENT
    );
    assert!(!s.collection_exists(&nc).unwrap());
    // The async form reports the same error once.
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = crossbeam_channel::unbounded();
    let c2 = calls.clone();
    let mut t = Transaction::new();
    t.touch(&b).remove(&oid("nope"));
    s.queue_transaction(
        &C,
        t,
        Box::new(move |r| {
            c2.fetch_add(1, Ordering::SeqCst);
            tx.send(r).unwrap();
        }),
    );
    assert_eq!(errno(rx.recv().unwrap()), libc::ENOENT);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!s.exists(&C, &b).unwrap());
}

fn list_order(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let mut oids = vec![
        ObjectId::new(1, "", "a"),
        ObjectId::new(1, "", "a\0"),
        ObjectId::new(1, "", "a\0b"),
        ObjectId::new(1, "", "ab"),
        ObjectId::new(1, "", ""),
        ObjectId::new(1, "", "\u{ff}"),
        ObjectId::new(1, "", "B"),
        ObjectId::new(1, "ns", ""),
        ObjectId::new(1, "ns", "a"),
        ObjectId::new(1, "n", "zzz"),
        ObjectId::new(1, "n\0", "a"),
        ObjectId::new(-3, "", "neg"),
        ObjectId::new(2, "", "a"),
        ObjectId::new(i64::MAX, "", "max"),
        ObjectId::new(i64::MIN, "", "min"),
    ];
    for i in 0..40 {
        oids.push(ObjectId::new(1, "", format!("obj{}", (i * 37) % 100)));
    }
    let mut t = Transaction::new();
    for o in &oids {
        t.touch(o);
    }
    s.apply_transaction(&C, t).unwrap();
    // Another collection's objects do not show up.
    let other = CollId::new(1, 8);
    mkcoll(s, &other);
    apply(s, &other, |t| {
        t.touch(&oid("other"));
    })
    .unwrap();
    oids.sort();
    let (all, more) = s.list_objects(&C, None, 1000).unwrap();
    assert!(!more);
    assert_eq!(all, oids);
    let mut paged = Vec::new();
    let mut after: Option<ObjectId> = None;
    loop {
        let (page, more) = s.list_objects(&C, after.as_ref(), 4).unwrap();
        paged.extend(page.iter().cloned());
        after = page.last().cloned();
        if !more {
            break;
        }
    }
    assert_eq!(paged, oids);
    // start_after an absent object.
    let (page, _) = s.list_objects(&C, Some(&ObjectId::new(1, "", "a\0a")), 2).unwrap();
    assert_eq!(page, [ObjectId::new(1, "", "a\0b"), ObjectId::new(1, "", "ab")]);
    let (page, more) = s.list_objects(&C, oids.last(), 2).unwrap();
    assert!(page.is_empty() && !more);
    assert_eq!(s.list_objects(&other, None, 10).unwrap().0, [oid("other")]);
}

/// Several threads, each on its own collection, plus two sharing one; async and blocking forms.
fn concurrency(s: &dyn ObjectStore, store: &Arc<dyn ObjectStore>) {
    let shared = CollId::new(2, 0);
    mkcoll(s, &shared);
    let threads: Vec<_> = (0..6u32)
        .map(|t| {
            let st = store.clone();
            std::thread::spawn(move || {
                let mine = CollId::new(3, t);
                mkcoll(&*st, &mine);
                let done = Arc::new(AtomicUsize::new(0));
                let (tx, rx) = crossbeam_channel::unbounded();
                for i in 0..100u64 {
                    let o = oid(&format!("t{t}-{i}"));
                    let mut txn = Transaction::new();
                    txn.write(&o, 0, pattern(i + 1000 * t as u64, 1000 + i as usize))
                        .setattr(&o, "i", i.to_string().into_bytes())
                        .omap_setkeys(&oid("log"), omap(&[(&format!("{i:04}"), "x")]));
                    if i == 0 {
                        txn.ops.insert(0, Op::Touch(oid("log")));
                    }
                    if i % 2 == 0 {
                        let d = done.clone();
                        let tx = tx.clone();
                        st.queue_transaction(
                            &mine,
                            txn,
                            Box::new(move |r| {
                                r.unwrap();
                                d.fetch_add(1, Ordering::SeqCst);
                                tx.send(()).unwrap();
                            }),
                        );
                    } else {
                        st.apply_transaction(&mine, txn).unwrap();
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    if t < 2 {
                        apply(&*st, &shared, |x| {
                            x.write(&oid(&format!("s{t}")), i * 10, pattern(i, 10));
                        })
                        .unwrap();
                    }
                }
                for _ in 0..50 {
                    rx.recv().unwrap();
                }
                assert_eq!(done.load(Ordering::SeqCst), 100);
                for i in 0..100u64 {
                    let o = oid(&format!("t{t}-{i}"));
                    assert!(st.read(&mine, &o, 0, 0).unwrap() == pattern(i + 1000 * t as u64, 1000 + i as usize));
                    assert_eq!(st.getattr(&mine, &o, "i").unwrap(), Bytes::from(i.to_string()));
                }
                assert_eq!(st.omap_get_keys(&mine, &oid("log"), None, 1000).unwrap().0.len(), 100);
                assert_eq!(st.list_objects(&mine, None, 1000).unwrap().0.len(), 101);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for t in 0..2 {
        let got = s.read(&shared, &oid(&format!("s{t}")), 0, 0).unwrap();
        let want: Vec<u8> = (0..100).flat_map(|i| pattern(i, 10)).collect();
        assert!(got == want);
    }
    assert_eq!(s.list_collections().unwrap().len(), 7);
}

/// Transactions queued back to back apply in order; each callback fires once, in order.
fn queue_order(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    let a = oid("ctr");
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..200u32 {
        let mut t = Transaction::new();
        t.truncate(&a, 0).write(&a, 0, i.to_string().into_bytes());
        if i == 0 {
            t.ops.insert(0, Op::Touch(a.clone()));
        }
        let o = order.clone();
        let tx = tx.clone();
        s.queue_transaction(
            &C,
            t,
            Box::new(move |r| {
                r.unwrap();
                o.lock().push(i);
                tx.send(()).unwrap();
            }),
        );
    }
    for _ in 0..200 {
        rx.recv().unwrap();
    }
    assert_eq!(*order.lock(), (0..200).collect::<Vec<_>>());
    assert_eq!(&s.read(&C, &a, 0, 0).unwrap()[..], b"199");
}

fn unmounted(s: &dyn ObjectStore) {
    mkcoll(s, &C);
    s.umount().unwrap();
    assert_eq!(errno(s.list_collections()), libc::ESHUTDOWN);
    assert_eq!(errno(s.read(&C, &oid("a"), 0, 0)), libc::ESHUTDOWN);
    assert_eq!(
        errno(apply(s, &C, |t| {
            t.touch(&oid("a"));
        })),
        libc::ESHUTDOWN
    );
    s.mount().unwrap();
}

fn stat_if_exists(s: &dyn ObjectStore) {
    let other = CollId { pool: 1, seed: 8 };
    assert_eq!(s.stat_if_exists(&other, &oid("a")).unwrap(), None, "no collection");
    mkcoll(s, &C);
    assert_eq!(s.stat_if_exists(&C, &oid("a")).unwrap(), None, "no object");
    apply(s, &C, |t| {
        t.write(&oid("a"), 0, Bytes::from_static(b"hello"));
    })
    .unwrap();
    let st = s.stat_if_exists(&C, &oid("a")).unwrap().expect("written");
    assert_eq!(st, s.stat(&C, &oid("a")).unwrap());
    assert_eq!(st.size, 5);
    s.umount().unwrap();
    assert_eq!(errno(s.stat_if_exists(&C, &oid("a"))), libc::ESHUTDOWN);
    s.mount().unwrap();
}

#[test]
fn object_id_order_is_pool_namespace_name() {
    let mut ids = Vec::new();
    for pool in [-1, 1, 2] {
        for ns in ["", "a", "b", "ab"] {
            for name in ["", "x", "benchmark_object1", "benchmark_object10", "benchmark_object2"] {
                ids.push(ObjectId::new(pool, ns, name));
            }
        }
    }
    for a in &ids {
        for b in &ids {
            let want = (a.pool, &a.namespace, &a.name).cmp(&(b.pool, &b.namespace, &b.name));
            assert_eq!(a.cmp(b), want, "{a:?} vs {b:?}");
            assert_eq!(a.partial_cmp(b), Some(want));
        }
    }
}

macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn collections() {
                let f = $make;
                super::collections(&*f.store);
            }
            #[test]
            fn stat_if_exists() {
                let f = $make;
                super::stat_if_exists(&*f.store);
            }
            #[test]
            fn write_read_stat() {
                let f = $make;
                super::write_read_stat(&*f.store);
            }
            #[test]
            fn bad_extents_and_names() {
                let f = $make;
                super::bad_extents_and_names(&*f.store);
            }
            #[test]
            fn sparse_zero_truncate() {
                let f = $make;
                super::sparse_zero_truncate(&*f.store);
            }
            #[test]
            fn large_write() {
                let f = $make;
                super::large_write(&*f.store);
            }
            #[test]
            fn xattrs() {
                let f = $make;
                super::xattrs(&*f.store);
            }
            #[test]
            fn omap_ops() {
                let f = $make;
                super::omap_ops(&*f.store);
            }
            #[test]
            fn remove_drops_everything() {
                let f = $make;
                super::remove_drops_everything(&*f.store);
            }
            #[test]
            fn atomicity() {
                let f = $make;
                super::atomicity(&*f.store);
            }
            #[test]
            fn list_order() {
                let f = $make;
                super::list_order(&*f.store);
            }
            #[test]
            fn concurrency() {
                let f = $make;
                super::concurrency(&*f.store, &f.store);
            }
            #[test]
            fn queue_order() {
                let f = $make;
                super::queue_order(&*f.store);
            }
            #[test]
            fn unmounted() {
                let f = $make;
                super::unmounted(&*f.store);
            }
        }
    };
}

suite!(mem, mem_store());
suite!(kv, kv_store());

// ---- kv only

#[test]
fn kv_persists_across_remount() {
    let dir = tempfile::tempdir().unwrap();
    let coll = Arc::new(crate::common::perf::PerfCountersCollection::new());
    {
        let s = KvStore::with_options(dir.path(), StoreLimits::default(), Some(coll.clone()));
        s.mount().unwrap();
        assert_eq!(errno(s.mount()), libc::EBUSY);
        mkcoll(&s, &C);
        apply(&s, &C, |t| {
            t.write(&oid("a"), 70_000, pattern(1, 100_000))
                .setattr(&oid("a"), "x", &b"1"[..])
                .omap_setkeys(&oid("a"), omap(&[("k", "v")]));
        })
        .unwrap();
        let pc = s.perf_counters().unwrap();
        assert!(coll.get("kvstore").is_some());
        assert!(pc.get(pc.index_of("kv_ops").unwrap()) >= 2);
        assert!(pc.read_avg(pc.index_of("kv_commit_latency").unwrap()).1 >= 2);
        s.umount().unwrap();
        assert!(coll.get("kvstore").is_none(), "logger removed at umount");
    }
    let s = KvStore::new(dir.path());
    s.mount().unwrap();
    assert_eq!(s.list_collections().unwrap(), [C]);
    assert_eq!(s.stat(&C, &oid("a")).unwrap().size, 170_000);
    let got = s.read(&C, &oid("a"), 0, 0).unwrap();
    assert!(got[..70_000].iter().all(|b| *b == 0));
    assert!(got[70_000..] == pattern(1, 100_000));
    assert_eq!(&s.getattr(&C, &oid("a"), "x").unwrap()[..], b"1");
    assert_eq!(s.omap_get_keys(&C, &oid("a"), None, 10).unwrap().0, ["k"]);
    // Dropping a mounted store umounts it, so the file can be opened again.
    drop(s);
    let s = KvStore::new(dir.path());
    s.mount().unwrap();
    assert!(s.exists(&C, &oid("a")).unwrap());
}

#[test]
fn kv_callbacks_run_on_kv_sync_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(KvStore::with_options(
        dir.path(),
        StoreLimits::default(),
        Some(Arc::new(crate::common::perf::PerfCountersCollection::new())),
    ));
    s.mount().unwrap();
    mkcoll(&*s, &C);
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..300 {
        let tx = tx.clone();
        let s2 = s.clone();
        let mut t = Transaction::new();
        t.write(&oid(&format!("o{i}")), 0, vec![1u8; 4096]);
        s.queue_transaction(
            &C,
            t,
            Box::new(move |r| {
                r.unwrap();
                let name = std::thread::current().name().map(str::to_string);
                // Blocking on the store from a callback works: kv_sync, not kv_final, wakes it.
                let nested = s2.apply_transaction(&C, Transaction::new());
                tx.send((name, nested)).unwrap();
            }),
        );
    }
    for _ in 0..300 {
        let (name, nested) = rx.recv().unwrap();
        assert_eq!(name.as_deref(), Some("kv_final"));
        nested.unwrap();
    }
    let pc = s.perf_counters().unwrap();
    let (sum, count) = pc.read_avg(pc.index_of("kv_batch_size").unwrap());
    assert_eq!(sum, 601, "the collection, 300 writes and 300 nested empty transactions");
    assert!(count < 601, "601 transactions were committed in {count} batches");
}

#[test]
fn kv_callbacks_waiting_on_a_lock_do_not_stop_commits() {
    // The OSD's shape: a write's commit callback takes its PG's lock, whose holder is waiting
    // for another commit (recovery applying a push).
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::new(dir.path());
    s.mount().unwrap();
    mkcoll(&s, &C);
    let lock = Arc::new(parking_lot::Mutex::new(()));
    let held = lock.lock();
    let (tx, rx) = crossbeam_channel::unbounded();
    let l2 = lock.clone();
    let mut t = Transaction::new();
    t.write(&oid("first"), 0, vec![1u8; 10]);
    s.queue_transaction(
        &C,
        t,
        Box::new(move |r| {
            let _g = l2.lock();
            tx.send(r).unwrap();
        }),
    );
    let mut t = Transaction::new();
    t.write(&oid("second"), 0, vec![2u8; 10]);
    s.apply_transaction(&C, t).unwrap();
    drop(held);
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(s.stat(&C, &oid("first")).unwrap().size, 10);
    s.umount().unwrap();
}

#[test]
fn create_store_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::new("osd.0", None).unwrap();
    let s = create_store(&ctx).unwrap();
    assert_eq!(s.kind(), "mem");
    ctx.set_option("osd_objectstore", "kv").unwrap();
    ctx.set_option("osd_data", dir.path().join("osd0").to_str().unwrap())
        .unwrap();
    let s = create_store(&ctx).unwrap();
    assert_eq!(s.kind(), "kv");
    s.mount().unwrap();
    mkcoll(&*s, &C);
    assert!(dir.path().join("osd0").join(crate::os::kv::DB_FILE).exists());
    assert!(ctx.perf().get("kvstore").is_some());
    s.umount().unwrap();
}

#[test]
fn kv_replays_its_log_over_a_database_that_lost_unsynced_commits() {
    // Power loss, as the database sees it: its unsynced commits are gone (here: the file put
    // back as it was after the last sync), while the log's synced records are there.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(crate::os::kv::DB_FILE);
    let s = KvStore::new(dir.path());
    s.mount().unwrap();
    mkcoll(&s, &C);
    apply(&s, &C, |t| {
        t.write(&oid("before"), 0, b"synced".to_vec());
    })
    .unwrap();
    s.umount().unwrap(); // a checkpoint: everything synced, the log empty
    let synced = std::fs::read(&db).unwrap();

    s.mount().unwrap();
    for i in 0..50u32 {
        apply(&s, &C, |t| {
            t.write(&oid(&format!("o{i}")), 0, i.to_le_bytes().to_vec());
            t.touch(&oid("index"));
            t.omap_setkeys(&oid("index"), omap(&[(&format!("k{i}"), "v")]));
        })
        .unwrap();
    }
    apply(&s, &C, |t| {
        t.remove(&oid("before"));
    })
    .unwrap();
    // Refused by validation: not logged, so not replayed either.
    assert_eq!(
        errno(apply(&s, &C, |t| {
            t.remove(&oid("never"));
        })),
        libc::ENOENT
    );
    s.crash();
    std::fs::write(&db, &synced).unwrap();

    s.mount().unwrap();
    for i in 0..50u32 {
        assert_eq!(&s.read(&C, &oid(&format!("o{i}")), 0, 0).unwrap()[..], &i.to_le_bytes());
    }
    assert_eq!(s.omap_get_keys(&C, &oid("index"), None, 100).unwrap().0.len(), 50);
    assert_eq!(errno(s.stat(&C, &oid("before"))), libc::ENOENT);
    // Replayed and checkpointed: a second mount finds nothing to replay, the same objects.
    s.umount().unwrap();
    s.mount().unwrap();
    assert_eq!(s.list_objects(&C, None, 100).unwrap().0.len(), 51);
    s.umount().unwrap();
}

#[test]
fn kv_small_batches_go_through_the_log_and_large_ones_sync_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::with_options(
        dir.path(),
        StoreLimits::default(),
        Some(Arc::new(crate::common::perf::PerfCountersCollection::new())),
    );
    s.mount().unwrap();
    mkcoll(&s, &C);
    apply(&s, &C, |t| {
        t.write(&oid("small"), 0, vec![1u8; 4096]);
    })
    .unwrap();
    apply(&s, &C, |t| {
        t.write(&oid("large"), 0, vec![2u8; 8 << 20]);
    })
    .unwrap();
    let pc = s.perf_counters().unwrap();
    let get = |n: &str| pc.get(pc.index_of(n).unwrap());
    assert!(get("kv_wal_bytes") > 4096, "the small write was logged");
    assert_eq!(get("kv_direct_commits"), 1, "the large one was not");
    assert_eq!(s.read(&C, &oid("large"), 0, 0).unwrap().len(), 8 << 20);
    // A batch more than a second after the last checkpoint is followed by one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = get("kv_checkpoints");
    apply(&s, &C, |t| {
        t.write(&oid("small"), 4096, vec![3u8; 4096]);
    })
    .unwrap();
    apply(&s, &C, |t| {
        t.write(&oid("small"), 8192, vec![4u8; 10]);
    })
    .unwrap();
    assert!(get("kv_checkpoints") > before);
    s.umount().unwrap();
}

/// What write `i` of the power-cut test puts in its object: its number, then a pattern of it,
/// long enough (now and then) to skip the log.
fn power_cut_content(i: u64) -> Vec<u8> {
    let len = if i % 97 == 96 {
        crate::os::kv::WAL_MAX_RECORD + 4096
    } else {
        100 + (i as usize * 37) % 5000
    };
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..len).map(|j| (i as usize + j) as u8));
    v
}

/// One power-loss run: `n` transactions, each replacing one of 40 objects' content and its
/// entry in an index object's omap, queued in groups of 1 to 16; the power goes at a random
/// sync of the disk. After restart, the store must hold exactly the effects of the first k
/// transactions for some k covering every acknowledged one: nothing acknowledged lost,
/// nothing torn, no later write without an earlier one.
fn power_cut_run(seed: u64) {
    use crate::os::kv::simdisk::SimDisk;
    let mut rng = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let n = 400u64;
    let objects: Vec<u64> = (0..n).map(|_| next() % 40).collect();
    let disk = SimDisk::new(seed);
    let s = Arc::new(KvStore::on_sim_disk(disk.clone()));
    s.mount().unwrap();
    mkcoll(&*s, &C);
    let cut_at = disk.syncs() + 1 + next() % 90;
    disk.power_cut_at_sync(cut_at);
    let acked: Vec<std::sync::atomic::AtomicBool> = (0..n).map(|_| std::sync::atomic::AtomicBool::new(false)).collect();
    let acked = Arc::new(acked);
    let mut i = 0u64;
    while i < n {
        let group = (1 + next() % 16).min(n - i);
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in i..i + group {
            let o = oid(&format!("o{}", objects[i as usize]));
            let mut t = Transaction::new();
            t.touch(&o);
            t.truncate(&o, 0);
            t.write(&o, 0, power_cut_content(i));
            t.touch(&oid("index"));
            t.omap_setkeys(&oid("index"), omap(&[(&o.name, &i.to_string())]));
            let (acked, tx) = (acked.clone(), tx.clone());
            s.queue_transaction(
                &C,
                t,
                Box::new(move |r| {
                    if r.is_ok() {
                        acked[i as usize].store(true, Ordering::SeqCst);
                    }
                    tx.send(()).unwrap();
                }),
            );
        }
        for _ in 0..group {
            rx.recv_timeout(std::time::Duration::from_secs(60))
                .expect("every transaction answered");
        }
        i += group;
    }
    let n_acked = acked.iter().filter(|a| a.load(Ordering::SeqCst)).count();
    s.crash();
    let was_cut = disk.is_cut();
    disk.restore();

    let s = KvStore::on_sim_disk(disk);
    s.mount()
        .unwrap_or_else(|e| panic!("seed {seed}: the store does not mount after the cut: {e}"));
    // The last transaction whose effect is there: the prefix must end with it.
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for obj in 0..40u64 {
        match s.read(&C, &oid(&format!("o{obj}")), 0, 0) {
            Ok(b) => {
                let i = u64::from_le_bytes(b[..8].try_into().unwrap());
                assert_eq!(
                    &b[..],
                    &power_cut_content(i)[..],
                    "seed {seed}: o{obj} holds a torn write {i}"
                );
                seen.insert(obj, i);
            }
            Err(e) => assert_eq!(e.errno, libc::ENOENT, "seed {seed}: o{obj}: {e}"),
        }
    }
    let k = seen.values().map(|i| i + 1).max().unwrap_or(0);
    eprintln!("power cut: seed {seed}: at sync {cut_at} (cut: {was_cut}), {n_acked} acknowledged, the store holds the first {k}");
    let index = s
        .omap_get_vals(&C, &oid("index"), None, 100)
        .map(|v| v.0)
        .unwrap_or_default();
    for obj in 0..40u64 {
        let expected = (0..k).rev().find(|i| objects[*i as usize] == obj);
        assert_eq!(
            seen.get(&obj).copied(),
            expected,
            "seed {seed}: o{obj} after a prefix of {k}"
        );
        let name = format!("o{obj}");
        assert_eq!(
            index
                .get(&name)
                .map(|v| String::from_utf8_lossy(v).parse::<u64>().unwrap()),
            expected,
            "seed {seed}: the index entry of {name} disagrees with its object"
        );
    }
    for i in 0..n {
        if acked[i as usize].load(Ordering::SeqCst) {
            assert!(
                i < k,
                "seed {seed}: write {i} was acknowledged, and the store ends at {k}"
            );
        }
    }
    s.umount().unwrap();
}

#[test]
fn kv_power_cut_keeps_every_acknowledged_write_and_tears_none() {
    // OSDKIT_POWERCUT_SEEDS=N runs more; OSDKIT_POWERCUT_SEED=S starts at S (a failing seed
    // replays alone with OSDKIT_POWERCUT_SEED=S OSDKIT_POWERCUT_SEEDS=1).
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (first, seeds) = (env("OSDKIT_POWERCUT_SEED", 1), env("OSDKIT_POWERCUT_SEEDS", 12));
    for seed in first..first + seeds {
        eprintln!("power cut: seed {seed}");
        power_cut_run(seed);
    }
}

#[test]
fn kv_a_batch_sees_its_own_creations_and_removals() {
    // Queued back to back, these usually share one commit: each must see the ones before it.
    let dir = tempfile::tempdir().unwrap();
    let s = KvStore::new(dir.path());
    s.mount().unwrap();
    let d = CollId { pool: 2, seed: 1 };
    mkcoll(&s, &d);
    let (tx, rx) = crossbeam_channel::unbounded();
    let queue = |f: &dyn Fn(&mut Transaction)| {
        let mut t = Transaction::new();
        f(&mut t);
        let tx = tx.clone();
        s.queue_transaction(
            &d,
            t,
            Box::new(move |r| tx.send(r.err().map_or(0, |e| e.errno)).unwrap()),
        );
    };
    queue(&|t| {
        t.write(&oid("a"), 0, vec![1u8; 10]);
    });
    queue(&|t| {
        t.remove_collection();
    });
    queue(&|t| {
        t.write(&oid("a"), 10, vec![2u8; 5]);
    });
    queue(&|t| {
        t.remove(&oid("a"));
    });
    queue(&|t| {
        t.write(&oid("a"), 2, vec![3u8; 1]);
        t.truncate(&oid("a"), 1);
    });
    queue(&|t| {
        t.remove(&oid("a"));
        t.remove_collection();
    });
    let got: Vec<i32> = (0..6).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(got, [0, libc::ENOTEMPTY, 0, 0, 0, 0]);
    assert!(!s.collection_exists(&d).unwrap());
    // A callback that panics does not stop the ones after it.
    mkcoll(&s, &d);
    s.queue_transaction(&d, Transaction::new(), Box::new(|_| panic!("a callback panics")));
    queue(&|t| {
        t.touch(&oid("after"));
    });
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(), 0);
    s.umount().unwrap();
}
