//! Reading and writing the kv store's tables: reads generic over read-only and write
//! transactions (onodes, prefix scans, chunked data), and the write side that applies a
//! validated `Transaction` to one redb write transaction.

use super::keys::*;
use super::*;

// ---- reads, generic over read-only and write tables

/// Anything bytes-to-bytes that can be read: a read-only or a write transaction's table.
pub(crate) trait Tbl: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> Tbl for T {}

/// Key suffixes (prefix stripped) and values from a prefix scan.
pub(super) type Rows = Vec<(Vec<u8>, Vec<u8>)>;

pub(super) type RoTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

pub(super) fn get_onode(t: &impl Tbl, ok: &[u8]) -> Result<Option<(u64, u64)>> {
    match t.get(ok).map_err(eio)? {
        Some(v) => decode_onode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Keys (with the prefix stripped) and values in `[prefix+after, prefix_end)`, at most `max`
/// entries after `after` (exclusive); the flag says whether more follow.
pub(super) fn scan_prefix(t: &impl Tbl, prefix: &[u8], after: Option<&[u8]>, max: usize) -> Result<(Rows, bool)> {
    let lo = sub_key(prefix, after.unwrap_or(&[]));
    let hi = prefix_end(prefix);
    let range = match &hi {
        Some(hi) => t.range::<&[u8]>(lo.as_slice()..hi.as_slice()),
        None => t.range::<&[u8]>(lo.as_slice()..),
    }
    .map_err(eio)?;
    let mut out = Vec::new();
    for item in range {
        let (k, v) = item.map_err(eio)?;
        let k = k.value();
        if after.is_some() && k == lo.as_slice() {
            continue;
        }
        if out.len() == max {
            return Ok((out, true));
        }
        out.push((k[prefix.len()..].to_vec(), v.value().to_vec()));
    }
    Ok((out, false))
}

pub(super) fn read_data(t: &impl Tbl, ok: &[u8], off: u64, n: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n as usize];
    if n == 0 {
        return Ok(buf);
    }
    let end = off + n;
    let (first, last) = (off / CHUNK, (end - 1) / CHUNK);
    let lo = dkey(ok, first);
    let hi = dkey(ok, last);
    for item in t.range::<&[u8]>(lo.as_slice()..=hi.as_slice()).map_err(eio)? {
        let (k, v) = item.map_err(eio)?;
        let idx = u64::from_be_bytes(k.value()[ok.len()..].try_into().map_err(eio)?);
        let chunk = v.value();
        let cstart = idx * CHUNK;
        let s = off.max(cstart);
        let e = end.min(cstart + chunk.len() as u64);
        if s < e {
            buf[(s - off) as usize..(e - off) as usize]
                .copy_from_slice(&chunk[(s - cstart) as usize..(e - cstart) as usize]);
        }
    }
    Ok(buf)
}

// ---- the write side

pub(super) struct Tables<'t> {
    pub(super) colls: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) onodes: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) data: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) xattrs: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) omap: Table<'t, &'static [u8], &'static [u8]>,
    /// Onodes this batch changed, written once at its end (`flush_onodes`): an object's
    /// transaction touches its onode several times (touch, truncate, write), and every write
    /// of a PG touches the PG's metadata object. `None`: removed.
    pub(super) onode_cache: std::collections::HashMap<Vec<u8>, Option<(u64, u64)>>,
}

pub(super) fn remove_prefix(t: &mut Table<'_, &'static [u8], &'static [u8]>, prefix: &[u8]) -> Result<()> {
    match prefix_end(prefix) {
        Some(hi) => t.retain_in::<&[u8], _>(prefix..hi.as_slice(), |_, _| false),
        None => t.retain_in::<&[u8], _>(prefix.., |_, _| false),
    }
    .map_err(eio)
}

pub(super) struct WriteView<'a, 't> {
    pub(super) t: &'a Tables<'t>,
    pub(super) coll: &'a CollId,
}

