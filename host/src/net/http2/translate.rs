//! The two translations that let the guest serve an HTTP/2 stream with the
//! HTTP/1.1 handshake it already knows: an extended CONNECT (RFC 8441)
//! becomes the upgrade request an HTTP/1.1 client would have sent, and the
//! guest's HTTP/1.1 answer becomes the stream's response head (`101` →
//! `200`, without the headers that only mean something to HTTP/1.1).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};

/// The `Sec-WebSocket-Key` the host puts in a translated request. HTTP/2
/// has no key (the stream is the proof); the guest's handshake wants one,
/// and its `Sec-WebSocket-Accept` is dropped from the answer.
const KEY: &str = "d3Nib3ggaHR0cC8yIGtleQ==";

/// Request headers never copied: HTTP/1.1's connection-specific ones (RFC
/// 9113 §8.2.2 forbids them on HTTP/2 anyway) and those the translation
/// writes itself.
const SKIPPED_REQUEST: [&str; 8] =
    ["host", "connection", "upgrade", "sec-websocket-key", "keep-alive", "proxy-connection", "transfer-encoding", "te"];

/// Response headers never copied: connection-specific ones and the
/// answer to the key the host made up.
const SKIPPED_RESPONSE: [&str; 7] =
    ["connection", "upgrade", "sec-websocket-accept", "keep-alive", "proxy-connection", "transfer-encoding", "te"];

/// What an HTTP/2 request asks of the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// An extended CONNECT with `:protocol = websocket`: a WebSocket.
    WebSocket,
    /// A `GET` or `HEAD`, which the guest answers as it answers a plain
    /// HTTP/1.1 request (on the health check's path; elsewhere `404`).
    Plain,
    /// An extended CONNECT for another protocol: `501`.
    UnknownProtocol,
    /// Anything else (a plain CONNECT, another method): answered by the host.
    Other,
}

/// Sorts a request by what it asks.
pub fn asked<B>(request: &Request<B>, protocol: Option<&str>) -> Asked {
    match (request.method(), protocol) {
        (&http::Method::CONNECT, Some(p)) if p.eq_ignore_ascii_case("websocket") => Asked::WebSocket,
        (&http::Method::CONNECT, Some(_)) => Asked::UnknownProtocol,
        (&http::Method::GET | &http::Method::HEAD, None) => Asked::Plain,
        _ => Asked::Other,
    }
}

