//! Ceph's versioned envelope and a small typed encoder/decoder on top of the msgr wire
//! primitives (`crate::msgr::encoding`).
//!
//! `ENCODE_START(struct_v, compat_v)` writes `u8 struct_v`, `u8 compat_v`, `u32 length` (little
//! endian) and then the body; `DECODE_START(understood)` refuses a body whose `compat_v` is newer
//! than what the decoder understands, reads the body strictly within `length` and skips whatever
//! the body holds beyond what the decoder knows. So a newer encoder that appends fields stays
//! readable by an older decoder, which is how Ceph daemons of different versions talk during an
//! upgrade. All reads are bounds-checked: truncated input or an absurd length is a
//! [`DecodeError`], never a panic or a huge allocation.

pub use crate::msgr::encoding::{DResult, Dec, DecodeError, Enc};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

/// Something with a (usually versioned) wire encoding.
pub trait Encode {
    fn encode(&self, e: &mut Encoder);
}

/// The reverse of [`Encode`].
pub trait Decode: Sized {
    /// The fewest bytes one value can take on the wire; used to reject element counts that
    /// cannot fit in the remaining input before allocating for them.
    const MIN_LEN: usize = 1;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self>;
}

/// Appends little-endian Ceph encodings to a growable buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: BytesMut,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { buf: BytesMut::new() }
    }
    pub fn with_capacity(n: usize) -> Self {
        Encoder {
            buf: BytesMut::with_capacity(n),
        }
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// The underlying buffer, for encoders written against `BytesMut` (e.g. `EntityAddr`).
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.put_u8(v as u8);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.put_u16_le(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32_le(v);
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32_le(v);
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.put_u64_le(v);
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64_le(v);
    }
    /// Raw bytes, no length prefix.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }
    /// `u32` length then the bytes (Ceph's `std::string` / `bufferlist` encoding).
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.put_string(b);
    }
    pub fn string(&mut self, s: &str) {
        self.buf.put_string(s.as_bytes());
    }
    pub fn put<T: Encode + ?Sized>(&mut self, v: &T) {
        v.encode(self);
    }
    /// `u32` count then each element.
    pub fn vec<T: Encode>(&mut self, v: &[T]) {
        self.u32(v.len() as u32);
        for x in v {
            x.encode(self);
        }
    }
    pub fn set<T: Encode>(&mut self, v: &BTreeSet<T>) {
        self.u32(v.len() as u32);
        for x in v {
            x.encode(self);
        }
    }
    /// `u32` count then key, value pairs in key order (Ceph's `std::map`).
    pub fn map<K: Encode, V: Encode>(&mut self, m: &BTreeMap<K, V>) {
        self.u32(m.len() as u32);
        for (k, v) in m {
            k.encode(self);
            v.encode(self);
        }
    }
    /// `ENCODE_START(v, compat)` … body … `ENCODE_FINISH`.
    pub fn envelope(&mut self, v: u8, compat: u8, body: impl FnOnce(&mut Encoder)) {
        debug_assert!(compat <= v, "compat version above struct version");
        let at = self.buf.start_struct(v, compat);
        body(self);
        self.buf.finish_struct(at);
    }
}

/// Reads Ceph encodings; wraps the msgr [`Dec`] (bounds-checked reads).
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    inner: Dec<'a>,
}

