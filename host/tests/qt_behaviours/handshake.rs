//! Qt's behaviours in the opening handshake (1–12).

use crate::app::App;
use crate::raw::{self, ACCEPT, Raw};
use crate::{sock, srv};
use std::thread;
use std::time::{Duration, Instant};
use wsbox::bindings::api::{CompressionOptions, Event};

/// 1. The deadline starts when the connection is taken; at expiry TCP is
/// closed with no response and no signal; a negative value disables it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b01_the_handshake_deadline_drops_silent_and_half_requests_without_a_response() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_set_handshake_timeout, 300);
    assert_eq!(srv!(app, call_handshake_timeout), 300);
    let client = thread::spawn(move || {
        let mut silent = Raw::connect(port);
        let mut half = Raw::connect(port);
        half.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        let started = Instant::now();
        let (a, b) = (silent.rest(), half.rest());
        (a, b, started.elapsed())
    });
    let (silent, half, took) = app.serve(client).await;
    assert_eq!((silent.as_str(), half.as_str()), ("", ""), "no HTTP response at the deadline");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "dropped after {took:?}");
    assert!(app.server_errors().is_empty() && app.new_connections() == 0, "no signal: {:?}", app.events);

    srv!(app, call_set_handshake_timeout, -1);
    assert_eq!(srv!(app, call_handshake_timeout), -1);
    let client = thread::spawn(move || Raw::connect(port).ends_within(Duration::from_millis(700)));
    assert!(!app.serve(client).await, "a disabled deadline keeps the connection");
}

/// 2. (Does better) The request head is capped at 64 KiB, not ~800 KiB, and
/// answered with 431 instead of a bare close; `server-error` 1009 as in Qt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b02_an_oversized_request_head_gets_431_and_server_error_1009() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let mut raw = Raw::connect(port);
        let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
        let mut head = raw::request("/", &[]).trim_end().to_string();
        head.push_str("\r\n");
        for _ in 0..70 {
            head.push_str(&filler);
        }
        let _ = std::io::Write::write_all(&mut raw.stream, head.as_bytes());
        raw.response()
    });
    let response = app.serve(client).await;
    assert!(response.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{response}");
    app.until("server-error", |e| matches!(e, Event::ServerError(_))).await;
    assert_eq!(app.server_errors(), [(1009, "Header is too large.".to_string())]);
}

/// 3. (Does better) Past `max-pending-connections` the client gets 503
/// instead of a bare close; `server-error` 1006 "Too many pending connections.".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b03_past_max_pending_connections_a_client_gets_503_and_server_error_1006() {
    let (mut app, port) = App::listening().await;
    assert_eq!(srv!(app, call_max_pending_connections), 30, "Qt's default");
    srv!(app, call_set_max_pending_connections, 1);
    let first = thread::spawn(move || Raw::upgraded(port, "/first", &[]).0);
    let _first = app.serve(first).await;
    app.until("new-connection", |e| matches!(e, Event::NewConnection(_))).await;
    let second = thread::spawn(move || {
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/second", &[]).as_bytes());
        raw.response()
    });
    let response = app.serve(second).await;
    assert!(response.starts_with("HTTP/1.1 503 Service Unavailable"), "{response}");
    app.until("server-error", |e| matches!(e, Event::ServerError(_))).await;
    assert_eq!(app.server_errors(), [(1006, "Too many pending connections.".to_string())]);
    assert_eq!(srv!(app, call_server_error), 1006);
    assert_eq!(app.new_connections(), 1);
}

