//! Upgrade requests as clients send them.

/// The `Sec-WebSocket-Key` of every request built here (RFC 6455 §1.3's).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`KEY`] (RFC 6455 §1.3).
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// RFC 6455's example request, with an origin: what the core tests feed.
pub const UPGRADE: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example:1234\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Origin: http://example.com\r\n\r\n";

/// A request head for `target` on `host` with the usual upgrade headers
/// plus `extra` lines (`"Origin: http://a"`, an extension offer...).
pub fn request(target: &str, host: &str, extra: &[&str]) -> String {
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}
