//! Frame-level rules (RFC 6455 §5), each fed at every chop size.

use wsbox_core::{Config, Limits, State, Transport};
use wsbox_testkit::driver::*;

/// Asserts the server failed the connection with `code` and closes TCP.
fn assert_failed(o: &Outcome, code: u16) {
    assert_eq!(o.sent_close(), Some(code), "frames: {:?}", o.frames);
    assert_eq!(o.close_code.0, code);
    assert_eq!(o.transport, Transport::Close);
    assert_eq!(o.state, State::Closed);
    assert!(o.events.ends_with(&[Ev::State(State::Closed), Ev::Disconnected]), "{:?}", o.events);
}

#[test]
fn text_and_binary_messages_of_every_length_form_are_delivered() {
    for len in [0usize, 1, 125, 126, 65535, 65536] {
        let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let mut script = text(std::str::from_utf8(&payload).unwrap());
        script.extend(binary(&payload));
        let o = run_default(&script);
        assert_eq!(
            o.messages(),
            [Ev::Text(String::from_utf8(payload.clone()).unwrap()), Ev::Binary(payload)],
            "len {len}"
        );
    }
}

#[test]
fn a_fragmented_message_is_assembled() {
    let mut script = frame(false, 0x1, b"Hel");
    script.extend(frame(false, 0x0, b""));
    script.extend(frame(true, 0x0, b"lo"));
    assert_eq!(run_default(&script).messages(), [Ev::Text("Hello".into())]);
}

#[test]
fn control_frames_may_come_between_fragments() {
    let mut script = frame(false, 0x2, b"ab");
    script.extend(frame(true, 0x9, b"ping!"));
    script.extend(frame(true, 0xA, b"unsolicited"));
    script.extend(frame(true, 0x0, b"cd"));
    let o = run_default(&script);
    assert_eq!(o.messages(), [Ev::Binary(b"abcd".to_vec())]);
    assert_eq!(o.frames[0], ServerFrame { fin: true, rsv: 0, masked: false, opcode: 0xA, payload: b"ping!".to_vec() });
    assert!(o.events.contains(&Ev::Pong(0, b"unsolicited".to_vec())));
}

#[test]
fn a_ping_is_answered_with_a_pong_of_the_same_payload() {
    let payload: Vec<u8> = (0..125).collect();
    let o = run_default(&frame(true, 0x9, &payload));
    assert_eq!(o.frames, [ServerFrame { fin: true, rsv: 0, masked: false, opcode: 0xA, payload }]);
    assert_eq!(o.messages(), []);
}

#[test]
fn frame_events_report_each_frame_when_asked() {
    let mut script = frame(false, 0x1, "ab\u{00e9}".as_bytes().split_last().unwrap().1); // "ab" + first byte of é
    script.extend(frame(true, 0x0, &[0xA9, b'c']));
    let o = run(Config { frame_events: true, ..Config::default() }, true, &script);
    let frames: Vec<Ev> = o.events.iter().filter(|e| matches!(e, Ev::TextFrame(..))).cloned().collect();
    // The code point straddling the frames arrives with the frame that completes it.
    assert_eq!(frames, [Ev::TextFrame(b"ab".to_vec(), false), Ev::TextFrame("éc".as_bytes().to_vec(), true)]);
    assert_eq!(o.messages(), [Ev::Text("abéc".into())]);
}

#[test]
fn rsv_bits_without_an_extension_fail_with_1002() {
    for b0 in [0xC1, 0xA1, 0x91] {
        assert_failed(&run_default(&raw_frame(b0, b"x", true)), 1002);
    }
}

#[test]
fn reserved_opcodes_fail_with_1002() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_failed(&run_default(&frame(true, op, b"")), 1002);
    }
}

#[test]
fn unmasked_client_frames_fail_with_1002() {
    assert_failed(&run_default(&raw_frame(0x81, b"hello", false)), 1002);
}

#[test]
fn control_frames_over_125_bytes_fail_with_1002() {
    assert_failed(&run_default(&frame(true, 0x9, &[0u8; 126])), 1002);
}

