//! Ceph's wire primitives: little-endian integers, length-prefixed strings and buffers, and
//! the versioned-struct envelope (`ENCODE_START(v, compat)` … `ENCODE_FINISH`, reference §6).

use bytes::{BufMut, BytesMut};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "decode error: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

pub type DResult<T> = std::result::Result<T, DecodeError>;

/// Appends Ceph encodings to a buffer.
pub trait Enc {
    fn put_string(&mut self, s: &[u8]);
    fn put_u32_vec(&mut self, v: &[u32]);
    /// Starts a versioned struct; returns the position to hand to `finish_struct`.
    fn start_struct(&mut self, v: u8, compat: u8) -> usize;
    fn finish_struct(&mut self, start: usize);
}

impl Enc for BytesMut {
    fn put_string(&mut self, s: &[u8]) {
        self.put_u32_le(s.len() as u32);
        self.put_slice(s);
    }
    fn put_u32_vec(&mut self, v: &[u32]) {
        self.put_u32_le(v.len() as u32);
        for x in v {
            self.put_u32_le(*x);
        }
    }
    fn start_struct(&mut self, v: u8, compat: u8) -> usize {
        self.put_u8(v);
        self.put_u8(compat);
        let at = self.len();
        self.put_u32_le(0);
        at
    }
    fn finish_struct(&mut self, start: usize) {
        let len = (self.len() - start - 4) as u32;
        self[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// Reads Ceph encodings from a byte slice; every read is bounds-checked.
#[derive(Debug, Clone)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn take(&mut self, n: usize) -> DResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError(format!(
                "need {n} bytes at offset {}, have {}",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> DResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> DResult<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    pub fn u32(&mut self) -> DResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> DResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn i64(&mut self) -> DResult<i64> {
        Ok(self.u64()? as i64)
    }
    pub fn bytes(&mut self) -> DResult<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> DResult<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string is not UTF-8".into()))
    }
    pub fn u32_vec(&mut self) -> DResult<Vec<u32>> {
        let n = self.u32()? as usize;
        if n > self.remaining() / 4 {
            return Err(DecodeError(format!("vector of {n} u32 longer than the buffer")));
        }
        (0..n).map(|_| self.u32()).collect()
    }
    /// Opens a versioned struct: checks `compat` against what we understand and returns a
    /// decoder limited to the struct body, plus the struct version.
    pub fn start_struct(&mut self, understood: u8) -> DResult<(u8, Dec<'a>)> {
        let v = self.u8()?;
        let compat = self.u8()?;
        if compat > understood {
            return Err(DecodeError(format!(
                "struct compat {compat} is newer than {understood}"
            )));
        }
        let body = self.bytes()?;
        Ok((v, Dec::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trips_and_bounds() {
        let mut b = BytesMut::new();
        let s = b.start_struct(2, 1);
        b.put_u64_le(7);
        b.put_string(b"admin");
        b.put_u32_vec(&[1, 2]);
        b.finish_struct(s);
        let mut d = Dec::new(&b);
        let (v, mut body) = d.start_struct(1).unwrap();
        assert_eq!(v, 2);
        assert_eq!(body.u64().unwrap(), 7);
        assert_eq!(body.string().unwrap(), "admin");
        assert_eq!(body.u32_vec().unwrap(), vec![1, 2]);
        assert_eq!(d.remaining(), 0);
        assert!(
            Dec::new(&b).start_struct(0).is_err(),
            "compat 1 needs a decoder of version >= 1"
        );
        assert!(Dec::new(&[5, 0, 0, 0, 1]).bytes().is_err());
        assert!(Dec::new(&[0xff, 0xff, 0xff, 0x7f]).u32_vec().is_err());
    }
}