impl TxnView for WriteView<'_, '_> {
    fn coll_exists(&self) -> Result<bool> {
        Ok(self.t.colls.get(ckey(self.coll).as_slice()).map_err(eio)?.is_some())
    }
    fn object_exists(&self, oid: &ObjectId) -> Result<bool> {
        Ok(self.t.onode(&okey(self.coll, oid))?.is_some())
    }
    fn has_object_besides(&self, removed: &HashSet<ObjectId>) -> Result<bool> {
        let p = ckey(self.coll);
        // This batch's onodes first; the table's for the objects the batch did not touch.
        for (k, v) in &self.t.onode_cache {
            if v.is_some() && k.starts_with(&p) {
                let oid = decode_okey(k).ok_or_else(|| eio("corrupt onode key"))?;
                if !removed.contains(&oid) {
                    return Ok(true);
                }
            }
        }
        let range = match prefix_end(&p) {
            Some(hi) => self.t.onodes.range::<&[u8]>(p.as_slice()..hi.as_slice()),
            None => self.t.onodes.range::<&[u8]>(p.as_slice()..),
        }
        .map_err(eio)?;
        for item in range {
            let (k, _) = item.map_err(eio)?;
            if self.t.onode_cache.contains_key(k.value()) {
                continue;
            }
            let oid = decode_okey(k.value()).ok_or_else(|| eio("corrupt onode key"))?;
            if !removed.contains(&oid) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Tables<'_> {
    /// An object's (size, mtime) as this batch left it so far.
    pub(super) fn onode(&self, ok: &[u8]) -> Result<Option<(u64, u64)>> {
        match self.onode_cache.get(ok) {
            Some(v) => Ok(*v),
            None => get_onode(&self.onodes, ok),
        }
    }

    /// Writes the onodes the batch changed.
    pub(super) fn flush_onodes(&mut self) -> Result<()> {
        for (k, v) in std::mem::take(&mut self.onode_cache) {
            match v {
                Some((size, mtime)) => self.onodes.insert(k.as_slice(), &encode_onode(size, mtime)[..]),
                None => self.onodes.remove(k.as_slice()).map(|_| None),
            }
            .map_err(eio)?;
        }
        Ok(())
    }

    fn write_chunks(&mut self, ok: &[u8], off: u64, data: &[u8]) -> Result<()> {
        let end = off + data.len() as u64;
        let mut pos = off;
        while pos < end {
            let idx = pos / CHUNK;
            let in_off = (pos - idx * CHUNK) as usize;
            let n = (end - pos).min(CHUNK - in_off as u64) as usize;
            let key = dkey(ok, idx);
            let mut buf = if in_off == 0 && n as u64 == CHUNK {
                Vec::new()
            } else {
                self.data
                    .get(key.as_slice())
                    .map_err(eio)?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default()
            };
            if buf.len() < in_off + n {
                buf.resize(in_off + n, 0);
            }
            let src = (pos - off) as usize;
            buf[in_off..in_off + n].copy_from_slice(&data[src..src + n]);
            self.data.insert(key.as_slice(), buf.as_slice()).map_err(eio)?;
            pos += n as u64;
        }
        Ok(())
    }

    fn zero_chunks(&mut self, ok: &[u8], off: u64, len: u64) -> Result<()> {
        let end = off + len;
        let mut pos = off;
        while pos < end {
            let idx = pos / CHUNK;
            let cstart = idx * CHUNK;
            let in_off = (pos - cstart) as usize;
            let n = (end - pos).min(CHUNK - in_off as u64) as usize;
            let key = dkey(ok, idx);
            if in_off == 0 && n as u64 == CHUNK {
                self.data.remove(key.as_slice()).map_err(eio)?;
            } else {
                let existing = self.data.get(key.as_slice()).map_err(eio)?.map(|v| v.value().to_vec());
                if let Some(mut buf) = existing {
                    if in_off < buf.len() {
                        let e = (in_off + n).min(buf.len());
                        buf[in_off..e].fill(0);
                        self.data.insert(key.as_slice(), buf.as_slice()).map_err(eio)?;
                    }
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn truncate_chunks(&mut self, ok: &[u8], size: u64) -> Result<()> {
        let first_dead = size.div_ceil(CHUNK);
        let lo = dkey(ok, first_dead);
        let hi = dkey(ok, u64::MAX);
        self.data
            .retain_in::<&[u8], _>(lo.as_slice()..=hi.as_slice(), |_, _| false)
            .map_err(eio)?;
        if size % CHUNK != 0 {
            let key = dkey(ok, size / CHUNK);
            let keep = (size % CHUNK) as usize;
            let existing = self.data.get(key.as_slice()).map_err(eio)?.map(|v| v.value().to_vec());
            if let Some(mut buf) = existing {
                if buf.len() > keep {
                    buf.truncate(keep);
                    self.data.insert(key.as_slice(), buf.as_slice()).map_err(eio)?;
                }
            }
        }
        Ok(())
    }

    /// Applies one validated op. Errors here are engine failures (the batch is abandoned).
    pub(super) fn apply(&mut self, coll: &CollId, op: Op, now: u64) -> Result<()> {
        let oid = match &op {
            Op::CreateCollection => {
                return self
                    .colls
                    .insert(ckey(coll).as_slice(), &[][..])
                    .map(|_| ())
                    .map_err(eio);
            }
            Op::RemoveCollection => {
                return self.colls.remove(ckey(coll).as_slice()).map(|_| ()).map_err(eio);
            }
            op => op.oid().expect("object op"),
        };
        let ok = okey(coll, oid);
        if let Op::Remove(_) = op {
            self.onode_cache.insert(ok.clone(), None);
            remove_prefix(&mut self.data, &ok)?;
            remove_prefix(&mut self.xattrs, &ok)?;
            return remove_prefix(&mut self.omap, &ok);
        }
        let mut size = self.onode(&ok)?.map(|(s, _)| s).unwrap_or(0);
        match op {
            Op::Touch(_) => {}
            Op::Write { data, .. } if data.is_empty() => {}
            Op::Zero { len: 0, .. } => {}
            Op::Write { off, data, .. } => {
                self.write_chunks(&ok, off, &data)?;
                size = size.max(off + data.len() as u64);
            }
            Op::Zero { off, len, .. } => {
                self.zero_chunks(&ok, off, len)?;
                size = size.max(off + len);
            }
            Op::Truncate { size: new, .. } => {
                if new < size {
                    self.truncate_chunks(&ok, new)?;
                }
                size = new;
            }
            Op::SetAttr { name, value, .. } => {
                self.xattrs
                    .insert(sub_key(&ok, name.as_bytes()).as_slice(), &value[..])
                    .map_err(eio)?;
            }
            Op::RmAttr { name, .. } => {
                self.xattrs
                    .remove(sub_key(&ok, name.as_bytes()).as_slice())
                    .map_err(eio)?;
            }
            Op::OmapSetKeys { kv, .. } => {
                for (k, v) in kv {
                    self.omap
                        .insert(sub_key(&ok, k.as_bytes()).as_slice(), &v[..])
                        .map_err(eio)?;
                }
            }
            Op::OmapRmKeys { keys, .. } => {
                for k in keys {
                    self.omap.remove(sub_key(&ok, k.as_bytes()).as_slice()).map_err(eio)?;
                }
            }
            Op::OmapClear(_) => remove_prefix(&mut self.omap, &ok)?,
            Op::Remove(_) | Op::CreateCollection | Op::RemoveCollection => unreachable!(),
        }
        self.onode_cache.insert(ok, Some((size, now)));
        Ok(())
    }
}