#[test]
fn fragmented_control_frames_fail_with_1002() {
    assert_failed(&run_default(&frame(false, 0x9, b"x")), 1002);
}

#[test]
fn a_continuation_without_a_message_fails_with_1002() {
    assert_failed(&run_default(&frame(true, 0x0, b"x")), 1002);
}

#[test]
fn a_new_message_inside_a_fragmented_one_fails_with_1002() {
    let mut script = frame(false, 0x1, b"a");
    script.extend(frame(true, 0x1, b"b"));
    assert_failed(&run_default(&script), 1002);
}

#[test]
fn non_minimal_lengths_fail_with_1002() {
    let mut bad = vec![0x82, 0x80 | 126, 0, 5];
    bad.extend_from_slice(&MASK);
    bad.extend_from_slice(&[0; 5]);
    assert_failed(&run_default(&bad), 1002);
}

#[test]
fn a_frame_over_the_limit_fails_with_1009_before_its_payload() {
    let limits = Limits { max_frame_size: 1000, ..Limits::default() };
    let header_only = &frame(true, 0x2, &[0u8; 1001])[..8];
    let o = run(Config { limits, ..Config::default() }, true, header_only);
    assert_failed(&o, 1009);
}

#[test]
fn a_message_over_the_limit_fails_with_1009() {
    let limits = Limits { max_message_size: 1000, ..Limits::default() };
    let mut script = frame(false, 0x2, &[0u8; 600]);
    script.extend(frame(true, 0x0, &[0u8; 600]));
    assert_failed(&run(Config { limits, ..Config::default() }, true, &script), 1009);
}

#[test]
fn outgoing_messages_are_fragmented_at_the_outgoing_frame_size() {
    let limits = Limits { outgoing_frame_size: 4, ..Limits::default() };
    let mut d = Driver::new(Config { limits, ..Config::default() });
    d.feed(0, UPGRADE);
    assert_eq!(d.conn.send(wsbox_core::MessageKind::Text, b"0123456789"), 10);
    assert_eq!(d.conn.send(wsbox_core::MessageKind::Binary, b""), 0);
    d.collect(0);
    let frames = d.outcome().frames;
    let shape: Vec<(bool, u8, usize)> = frames.iter().map(|f| (f.fin, f.opcode, f.payload.len())).collect();
    assert_eq!(shape, [(false, 1, 4), (false, 0, 4), (true, 0, 2), (true, 2, 0)]);
}

#[test]
fn sending_before_the_upgrade_queues_nothing() {
    let mut d = Driver::new(Config::default());
    assert_eq!(d.conn.send(wsbox_core::MessageKind::Text, b"x"), 0);
    d.collect(0);
    assert!(d.out.is_empty());
}

#[test]
fn answers_to_messages_before_a_protocol_error_go_out_before_the_close() {
    // Autobahn 3.2: a message, a frame with RSV2 set, a ping, in one read.
    let mut script = text("Hello, world!");
    script.extend(raw_frame(0xA1, b"bad", true));
    script.extend(frame(true, 0x9, b""));
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.auto_accept = false;
    d.conn.handle_input(1, &script);
    let mut got = Vec::new();
    d.conn.drain_events(|e| {
        if let wsbox_core::Event::TextMessage(t) = e {
            got.push(t.to_vec())
        }
    });
    assert_eq!(got, [b"Hello, world!".to_vec()]);
    assert!(d.conn.has_pending_failure());
    assert_eq!(d.conn.state(), State::Open, "the app can still answer");
    d.conn.send(wsbox_core::MessageKind::Text, b"Hello, world!");
    d.conn.end_round();
    d.collect(1);
    let o = d.outcome();
    let kinds: Vec<u8> = o.frames.iter().map(|f| f.opcode).collect();
    assert_eq!(kinds, [0x1, 0x8], "echo first, then the close; the ping after the error is ignored");
    assert_eq!(o.sent_close(), Some(1002));
}
