//! The frame codec (RFC 6455 §5): header parsing with every limit checked
//! before the payload is read, masking, and server-side frame encoding.

mod codec;
mod header;
mod mask;
mod opcode;

pub use codec::{Chunk, Decoder};
pub use header::{FrameHeader, MAX_HEADER_LEN, encode_header};
pub use mask::{apply_mask, unmask_into};
pub use opcode::OpCode;
