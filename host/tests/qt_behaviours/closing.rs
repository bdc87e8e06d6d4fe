//! Qt's behaviours in closing and the accessors (24–31).

use crate::app::App;
use crate::raw::{Raw, close_frame, frame};
use crate::{sock, srv};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use wsbox::bindings::api::{Event, SocketError, SocketState};

/// 24. A close with no payload is answered with 1000; `close-code` is 1000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b24_an_empty_close_is_answered_with_1000() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        thread::sleep(Duration::from_millis(100));
        raw.send(&frame(true, 0x8, b"", true));
        raw.close_received()
    });
    let ws = app.take().await;
    assert_eq!(app.serve(client).await, (1000, String::new()));
    app.until("disconnected", |e| matches!(e, Event::Disconnected(_))).await;
    assert_eq!(sock!(app, ws, call_close_code), 1000);
}

/// 25. A one-byte close payload is answered with 1002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b25_a_one_byte_close_is_answered_with_1002() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.send(&frame(true, 0x8, &[0x03], true));
        raw.close_received()
    });
    assert_eq!(app.serve(client).await, (1002, "Payload of close frame is too small.".to_string()));
}

/// 26. Codes that may not be sent are answered with 1002, a reason that is
/// not UTF-8 with 1007. (Does better: 1012–1014, registered by IANA, are
/// accepted; Qt refuses them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b26_invalid_close_codes_get_1002_and_invalid_reasons_1007() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let mut replies = Vec::new();
        for code in [999u16, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 1000, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            let (mut raw, _) = Raw::upgraded(port, "/", &[]);
            raw.send(&close_frame(code, "r"));
            replies.push((code, raw.close_received().0));
        }
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.send(&frame(true, 0x8, &[0x03, 0xE8, 0xFF], true));
        (replies, raw.close_received())
    });
    let (replies, bad_reason) = app.serve(client).await;
    for (code, reply) in replies {
        let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        assert_eq!(reply, if valid { code } else { 1002 }, "close {code}");
    }
    assert_eq!(bad_reason.0, 1007);
}

/// 27. The peer's close is echoed with its code and reason; the app sees
/// about-to-close, closing, unconnected, disconnected, read-channel-finished,
/// and `close-code` / `close-reason` are the peer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b27_the_peers_close_is_echoed_and_every_signal_fires() {
    let (mut app, port) = App::listening().await;
    let (tx, rx) = mpsc::channel();
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        rx.recv().unwrap();
        raw.send(&close_frame(4000, "bye now"));
        let reply = raw.close_received();
        (reply, raw.ends_within(Duration::from_secs(3)))
    });
    let ws = app.take().await;
    let id = sock!(app, ws, call_id);
    app.forget();
    tx.send(()).unwrap();
    let (reply, closed) = app.serve(client).await;
    assert_eq!(reply, (4000, "bye now".to_string()));
    assert!(closed, "the server closes TCP after echoing");
    app.until("disconnected", |e| matches!(e, Event::Disconnected(s) if *s == id)).await;
    app.until("read-channel-finished", |e| matches!(e, Event::ReadChannelFinished(s) if *s == id)).await;
    let names: Vec<&str> = app
        .events
        .iter()
        .filter_map(|e| match e {
            Event::AboutToClose(_) => Some("about-to-close"),
            Event::StateChanged(s) if s.state == SocketState::Closing => Some("closing"),
            Event::StateChanged(s) if s.state == SocketState::Unconnected => Some("unconnected"),
            Event::Disconnected(_) => Some("disconnected"),
            Event::ReadChannelFinished(_) => Some("read-channel-finished"),
            _ => None,
        })
        .collect();
    for name in ["about-to-close", "closing", "unconnected", "disconnected", "read-channel-finished"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} once in {names:?}");
    }
    assert_eq!((sock!(app, ws, call_close_code), sock!(app, ws, call_close_reason)), (4000, "bye now".to_string()));
}

/// 28. `close(code, reason)`: the reason is cut to 123 bytes at a character
/// boundary (Qt cuts inside one); `close-code` / `close-reason` are what was
/// sent; while closing, data still arrives; the peer's close ends TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b28_close_sends_a_cut_reason_and_keeps_delivering_until_the_peers_close() {
    let (mut app, port) = App::listening().await;
    let (tx, rx) = mpsc::channel();
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        let ours = raw.close_received();
        raw.send(&frame(true, 0x1, b"late", true));
        rx.recv().unwrap();
        raw.send(&close_frame(4001, ""));
        (ours, raw.ends_within(Duration::from_secs(3)))
    });
    let ws = app.take().await;
    let reason = "é".repeat(100); // 200 bytes
    sock!(app, ws, call_close, 4001, &reason);
    app.until("the late message", |e| matches!(e, Event::TextMessageReceived(m) if m.message == "late")).await;
    assert_eq!(sock!(app, ws, call_state), SocketState::Closing);
    tx.send(()).unwrap();
    let ((code, sent_reason), closed) = app.serve(client).await;
    assert_eq!(code, 4001);
    assert_eq!(sent_reason, "é".repeat(61), "122 bytes: the 62nd 'é' would pass 123");
    assert!(closed);
    assert_eq!(sock!(app, ws, call_close_code), 4001);
    assert_eq!(sock!(app, ws, call_close_reason), "é".repeat(61));
}

