//! Qt's behaviours with frames and messages (13–20).

use crate::app::App;
use crate::raw::{Raw, frame};
use crate::{sock, srv};
use std::sync::mpsc;
use std::thread;
use wsbox::bindings::api::Event;

/// 13. Each framing error closes with 1002 and its reason; unmasked client
/// frames too (wsbox does better: Qt accepts them, RFC 6455 §5.1 forbids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b13_framing_errors_close_with_1002() {
    let (mut app, port) = App::listening().await;
    let mut non_minimal_16 = vec![0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4];
    non_minimal_16.extend_from_slice(b"hello");
    let mut non_minimal_64 = vec![0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4];
    non_minimal_64.extend_from_slice(b"hello");
    let mut rsv = frame(true, 0x1, b"a", true);
    rsv[0] |= 0x20;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("RSV bit", rsv, "Rsv field is non-zero"),
        ("opcode 3", frame(true, 0x3, b"", true), "Used reserved opcode"),
        ("opcode B", frame(true, 0xB, b"", true), "Used reserved opcode"),
        ("control > 125", frame(true, 0x9, &[0u8; 126], true), "Control frame is larger than 125 bytes"),
        ("fragmented control", frame(false, 0x9, b"", true), "Control frame is fragmented"),
        ("16-bit length < 126", non_minimal_16, "Payload length is not minimally encoded"),
        ("64-bit length <= 0xFFFF", non_minimal_64, "Payload length is not minimally encoded"),
        ("lone continuation", frame(true, 0x0, b"x", true), "Continuation frame without a message to continue"),
        (
            "new message inside one",
            [frame(false, 0x1, b"a", true), frame(true, 0x1, b"b", true)].concat(),
            "New data frame while a fragmented message is open",
        ),
        ("unmasked", frame(true, 0x1, b"a", false), "Client frame is not masked"),
    ];
    let client = thread::spawn(move || {
        cases
            .into_iter()
            .map(|(name, bytes, reason)| {
                let (mut raw, _) = Raw::upgraded(port, "/", &[]);
                raw.send(&bytes);
                (name, raw.close_received(), reason)
            })
            .collect::<Vec<_>>()
    });
    for (name, got, reason) in app.serve(client).await {
        assert_eq!(got, (1002, reason.to_string()), "{name}");
    }
}

/// 14. Control frames between the fragments of a message are handled and
/// the message still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b14_a_ping_between_fragments_is_answered_and_the_message_completes() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.send(
            &[frame(false, 0x1, b"Hel", true), frame(true, 0x9, b"p", true), frame(true, 0x0, b"lo", true)].concat(),
        );
        raw.frame().expect("a pong")
    });
    let pong = app.serve(client).await;
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"p"[..]));
    let got = app.until("the message", |e| matches!(e, Event::TextMessageReceived(_))).await;
    assert!(matches!(got, Event::TextMessageReceived(m) if m.message == "Hello"));
}

/// 15. A frame longer than the socket's limit is refused with 1009 from
/// its header alone (the payload is never sent here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b15_a_frame_over_the_limit_is_refused_with_1009_from_its_header() {
    let (mut app, port) = App::listening().await;
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        tx.send(()).unwrap();
        go_rx.recv().unwrap();
        raw.send(&[0x82, 0x80 | 126, 0x07, 0xD0, 1, 2, 3, 4]); // 2000 bytes announced
        raw.close_received()
    });
    app.until_told(&rx).await;
    let ws = app.take().await;
    assert_eq!(sock!(app, ws, call_max_allowed_incoming_frame_size), 16 * 1024 * 1024);
    sock!(app, ws, call_set_max_allowed_incoming_frame_size, 1000);
    sock!(app, ws, call_set_max_allowed_incoming_frame_size, u64::MAX);
    assert_eq!(sock!(app, ws, call_max_allowed_incoming_frame_size), 1000, "values above the ceiling are ignored");
    go_tx.send(()).unwrap();
    assert_eq!(app.serve(client).await, (1009, "Maximum framesize exceeded.".to_string()));
}