/// The HTTP/1.1 request the guest reads for `request`: the upgrade request
/// for a WebSocket, else the plain request line and headers.
pub fn request_head<B>(request: &Request<B>, kind: &Asked) -> Vec<u8> {
    let uri = request.uri();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    // `:authority`, or a `Host` header where a client sent that instead.
    let host = request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
    let authority = uri.authority().map(|a| a.as_str()).or(host).unwrap_or("");
    let method = if *kind == Asked::WebSocket { "GET" } else { request.method().as_str() };
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(format!("{method} {target} HTTP/1.1\r\nhost: {authority}\r\n").as_bytes());
    if *kind == Asked::WebSocket {
        head.extend_from_slice(
            format!("connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: {KEY}\r\n").as_bytes(),
        );
    }
    // HTTP/2 may split the cookies over several fields; HTTP/1.1 has one
    // (RFC 9113 §8.2.3).
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in request.headers() {
        if SKIPPED_REQUEST.contains(&name.as_str()) {
            continue;
        }
        if name == http::header::COOKIE {
            cookies.push(value.as_bytes());
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !cookies.is_empty() {
        head.extend_from_slice(b"cookie: ");
        head.extend_from_slice(&cookies.join(&b"; "[..]));
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// How far the guest's answer has come.
#[derive(Debug)]
pub enum Answer {
    /// The head is not whole yet.
    Partial,
    /// The head, as the stream's response, and where the body (or, after a
    /// `101`, the WebSocket frames) starts in the guest's bytes.
    Head { response: Response<()>, upgraded: bool, body_at: usize },
    /// Not an HTTP/1.1 response head the host can translate.
    Invalid(&'static str),
}

/// Parses the guest's answer to a translated request.
pub fn answer(bytes: &[u8]) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let body_at = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Answer::Partial,
        Err(_) => return Answer::Invalid("the guest's answer is not an HTTP/1.1 response"),
    };
    let Some(code) = parsed.code else { return Answer::Invalid("no status") };
    let upgraded = code == 101;
    let status = if upgraded { StatusCode::OK } else { StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY) };
    let mut map = HeaderMap::new();
    for header in parsed.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else { continue };
        // A 2xx answer to CONNECT carries no content-length (RFC 9110 §9.3.6).
        if SKIPPED_RESPONSE.contains(&name.as_str()) || (upgraded && name == http::header::CONTENT_LENGTH) {
            continue;
        }
        if let Ok(value) = HeaderValue::from_bytes(header.value) {
            map.append(name, value);
        }
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = map;
    Answer::Head { response, upgraded, body_at }
}

/// A response the host gives itself, with a short text body.
pub fn host_response(status: StatusCode, text: &'static str) -> (Response<()>, Bytes) {
    let mut response = Response::new(());
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    (response, Bytes::from_static(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(protocol_headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method("CONNECT").uri("https://example.com:1443/chat?room=1");
        for (name, value) in protocol_headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn an_extended_connect_becomes_an_upgrade_request_with_every_header_kept() {
        let request = connect(&[
            ("sec-websocket-version", "13"),
            ("origin", "https://example.com"),
            ("sec-websocket-protocol", "chat, superchat"),
            ("sec-websocket-extensions", "permessage-deflate"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]);
        assert_eq!(asked(&request, Some("websocket")), Asked::WebSocket);
        let head = String::from_utf8(request_head(&request, &Asked::WebSocket)).unwrap();
        assert_eq!(
            head,
            format!(
                "GET /chat?room=1 HTTP/1.1\r\nhost: example.com:1443\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
                 sec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\norigin: https://example.com\r\n\
                 sec-websocket-protocol: chat, superchat\r\nsec-websocket-extensions: permessage-deflate\r\n\
                 cookie: a=1; b=2\r\n\r\n"
            )
        );
    }

    #[test]
    fn requests_are_sorted_by_what_they_ask() {
        assert_eq!(asked(&connect(&[]), Some("WebSocket")), Asked::WebSocket);
        assert_eq!(asked(&connect(&[]), Some("webtransport")), Asked::UnknownProtocol);
        assert_eq!(asked(&connect(&[]), None), Asked::Other);
        let get = Request::builder().uri("https://example.com/healthz").body(()).unwrap();
        assert_eq!(asked(&get, None), Asked::Plain);
        assert!(request_head(&get, &Asked::Plain).starts_with(b"GET /healthz HTTP/1.1\r\nhost: example.com\r\n"));
        let post = Request::builder().method("POST").uri("https://example.com/").body(()).unwrap();
        assert_eq!(asked(&post, None), Asked::Other);
    }

    #[test]
    fn a_101_becomes_200_without_the_headers_that_only_http1_reads() {
        let bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Accept: abc=\r\nSec-WebSocket-Protocol: chat\r\n\
                      Sec-WebSocket-Extensions: permessage-deflate\r\nServer: wsbox\r\n\r\n\x81\x02hi";
        let Answer::Head { response, upgraded, body_at } = answer(bytes) else { panic!("a whole head") };
        assert!(upgraded);
        assert_eq!(response.status(), StatusCode::OK);
        let names: Vec<&str> = response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["sec-websocket-protocol", "sec-websocket-extensions", "server"]);
        assert_eq!(&bytes[body_at..], b"\x81\x02hi");
    }

    #[test]
    fn a_refusal_keeps_its_status_and_body_and_a_partial_head_waits() {
        let bytes = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin";
        let Answer::Head { response, upgraded, body_at } = answer(bytes) else { panic!("a whole head") };
        assert!(!upgraded);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()["content-length"], "6");
        assert!(response.headers().get("connection").is_none());
        assert_eq!(&bytes[body_at..], b"origin");
        assert!(matches!(answer(b"HTTP/1.1 101 Switching"), Answer::Partial));
        assert!(matches!(answer(b"\x81\x02hi"), Answer::Invalid(_)));
    }
}