/// 29. A protocol error sends a close with the error's code and text; the
/// socket's `close-code` / `close-reason` are those; later input is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b29_a_protocol_error_closes_with_its_code_and_text_and_later_input_is_ignored() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        thread::sleep(Duration::from_millis(100));
        raw.send(&[frame(true, 0x3, b"", true), frame(true, 0x1, b"ignored", true)].concat());
        raw.close_received()
    });
    let ws = app.take().await;
    assert_eq!(app.serve(client).await, (1002, "Used reserved opcode".to_string()));
    app.until("disconnected", |e| matches!(e, Event::Disconnected(_))).await;
    assert_eq!(sock!(app, ws, call_close_code), 1002);
    assert_eq!(sock!(app, ws, call_close_reason), "Used reserved opcode");
    assert!(!app.events.iter().any(|e| matches!(e, Event::TextMessageReceived(_))));
}

/// 30. `close()` on the server: sockets not yet taken get 1001 "Server
/// closed."; taken ones stay open; `closed` follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b30_closing_the_server_closes_only_sockets_not_yet_taken() {
    let (mut app, port) = App::listening().await;
    let (tx, rx) = mpsc::channel();
    let client = thread::spawn(move || {
        let (mut taken, _) = Raw::upgraded(port, "/taken", &[]);
        let (mut waiting, _) = Raw::upgraded(port, "/waiting", &[]);
        rx.recv().unwrap();
        let waiting_close = waiting.close_received();
        taken.send(&frame(true, 0x1, b"still here", true));
        (waiting_close, taken)
    });
    let first = app.take().await;
    assert_eq!(sock!(app, first, call_resource_name), "/taken");
    app.until("the second connection", |e| matches!(e, Event::NewConnection(_))).await;
    app.run_for(50).await;
    srv!(app, call_close);
    assert!(!srv!(app, call_is_listening));
    assert_eq!(srv!(app, call_server_port), 0);
    tx.send(()).unwrap();
    let (waiting_close, _taken) = app.serve(client).await;
    assert_eq!(waiting_close, (1001, "Server closed.".to_string()));
    app.until("closed", |e| matches!(e, Event::Closed(_))).await;
    app.until(
        "a message on the taken socket",
        |e| matches!(e, Event::TextMessageReceived(m) if m.message == "still here"),
    )
    .await;
    assert_eq!(sock!(app, first, call_state), SocketState::Connected);
}

/// 31. After accept: connected, version 13, valid, the request URL, the
/// resource name (the path: Qt gives the whole URL), no peer name, no error,
/// close code 1000, the headers, the addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b31_accessors_after_accept() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || Raw::upgraded(port, "/chat?x=1", &["Origin: https://app.example"]).0);
    let raw = app.serve(client).await;
    let ws = app.take().await;
    assert_eq!(sock!(app, ws, call_state), SocketState::Connected);
    assert!(sock!(app, ws, call_is_valid));
    assert_eq!(sock!(app, ws, call_version), 13);
    assert_eq!(sock!(app, ws, call_request_url), format!("{}://127.0.0.1/chat?x=1", crate::SCHEME));
    assert_eq!(sock!(app, ws, call_resource_name), "/chat");
    assert_eq!(sock!(app, ws, call_origin), "https://app.example");
    assert_eq!(sock!(app, ws, call_peer_name), "");
    assert_eq!(sock!(app, ws, call_error), SocketError::UnknownSocketError);
    assert_eq!(sock!(app, ws, call_error_string), "Unknown error");
    assert_eq!((sock!(app, ws, call_close_code), sock!(app, ws, call_close_reason)), (1000, String::new()));
    assert!(sock!(app, ws, call_request_headers).contains(&("origin".to_string(), "https://app.example".to_string())));
    assert_eq!(sock!(app, ws, call_peer_address), "127.0.0.1");
    assert_eq!(sock!(app, ws, call_peer_port), raw.stream.local_addr().unwrap().port());
    assert_eq!(sock!(app, ws, call_local_port), port);
    sock!(app, ws, call_set_read_buffer_size, 4096);
    assert_eq!(sock!(app, ws, call_read_buffer_size), 4096);
    // The peer leaves without a close: remote-host-closed.
    drop(raw);
    app.until("error-occurred", |e| matches!(e, Event::ErrorOccurred(_))).await;
    assert_eq!(sock!(app, ws, call_error), SocketError::RemoteHostClosedError);
    assert!(!sock!(app, ws, call_is_valid));
}
