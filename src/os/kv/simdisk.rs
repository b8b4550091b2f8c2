//! A disk that forgets, for power-loss tests: the kv store's files (redb's, through its
//! `StorageBackend`, and the write-ahead log's) kept in memory, where a write stays volatile
//! until its file is synced. `power_cut` freezes the disk at once (every later write or sync
//! fails, as to a machine that lost power); `restore` then keeps, of each write not yet synced,
//! each 512-byte sector or not by a seeded coin (a disk cache flushes some of what it holds, in
//! any order, and a sector is written whole or not at all), and of each change of the file's
//! length (a resize, a write past the end) the whole change or none of it, as a file system
//! journals its inode; then the disk works again.
//! A SIGKILL proves nothing about syncs (the page cache survives it); this does.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

const SECTOR: u64 = 512;

#[derive(Default)]
struct File {
    /// What a reader sees now.
    current: Vec<u8>,
    /// What survives a power cut for certain.
    durable: Vec<u8>,
    /// Writes and resizes since the last sync, in order.
    pending: Vec<Pending>,
}

enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

struct Disk {
    files: HashMap<String, File>,
    /// Powered off: every write and sync fails until `restore`.
    cut: bool,
    rng: u64,
    syncs: u64,
    /// The power goes when this many syncs were asked for (that one fails).
    cut_at: Option<u64>,
}

/// The shared disk; `file` opens one of its files.
pub struct SimDisk {
    d: Mutex<Disk>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").finish_non_exhaustive()
    }
}

fn off_err() -> io::Error {
    io::Error::other("simulated power cut: the disk is off")
}

impl SimDisk {
    /// An empty disk whose power cuts are decided by `seed`.
    pub fn new(seed: u64) -> Arc<SimDisk> {
        Arc::new(SimDisk {
            d: Mutex::new(Disk {
                files: HashMap::new(),
                cut: false,
                rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                syncs: 0,
                cut_at: None,
            }),
        })
    }

    /// File `name` of this disk (created empty on first use).
    pub fn file(self: &Arc<Self>, name: &str) -> SimFile {
        self.d.lock().files.entry(name.to_string()).or_default();
        SimFile {
            disk: self.clone(),
            name: name.to_string(),
        }
    }

    /// Powers the disk off now: nothing written or synced from here on reaches it.
    pub fn power_cut(&self) {
        self.d.lock().cut = true;
    }

    /// Powers the disk off when sync number `n` (counted from its creation, see `syncs`) is
    /// asked for: that sync fails, and so does everything after it.
    pub fn power_cut_at_sync(&self, n: u64) {
        self.d.lock().cut_at = Some(n);
    }

    /// Whether `power_cut` was called and `restore` not yet.
    pub fn is_cut(&self) -> bool {
        self.d.lock().cut
    }

    /// Syncs done so far (for tests to pick a moment).
    pub fn syncs(&self) -> u64 {
        self.d.lock().syncs
    }

    /// Powers the disk on again with what a power cut left: the synced state, plus each
    /// unsynced write's sectors or none of them, by the seed's coin.
    pub fn restore(&self) {
        let mut g = self.d.lock();
        let Disk { files, rng, cut, .. } = &mut *g;
        for f in files.values_mut() {
            let mut img = std::mem::take(&mut f.durable);
            let mut len = img.len() as u64;
            for p in std::mem::take(&mut f.pending) {
                let (off, data) = match p {
                    Pending::SetLen(l) => {
                        if coin(rng) {
                            len = l;
                            img.truncate(l as usize);
                        }
                        continue;
                    }
                    Pending::Write(off, data) => (off, data),
                };
                let end_of_write = off + data.len() as u64;
                if end_of_write > len && coin(rng) {
                    len = end_of_write;
                }
                let mut at = 0u64;
                while at < data.len() as u64 {
                    // One sector of the device: written whole, or not at all.
                    let next = ((off + at) / SECTOR + 1) * SECTOR - off;
                    let end = next.min(data.len() as u64);
                    if coin(rng) {
                        let (s, e) = ((off + at) as usize, (off + end) as usize);
                        if img.len() < e {
                            img.resize(e, 0);
                        }
                        img[s..e].copy_from_slice(&data[at as usize..end as usize]);
                    }
                    at = end;
                }
            }
            img.resize(len as usize, 0);
            f.current = img.clone();
            f.durable = img;
        }
        *cut = false;
        g.cut_at = None;
    }
}

