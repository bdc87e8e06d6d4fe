//! The opening handshake, through the connection (RFC 6455 §4.2).

use wsbox_core::{Config, Limits, Page, State, Transport};
use wsbox_testkit::driver::*;

#[test]
fn upgrade_is_answered_with_101_and_the_accept_key() {
    let o = run_default(b"");
    assert!(o.http.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{}", o.http);
    assert!(o.http.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(o.http.contains("Upgrade: websocket\r\nConnection: Upgrade\r\n"));
    assert!(!o.http.contains("Sec-WebSocket-Protocol"));
    assert_eq!(o.events, [Ev::UpgradeRequested, Ev::Upgraded]);
    assert_eq!(o.state, State::Open);
}

#[test]
fn request_details_are_kept() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    let r = d.conn.request().expect("request");
    assert_eq!(r.path(), "/chat");
    assert_eq!(r.url(false), "ws://server.example:1234/chat?room=1");
    assert_eq!(r.url(true), "wss://server.example:1234/chat?room=1");
    assert_eq!(r.origin, "http://example.com");
}

#[test]
fn server_name_becomes_the_server_header() {
    let config = Config { server_name: "QtWebSockets echo".into(), ..Config::default() };
    let o = run(config, true, b"");
    assert!(o.http.contains("Server: QtWebSockets echo\r\n"));
    let o = run(Config::default(), true, b"");
    assert!(!o.http.contains("Server:"));
}

#[test]
fn subprotocol_is_the_first_client_offer_that_matches() {
    let request = String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replace("Origin:", "Sec-WebSocket-Protocol: v1.chat, v2.chat\r\nSec-WebSocket-Protocol: v3.chat\r\nOrigin:");
    let config = Config { subprotocols: vec!["v3.chat".into(), "v2.chat".into()], ..Config::default() };
    let o = run(config.clone(), false, request.as_bytes());
    assert!(o.http.contains("Sec-WebSocket-Protocol: v2.chat\r\n"), "{}", o.http);
    let mut d = Driver::new(config);
    d.feed(0, request.as_bytes());
    assert_eq!(d.conn.subprotocol(), Some("v2.chat"));
}

#[test]
fn a_plain_http_request_gets_400() {
    let o = run(Config::default(), false, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(o.http.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{}", o.http);
    assert_eq!(o.events, [Ev::Refused(400)]);
    assert_eq!((o.transport, o.state), (Transport::Close, State::Closed));
}

#[test]
fn a_health_check_waits_for_its_answer_and_other_plain_requests_still_get_400() {
    let config = Config { health_check_path: Some("/healthz".into()), ..Config::default() };
    let answered = |request: &str, serving: bool| {
        let mut d = Driver::new(config.clone());
        d.feed(0, request.as_bytes());
        assert_eq!(d.events, [Ev::HealthCheck], "{request}");
        d.feed(1, b"more bytes are ignored");
        d.conn.answer_health_check(serving);
        d.conn.answer_health_check(serving);
        let mut out = Vec::new();
        d.conn.take_transmit(&mut out);
        assert_eq!((d.conn.transport(), d.conn.state()), (Transport::Close, State::Closed));
        String::from_utf8(out).unwrap()
    };
    let ok = answered("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", true);
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nserving\n"), "{ok}");
    let draining = answered("GET /healthz?probe=1 HTTP/1.0\r\n\r\n", false);
    assert!(draining.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{draining}");
    assert!(draining.ends_with("not serving\n"), "{draining}");
    let head = answered("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", true);
    assert!(head.contains("Content-Length: 8\r\n") && head.ends_with("\r\n\r\n"), "{head}");
    for other in [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthzz HTTP/1.1\r\n\r\n",
    ] {
        let o = run(config.clone(), false, other.as_bytes());
        assert_eq!(o.events, [Ev::Refused(400)], "{other}");
    }
    let o = run(Config::default(), false, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(o.events, [Ev::Refused(400)], "no health check unless configured");
}

#[test]
fn a_page_answers_plain_gets_of_its_path_while_upgrades_there_still_upgrade() {
    let page =
        Page { path: "/".into(), content_type: "text/html; charset=utf-8".into(), body: b"<p>hi</p>"[..].into() };
    let config = Config { page: Some(page), server_name: "wsbox".into(), ..Config::default() };
    let answer = |request: &str| {
        let o = run(config.clone(), false, request.as_bytes());
        assert_eq!((o.transport, o.state), (Transport::Close, State::Closed), "{request}");
        o.http
    };
    let get = answer("GET /?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
    assert!(get.contains("Content-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n"), "{get}");
    assert!(get.contains("Server: wsbox\r\n") && get.ends_with("\r\n\r\n<p>hi</p>"), "{get}");
    let head = answer("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.contains("Content-Length: 9\r\n") && head.ends_with("\r\n\r\n"), "{head}");
    assert!(answer("GET /other HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let upgrade = String::from_utf8(UPGRADE.to_vec()).unwrap().replace("GET /chat?room=1", "GET /");
    let o = run(config.clone(), true, upgrade.as_bytes());
    assert!(o.http.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{}", o.http);
    // An upgrade on / that fails gets its refusal, not the page.
    let old_version = upgrade.replace("Version: 13", "Version: 8");
    assert!(answer(&old_version).starts_with("HTTP/1.1 426 "), "{}", answer(&old_version));
    let no_key = upgrade.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert!(answer(&no_key).starts_with("HTTP/1.1 400 "), "{}", answer(&no_key));
}

#[test]
fn an_unsupported_version_gets_426_with_the_supported_version() {
    let request = String::from_utf8(UPGRADE.to_vec()).unwrap().replace("Version: 13", "Version: 8");
    let o = run(Config::default(), false, request.as_bytes());
    assert!(o.http.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{}", o.http);
    assert!(o.http.contains("Sec-WebSocket-Version: 13\r\n"));
}

#[test]
fn a_non_get_upgrade_gets_405() {
    let request = String::from_utf8(UPGRADE.to_vec()).unwrap().replacen("GET", "POST", 1);
    let o = run(Config::default(), false, request.as_bytes());
    assert!(o.http.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{}", o.http);
}

#[test]
fn a_request_head_over_the_limit_gets_431() {
    let limits = Limits { max_request_head: 512, ..Limits::default() };
    let mut d = Driver::new(Config { limits, ..Config::default() });
    d.feed(0, b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ");
    d.feed(0, &[b'a'; 600]);
    assert!(d.outcome().http.starts_with("HTTP/1.1 431 "), "{}", d.outcome().http);
    assert_eq!(d.conn.transport(), Transport::Close);
}

#[test]
fn frames_sent_right_after_the_request_are_handled() {
    let o = run_default(&text("early"));
    assert_eq!(o.messages(), [Ev::Text("early".into())]);
}

#[test]
fn the_handshake_deadline_drops_the_connection_without_a_response() {
    let mut d = Driver::new(Config::default());
    d.feed(0, b"GET / HTTP/1.1\r\n");
    assert_eq!(d.conn.poll_timeout(), Some(10_000));
    d.conn.handle_timeout(9_999);
    assert_eq!(d.conn.transport(), Transport::Open);
    d.conn.handle_timeout(10_000);
    d.collect(10_000);
    assert_eq!(d.conn.transport(), Transport::Abort);
    assert!(d.out.is_empty());
    assert!(!d.events.contains(&Ev::Disconnected));
}

#[test]
fn a_disabled_handshake_timeout_sets_no_deadline() {
    let limits = Limits { handshake_timeout_ms: None, ..Limits::default() };
    let d = Driver::new(Config { limits, ..Config::default() });
    assert_eq!(d.conn.poll_timeout(), None);
}

#[test]
fn a_refused_upgrade_gets_the_chosen_status() {
    let mut d = Driver::new(Config::default());
    d.auto_accept = false;
    d.feed(0, UPGRADE);
    assert_eq!(d.events, [Ev::UpgradeRequested]);
    d.conn.refuse_upgrade(503, "Service Unavailable", "Too many pending connections.");
    d.collect(0);
    let o = d.outcome();
    assert!(o.http.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{}", o.http);
    assert!(o.http.ends_with("Too many pending connections.\n"));
    assert_eq!(o.transport, Transport::Close);
}
