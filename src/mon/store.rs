//! The monitor's durable state: the full OSD map plus the recent incrementals, in one file
//! replaced atomically after every epoch change.
//!
//! File `<data_dir>/osdmap.state`:
//!
//! ```text
//! magic  "OSDKMON1"        8 bytes
//! len    u32 LE            length of the body
//! crc    u32 LE            crc32c of the body
//! body   envelope(v1, compat 1) { OsdMap full, map<Epoch, Incremental> incrementals }
//! ```
//!
//! Saving writes `osdmap.state.tmp`, fsyncs it, renames it over `osdmap.state` and fsyncs the
//! directory, so a crash leaves either the old state or the new one. Loading checks the magic,
//! the length, the checksum, the decoding and the consistency of the incrementals with the map
//! (contiguous, ending at the map's epoch, same fsid); any failure is a refusal to start.

use crate::types::encoding::{decode_all, encode_to_bytes, DResult, Decode, Decoder, Encode, Encoder};
use crate::types::osdmap::{fsid_to_string, Epoch, Incremental, OsdMap};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "osdmap.state";
const MAGIC: &[u8; 8] = b"OSDKMON1";
const HEADER_LEN: usize = 16;

/// What the monitor persists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonState {
    pub map: OsdMap,
    /// The most recent incrementals, keyed by the epoch they produce; the last one is
    /// `map.epoch`.
    pub incrementals: BTreeMap<Epoch, Incremental>,
}

impl Encode for MonState {
    fn encode(&self, e: &mut Encoder) {
        e.envelope(1, 1, |e| {
            e.put(&self.map);
            e.map(&self.incrementals);
        });
    }
}
impl Decode for MonState {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.envelope(1, |_, d| {
            Ok(MonState {
                map: d.get()?,
                incrementals: d.map()?,
            })
        })
    }
}

impl MonState {
    /// The incrementals are contiguous, end at the map's epoch and belong to its cluster.
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some((&last, _)) = self.incrementals.iter().next_back() {
            if last != self.map.epoch {
                return Err(format!(
                    "newest incremental is epoch {last} but the map is at epoch {}",
                    self.map.epoch
                ));
            }
            let first = *self.incrementals.keys().next().unwrap_or(&last);
            if (last - first) as usize + 1 != self.incrementals.len() {
                return Err(format!("incrementals {first}..={last} have gaps"));
            }
        }
        for (e, inc) in &self.incrementals {
            if inc.epoch != *e {
                return Err(format!("incremental {} stored under epoch {e}", inc.epoch));
            }
            if inc.fsid != self.map.fsid {
                return Err(format!("incremental {e} belongs to another fsid"));
            }
        }
        Ok(())
    }
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Loads the state under `dir`: `Ok(None)` if there is none yet, an error if it is unreadable or
/// corrupt.
pub fn load(dir: &Path) -> Result<Option<MonState>> {
    let path = state_path(dir);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(e, format!("reading monitor store {}", path.display()))),
    };
    let corrupt = |why: String| {
        Error::new(
            libc::EIO,
            format!("monitor store {} is corrupt ({why}); refusing to start", path.display()),
        )
    };
    if buf.len() < HEADER_LEN || &buf[..8] != MAGIC {
        return Err(corrupt("bad magic or truncated header".into()));
    }
    let len = u32::from_le_bytes(buf[8..12].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(buf[12..16].try_into().unwrap_or_default());
    let body = &buf[HEADER_LEN..];
    if body.len() != len {
        return Err(corrupt(format!("body is {} bytes, header says {len}", body.len())));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let st: MonState = decode_all(body).map_err(|e| corrupt(format!("decoding: {}", e.0)))?;
    st.check().map_err(corrupt)?;
    log::info!(
        target: "mon",
        "loaded {}: fsid {} epoch {} ({} incrementals)",
        path.display(),
        fsid_to_string(&st.map.fsid),
        st.map.epoch,
        st.incrementals.len()
    );
    Ok(Some(st))
}

/// Writes `st` under `dir` atomically and durably (temp file, fsync, rename, fsync dir).
pub fn save(dir: &Path, st: &MonState) -> Result<()> {
    let body = encode_to_bytes(st);
    let mut buf = Vec::with_capacity(HEADER_LEN + body.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    buf.extend_from_slice(&body);
    let path = state_path(dir);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e: std::io::Error| Error::io(e, what)
    };
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("creating", &tmp))?;
        f.write_all(&buf).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("fsyncing", &tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io("renaming over", &path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsyncing directory", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MonState {
        let mut map = OsdMap::new([3; 16]);
        let mut incs = BTreeMap::new();
        for i in 0..3 {
            let mut inc = map.next_incremental();
            if i == 0 {
                inc.new_max_osd = Some(2);
                inc.new_osds.insert(0);
            } else {
                inc.new_weight.insert(0, 0x8000 + i);
            }
            map.apply(&inc).unwrap();
            incs.insert(inc.epoch, inc);
        }
        MonState {
            map,
            incrementals: incs,
        }
    }

    #[test]
    fn save_then_load_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let st = sample();
        save(dir.path(), &st).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), st);
        let mut st2 = st.clone();
        st2.incrementals.remove(&1);
        save(dir.path(), &st2).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), st2);
        assert!(!dir.path().join("osdmap.state.tmp").exists());
    }

    #[test]
    fn corrupt_stores_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        let p = state_path(dir.path());
        let good = std::fs::read(&p).unwrap();
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 3] ^= 0x40;
        for bad in [
            flipped,
            good[..good.len() - 1].to_vec(),
            b"garbage".to_vec(),
            Vec::new(),
        ] {
            std::fs::write(&p, &bad).unwrap();
            let e = load(dir.path()).unwrap_err();
            assert_eq!(e.errno, libc::EIO);
            assert!(e.msg.contains("corrupt"), "{}", e.msg);
        }
        // Well-formed but inconsistent: an incremental gap.
        let mut st = sample();
        st.incrementals.remove(&2);
        save(dir.path(), &st).unwrap();
        assert!(load(dir.path()).unwrap_err().msg.contains("gaps"));
    }
}
