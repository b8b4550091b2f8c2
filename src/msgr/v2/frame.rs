//! msgr2 rev 2.1 frames, crc mode (reference §2–§5): the banner, the 32-byte preamble, segment
//! CRCs and the epilogue. This layer knows bytes only; the session state machine is above it,
//! so secure mode can later replace this codec without touching the session.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

pub const BANNER_PREFIX: &[u8; 8] = b"ceph v2\n";
pub const BANNER_LEN: usize = 26;
/// msgr2 banner feature: rev 2.1 framing.
pub const MSGR2_FEATURE_REVISION_1: u64 = 1;
pub const PREAMBLE_LEN: usize = 32;
pub const EPILOGUE_LEN: usize = 13;
/// The most a receiver sets aside for a frame before its bytes arrive.
pub const MAX_EAGER_RESERVE: usize = 16 << 20;
pub const LATE_STATUS_COMPLETE: u8 = 0x0e;
pub const LATE_STATUS_ABORTED: u8 = 0x01;
pub const CONTROL_ALIGN: u16 = 8;
pub const DATA_ALIGN: u16 = 4096;

/// Ceph's crc32c: the seed is the initial register, no final inversion (reference §3).
#[inline]
pub fn ceph_crc32c(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    Hello = 1,
    AuthRequest = 2,
    AuthBadMethod = 3,
    AuthReplyMore = 4,
    AuthRequestMore = 5,
    AuthDone = 6,
    AuthSignature = 7,
    ClientIdent = 8,
    ServerIdent = 9,
    IdentMissingFeatures = 10,
    SessionReconnect = 11,
    SessionReset = 12,
    SessionRetry = 13,
    SessionRetryGlobal = 14,
    SessionReconnectOk = 15,
    Wait = 16,
    Message = 17,
    Keepalive2 = 18,
    Keepalive2Ack = 19,
    Ack = 20,
}

impl Tag {
    pub fn from_u8(v: u8) -> Option<Tag> {
        use Tag::*;
        Some(match v {
            1 => Hello,
            2 => AuthRequest,
            3 => AuthBadMethod,
            4 => AuthReplyMore,
            5 => AuthRequestMore,
            6 => AuthDone,
            7 => AuthSignature,
            8 => ClientIdent,
            9 => ServerIdent,
            10 => IdentMissingFeatures,
            11 => SessionReconnect,
            12 => SessionReset,
            13 => SessionRetry,
            14 => SessionRetryGlobal,
            15 => SessionReconnectOk,
            16 => Wait,
            17 => Message,
            18 => Keepalive2,
            19 => Keepalive2Ack,
            20 => Ack,
            _ => return None,
        })
    }
}

/// Why a frame (or banner) was refused. Any of these faults the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FrameError {}

fn err<T>(s: impl Into<String>) -> Result<T, FrameError> {
    Err(FrameError(s.into()))
}

/// Our banner: rev 2.1 supported, nothing required (as Pacific userspace sends).
pub fn banner(supported: u64, required: u64) -> [u8; BANNER_LEN] {
    let mut b = [0u8; BANNER_LEN];
    b[..8].copy_from_slice(BANNER_PREFIX);
    b[8..10].copy_from_slice(&16u16.to_le_bytes());
    b[10..18].copy_from_slice(&supported.to_le_bytes());
    b[18..26].copy_from_slice(&required.to_le_bytes());
    b
}

/// Parses the peer's banner: `Ok(None)` until enough bytes are there; then the bytes it used
/// and the peer's (supported, required) msgr2 features.
pub fn parse_banner(buf: &[u8]) -> Result<Option<(usize, u64, u64)>, FrameError> {
    let n = buf.len().min(8);
    if buf[..n] != BANNER_PREFIX[..n] {
        if buf.starts_with(b"ceph v0") {
            return err("peer speaks msgr v1 (banner 'ceph v027'); only msgr2 is supported");
        }
        return err("bad banner: not 'ceph v2'");
    }
    if buf.len() < 10 {
        return Ok(None);
    }
    let len = u16::from_le_bytes([buf[8], buf[9]]) as usize;
    if len < 16 {
        return err(format!("banner payload of {len} bytes is too short"));
    }
    if buf.len() < 10 + len {
        return Ok(None);
    }
    let sup = u64::from_le_bytes(buf[10..18].try_into().expect("8 bytes"));
    let req = u64::from_le_bytes(buf[18..26].try_into().expect("8 bytes"));
    Ok(Some((10 + len, sup, req)))
}