/// 4. (Does better) Malformed requests get an HTTP error instead of a bare
/// close, with `server-error` 1002; `Connection: keep-alive, Upgrade` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b04_malformed_requests_get_400_and_server_error_1002() {
    let (mut app, port) = App::listening().await;
    let bad = [
        "POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: close\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ];
    let client = thread::spawn(move || {
        let mut statuses = Vec::new();
        for request in bad {
            let mut raw = Raw::connect(port);
            raw.send(request.as_bytes());
            statuses.push(raw.response().lines().next().unwrap_or_default().to_string());
        }
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/", &[]).replace("Connection: Upgrade", "Connection: keep-alive, Upgrade").as_bytes());
        (statuses, raw.response())
    });
    let (statuses, keep_alive) = app.serve(client).await;
    for (status, want) in statuses.iter().zip(["405", "400", "400", "400", "400", "400"]) {
        assert!(status.starts_with(&format!("HTTP/1.1 {want} ")), "{statuses:?}");
    }
    assert!(keep_alive.starts_with("HTTP/1.1 101"), "{keep_alive}");
    app.turn(50).await;
    let errors = app.server_errors();
    assert_eq!(errors.len(), 6, "one server-error per refusal: {errors:?}");
    assert!(errors.iter().all(|(code, _)| *code == 1002), "{errors:?}");
}

/// 5. The origin policy: with origin authentication on, every well-formed
/// request waits for the app, which sees the whole request (gap 6) and may
/// refuse with a status; refused → 403 and `server-error` 1008
/// "Access forbidden.". A static allow-list does the same without the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b05_origin_authentication_sees_the_request_and_a_refusal_is_403_with_server_error_1008() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_set_origin_authentication, true);
    let client = thread::spawn(move || {
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/room?id=7", &["Origin: https://evil.example", "X-Token: t1"]).as_bytes());
        raw.response()
    });
    let asked =
        app.until("origin-authentication-required", |e| matches!(e, Event::OriginAuthenticationRequired(_))).await;
    let Event::OriginAuthenticationRequired(request) = asked else { unreachable!() };
    assert_eq!(request.origin, "https://evil.example");
    assert_eq!(request.target, "/room?id=7");
    assert!(request.headers.contains(&("x-token".to_string(), "t1".to_string())), "{:?}", request.headers);
    srv!(app, call_refuse_handshake, request.socket, 0, "Access forbidden.");
    let response = app.serve(client).await;
    assert!(response.starts_with("HTTP/1.1 403 Forbidden"), "{response}");
    app.until("server-error", |e| matches!(e, Event::ServerError(_))).await;
    assert_eq!(app.server_errors(), [(1008, "Access forbidden.".to_string())]);

    // Another status, then an accepted request (origin "" when absent).
    let client = thread::spawn(move || {
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/", &[]).as_bytes());
        let refused = raw.response();
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/", &[]).as_bytes());
        (refused, raw.response())
    });
    for status in [401, 0] {
        let asked = app.until("a request", |e| matches!(e, Event::OriginAuthenticationRequired(_))).await;
        let Event::OriginAuthenticationRequired(request) = asked else { unreachable!() };
        assert_eq!(request.origin, "");
        app.forget();
        if status == 401 {
            srv!(app, call_refuse_handshake, request.socket, 401, "log in first");
        } else {
            srv!(app, call_accept_handshake, request.socket);
        }
    }
    let (refused, accepted) = app.serve(client).await;
    assert!(refused.starts_with("HTTP/1.1 401 Unauthorized"), "{refused}");
    assert!(accepted.starts_with("HTTP/1.1 101"), "{accepted}");

    // The static list.
    srv!(app, call_set_origin_authentication, false);
    srv!(app, call_set_allowed_origins, &["https://good.example".to_string()]);
    let client = thread::spawn(move || {
        let mut statuses = Vec::new();
        for origin in ["Origin: https://good.example", "Origin: https://evil.example"] {
            let mut raw = Raw::connect(port);
            raw.send(raw::request("/", &[origin]).as_bytes());
            statuses.push(raw.response().lines().next().unwrap_or_default().to_string());
        }
        statuses
    });
    let statuses = app.serve(client).await;
    assert!(statuses[0].starts_with("HTTP/1.1 101") && statuses[1].starts_with("HTTP/1.1 403"), "{statuses:?}");
}