/// Most elements any one collection may claim, whatever the input length (a sanity bound).
pub const MAX_COLLECTION_LEN: usize = 1 << 24;

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { inner: Dec::new(buf) }
    }
    pub fn remaining(&self) -> usize {
        self.inner.remaining()
    }
    pub fn position(&self) -> usize {
        self.inner.position()
    }
    /// The underlying decoder, for decoders written against `Dec` (e.g. `EntityAddr`).
    pub fn dec_mut(&mut self) -> &mut Dec<'a> {
        &mut self.inner
    }
    pub fn u8(&mut self) -> DResult<u8> {
        self.inner.u8()
    }
    pub fn bool(&mut self) -> DResult<bool> {
        match self.inner.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError(format!("bool byte {b}"))),
        }
    }
    pub fn u16(&mut self) -> DResult<u16> {
        self.inner.u16()
    }
    pub fn u32(&mut self) -> DResult<u32> {
        self.inner.u32()
    }
    pub fn i32(&mut self) -> DResult<i32> {
        Ok(self.inner.u32()? as i32)
    }
    pub fn u64(&mut self) -> DResult<u64> {
        self.inner.u64()
    }
    pub fn i64(&mut self) -> DResult<i64> {
        self.inner.i64()
    }
    pub fn raw(&mut self, n: usize) -> DResult<&'a [u8]> {
        self.inner.take(n)
    }
    pub fn bytes(&mut self) -> DResult<&'a [u8]> {
        self.inner.bytes()
    }
    pub fn string(&mut self) -> DResult<String> {
        self.inner.string()
    }
    pub fn get<T: Decode>(&mut self) -> DResult<T> {
        T::decode(self)
    }
    /// Reads an element count and checks that that many elements of at least `min_len` bytes
    /// each can fit in what is left.
    pub fn count(&mut self, min_len: usize) -> DResult<usize> {
        let n = self.u32()? as usize;
        if n > MAX_COLLECTION_LEN || n.saturating_mul(min_len.max(1)) > self.remaining() {
            return Err(DecodeError(format!(
                "collection of {n} elements does not fit in {} bytes",
                self.remaining()
            )));
        }
        Ok(n)
    }
    pub fn vec<T: Decode>(&mut self) -> DResult<Vec<T>> {
        let n = self.count(T::MIN_LEN)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(self)?);
        }
        Ok(v)
    }
    pub fn set<T: Decode + Ord>(&mut self) -> DResult<BTreeSet<T>> {
        let n = self.count(T::MIN_LEN)?;
        let mut s = BTreeSet::new();
        for _ in 0..n {
            s.insert(T::decode(self)?);
        }
        Ok(s)
    }
    pub fn map<K: Decode + Ord, V: Decode>(&mut self) -> DResult<BTreeMap<K, V>> {
        let n = self.count(K::MIN_LEN + V::MIN_LEN)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = K::decode(self)?;
            let v = V::decode(self)?;
            m.insert(k, v);
        }
        Ok(m)
    }
    /// `DECODE_START(understood)` … body … `DECODE_FINISH`: `body` gets the encoder's struct
    /// version and a decoder limited to the struct; bytes it leaves unread are skipped.
    pub fn envelope<T>(&mut self, understood: u8, body: impl FnOnce(u8, &mut Decoder<'a>) -> DResult<T>) -> DResult<T> {
        let (v, inner) = self.inner.start_struct(understood)?;
        let mut d = Decoder { inner };
        body(v, &mut d)
    }
    /// Errors unless the input has been consumed entirely.
    pub fn finish(&self) -> DResult<()> {
        if self.remaining() != 0 {
            return Err(DecodeError(format!(
                "{} trailing bytes after the message",
                self.remaining()
            )));
        }
        Ok(())
    }
}

/// Decodes one value that must take the whole of `buf`.
pub fn decode_all<T: Decode>(buf: &[u8]) -> DResult<T> {
    let mut d = Decoder::new(buf);
    let v = T::decode(&mut d)?;
    d.finish()?;
    Ok(v)
}

/// Encodes one value into fresh bytes.
pub fn encode_to_bytes<T: Encode + ?Sized>(v: &T) -> Bytes {
    let mut e = Encoder::new();
    v.encode(&mut e);
    e.into_bytes()
}

macro_rules! prim {
    ($t:ty, $put:ident, $get:ident, $len:expr) => {
        impl Encode for $t {
            fn encode(&self, e: &mut Encoder) {
                e.$put(*self);
            }
        }
        impl Decode for $t {
            const MIN_LEN: usize = $len;
            fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
                d.$get()
            }
        }
    };
}
prim!(u8, u8, u8, 1);
prim!(bool, bool, bool, 1);
prim!(u16, u16, u16, 2);
prim!(u32, u32, u32, 4);
prim!(i32, i32, i32, 4);
prim!(u64, u64, u64, 8);
prim!(i64, i64, i64, 8);

