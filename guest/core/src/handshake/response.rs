//! The server's handshake responses.

use std::fmt::Write;

/// Appends the `101 Switching Protocols` response to `out`.
pub fn write_upgrade_response(
    out: &mut Vec<u8>,
    accept: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    server_name: &str,
) {
    let mut head = String::with_capacity(256);
    head.push_str("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    let _ = write!(head, "Sec-WebSocket-Accept: {accept}\r\n");
    if let Some(p) = subprotocol {
        let _ = write!(head, "Sec-WebSocket-Protocol: {p}\r\n");
    }
    if let Some(e) = extensions {
        let _ = write!(head, "Sec-WebSocket-Extensions: {e}\r\n");
    }
    if !server_name.is_empty() {
        let _ = write!(head, "Server: {}\r\n", header_safe(server_name));
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
}

/// Appends an HTTP error response (a refused upgrade) to `out`: `body` as
/// plain text, plus `extra_header` (a whole `Name: value` line) if given.
pub fn write_error_response(
    out: &mut Vec<u8>,
    status: u16,
    phrase: &str,
    body: &str,
    extra_header: Option<&str>,
    server_name: &str,
) {
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n",
        header_safe(phrase)
    );
    let _ = write!(head, "Content-Length: {}\r\n", body.len() + 1);
    if let Some(line) = extra_header {
        let _ = write!(head, "{}\r\n", header_safe(line));
    }
    if !server_name.is_empty() {
        let _ = write!(head, "Server: {}\r\n", header_safe(server_name));
    }
    let _ = write!(head, "\r\n{body}\n");
    out.extend_from_slice(head.as_bytes());
}

/// Appends the `200` answer to a plain `GET` of the server's page (only
/// its head for a `HEAD`).
pub fn write_page_response(out: &mut Vec<u8>, page: &Page, head_only: bool, server_name: &str) {
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        header_safe(&page.content_type),
        page.body.len()
    );
    if !server_name.is_empty() {
        let _ = write!(head, "Server: {}\r\n", header_safe(server_name));
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    if !head_only {
        out.extend_from_slice(&page.body);
    }
}

/// A page the server answers plain `GET`s of its path with (no upgrade):
/// the example client, say, so a browser pointed at the server finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Its path (`/`).
    pub path: String,
    /// Its `Content-Type` (`text/html; charset=utf-8`).
    pub content_type: String,
    /// Shared by every connection's configuration, never copied.
    pub body: std::sync::Arc<[u8]>,
}

/// A server name cannot end the header early: control characters are dropped.
fn header_safe(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}
