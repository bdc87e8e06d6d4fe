//! Message assembly: fragments joined into messages, text validated as it arrives.

mod assembler;
mod utf8;

pub use assembler::{Assembler, Delivered, MessageKind, RETAINED_CAPACITY};
pub use utf8::{InvalidUtf8, Utf8Validator};