/// A decoded frame: segment bytes are slices of the receive buffer, not copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: Tag,
    pub segments: [Bytes; 4],
}

impl Frame {
    pub fn control(tag: Tag, payload: Bytes) -> Frame {
        Frame {
            tag,
            segments: [payload, Bytes::new(), Bytes::new(), Bytes::new()],
        }
    }
    pub fn payload(&self) -> &Bytes {
        &self.segments[0]
    }
}

/// Encodes a frame into pieces for one `writev`: the head (preamble, segment 0, its CRC), then
/// segments 1–3 as the caller's own `Bytes` (never copied), then the epilogue.
pub fn encode_frame(tag: Tag, segs: &[Bytes; 4], out: &mut Vec<Bytes>) {
    let num = segs.iter().rposition(|s| !s.is_empty()).map_or(1, |i| i + 1);
    let aligns = if tag == Tag::Message {
        [CONTROL_ALIGN, CONTROL_ALIGN, CONTROL_ALIGN, DATA_ALIGN]
    } else {
        [CONTROL_ALIGN; 4]
    };
    let seg0 = &segs[0];
    let mut head = BytesMut::with_capacity(PREAMBLE_LEN + seg0.len() + 4);
    head.put_u8(tag as u8);
    head.put_u8(num as u8);
    for i in 0..4 {
        if i < num {
            head.put_u32_le(segs[i].len() as u32);
            head.put_u16_le(aligns[i]);
        } else {
            head.put_bytes(0, 6);
        }
    }
    head.put_u16_le(0);
    let crc = ceph_crc32c(0, &head[..28]);
    head.put_u32_le(crc);
    if !seg0.is_empty() {
        head.put_slice(seg0);
        head.put_u32_le(ceph_crc32c(u32::MAX, seg0));
    }
    out.push(head.freeze());
    if num > 1 {
        let mut epi = BytesMut::with_capacity(EPILOGUE_LEN);
        epi.put_u8(LATE_STATUS_COMPLETE);
        for (i, s) in segs.iter().enumerate().skip(1) {
            if i < num {
                if !s.is_empty() {
                    out.push(s.clone());
                }
                epi.put_u32_le(ceph_crc32c(u32::MAX, s));
            } else {
                epi.put_u32_le(0);
            }
        }
        out.push(epi.freeze());
    }
}

/// The whole length of the frame whose preamble starts `buf` (already CRC-checked by
/// `decode_frame`, which left it there because the rest had not arrived), if there is one.
pub fn pending_frame_len(buf: &[u8]) -> Option<usize> {
    let p = buf.get(..PREAMBLE_LEN)?;
    let num = (p[1] as usize).clamp(1, 4);
    let len = |i: usize| u32::from_le_bytes(p[2 + 6 * i..6 + 6 * i].try_into().expect("4 bytes")) as usize;
    let head = if len(0) > 0 { len(0) + 4 } else { 0 };
    let rest: usize = (1..num).map(len).sum();
    Some(PREAMBLE_LEN + head + rest + if num > 1 { EPILOGUE_LEN } else { 0 })
}

/// Size limits a receiver enforces before buffering a frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Largest control-frame payload.
    pub max_control: u32,
    /// Largest single segment of a MESSAGE frame.
    pub max_segment: u32,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_control: 1 << 20,
            max_segment: 1 << 30,
        }
    }
}

/// Frames at least this long get their segment CRCs computed as they arrive (`RunningCrc`).
pub const RUNNING_CRC_MIN: usize = 256 * 1024;
/// Segments up to this size are copied out of a large frame instead of sliced.
const SMALL_SEGMENT: usize = 4096;

/// The CRCs of the data segments of a large frame still arriving, folded in chunk by chunk
/// right after each read, while the bytes are still in cache: checksumming 4 MiB once it is
/// complete reads it all back from memory, which costs about as much as the socket copy.
#[derive(Debug, Default, Clone)]
pub struct RunningCrc {
    /// Length of the frame being followed; 0 when none.
    total: usize,
    /// Byte ranges of segments 1..=3 within the frame.
    bounds: [(usize, usize); 4],
    crcs: [u32; 4],
    /// Frame bytes already folded in.
    done: usize,
}

