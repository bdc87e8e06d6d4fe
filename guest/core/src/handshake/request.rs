//! Parsing and checking the client's upgrade request (RFC 6455 §4.2.1).

use crate::close::CloseCode;
use base64::Engine;

/// Most headers a request may carry; more is answered with 431.
const MAX_HEADERS: usize = 128;

/// A well-formed WebSocket upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request target as sent: path and query (`/chat?room=1`).
    pub target: String,
    /// Every header in order, names lower-cased (Qt 6.8+ does the same).
    pub headers: Vec<(String, String)>,
    /// The `Host` header.
    pub host: String,
    /// The `Sec-WebSocket-Key` header.
    pub key: String,
    /// The `Origin` header, "" when absent (Qt's `origin()`).
    pub origin: String,
    /// Every subprotocol offered, in the client's order (Qt's `handshakeOptions().subprotocols()`).
    pub subprotocols: Vec<String>,
    /// Every `Sec-WebSocket-Extensions` header value, in order (the offers
    /// are parsed by the extension's negotiation).
    pub extensions: Vec<String>,
}

impl Request {
    /// The path part of the target (Qt's `resourceName` is the whole URL;
    /// wsbox gives the path, and the URL through `request_url`).
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// `ws://` or `wss://`, then the `Host` header, then the target.
    pub fn url(&self, secure: bool) -> String {
        let scheme = if secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.host, self.target)
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why an upgrade request was refused, with the HTTP status it is answered
/// with and the close code Qt reports through `serverError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The request head passed the size limit (or had too many headers).
    HeadTooLarge,
    /// Not parseable as an HTTP/1.1 request, or a required header is missing
    /// or invalid. The text says which.
    Malformed(&'static str),
    /// A plain HTTP request: no `Upgrade: websocket`.
    NotUpgrade,
    /// A method other than GET.
    MethodNotAllowed,
    /// `Sec-WebSocket-Version` does not offer 13.
    UnsupportedVersion,
}

impl HandshakeError {
    /// Status code and reason phrase of the HTTP response.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Self::HeadTooLarge => (431, "Request Header Fields Too Large"),
            Self::Malformed(_) | Self::NotUpgrade => (400, "Bad Request"),
            Self::MethodNotAllowed => (405, "Method Not Allowed"),
            Self::UnsupportedVersion => (426, "Upgrade Required"),
        }
    }

    /// The close code Qt's `serverError` carries for this refusal.
    pub fn close_code(self) -> CloseCode {
        match self {
            Self::HeadTooLarge => CloseCode::TOO_MUCH_DATA,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A header the response must carry, if any.
    pub fn extra_header(self) -> Option<&'static str> {
        match self {
            Self::UnsupportedVersion => Some("Sec-WebSocket-Version: 13"),
            Self::MethodNotAllowed => Some("Allow: GET"),
            _ => None,
        }
    }

    /// Text for `errorString()` and the response body.
    pub fn message(self) -> &'static str {
        match self {
            Self::HeadTooLarge => "Header is too large.",
            Self::Malformed(detail) => detail,
            Self::NotUpgrade => "Invalid handshake request: not a WebSocket upgrade (no 'Upgrade: websocket').",
            Self::MethodNotAllowed => "Invalid handshake request: the method must be GET.",
            Self::UnsupportedVersion => "Unsupported version requested.",
        }
    }
}

/// Whether the complete request head in `buf` is a plain `GET` or `HEAD` of
/// `path` (any query, HTTP/1.0 or 1.1, no `Upgrade` header): a load
/// balancer's health check, or the server's page. `Some(true)` for a
/// `HEAD`. An upgrade request that failed is never one: it gets its own
/// refusal, not a 200.
pub fn plain_get(buf: &[u8], path: &str) -> Option<bool> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(buf), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    if req.headers.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade")) {
        return None;
    }
    let target = req.path?;
    let asked = target.split_once('?').map_or(target, |(p, _)| p);
    let head_only = match req.method? {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    (asked == path).then_some(head_only)
}

