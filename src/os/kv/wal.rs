//! The kv store's write-ahead log (`<osd_data>/wal`): BlueStore's deferred-write idea for small
//! batches. `kv_sync` applies a batch to redb without syncing it, appends the batch's valid
//! transactions here as one record and makes it durable with one `fdatasync`; redb is synced
//! only at a checkpoint (the log full, a large batch, umount). At mount, the records newer than
//! the last sequence redb holds durably are applied again.
//!
//! ```text
//! header (4 KiB, offset 0): "osdkwal1" | generation u64 LE | crc32c of both u32 LE
//! record: "WREC" | len u32 | generation u64 | seq u64 | crc32c(generation, seq, payload) u32
//!         | payload (len bytes)
//! ```
//!
//! Records follow the header back to back; the first one that does not check (wrong magic,
//! generation, sequence or checksum) ends the log. A reset writes the next generation's header
//! and syncs it, which retires every older record. The file grows a MiB of zeros at a time,
//! synced before use, so that a record's `fdatasync` writes data only, not file metadata.

use super::eio;
use super::simdisk::SimFile;
use crate::common::error::{Error, Result};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The log file under the store directory.
pub const WAL_FILE: &str = "wal";
/// The largest the log grows (bytes); a record that does not fit triggers a checkpoint.
pub const WAL_SIZE: u64 = 64 << 20;
/// Batches with more payload than this skip the log: redb is synced for them directly (large
/// writes gain nothing from being written twice).
pub const WAL_MAX_RECORD: usize = 4 << 20;

const HEADER_LEN: u64 = 4096;
const HEADER_MAGIC: &[u8; 8] = b"osdkwal1";
const REC_MAGIC: &[u8; 4] = b"WREC";
const REC_HEAD: usize = 4 + 4 + 8 + 8 + 4;
const GROW: u64 = 1 << 20;

/// What the log is written through: the file, or a [`SimFile`] in power-loss tests.
pub(super) trait WalIo: Send {
    fn len(&self) -> std::io::Result<u64>;
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()>;
    fn write_at(&self, data: &[u8], off: u64) -> std::io::Result<()>;
    /// `fdatasync`: the data written, and the length if it changed.
    fn sync(&self) -> std::io::Result<()>;
}

impl WalIo for std::fs::File {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        self.read_exact_at(buf, off)
    }
    fn write_at(&self, data: &[u8], off: u64) -> std::io::Result<()> {
        self.write_all_at(data, off)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

impl WalIo for SimFile {
    fn len(&self) -> std::io::Result<u64> {
        SimFile::len(self)
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        SimFile::read_at(self, buf, off)
    }
    fn write_at(&self, data: &[u8], off: u64) -> std::io::Result<()> {
        SimFile::write_at(self, data, off)
    }
    fn sync(&self) -> std::io::Result<()> {
        SimFile::sync(self)
    }
}

/// One record found at open: its sequence number and payload.
pub(super) struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

pub(super) struct Wal {
    file: Box<dyn WalIo>,
    generation: u64,
    /// Where the next record goes.
    pos: u64,
    /// Bytes of the file known to be allocated and zeroed (the file's length).
    len: u64,
}

fn crc(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0, |c, p| crc32c::crc32c_append(c, p))
}

fn header(generation: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(HEADER_MAGIC);
    h.extend_from_slice(&generation.to_le_bytes());
    let c = crc(&[&h]);
    h.extend_from_slice(&c.to_le_bytes());
    h.resize(HEADER_LEN as usize, 0);
    h
}

impl Wal {
    /// Opens (or creates) the log in `dir` and returns it with the records it holds, oldest
    /// first. A missing or unreadable header means no records: a header is synced before any
    /// record of its generation is written.
    pub(super) fn open(dir: &Path) -> Result<(Wal, Vec<Record>)> {
        let path = dir.join(WAL_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(e, format!("wal {}", path.display())))?;
        Self::open_on(Box::new(file), &path.display().to_string())
    }

