//! The kv store's key layout (see the module doc of `kv`): collection and object keys with
//! order-preserving escapes, chunk and sub-keys, prefix bounds, and onode values.

use super::*;

pub(super) fn push_i64(k: &mut Vec<u8>, v: i64) {
    k.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

pub(super) fn ckey(c: &CollId) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    push_i64(&mut k, c.pool);
    k.extend_from_slice(&c.seed.to_be_bytes());
    k
}

pub(super) fn decode_ckey(k: &[u8]) -> Option<CollId> {
    if k.len() != 12 {
        return None;
    }
    let pool = (u64::from_be_bytes(k[..8].try_into().ok()?) ^ (1 << 63)) as i64;
    let seed = u32::from_be_bytes(k[8..12].try_into().ok()?);
    Some(CollId { pool, seed })
}

pub(super) fn push_esc(k: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b == 0 {
            k.extend_from_slice(&[0, 0xff]);
        } else {
            k.push(b);
        }
    }
    k.extend_from_slice(&[0, 0]);
}

/// Decodes one escaped string from the front of `k`; returns it and the rest.
pub(super) fn take_esc(k: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match *k.get(i)? {
            0 => match *k.get(i + 1)? {
                0 => return Some((String::from_utf8(out).ok()?, &k[i + 2..])),
                0xff => {
                    out.push(0);
                    i += 2;
                }
                _ => return None,
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

pub(super) fn okey(c: &CollId, o: &ObjectId) -> Vec<u8> {
    let mut k = ckey(c);
    push_i64(&mut k, o.pool);
    push_esc(&mut k, &o.namespace);
    push_esc(&mut k, &o.name);
    k
}

/// The ObjectId of an `onodes` key.
pub(super) fn decode_okey(k: &[u8]) -> Option<ObjectId> {
    let rest = k.get(12..)?;
    let pool = (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64;
    let (namespace, rest) = take_esc(&rest[8..])?;
    let (name, rest) = take_esc(rest)?;
    rest.is_empty().then_some(ObjectId { pool, namespace, name })
}

pub(super) fn sub_key(o: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(o.len() + suffix.len());
    k.extend_from_slice(o);
    k.extend_from_slice(suffix);
    k
}

pub(super) fn dkey(o: &[u8], idx: u64) -> Vec<u8> {
    sub_key(o, &idx.to_be_bytes())
}

/// The smallest key greater than every key starting with `p` (None: no such bound).
pub(super) fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

pub(super) fn encode_onode(size: u64, mtime: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&size.to_le_bytes());
    v[8..].copy_from_slice(&mtime.to_le_bytes());
    v
}

pub(super) fn decode_onode(v: &[u8]) -> Result<(u64, u64)> {
    if v.len() != 16 {
        return Err(eio(format!("corrupt onode of {} bytes", v.len())));
    }
    Ok((
        u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(v[8..].try_into().expect("8 bytes")),
    ))
}
