//! A socket's life in the runtime: messages both ways, the send buffer and
//! its backpressure, timers, the app dropping its handle, the server closing.

mod harness;

use harness::Harness;
use wsbox_core::MessageKind;
use wsbox_runtime::Sent;
use wsbox_testkit::frames::{binary, close, text};
use wsbox_testkit::upgrade::request;

/// A harness with socket 1 upgraded and taken by the app.
fn open() -> Harness {
    let mut h = Harness::new(|_, _| {});
    h.connect(1, request("/", "server.test", &[]).as_bytes());
    h.settle();
    assert_eq!(h.rt.next_pending(h.server), Some(1));
    h
}

#[test]
fn messages_arrive_as_signals_and_replies_go_out_next_turn() {
    let mut h = open();
    h.arrive(1, &[text("hello"), binary(b"bytes")].concat());
    assert_eq!(h.turn(), ["message 1 hello", "message 1 bytes"]);
    assert_eq!(h.rt.send(1, MessageKind::Text, b"hello"), Sent::Queued);
    h.turn();
    let (_, frames) = h.output(1);
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].opcode, frames[0].payload.as_slice()), (0x1, &b"hello"[..]));
}

#[test]
fn text_that_is_not_utf8_and_sends_to_unknown_sockets_are_rejected() {
    let mut h = open();
    assert_eq!(h.rt.send(1, MessageKind::Text, &[0xff, 0xfe]), Sent::Rejected);
    assert_eq!(h.rt.send(99, MessageKind::Binary, b"x"), Sent::Rejected);
}

#[test]
fn a_full_send_buffer_refuses_sends_until_the_transport_drains_then_says_writable() {
    let mut h = open();
    h.rt.set_max_send_buffer(1, 1);
    assert_eq!(h.wire.borrow().write_limits[&1], 64 * 1024, "clamped to the smallest cap");
    let chunk = vec![7u8; 40 * 1024];
    assert_eq!(h.rt.send(1, MessageKind::Binary, &chunk), Sent::Queued);
    assert_eq!(h.rt.send(1, MessageKind::Binary, &chunk), Sent::Queued);
    assert_eq!(h.rt.send(1, MessageKind::Binary, &chunk), Sent::BufferFull, "80 KiB queued past a 64 KiB cap");
    // Written to the transport, which reports it backed up: still full.
    h.wire.borrow_mut().incoming.backed_up.push(1);
    assert_eq!(h.turn(), Vec::<String>::new());
    assert_eq!(h.rt.send(1, MessageKind::Binary, b"later"), Sent::BufferFull, "order: later sends wait too");
    h.wire.borrow_mut().incoming.drained.push(1);
    assert_eq!(h.turn(), ["writable 1"]);
    assert_eq!(h.rt.send(1, MessageKind::Binary, b"now"), Sent::Queued);
}

#[test]
fn a_peer_close_is_answered_and_the_socket_disconnects() {
    let mut h = open();
    h.arrive(1, &close(4000, "bye"));
    let signals = h.settle();
    assert!(signals.contains(&"disconnected 1".to_string()), "{signals:?}");
    let (_, frames) = h.output(1);
    assert_eq!(frames.last().and_then(|f| f.close()), Some((4000, "bye".to_string())));
    assert_eq!(h.wire.borrow().closing, [1], "the transport is told the close frame went out");
    assert_eq!(h.wire.borrow().closed, [1]);
}

#[test]
fn an_unfinished_request_times_out_and_the_wait_stops_at_the_deadline() {
    let mut h = Harness::new(|rt, server| rt.server_config_mut(server).limits.handshake_timeout_ms = Some(1_000));
    h.connect(1, b"GET / HTTP/1.1\r\n");
    h.turn();
    h.advance(400);
    let mut signals = harness::Signals::default();
    h.rt.turn(60_000, &mut signals);
    assert_eq!(h.wire.borrow().last_wait_ms, 600, "the exchange waits only until the handshake deadline");
    assert!(h.wire.borrow().aborted.is_empty() && h.wire.borrow().closed.is_empty());
    h.advance(600);
    h.settle();
    let w = h.wire.borrow();
    assert!(w.closed.contains(&1) || w.aborted.contains(&1), "the connection ends at its handshake timeout");
}

#[test]
fn dropping_the_handle_closes_with_1001_and_silences_the_socket() {
    let mut h = open();
    h.rt.release_socket(1);
    h.arrive(1, &text("anyone?"));
    let signals = h.settle();
    assert!(signals.iter().all(|s| !s.contains("message")), "{signals:?}");
    let (_, frames) = h.output(1);
    assert_eq!(frames.last().and_then(|f| f.close_code()), Some(1001));
}

#[test]
fn closing_the_server_closes_untaken_sockets_with_1001_and_leaves_taken_ones() {
    let mut h = open();
    h.connect(2, request("/", "server.test", &[]).as_bytes());
    h.settle();
    h.rt.close_server(h.server);
    assert_eq!(h.turn(), ["closed 1"]);
    h.settle();
    assert_eq!(h.output(2).1.last().and_then(|f| f.close_code()), Some(1001), "socket 2 was never taken");
    assert!(h.output(1).1.is_empty(), "socket 1 is the app's: it stays open");
    assert_eq!(h.rt.send(1, MessageKind::Text, b"still here"), Sent::Queued);
}

#[test]
fn pausing_a_server_pauses_its_listener() {
    let mut h = Harness::new(|_, _| {});
    h.rt.set_accepting(h.server, false);
    let listener = h.rt.server(h.server).listener.as_ref().unwrap().id;
    assert_eq!(h.wire.borrow().paused, [listener]);
    h.rt.set_accepting(h.server, true);
    assert!(h.wire.borrow().paused.is_empty());
}