/// 6. (Does better) Without version 13 the answer is 426 Upgrade Required
/// (RFC 6455 §4.4; Qt says 400) with `Sec-WebSocket-Version: 13`;
/// `server-error` 1002 "Unsupported version requested."; "8, 13" is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b06_an_unsupported_version_gets_426_with_the_supported_one() {
    let (mut app, port) = App::listening().await;
    assert_eq!(srv!(app, call_supported_versions), [13]);
    let client = thread::spawn(move || {
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/", &[]).replace("Version: 13", "Version: 8").as_bytes());
        let refused = raw.response();
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/", &[]).replace("Version: 13", "Version: 8, 13").as_bytes());
        (refused, raw.response())
    });
    let (refused, accepted) = app.serve(client).await;
    assert!(refused.starts_with("HTTP/1.1 426 Upgrade Required"), "{refused}");
    assert!(refused.contains("Sec-WebSocket-Version: 13\r\n"), "{refused}");
    assert!(accepted.starts_with("HTTP/1.1 101"), "{accepted}");
    assert_eq!(app.server_errors(), [(1002, "Unsupported version requested.".to_string())]);
}

/// 7. The subprotocol is the client's first offer that the server supports
/// (case-sensitive); no match still upgrades, without the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b07_the_first_offered_supported_subprotocol_is_chosen() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_set_supported_subprotocols, &["chat".to_string(), "superchat".to_string()]);
    assert_eq!(srv!(app, call_supported_subprotocols), ["chat", "superchat"]);
    let client = thread::spawn(move || {
        let (_a, chosen) =
            Raw::upgraded(port, "/", &["Sec-WebSocket-Protocol: Chat, superchat", "Sec-WebSocket-Protocol: chat"]);
        let (_b, none) = Raw::upgraded(port, "/", &["Sec-WebSocket-Protocol: mqtt"]);
        (chosen, none, _a, _b)
    });
    let (chosen, none, _a, _b) = app.serve(client).await;
    assert!(chosen.contains("Sec-WebSocket-Protocol: superchat\r\n"), "{chosen}");
    assert!(!none.contains("Sec-WebSocket-Protocol"), "{none}");
    let first = app.take().await;
    assert_eq!(sock!(app, first, call_subprotocol), "superchat");
    assert_eq!(sock!(app, first, call_offered_subprotocols), ["Chat", "superchat", "chat"]);
    let second = app.take().await;
    assert_eq!(sock!(app, second, call_subprotocol), "");
}

/// 8. (Does better) Qt accepts no extension; wsbox negotiates
/// permessage-deflate when the server allows it and declines otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b08_extensions_only_permessage_deflate_and_only_when_enabled() {
    let (mut app, port) = App::listening().await;
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame";
    let client = thread::spawn(move || Raw::upgraded(port, "/", &[offer]));
    let (_raw, on) = app.serve(client).await;
    assert!(on.contains("Sec-WebSocket-Extensions: permessage-deflate"), "{on}");
    assert!(!on.contains("x-webkit"), "{on}");
    let mut off = srv!(app, call_compression);
    off.enabled = false;
    srv!(app, call_set_compression, off);
    let CompressionOptions { enabled, .. } = srv!(app, call_compression);
    assert!(!enabled);
    let client = thread::spawn(move || Raw::upgraded(port, "/", &[offer]));
    let (_raw, declined) = app.serve(client).await;
    assert!(!declined.contains("Sec-WebSocket-Extensions"), "{declined}");
}

