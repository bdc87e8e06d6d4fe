//! permessage-deflate (RFC 7692): negotiation of the extension's parameters
//! and the per-connection compressor and decompressor. The deflate work
//! itself is `flate2` on the pure-Rust `zlib-rs` backend (which also builds
//! for `wasm32-wasip2`); nothing here is hand-written deflate.

mod codec;
mod negotiate;

pub use codec::{CompressorKey, Deflater, InflateError, Inflater, compress_fresh};
pub use negotiate::{DeflateConfig, DeflateParams, ExtensionOffer, negotiate, parse_offers};