/// A xorshift step: the disk's coin.
fn coin(s: &mut u64) -> bool {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s & 1 == 1
}

/// One file of a [`SimDisk`]; what redb and the log write through in a power-loss test.
#[derive(Clone)]
pub struct SimFile {
    disk: Arc<SimDisk>,
    name: String,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimFile({})", self.name)
    }
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut File, bool) -> io::Result<T>) -> io::Result<T> {
        let mut g = self.disk.d.lock();
        let cut = g.cut;
        let file = g.files.get_mut(&self.name).expect("made by SimDisk::file");
        f(file, cut)
    }

    pub fn len(&self) -> io::Result<u64> {
        self.with(|f, _| Ok(f.current.len() as u64))
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        self.len().map(|l| l == 0)
    }

    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.with(|f, _| {
            let end = off as usize + buf.len();
            if end > f.current.len() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"));
            }
            buf.copy_from_slice(&f.current[off as usize..end]);
            Ok(())
        })
    }

    pub fn write_at(&self, data: &[u8], off: u64) -> io::Result<()> {
        self.with(|f, cut| {
            if cut {
                return Err(off_err());
            }
            let end = off as usize + data.len();
            if f.current.len() < end {
                f.current.resize(end, 0);
            }
            f.current[off as usize..end].copy_from_slice(data);
            f.pending.push(Pending::Write(off, data.to_vec()));
            Ok(())
        })
    }

    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|f, cut| {
            if cut {
                return Err(off_err());
            }
            f.current.resize(len as usize, 0);
            f.pending.push(Pending::SetLen(len));
            Ok(())
        })
    }

    pub fn sync(&self) -> io::Result<()> {
        let mut g = self.disk.d.lock();
        if g.cut {
            return Err(off_err());
        }
        g.syncs += 1;
        if g.cut_at.is_some_and(|n| g.syncs >= n) {
            g.cut = true;
            return Err(off_err());
        }
        let f = g.files.get_mut(&self.name).expect("made by SimDisk::file");
        // What is pending, applied in order: the durable image is then the current one.
        for p in std::mem::take(&mut f.pending) {
            match p {
                Pending::SetLen(l) => f.durable.resize(l as usize, 0),
                Pending::Write(off, data) => {
                    let (s, e) = (off as usize, off as usize + data.len());
                    if f.durable.len() < e {
                        f.durable.resize(e, 0);
                    }
                    f.durable[s..e].copy_from_slice(&data);
                }
            }
        }
        debug_assert_eq!(f.durable.len(), f.current.len());
        Ok(())
    }
}

impl redb::StorageBackend for SimFile {
    fn len(&self) -> io::Result<u64> {
        SimFile::len(self)
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.read_at(&mut b, offset)?;
        Ok(b)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        SimFile::set_len(self, len)
    }
    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        self.sync()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_at(data, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_cut_keeps_what_was_synced_and_some_sectors_of_the_rest() {
        let disk = SimDisk::new(7);
        let f = disk.file("f");
        f.write_at(&[1u8; 1024], 0).unwrap();
        f.sync().unwrap();
        f.write_at(&[2u8; 4096], 0).unwrap();
        disk.power_cut();
        assert!(f.write_at(&[3u8; 1], 0).is_err() && f.sync().is_err());
        disk.restore();
        let mut b = vec![0u8; f.len().unwrap() as usize];
        f.read_at(&mut b, 0).unwrap();
        assert!(b.len() == 1024 || b.len() == 4096, "{}", b.len());
        for s in b.chunks(SECTOR as usize) {
            // Each sector is wholly old or wholly new.
            assert!(s.iter().all(|x| *x == s[0]) && (s[0] == 2 || (s[0] == 1 || s[0] == 0)));
        }
        assert!(b[..1024].iter().all(|x| *x == 1 || *x == 2));
    }
}
