//! Frame header parsing and encoding.

use super::opcode::OpCode;
use crate::error::ProtocolError;

/// The longest header: 2 bytes, an 8-byte length, a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed, validated frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit); only set when an
    /// extension allowed it.
    pub rsv1: bool,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The client's masking key (client frames are always masked).
    pub mask: [u8; 4],
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a client frame header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header (feed more),
    /// or the header and its length in bytes. `allow_rsv1` is true when an
    /// extension gave RSV1 a meaning. Every rule that the header alone can
    /// break is checked here, before any payload is read: reserved bits and
    /// opcodes, the mask bit, control frame length and FIN, minimal length
    /// encoding.
    pub fn parse(buf: &[u8], allow_rsv1: bool) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        let fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        if b0 & 0x30 != 0 || (rsv1 && !allow_rsv1) {
            return Err(ProtocolError::ReservedBitsSet);
        }
        let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode)?;
        if b1 & 0x80 == 0 {
            return Err(ProtocolError::UnmaskedFrame);
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len7 > 125 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        let (payload_len, at) = match len7 {
            126 => {
                let Some(bytes) = buf.get(2..4) else { return Ok(None) };
                let len = u16::from_be_bytes([bytes[0], bytes[1]]) as u64;
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10) else { return Ok(None) };
                let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
                if len <= 0xFFFF || len >> 63 != 0 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        let Some(mask) = buf.get(at..at + 4) else { return Ok(None) };
        let header = Self { fin, rsv1, opcode, mask: mask.try_into().expect("4 bytes"), payload_len };
        Ok(Some((header, at + 4)))
    }
}

/// Appends an unmasked (server) frame header to `out`.
pub fn encode_header(out: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: OpCode, payload_len: u64) {
    let b0 = (fin as u8) << 7 | (rsv1 as u8) << 6 | opcode.bits();
    match payload_len {
        0..=125 => out.extend_from_slice(&[b0, payload_len as u8]),
        126..=0xFFFF => {
            out.extend_from_slice(&[b0, 126]);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.extend_from_slice(&[b0, 127]);
            out.extend_from_slice(&payload_len.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, len: &[u8]) -> Vec<u8> {
        let mut v = vec![b0];
        v.extend_from_slice(len);
        v[1] |= 0x80;
        v.extend_from_slice(&[1, 2, 3, 4]);
        v
    }

    #[test]
    fn parses_each_length_form_and_waits_for_partial_headers() {
        for (len_bytes, expect) in
            [(vec![5u8], 5u64), (vec![126, 0x01, 0x00], 256), (vec![127, 0, 0, 0, 0, 0, 1, 0, 0], 65536)]
        {
            let buf = masked(0x82, &len_bytes);
            for cut in 0..buf.len() {
                assert_eq!(FrameHeader::parse(&buf[..cut], false), Ok(None), "cut at {cut}");
            }
            let (h, n) = FrameHeader::parse(&buf, false).unwrap().unwrap();
            assert_eq!((h.payload_len, n, h.opcode, h.fin), (expect, buf.len(), OpCode::Binary, true));
        }
    }

    #[test]
    fn rejects_what_the_header_alone_breaks() {
        let cases: [(Vec<u8>, ProtocolError); 8] = [
            (masked(0xC1, &[0]), ProtocolError::ReservedBitsSet),
            (masked(0xA1, &[0]), ProtocolError::ReservedBitsSet),
            (masked(0x83, &[0]), ProtocolError::ReservedOpcode),
            (masked(0x8B, &[0]), ProtocolError::ReservedOpcode),
            (vec![0x81, 0x00], ProtocolError::UnmaskedFrame),
            (masked(0x09, &[0]), ProtocolError::FragmentedControlFrame),
            (masked(0x89, &[126, 0, 126]), ProtocolError::ControlFrameTooLong),
            (masked(0x82, &[126, 0, 125]), ProtocolError::NonMinimalLength),
        ];
        for (buf, err) in cases {
            assert_eq!(FrameHeader::parse(&buf, false), Err(err), "{buf:x?}");
        }
        let top_bit = masked(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(FrameHeader::parse(&top_bit, false), Err(ProtocolError::NonMinimalLength));
        let short64 = masked(0x82, &[127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]);
        assert_eq!(FrameHeader::parse(&short64, false), Err(ProtocolError::NonMinimalLength));
        assert!(FrameHeader::parse(&masked(0xC1, &[0]), true).unwrap().unwrap().0.rsv1);
    }

    #[test]
    fn encodes_the_minimal_length_form() {
        for (len, header_len) in [(0u64, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            encode_header(&mut out, true, false, OpCode::Text, len);
            assert_eq!(out.len(), header_len, "length {len}");
            assert_eq!(out[0], 0x81);
        }
    }
}