impl Encode for String {
    fn encode(&self, e: &mut Encoder) {
        e.string(self);
    }
}
impl Encode for str {
    fn encode(&self, e: &mut Encoder) {
        e.string(self);
    }
}
impl Decode for String {
    const MIN_LEN: usize = 4;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.string()
    }
}
/// `Bytes` as a length-prefixed blob (a copy on decode; bulk data belongs in the data segment).
impl Encode for Bytes {
    fn encode(&self, e: &mut Encoder) {
        e.bytes(self);
    }
}
impl Decode for Bytes {
    const MIN_LEN: usize = 4;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(Bytes::copy_from_slice(d.bytes()?))
    }
}
impl Encode for [u8; 16] {
    fn encode(&self, e: &mut Encoder) {
        e.raw(self);
    }
}
impl Decode for [u8; 16] {
    const MIN_LEN: usize = 16;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        Ok(d.raw(16)?.try_into().expect("16 bytes"))
    }
}
impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, e: &mut Encoder) {
        e.vec(self);
    }
}
impl<T: Encode> Encode for [T] {
    fn encode(&self, e: &mut Encoder) {
        e.vec(self);
    }
}
impl<T: Decode> Decode for Vec<T> {
    const MIN_LEN: usize = 4;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.vec()
    }
}
impl<T: Encode> Encode for BTreeSet<T> {
    fn encode(&self, e: &mut Encoder) {
        e.set(self);
    }
}
impl<T: Decode + Ord> Decode for BTreeSet<T> {
    const MIN_LEN: usize = 4;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.set()
    }
}
impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, e: &mut Encoder) {
        e.map(self);
    }
}
impl<K: Decode + Ord, V: Decode> Decode for BTreeMap<K, V> {
    const MIN_LEN: usize = 4;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        d.map()
    }
}
/// Ceph's `boost::optional` encoding: a `u8` presence flag, then the value.
impl<T: Encode> Encode for Option<T> {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Some(v) => {
                e.u8(1);
                v.encode(e);
            }
            None => e.u8(0),
        }
    }
}
impl<T: Decode> Decode for Option<T> {
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        if d.bool()? {
            Ok(Some(T::decode(d)?))
        } else {
            Ok(None)
        }
    }
}

/// `entity_addr_t` in its modern (marker 1, versioned) encoding, as the msgr layer writes it.
impl Encode for crate::msgr::addr::EntityAddr {
    fn encode(&self, e: &mut Encoder) {
        crate::msgr::addr::EntityAddr::encode(self, e.buf_mut());
    }
}
impl Decode for crate::msgr::addr::EntityAddr {
    const MIN_LEN: usize = 7;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        crate::msgr::addr::EntityAddr::decode(d.dec_mut())
    }
}

/// Entity names (`osd.3`, `client.admin`) as `u8` Ceph entity-type wire value + `string` id.
/// (Our layout: Ceph's `entity_name_t` carries a numeric id, ours is textual.)
impl Encode for crate::common::entity::EntityName {
    fn encode(&self, e: &mut Encoder) {
        e.u8(self.ty.wire_value());
        e.string(&self.id);
    }
}
impl Decode for crate::common::entity::EntityName {
    const MIN_LEN: usize = 5;
    fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
        use crate::common::entity::{EntityName, EntityType};
        let ty = match d.u8()? {
            0x01 => EntityType::Mon,
            0x02 => EntityType::Mds,
            0x04 => EntityType::Osd,
            0x08 => EntityType::Client,
            0x10 => EntityType::Mgr,
            t => return Err(DecodeError(format!("unknown entity type {t:#x}"))),
        };
        Ok(EntityName::new(ty, d.string()?))
    }
}

/// Decode errors as the crate's error: `-EINVAL` (Ceph answers malformed input with `-EINVAL`).
pub fn to_error(e: DecodeError) -> crate::Error {
    crate::Error::inval(e.to_string())
}

