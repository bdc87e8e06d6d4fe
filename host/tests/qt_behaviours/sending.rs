//! Qt's behaviours in sending (21–23).

use crate::app::App;
use crate::raw::{Raw, frame};
use crate::sock;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use wsbox::bindings::api::Event;

/// 21. `send-*` returns the payload length (0 when not connected); a message
/// goes out as ⌈len / outgoing-frame-size⌉ unmasked frames; an empty message
/// is one empty FIN frame; an outgoing frame size of 0 is refused (Qt crashes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b21_messages_are_fragmented_by_the_outgoing_frame_size() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        let frames: Vec<_> = (0..4).map(|_| raw.frame().expect("a frame")).collect();
        raw.send(&frame(true, 0x8, &[0x03, 0xE8], true));
        (frames, raw.close_received())
    });
    let ws = app.take().await;
    assert_eq!(sock!(app, ws, call_outgoing_frame_size), 512 * 1024);
    assert!(!sock!(app, ws, call_set_outgoing_frame_size, 0), "0 is refused");
    assert!(sock!(app, ws, call_set_outgoing_frame_size, 4));
    assert_eq!(sock!(app, ws, call_outgoing_frame_size), 4);
    assert_eq!(sock!(app, ws, call_send_text_message, "abcdefghij"), 10);
    assert_eq!(sock!(app, ws, call_send_binary_message, &[]), 0);
    let (frames, _) = app.serve(client).await;
    let seen: Vec<(bool, u8, &[u8], bool)> =
        frames.iter().map(|f| (f.fin, f.opcode, f.payload.as_slice(), f.masked)).collect();
    assert_eq!(
        seen,
        [
            (false, 0x1, &b"abcd"[..], false),
            (false, 0x0, &b"efgh"[..], false),
            (true, 0x0, &b"ij"[..], false),
            (true, 0x2, &b""[..], false),
        ]
    );
    app.until("disconnected", |e| matches!(e, Event::Disconnected(_))).await;
    assert_eq!(sock!(app, ws, call_send_text_message, "late"), 0, "not connected: nothing queued");
}

/// 22. `ping` sends at most 125 bytes; the pong's elapsed time counts from
/// the latest `ping`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b22_ping_is_capped_at_125_bytes_and_pong_reports_the_elapsed_time() {
    let (mut app, port) = App::listening().await;
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        let ping = raw.frame().expect("a ping");
        thread::sleep(Duration::from_millis(150));
        raw.send(&frame(true, 0xA, &ping.payload, true));
        (raw, ping)
    });
    let ws = app.take().await;
    sock!(app, ws, call_ping, &[7u8; 200]);
    let (_raw, ping) = app.serve(client).await;
    assert_eq!((ping.opcode, ping.payload.len()), (0x9, 125));
    let pong = app.until("pong", |e| matches!(e, Event::Pong(_))).await;
    let Event::Pong(pong) = pong else { unreachable!() };
    assert!((150..2000).contains(&pong.elapsed_time), "elapsed {} ms", pong.elapsed_time);
    assert_eq!(pong.payload, vec![7u8; 125]);
}

/// 23. `bytes-to-write` counts queued wire bytes, headers included;
/// `bytes-written` (when asked for) reports bytes as they reach the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b23_bytes_to_write_and_bytes_written_count_wire_bytes() {
    let (mut app, port) = App::listening().await;
    let (tx, rx) = mpsc::channel();
    let client = thread::spawn(move || {
        let (mut raw, _) = Raw::upgraded(port, "/", &[]);
        let got = raw.frame().expect("the message");
        tx.send(()).unwrap();
        (raw, got)
    });
    let ws = app.take().await;
    // The 101 response goes out with the next turn.
    app.turn(0).await;
    assert_eq!(sock!(app, ws, call_bytes_to_write), 0);
    sock!(app, ws, call_set_bytes_written_events, true);
    assert!(!sock!(app, ws, call_flush), "nothing to flush");
    sock!(app, ws, call_send_text_message, "hello");
    assert_eq!(sock!(app, ws, call_bytes_to_write), 7, "2 header bytes + 5");
    assert!(sock!(app, ws, call_flush));
    app.until_told(&rx).await;
    let written = app.until("bytes-written", |e| matches!(e, Event::BytesWritten(_))).await;
    assert!(matches!(written, Event::BytesWritten(w) if w.bytes == 7), "{written:?}");
    assert_eq!(sock!(app, ws, call_bytes_to_write), 0);
    let (_raw, got) = app.serve(client).await;
    assert_eq!(got.payload, b"hello");
}