/// 16. A message growing past its limit is refused with 1009; frame events
/// already reported stay reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b16_a_message_over_the_limit_is_refused_with_1009_after_its_first_frame_event() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_set_frame_events, true);
    srv!(app, call_set_max_allowed_incoming_message_size, 1000);
    assert_eq!(srv!(app, call_max_allowed_incoming_message_size), 1000);
    let (tx, rx) = mpsc::channel();
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.send(&frame(false, 0x2, &[1u8; 600], true));
        rx.recv().unwrap();
        raw.send(&frame(true, 0x0, &[2u8; 600], true));
        raw.close_received()
    });
    app.until(
        "the first frame",
        |e| matches!(e, Event::BinaryFrameReceived(f) if f.frame.len() == 600 && !f.is_last_frame),
    )
    .await;
    tx.send(()).unwrap();
    assert_eq!(app.serve(client).await, (1009, "Received message is too big.".to_string()));
    assert!(!app.events.iter().any(|e| matches!(e, Event::BinaryMessageReceived(_))));
}

/// 17. A frame that stops arriving halfway closes the socket with 1001
/// after 5 s without progress (an idle connection between frames is not
/// timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b17_a_stalled_frame_closes_with_1001_after_5_seconds() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.stream.set_read_timeout(Some(std::time::Duration::from_secs(8))).unwrap();
        let started = std::time::Instant::now();
        raw.send(&frame(true, 0x1, b"hello", true)[..5]);
        (raw.close_received(), started.elapsed())
    });
    let (close, took) = app.serve(client).await;
    assert_eq!(close, (1001, "Timeout when reading data from socket.".to_string()));
    assert!(took >= std::time::Duration::from_millis(4900) && took < std::time::Duration::from_secs(7), "{took:?}");
}

/// 18. Frame events (when asked for) then the message; an empty message
/// produces both with empty data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b18_frame_events_then_the_message_and_empty_messages_too() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_set_frame_events, true);
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.send(
            &[frame(false, 0x1, b"ab", true), frame(true, 0x0, b"cd", true), frame(true, 0x2, b"", true)].concat(),
        );
        raw
    });
    let _raw = app.serve(client).await;
    app.until("the empty message", |e| matches!(e, Event::BinaryMessageReceived(_))).await;
    let data: Vec<String> = app
        .events
        .iter()
        .filter_map(|e| match e {
            Event::TextFrameReceived(f) => Some(format!("text frame {} {}", f.frame, f.is_last_frame)),
            Event::TextMessageReceived(m) => Some(format!("text {}", m.message)),
            Event::BinaryFrameReceived(f) => Some(format!("binary frame {:?} {}", f.frame, f.is_last_frame)),
            Event::BinaryMessageReceived(m) => Some(format!("binary {:?}", m.message)),
            _ => None,
        })
        .collect();
    assert_eq!(data, ["text frame ab false", "text frame cd true", "text abcd", "binary frame [] true", "binary []"]);
}

/// 19. UTF-8: a code point split across frames arrives with the frame that
/// completes it; invalid text closes with 1007.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b19_a_split_code_point_is_delivered_whole_and_invalid_utf8_closes_with_1007() {
    let (mut app, port) = App::listening().await;
    srv!(app, call_set_frame_events, true);
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.send(&[frame(false, 0x1, b"a\xC3", true), frame(true, 0x0, b"\xA9b", true)].concat());
        let (mut bad, _) = Raw::upgraded(port, "/", &[]);
        bad.send(&frame(true, 0x1, b"ok\xFF", true));
        (raw, bad.close_received())
    });
    let (_raw, close) = app.serve(client).await;
    assert_eq!(close, (1007, "Invalid UTF-8 code encountered.".to_string()));
    app.until("the message", |e| matches!(e, Event::TextMessageReceived(_))).await;
    let frames: Vec<(String, bool)> = app
        .events
        .iter()
        .filter_map(|e| match e {
            Event::TextFrameReceived(f) => Some((f.frame.clone(), f.is_last_frame)),
            _ => None,
        })
        .collect();
    assert_eq!(frames, [("a".to_string(), false), ("éb".to_string(), true)]);
    assert!(app.events.iter().any(|e| matches!(e, Event::TextMessageReceived(m) if m.message == "aéb")));
}

/// 20. A ping is answered with a pong carrying its payload; the app is not told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b20_pings_are_answered_by_the_server_alone() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        raw.send(&frame(true, 0x9, b"xyz", true));
        raw.frame().expect("a pong")
    });
    let pong = app.serve(client).await;
    assert_eq!((pong.opcode, pong.payload.as_slice(), pong.masked), (0xA, &b"xyz"[..], false));
    assert!(!app.events.iter().any(|e| matches!(e, Event::Pong(_))), "{:?}", app.events);
}