#[cfg(test)]
pub(crate) mod test_util {
    /// A tiny deterministic PRNG (splitmix64) for property-style tests.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        pub fn string(&mut self, max: usize) -> String {
            let n = self.below(max as u64 + 1) as usize;
            (0..n).map(|_| (b'a' + self.below(26) as u8) as char).collect()
        }
    }

    /// Decoding every strict prefix of `full` is an error, never a panic.
    pub fn assert_prefixes_fail<T>(full: &[u8], decode: impl Fn(&[u8]) -> super::DResult<T>) {
        for cut in 0..full.len() {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&full[..cut])));
            match r {
                Ok(Ok(_)) => panic!("a {cut}-byte prefix of {} bytes decoded", full.len()),
                Ok(Err(_)) => {}
                Err(_) => panic!("decoding a {cut}-byte prefix panicked"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use crate::common::entity::EntityName;
    use crate::msgr::addr::EntityAddr;

    #[derive(Debug, Clone, PartialEq)]
    struct V1 {
        a: u32,
        name: String,
    }
    #[derive(Debug, Clone, PartialEq)]
    struct V2 {
        a: u32,
        name: String,
        extra: Vec<u64>,
    }
    impl Encode for V1 {
        fn encode(&self, e: &mut Encoder) {
            e.envelope(1, 1, |e| {
                e.u32(self.a);
                e.string(&self.name);
            });
        }
    }
    impl Decode for V1 {
        fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
            d.envelope(1, |_, d| {
                Ok(V1 {
                    a: d.u32()?,
                    name: d.string()?,
                })
            })
        }
    }
    impl Encode for V2 {
        fn encode(&self, e: &mut Encoder) {
            e.envelope(2, 1, |e| {
                e.u32(self.a);
                e.string(&self.name);
                e.vec(&self.extra);
            });
        }
    }
    impl Decode for V2 {
        fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
            d.envelope(2, |v, d| {
                let a = d.u32()?;
                let name = d.string()?;
                let extra = if v >= 2 { d.vec()? } else { Vec::new() };
                Ok(V2 { a, name, extra })
            })
        }
    }

    #[test]
    fn primitives_round_trip_little_endian() {
        let mut e = Encoder::new();
        e.u8(0xab);
        e.u16(0x0102);
        e.u32(0x0304_0506);
        e.u64(0x0708_090a_0b0c_0d0e);
        e.i64(-2);
        e.i32(-3);
        e.bool(true);
        e.string("héllo");
        e.bytes(&[9, 8, 7]);
        let b = e.into_bytes();
        assert_eq!(&b[..3], &[0xab, 0x02, 0x01]);
        assert_eq!(&b[3..7], &[0x06, 0x05, 0x04, 0x03]);
        let mut d = Decoder::new(&b);
        assert_eq!(d.u8().unwrap(), 0xab);
        assert_eq!(d.u16().unwrap(), 0x0102);
        assert_eq!(d.u32().unwrap(), 0x0304_0506);
        assert_eq!(d.u64().unwrap(), 0x0708_090a_0b0c_0d0e);
        assert_eq!(d.i64().unwrap(), -2);
        assert_eq!(d.i32().unwrap(), -3);
        assert!(d.bool().unwrap());
        assert_eq!(d.string().unwrap(), "héllo");
        assert_eq!(d.bytes().unwrap(), &[9, 8, 7]);
        d.finish().unwrap();
    }

    #[test]
    fn envelope_layout_is_cephs() {
        let b = encode_to_bytes(&V1 { a: 5, name: "x".into() });
        // v=1, compat=1, len=9 (u32 + 4-byte length + 1 byte), body.
        assert_eq!(&b[..], &[1, 1, 9, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, b'x']);
    }

    #[test]
    fn collections_and_options_round_trip_randomly() {
        let mut rng = Rng(42);
        for _ in 0..200 {
            let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for _ in 0..rng.below(6) {
                let v = (0..rng.below(5)).map(|_| rng.next()).collect();
                m.insert(rng.string(8), v);
            }
            let s: BTreeSet<i32> = (0..rng.below(10)).map(|_| rng.next() as i32).collect();
            let o: Option<i64> = if rng.below(2) == 0 {
                None
            } else {
                Some(rng.next() as i64)
            };
            let name: EntityName = if rng.below(2) == 0 {
                "osd.3".parse().unwrap()
            } else {
                "client.admin".parse().unwrap()
            };
            let addr: EntityAddr = "v2:10.0.0.1:6800/77".parse().unwrap();
            let mut e = Encoder::new();
            e.envelope(3, 2, |e| {
                e.put(&m);
                e.put(&s);
                e.put(&o);
                e.put(&name);
                e.put(&addr);
            });
            let b = e.into_bytes();
            let dec = |buf: &[u8]| {
                let mut d = Decoder::new(buf);
                let r = d.envelope(2, |v, d| {
                    assert_eq!(v, 3);
                    Ok((
                        d.get::<BTreeMap<String, Vec<u64>>>()?,
                        d.get::<BTreeSet<i32>>()?,
                        d.get::<Option<i64>>()?,
                        d.get::<EntityName>()?,
                        d.get::<EntityAddr>()?,
                    ))
                })?;
                d.finish()?;
                Ok(r)
            };
            assert_eq!(dec(&b).unwrap(), (m, s, o, name, addr));
            assert_prefixes_fail(&b, dec);
        }
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let v = V2 {
            a: 7,
            name: "object-name".into(),
            extra: vec![1, 2, 3],
        };
        let b = encode_to_bytes(&v);
        assert_eq!(decode_all::<V2>(&b).unwrap(), v);
        assert_prefixes_fail(&b, decode_all::<V2>);
        assert_prefixes_fail(&b, decode_all::<V1>);
    }

    #[test]
    fn newer_struct_decodes_with_older_decoder() {
        let v2 = V2 {
            a: 9,
            name: "n".into(),
            extra: vec![10, 11],
        };
        let mut e = Encoder::new();
        e.put(&v2);
        e.u32(0xdead_beef); // something after the struct: must be reachable
        let b = e.into_bytes();
        let mut d = Decoder::new(&b);
        let v1 = V1::decode(&mut d).unwrap();
        assert_eq!(v1, V1 { a: 9, name: "n".into() });
        assert_eq!(d.u32().unwrap(), 0xdead_beef, "the unknown field was skipped");
        d.finish().unwrap();
        // And an old encoding reads with the new decoder, the new field defaulted.
        let old = encode_to_bytes(&v1);
        let up = decode_all::<V2>(&old).unwrap();
        assert_eq!(up.extra, Vec::<u64>::new());
        assert_eq!(up.a, 9);
    }

    #[test]
    fn compat_newer_than_understood_is_refused() {
        let mut e = Encoder::new();
        e.envelope(3, 3, |e| e.u32(1));
        let b = e.into_bytes();
        let err = decode_all::<V2>(&b).unwrap_err();
        assert!(err.0.contains("compat 3"), "{err}");
    }

    #[test]
    fn absurd_lengths_are_errors_not_allocations() {
        // Envelope claiming 4 GiB of body.
        assert!(decode_all::<V1>(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0]).is_err());
        // A vector claiming 2^32-1 elements.
        let mut d = Decoder::new(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(d.vec::<u64>().is_err());
        let mut d = Decoder::new(&[0xff, 0xff, 0xff, 0x00, 1, 2, 3]);
        assert!(d.map::<String, String>().is_err());
        // A body that lies about a string inside it: reads never leave the struct.
        let mut e = Encoder::new();
        e.envelope(1, 1, |e| {
            e.u32(1);
            e.u32(100); // string length 100, body ends here
        });
        e.raw(&[b'z'; 100]);
        let b = e.into_bytes();
        assert!(V1::decode(&mut Decoder::new(&b)).is_err());
        assert!(Decoder::new(&[2]).bool().is_err());
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let n = rng.below(40) as usize;
            let buf: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
            let _ = decode_all::<V2>(&buf);
            let _ = decode_all::<BTreeMap<String, Vec<u32>>>(&buf);
            let _ = decode_all::<EntityName>(&buf);
        }
    }
}