    /// `open` on `file`, named `what` in errors.
    pub(super) fn open_on(file: Box<dyn WalIo>, what: &str) -> Result<(Wal, Vec<Record>)> {
        let io = |e: std::io::Error| Error::io(e, format!("wal {what}"));
        let len = file.len().map_err(io)?;
        let mut h = vec![0u8; HEADER_LEN as usize];
        let generation = match file.read_at(&mut h, 0) {
            Ok(()) if &h[..8] == HEADER_MAGIC && crc(&[&h[..16]]).to_le_bytes() == h[16..20] => {
                u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"))
            }
            Ok(()) => 0,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io(e)),
        };
        let mut wal = Wal {
            file,
            generation,
            pos: HEADER_LEN,
            len,
        };
        let records = wal.scan().map_err(io)?;
        if len < HEADER_LEN + GROW {
            wal.grow_to(HEADER_LEN + GROW).map_err(io)?;
        }
        Ok((wal, records))
    }

    /// Reads the records of the current generation from the start; leaves `pos` after the
    /// last good one.
    fn scan(&mut self) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut prev: Option<u64> = None;
        let mut head = [0u8; REC_HEAD];
        loop {
            if self.pos + REC_HEAD as u64 > self.len {
                break;
            }
            self.file.read_at(&mut head, self.pos)?;
            let n = u32::from_le_bytes(head[4..8].try_into().expect("4")) as u64;
            let generation = u64::from_le_bytes(head[8..16].try_into().expect("8"));
            let seq = u64::from_le_bytes(head[16..24].try_into().expect("8"));
            let sum = u32::from_le_bytes(head[24..28].try_into().expect("4"));
            let end = self.pos + REC_HEAD as u64 + n;
            if &head[..4] != REC_MAGIC
                || generation != self.generation
                || prev.is_some_and(|p| seq != p + 1)
                || n > WAL_MAX_RECORD as u64 + (1 << 20)
                || end > self.len
            {
                break;
            }
            let mut payload = vec![0u8; n as usize];
            self.file.read_at(&mut payload, self.pos + REC_HEAD as u64)?;
            if crc(&[&head[8..24], &payload]) != sum {
                break;
            }
            out.push(Record { seq, payload });
            prev = Some(seq);
            self.pos = end;
        }
        Ok(out)
    }

    /// Extends the file with synced zeros up to `to` (at most `WAL_SIZE`).
    fn grow_to(&mut self, to: u64) -> std::io::Result<()> {
        let to = to.min(WAL_SIZE.max(HEADER_LEN + GROW));
        if to <= self.len {
            return Ok(());
        }
        let zeros = vec![0u8; (to - self.len) as usize];
        self.file.write_at(&zeros, self.len)?;
        self.file.sync()?;
        self.len = to;
        Ok(())
    }

    /// Whether a record of `payload` bytes fits before the log is full.
    pub(super) fn has_room(&self, payload: usize) -> bool {
        self.pos + (REC_HEAD + payload) as u64 <= WAL_SIZE.max(HEADER_LEN + GROW)
    }

    /// Whether anything was logged since the last reset.
    pub(super) fn is_empty(&self) -> bool {
        self.pos == HEADER_LEN
    }

    /// Appends record `seq` and makes it durable (one `fdatasync`). The caller checked
    /// `has_room`.
    pub(super) fn append(&mut self, seq: u64, payload: &[u8]) -> Result<()> {
        let end = self.pos + (REC_HEAD + payload.len()) as u64;
        let mut rec = Vec::with_capacity(REC_HEAD + payload.len());
        rec.extend_from_slice(REC_MAGIC);
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&self.generation.to_le_bytes());
        rec.extend_from_slice(&seq.to_le_bytes());
        let sum = crc(&[&rec[8..24], payload]);
        rec.extend_from_slice(&sum.to_le_bytes());
        rec.extend_from_slice(payload);
        let r = (|| {
            if end > self.len {
                self.grow_to(end.div_ceil(GROW) * GROW)?;
            }
            self.file.write_at(&rec, self.pos)?;
            self.file.sync()
        })();
        r.map_err(|e| eio(format!("wal append: {e}")))?;
        self.pos = end;
        Ok(())
    }

    /// Retires every record: the next generation's header, synced. Only once redb holds
    /// everything logged durably.
    pub(super) fn reset(&mut self) -> Result<()> {
        let next = self.generation + 1;
        let r = self.file.write_at(&header(next), 0).and_then(|_| self.file.sync());
        r.map_err(|e| eio(format!("wal reset: {e}")))?;
        self.generation = next;
        self.pos = HEADER_LEN;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_until_a_reset_and_a_torn_tail_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, recs) = Wal::open(dir.path()).unwrap();
        assert!(recs.is_empty() && w.is_empty());
        w.reset().unwrap();
        for seq in 10..20u64 {
            w.append(seq, format!("record {seq}").as_bytes()).unwrap();
        }
        drop(w);
        let (mut w, recs) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (10..20).collect::<Vec<_>>()
        );
        assert_eq!(recs[3].payload, b"record 13");
        // Appends go after the last good record.
        w.append(20, b"record 20").unwrap();
        drop(w);
        // A torn last record (its checksum broken) ends the log before it.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(WAL_FILE))
            .unwrap();
        let (_, recs) = Wal::open(dir.path()).unwrap();
        let last_at = HEADER_LEN
            + recs[..10]
                .iter()
                .map(|r| (REC_HEAD + r.payload.len()) as u64)
                .sum::<u64>();
        f.write_all_at(b"X", last_at + REC_HEAD as u64 + 2).unwrap();
        let (mut w, recs) = Wal::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 10);
        // A reset retires them all; a big log grows its file as it goes.
        w.reset().unwrap();
        let (mut w, recs) = Wal::open(dir.path()).unwrap();
        assert!(recs.is_empty());
        let big = vec![7u8; 3 << 20];
        w.append(1, &big).unwrap();
        w.append(2, &big).unwrap();
        drop(w);
        let (w, recs) = Wal::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].payload, big);
        assert!(w.has_room(1 << 20));
        assert!(!w.has_room(WAL_SIZE as usize));
    }
}
