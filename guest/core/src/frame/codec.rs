//! The streaming frame decoder: a push parser that never buffers a payload.

use super::header::{FrameHeader, MAX_HEADER_LEN};
use crate::error::ProtocolError;

/// What the decoder read from the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// A frame header that passed every header check and the frame-size limit.
    Header(FrameHeader),
    /// Payload bytes of the current frame, still masked: byte 0 is payload
    /// byte number `offset`. `last` is true when the frame is complete. A
    /// frame with an empty payload yields one empty chunk with `last` set.
    Payload {
        /// The bytes as they arrived (masked).
        masked: &'a [u8],
        /// Index of `masked[0]` within the frame's payload.
        offset: usize,
        /// True on the frame's final chunk.
        last: bool,
    },
}

/// Splits a byte stream into frame headers and payload chunks as the bytes
/// arrive, so that text can be validated before a frame is complete and no
/// frame is held in memory by the decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// The frame whose payload is being read, with the bytes read so far.
    current: Option<(FrameHeader, u64)>,
}

impl Decoder {
    /// Reads the next chunk from `input`, advancing it past what was used.
    ///
    /// `Ok(None)` means `input` is used up (a partial header is kept).
    /// `allow_rsv1` is true when an extension gave RSV1 a meaning.
    pub fn decode<'a>(
        &mut self,
        input: &mut &'a [u8],
        allow_rsv1: bool,
        max_frame_size: u64,
    ) -> Result<Option<Chunk<'a>>, ProtocolError> {
        if let Some((header, read)) = &mut self.current {
            let left = header.payload_len - *read;
            if left > 0 && input.is_empty() {
                return Ok(None);
            }
            let n = left.min(input.len() as u64) as usize;
            let (masked, rest) = input.split_at(n);
            *input = rest;
            let offset = *read as usize;
            *read += n as u64;
            let last = *read == header.payload_len;
            if last {
                self.current = None;
            }
            return Ok(Some(Chunk::Payload { masked, offset, last }));
        }
        // Gather at most one header's worth of bytes, parse, give back the rest.
        let had = self.header_len;
        let take = (MAX_HEADER_LEN - had).min(input.len());
        self.header[had..had + take].copy_from_slice(&input[..take]);
        match FrameHeader::parse(&self.header[..had + take], allow_rsv1)? {
            Some((header, len)) => {
                *input = &input[len - had..];
                self.header_len = 0;
                if header.payload_len > max_frame_size {
                    return Err(ProtocolError::FrameTooLarge);
                }
                self.current = Some((header, 0));
                Ok(Some(Chunk::Header(header)))
            }
            None => {
                *input = &input[take..];
                self.header_len = had + take;
                Ok(None)
            }
        }
    }

    /// True between frames (no partial header, no payload left to read).
    pub fn is_idle(&self) -> bool {
        self.header_len == 0 && self.current.is_none()
    }
}
