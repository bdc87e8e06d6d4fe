//! The compressor and decompressor of one connection.

use super::negotiate::DeflateParams;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The four bytes a sync flush ends with; stripped from each compressed
/// message and added back before inflating (RFC 7692 §7.2.1, §7.2.2).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Largest output produced per inflate call, so a decompression bomb is
/// caught within one chunk of the limit.
const INFLATE_CHUNK: usize = 64 * 1024;

/// Compresses outgoing messages.
pub struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("no_context_takeover", &self.no_context_takeover).finish()
    }
}

impl Deflater {
    /// A compressor for the negotiated window. zlib cannot compress raw
    /// deflate with a 256-byte window, so for `server_max_window_bits=8`
    /// messages are sent as stored blocks: valid deflate, never a back
    /// reference, so any window the peer has is enough.
    pub fn new(params: &DeflateParams, level: u32) -> Self {
        let bits = params.server_max_window_bits.max(9);
        let level =
            if params.server_max_window_bits < 9 { Compression::none() } else { Compression::new(level.min(9)) };
        Self {
            compress: Compress::new_with_window_bits(level, false, bits),
            no_context_takeover: params.server_no_context_takeover,
        }
    }

    /// Replaces `out` with the compressed form of `input`, sync tail removed.
    pub fn compress_message(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let start = self.compress.total_in();
        loop {
            out.reserve(input.len() / 2 + 64);
            let consumed = (self.compress.total_in() - start) as usize;
            // Compressing into a Vec with spare room cannot fail.
            let _ = self.compress.compress_vec(&input[consumed..], out, FlushCompress::Sync);
            let consumed = (self.compress.total_in() - start) as usize;
            if consumed == input.len() && out.len() < out.capacity() && out.ends_with(&SYNC_TAIL) {
                break;
            }
        }
        out.truncate(out.len() - SYNC_TAIL.len());
        if self.no_context_takeover {
            self.compress.reset();
        }
    }
}

/// Why inflating failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would pass the size limit.
    TooLarge,
    /// Not valid deflate data.
    Corrupt,
}

/// Decompresses incoming messages, streaming.
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("no_context_takeover", &self.no_context_takeover).finish()
    }
}

impl Inflater {
    /// A decompressor for the client's negotiated window.
    pub fn new(params: &DeflateParams) -> Self {
        Self {
            decompress: Decompress::new_with_window_bits(false, params.client_max_window_bits.max(9)),
            no_context_takeover: params.client_no_context_takeover,
        }
    }

    /// Inflates `input` (part of a compressed message) onto `out`, failing
    /// as soon as `out` passes `limit` bytes. The buffer grows by doubling
    /// but never past `limit` plus one chunk, so a small frame that would
    /// inflate to gigabytes (a decompression bomb) allocates no more than
    /// the limit before it is refused.
    pub fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), InflateError> {
        let ceiling = usize::try_from(limit).unwrap_or(usize::MAX).saturating_add(INFLATE_CHUNK);
        loop {
            if out.capacity() - out.len() < 1024 {
                // Double (from 4 KiB), but never past the limit plus a chunk.
                let grow = out.len().clamp(4096, INFLATE_CHUNK);
                let target = (out.len() + grow).min(ceiling).max(out.len() + 1);
                out.reserve_exact(target - out.len());
            }
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let result = self.decompress.decompress_vec(input, out, FlushDecompress::Sync);
            let read = (self.decompress.total_in() - in_before) as usize;
            let written = (self.decompress.total_out() - out_before) as usize;
            input = &input[read..];
            result.map_err(|_| InflateError::Corrupt)?;
            if out.len() as u64 > limit {
                return Err(InflateError::TooLarge);
            }
            let output_room_left = out.len() < out.capacity();
            if input.is_empty() && output_room_left {
                return Ok(());
            }
            if read == 0 && written == 0 && output_room_left {
                // Input left that the stream will not take (data after a final block).
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// Ends a message: inflates the sync tail, resets when the client does
    /// not keep its context.
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: u64) -> Result<(), InflateError> {
        self.inflate(&SYNC_TAIL, out, limit)?;
        if self.no_context_takeover {
            self.decompress.reset(false);
        }
        Ok(())
    }
}