impl RunningCrc {
    /// Folds in what arrived since the last call; `buf` starts with the frame in progress,
    /// whose preamble `decode_frame_with` has already checked (it starts following it then).
    pub fn update(&mut self, buf: &[u8]) {
        if self.total == 0 {
            let Some(total) = pending_frame_len(buf) else { return };
            if total < RUNNING_CRC_MIN || buf.len() >= total || buf[0] != Tag::Message as u8 {
                return;
            }
            let num = (buf[1] as usize).clamp(1, 4);
            let len = |i: usize| u32::from_le_bytes(buf[2 + 6 * i..6 + 6 * i].try_into().expect("4 bytes")) as usize;
            let mut off = PREAMBLE_LEN + if len(0) > 0 { len(0) + 4 } else { 0 };
            let mut bounds = [(0, 0); 4];
            for (i, b) in bounds.iter_mut().enumerate().take(num).skip(1) {
                *b = (off, off + len(i));
                off += len(i);
            }
            *self = RunningCrc {
                total,
                bounds,
                crcs: [u32::MAX; 4],
                done: 0,
            };
        }
        let upto = buf.len().min(self.total);
        for i in 1..4 {
            let (a, b) = (self.bounds[i].0.max(self.done), self.bounds[i].1.min(upto));
            if a < b {
                self.crcs[i] = ceph_crc32c(self.crcs[i], &buf[a..b]);
            }
        }
        self.done = upto;
    }

    fn take(&mut self, total: usize) -> Option<[u32; 4]> {
        let r = (self.total == total && self.done == total).then_some(self.crcs);
        *self = RunningCrc::default();
        r
    }
}

/// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes are needed (the
/// buffer is grown for the rest of the frame). Aborted frames are skipped, as Ceph does.
pub fn decode_frame(buf: &mut BytesMut, limits: &FrameLimits) -> Result<Option<Frame>, FrameError> {
    decode_frame_with(buf, limits, &mut RunningCrc::default())
}

