//! `Sec-WebSocket-Accept` (RFC 6455 §4.2.2 item 5.4).

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID every server appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Base64 of the SHA-1 of the client's key followed by the RFC's GUID.
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.trim().as_bytes());
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_example_of_rfc_6455_section_1_3() {
        assert_eq!(super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