/// Parses an upgrade request from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet (and `buf` is within
/// `max_head`). `Ok(Some((request, n)))`: the head was `n` bytes; anything
/// after it is frame data the client sent early.
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<(Request, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= max_head => n,
        Ok(httparse::Status::Complete(_)) => return Err(HandshakeError::HeadTooLarge),
        Ok(httparse::Status::Partial) if buf.len() > max_head => return Err(HandshakeError::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadTooLarge),
        Err(httparse::Error::Version) => {
            return Err(HandshakeError::Malformed("Invalid handshake request: not an HTTP/1.1 request."));
        }
        Err(_) => return Err(HandshakeError::Malformed("Invalid handshake request: malformed HTTP.")),
    };
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default().to_string();
    if req.version != Some(1) {
        return Err(HandshakeError::Malformed("Invalid handshake request: HTTP/1.1 or later is required."));
    }
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
        .collect();
    let all = |name: &'static str| headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str());
    let tokens = |name: &'static str| -> Vec<String> {
        all(name).flat_map(|v| v.split(',')).map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
    };

    let upgrade = tokens("upgrade");
    if !upgrade.iter().any(|t| t.eq_ignore_ascii_case("websocket")) {
        return Err(HandshakeError::NotUpgrade);
    }
    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if !target.starts_with('/') && !target.contains("://") {
        return Err(HandshakeError::Malformed("Invalid handshake request: bad request target."));
    }
    if !tokens("connection").iter().any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return Err(HandshakeError::Malformed("Invalid handshake request: 'Connection' does not contain 'Upgrade'."));
    }
    let host = all("host").next().unwrap_or_default().to_string();
    if host.is_empty() {
        return Err(HandshakeError::Malformed("Invalid handshake request: no 'Host' header."));
    }
    let key = all("sec-websocket-key").next().unwrap_or_default().to_string();
    let key_ok = base64::engine::general_purpose::STANDARD.decode(&key).is_ok_and(|k| k.len() == 16);
    if !key_ok {
        return Err(HandshakeError::Malformed(
            "Invalid handshake request: 'Sec-WebSocket-Key' is not 16 bytes in base64.",
        ));
    }
    let versions = tokens("sec-websocket-version");
    if versions.is_empty() {
        return Err(HandshakeError::Malformed("Invalid handshake request: no 'Sec-WebSocket-Version' header."));
    }
    if !versions.iter().any(|v| v == "13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let request = Request {
        target,
        host,
        key,
        origin: all("origin").next().unwrap_or_default().to_string(),
        subprotocols: tokens("sec-websocket-protocol"),
        extensions: all("sec-websocket-extensions").map(String::from).collect(),
        headers,
    };
    Ok(Some((request, head_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: example.com:1234\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8, 13\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: other\r\n\r\n";

    #[test]
    fn a_good_request_parses_at_every_cut() {
        let bytes = GOOD.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(parse_request(&bytes[..cut], 65536), Ok(None), "cut {cut}");
        }
        let (req, n) = parse_request(bytes, 65536).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.url(false), "ws://example.com:1234/chat?x=1");
        assert_eq!(req.origin, "http://example.com");
        assert_eq!(req.subprotocols, ["chat", "superchat", "other"]);
        assert_eq!(req.header("upgrade"), Some("websocket"));
    }

    fn with(replace: &str, by: &str) -> Result<Option<(Request, usize)>, HandshakeError> {
        let text = GOOD.replace(replace, by);
        parse_request(text.as_bytes(), 65536)
    }

    #[test]
    fn each_broken_rule_has_its_status() {
        let status = |r: Result<Option<(Request, usize)>, HandshakeError>| r.unwrap_err().status().0;
        assert_eq!(status(with("GET", "POST")), 405);
        assert_eq!(status(with("Upgrade: websocket\r\n", "")), 400);
        assert_eq!(status(with("keep-alive, Upgrade", "keep-alive")), 400);
        assert_eq!(status(with("Host: example.com:1234\r\n", "")), 400);
        assert_eq!(status(with("dGhlIHNhbXBsZSBub25jZQ==", "short")), 400);
        assert_eq!(status(with("8, 13", "8")), 426);
        assert_eq!(status(with("Sec-WebSocket-Version: 8, 13\r\n", "")), 400);
        assert_eq!(status(with("HTTP/1.1", "HTTP/1.0")), 400);
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(70_000));
        assert_eq!(parse_request(huge.as_bytes(), 65536).unwrap_err().status().0, 431);
    }

    #[test]
    fn a_plain_get_is_not_an_upgrade() {
        let r = parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 65536);
        assert_eq!(r, Err(HandshakeError::NotUpgrade));
        assert_eq!(HandshakeError::NotUpgrade.status(), (400, "Bad Request"));
    }
}