/// 9. The 101 response: Upgrade, Connection, the accept key, the
/// subprotocol, `Server:` only when the name is not empty. (Qt's CORS
/// headers on a 101 mean nothing to a browser; wsbox leaves them out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b09_the_101_response_carries_the_accept_key_and_the_server_name() {
    let (mut app, port) = App::listening().await;
    assert_eq!(srv!(app, call_server_name), "wsbox-test");
    let client = thread::spawn(move || Raw::upgraded(port, "/", &[]).1);
    let head = app.serve(client).await;
    let lines: Vec<&str> = head.lines().collect();
    assert_eq!(
        &lines[..4],
        [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            &format!("Sec-WebSocket-Accept: {ACCEPT}")
        ]
    );
    assert!(head.contains("Server: wsbox-test\r\n"), "{head}");
    assert!(!head.contains("Access-Control"), "no CORS headers on a 101: {head}");
    srv!(app, call_set_server_name, String::new().as_str());
    let client = thread::spawn(move || Raw::upgraded(port, "/", &[]).1);
    let head = app.serve(client).await;
    assert!(!head.contains("Server:"), "an empty name sends no Server header: {head}");
}

/// 10. Upgraded sockets queue in arrival order; `new-connection` fires once
/// each; `next-pending-connection` returns them FIFO, then none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_pending_connections_come_out_in_arrival_order() {
    let (mut app, port) = App::listening().await;
    assert!(!srv!(app, call_has_pending_connections));
    let client =
        thread::spawn(move || (1..=3).map(|i| Raw::upgraded(port, &format!("/{i}"), &[]).0).collect::<Vec<_>>());
    let _clients = app.serve(client).await;
    app.run_for(50).await;
    assert_eq!(app.new_connections(), 3);
    assert!(srv!(app, call_has_pending_connections));
    for i in 1..=3 {
        let ws = srv!(app, call_next_pending_connection).expect("a pending socket");
        assert_eq!(sock!(app, ws, call_resource_name), format!("/{i}"));
    }
    assert!(srv!(app, call_next_pending_connection).is_none());
    assert!(!srv!(app, call_has_pending_connections));
}

/// 11. `server-error()` is 1000 until a failure, then the last failure's
/// code; every failure fires `server-error`, repeats included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_server_error_is_1000_until_a_failure_and_fires_on_every_failure() {
    let (mut app, port) = App::listening().await;
    assert_eq!((srv!(app, call_server_error), srv!(app, call_error_string)), (1000, String::new()));
    let client = thread::spawn(move || {
        for _ in 0..2 {
            let mut raw = Raw::connect(port);
            raw.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
            raw.rest();
        }
    });
    app.serve(client).await;
    app.run_for(50).await;
    assert_eq!(app.server_errors().len(), 2, "{:?}", app.events);
    assert_eq!(srv!(app, call_server_error), 1002);
    assert!(!srv!(app, call_error_string).is_empty());

    // A failed listen: 1006 and the OS text (Qt's codes).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let mut blocked = App::new().await;
    assert!(!srv!(blocked, call_listen, "127.0.0.1", busy));
    assert_eq!(srv!(blocked, call_server_error), 1006);
    assert!(srv!(blocked, call_error_string).contains("in use"), "{}", srv!(blocked, call_error_string));
    blocked.until("server-error", |e| matches!(e, Event::ServerError(e) if e.code == 1006)).await;
}

/// 12. Paused, new connections wait in the backlog unanswered; resumed,
/// they are handshaken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b12_pause_accepting_holds_new_connections_until_resume() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_pause_accepting);
    app.turn(0).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let client = thread::spawn(move || {
        let mut raw = Raw::connect(port);
        raw.send(raw::request("/", &[]).as_bytes());
        raw.stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut byte = [0u8; 1];
        let early = std::io::Read::read(&mut raw.stream, &mut byte);
        tx.send(()).unwrap();
        raw.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let rest = raw.response();
        (early.is_err(), rest)
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while rx.try_recv().is_err() {
        assert!(Instant::now() < deadline);
        app.turn(10).await;
    }
    assert_eq!(app.new_connections(), 0, "nothing accepted while paused");
    srv!(app, call_resume_accepting);
    let (no_answer_while_paused, response) = app.serve(client).await;
    assert!(no_answer_while_paused, "the paused server answered");
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
}