/// Encode, Decode and FrontMessage (version 1) for a message struct whose fields go in order
/// in one envelope: `field: any` uses the field's own codec, `field: pgid` the PG id helpers
/// in scope at the call site. Names used in the expansion (`Encode`, `FrontMessage`, ...)
/// resolve where it is called.
macro_rules! envelope_message {
    ($t:ident, $ty:expr, { $($f:ident : $kind:tt),* $(,)? }) => {
        impl Encode for $t {
            fn encode(&self, e: &mut Encoder) {
                e.envelope(Self::HEAD_VERSION, Self::COMPAT_VERSION, |e| {
                    $( envelope_message!(@put e, self.$f, $kind); )*
                });
            }
        }
        impl Decode for $t {
            fn decode(d: &mut Decoder<'_>) -> DResult<Self> {
                d.envelope(Self::HEAD_VERSION, |_, d| {
                    Ok($t { $( $f: envelope_message!(@get d, $kind), )* })
                })
            }
        }
        impl FrontMessage for $t {
            const MSG_TYPE: u16 = $ty;
            const HEAD_VERSION: u8 = 1;
            const COMPAT_VERSION: u8 = 1;
        }
    };
    (@put $e:ident, $v:expr, pgid) => { put_pgid($e, &$v) };
    (@put $e:ident, $v:expr, any) => { $e.put(&$v) };
    (@get $d:ident, pgid) => { get_pgid($d)? };
    (@get $d:ident, any) => { $d.get()? };
}
pub(crate) use envelope_message;