/// `decode_frame`, using (and then clearing) the CRCs `running` folded in for a large frame.
pub fn decode_frame_with(
    buf: &mut BytesMut,
    limits: &FrameLimits,
    running: &mut RunningCrc,
) -> Result<Option<Frame>, FrameError> {
    loop {
        if buf.len() < PREAMBLE_LEN {
            return Ok(None);
        }
        let p = &buf[..PREAMBLE_LEN];
        let crc = u32::from_le_bytes(p[28..32].try_into().expect("4 bytes"));
        if ceph_crc32c(0, &p[..28]) != crc {
            return err("preamble crc mismatch");
        }
        let tag = Tag::from_u8(p[0]).ok_or_else(|| FrameError(format!("unknown frame tag {}", p[0])))?;
        let num = p[1] as usize;
        if !(1..=4).contains(&num) {
            return err(format!("bad segment count {num}"));
        }
        let mut lens = [0usize; 4];
        for (i, l) in lens.iter_mut().enumerate().take(num) {
            *l = u32::from_le_bytes(p[2 + 6 * i..6 + 6 * i].try_into().expect("4 bytes")) as usize;
        }
        if num > 1 && lens[num - 1] == 0 {
            return err("last declared segment is empty");
        }
        if tag != Tag::Message {
            if num != 1 {
                return err(format!("control frame {tag:?} with {num} segments"));
            }
            if lens[0] > limits.max_control as usize {
                return err(format!(
                    "control frame {tag:?} of {} bytes exceeds {}",
                    lens[0], limits.max_control
                ));
            }
        } else if let Some(l) = lens.iter().find(|l| **l > limits.max_segment as usize) {
            return err(format!("message segment of {l} bytes exceeds {}", limits.max_segment));
        }
        let head = if lens[0] > 0 { lens[0] + 4 } else { 0 };
        let total = PREAMBLE_LEN + head + lens[1] + lens[2] + lens[3] + if num > 1 { EPILOGUE_LEN } else { 0 };
        if buf.len() < total {
            // Room for the whole frame at once (so it is read without copies), but no more
            // than MAX_EAGER_RESERVE on the word of a preamble alone: beyond that the buffer
            // grows as the bytes actually arrive.
            buf.reserve((total - buf.len()).min(MAX_EAGER_RESERVE));
            return Ok(None);
        }
        let pre = running.take(total);
        let frame = buf.split_to(total).freeze();
        let mut off = PREAMBLE_LEN;
        let mut segs: [Bytes; 4] = Default::default();
        if lens[0] > 0 {
            segs[0] = frame.slice(off..off + lens[0]);
            let c = u32::from_le_bytes(frame[off + lens[0]..off + lens[0] + 4].try_into().expect("4 bytes"));
            if ceph_crc32c(u32::MAX, &segs[0]) != c {
                return err(format!("{tag:?} segment 0 crc mismatch"));
            }
            off += lens[0] + 4;
        }
        for i in 1..num {
            segs[i] = frame.slice(off..off + lens[i]);
            off += lens[i];
        }
        if total >= RUNNING_CRC_MIN {
            // The small segments of a large frame are copied out: kept by the application (a
            // header, say), a slice would pin the whole frame's buffer, and the receiver could
            // not reuse it for the next frame.
            for seg in segs.iter_mut().take(num) {
                if !seg.is_empty() && seg.len() <= SMALL_SEGMENT {
                    *seg = Bytes::copy_from_slice(seg);
                }
            }
        }
        if num > 1 {
            let e = &frame[off..off + EPILOGUE_LEN];
            match e[0] & 0x0f {
                0x0e => {}
                0x01 => continue,
                s => return err(format!("bad epilogue late_status {s:#x}")),
            }
            for (i, seg) in segs.iter().enumerate().take(num).skip(1) {
                let c = u32::from_le_bytes(e[1 + 4 * (i - 1)..5 + 4 * (i - 1)].try_into().expect("4 bytes"));
                let have = pre.map_or_else(|| ceph_crc32c(u32::MAX, seg), |p| p[i]);
                if have != c {
                    return err(format!("{tag:?} segment {i} crc mismatch"));
                }
            }
        }
        return Ok(Some(Frame { tag, segments: segs }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    fn encoded(tag: Tag, segs: [Bytes; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(tag, &segs, &mut out);
        out.concat()
    }

    /// Feeds `wire` in `chunk`-byte pieces the way the protocol does: running CRC, then decode.
    fn decode_in_chunks(wire: &[u8], chunk: usize) -> Result<Frame, FrameError> {
        let (mut buf, mut running) = (BytesMut::new(), RunningCrc::default());
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            running.update(&buf);
            if let Some(f) = decode_frame_with(&mut buf, &FrameLimits::default(), &mut running)? {
                return Ok(f);
            }
            running.update(&buf);
        }
        Err(FrameError("incomplete".into()))
    }

    #[test]
    fn large_frames_checked_as_they_arrive_decode_and_catch_corruption() {
        let data: Bytes = (0..3 * RUNNING_CRC_MIN + 17)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let front = Bytes::from_static(b"front");
        let wire = encoded(
            Tag::Message,
            [Bytes::from_static(&[9; 53]), front.clone(), Bytes::new(), data.clone()],
        );
        for chunk in [4096, 65_536, 100_003, wire.len()] {
            let f = decode_in_chunks(&wire, chunk).unwrap();
            assert_eq!(f.segments[3], data, "chunk {chunk}");
            assert_eq!(f.segments[1], front);
        }
        for at in [wire.len() / 3, wire.len() - EPILOGUE_LEN - 1] {
            let mut bad = wire.clone();
            bad[at] ^= 0x10;
            let e = decode_in_chunks(&bad, 65_536).unwrap_err();
            assert!(e.0.contains("crc mismatch"), "flip at {at}: {}", e.0);
        }
    }

    #[test]
    fn small_segments_of_a_large_frame_do_not_pin_its_buffer() {
        let data = Bytes::from(vec![1u8; RUNNING_CRC_MIN]);
        let wire = encoded(
            Tag::Message,
            [
                Bytes::from_static(&[9; 53]),
                Bytes::from_static(b"hdr"),
                Bytes::new(),
                data,
            ],
        );
        let mut buf = BytesMut::from(&wire[..]);
        let f = decode_frame(&mut buf, &FrameLimits::default()).unwrap().unwrap();
        let [head, front, _, data] = f.segments;
        drop((head, data));
        // `front` was copied out, so it is the only owner of its memory: converting it back
        // into a unique buffer needs no copy (a slice of the frame would not be unique).
        assert!(front.try_into_mut().is_ok(), "front is not a slice of the frame buffer");
    }

    #[test]
    fn crc_matches_ceph_vectors() {
        assert_eq!(ceph_crc32c(0, b"foo bar baz"), 4119623852);
        assert_eq!(ceph_crc32c(1234, b"foo bar baz"), 881700046);
        assert_eq!(ceph_crc32c(0, b"whiz bang boom"), 2360230088);
        assert_eq!(ceph_crc32c(5678, b"whiz bang boom"), 3743019208);
        assert_eq!(ceph_crc32c(0, &[1; 5]), 2715569182);
    }

    #[test]
    fn banner_bytes() {
        let b = banner(MSGR2_FEATURE_REVISION_1, 0);
        assert_eq!(
            b.to_vec(),
            hex("63 65 70 68 20 76 32 0a 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
        );
        assert_eq!(parse_banner(&b).unwrap(), Some((26, 1, 0)));
        assert_eq!(parse_banner(&b[..12]).unwrap(), None);
        assert!(parse_banner(b"ceph v027").is_err());
        assert!(parse_banner(b"GET / HTTP/1.1").is_err());
    }

    #[test]
    fn keepalive_and_wait_match_reference_bytes() {
        let mut p = BytesMut::new();
        p.put_u32_le(1_700_000_000);
        p.put_u32_le(123_456_789);
        let ka = encoded(Tag::Keepalive2, [p.freeze(), Bytes::new(), Bytes::new(), Bytes::new()]);
        assert_eq!(
            ka,
            hex(
                "12 01 08 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 d8 d5 f5 99 \
                 00 f1 53 65 15 cd 5b 07 c0 52 70 86"
            )
        );
        let wait = encoded(Tag::Wait, Default::default());
        assert_eq!(
            wait,
            hex("10 01 00 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 c8 e3 aa b0")
        );
        let mut buf = BytesMut::from(&ka[..]);
        buf.extend_from_slice(&wait);
        let f = decode_frame(&mut buf, &FrameLimits::default()).unwrap().unwrap();
        assert_eq!(f.tag, Tag::Keepalive2);
        assert_eq!(f.payload().len(), 8);
        let w = decode_frame(&mut buf, &FrameLimits::default()).unwrap().unwrap();
        assert_eq!(w.tag, Tag::Wait);
        assert!(buf.is_empty());
    }

    #[test]
    fn two_segment_message_matches_reference_bytes() {
        let want = hex(
            "11 02 29 00 00 00 08 00 08 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 71 c5 51 24 \
             02 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 34 12 7f 00 01 00 00 00 00 00 00 00 05 00 00 00 \
             00 00 00 00 03 01 00 00 00 87 ab 56 19 01 02 03 04 05 06 07 08 0e 7e e0 76 b9 00 00 00 00 00 00 \
             00 00",
        );
        let header = Bytes::copy_from_slice(&want[32..32 + 41]);
        let front = Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            encoded(
                Tag::Message,
                [header.clone(), front.clone(), Bytes::new(), Bytes::new()]
            ),
            want
        );
        let mut buf = BytesMut::from(&want[..]);
        let f = decode_frame(&mut buf, &FrameLimits::default()).unwrap().unwrap();
        assert_eq!(f.segments, [header, front, Bytes::new(), Bytes::new()]);
    }

    #[test]
    fn partial_corrupt_and_oversized_frames() {
        let data = Bytes::from(vec![7u8; 10_000]);
        let full = encoded(
            Tag::Message,
            [Bytes::from_static(&[9; 41]), Bytes::new(), Bytes::new(), data.clone()],
        );
        // Every prefix is "need more", never an error or a frame.
        for cut in [0, 1, 31, 32, 80, full.len() - 1] {
            let mut b = BytesMut::from(&full[..cut]);
            assert_eq!(
                decode_frame(&mut b, &FrameLimits::default()).unwrap(),
                None,
                "cut {cut}"
            );
        }
        let mut b = BytesMut::from(&full[..]);
        let f = decode_frame(&mut b, &FrameLimits::default()).unwrap().unwrap();
        assert_eq!(f.segments[3], data);
        assert_eq!(f.segments[1].len(), 0);
        // A flipped bit anywhere is refused.
        for at in [0, 5, 29, 40, 100, full.len() - 3] {
            let mut bad = full.clone();
            bad[at] ^= 0x20;
            let mut b = BytesMut::from(&bad[..]);
            assert!(decode_frame(&mut b, &FrameLimits::default()).is_err(), "flip at {at}");
        }
        let limits = FrameLimits {
            max_control: 16,
            max_segment: 4096,
        };
        let mut b = BytesMut::from(&full[..]);
        assert!(decode_frame(&mut b, &limits).unwrap_err().0.contains("exceeds"));
        let big_ctl = encoded(
            Tag::Hello,
            [Bytes::from(vec![0u8; 17]), Bytes::new(), Bytes::new(), Bytes::new()],
        );
        let mut b = BytesMut::from(&big_ctl[..]);
        assert!(decode_frame(&mut b, &limits).is_err());
    }
}
