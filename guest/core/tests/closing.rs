//! The closing handshake (RFC 6455 §5.5.1, §7).

use wsbox_core::{CloseCode, Config, Limits, SocketError, State, Transport};
use wsbox_testkit::driver::*;

#[test]
fn a_peer_close_is_echoed_with_its_code_and_reason() {
    let o = run_default(&close(4000, "bye now"));
    assert_eq!(
        o.frames,
        [ServerFrame {
            fin: true,
            rsv: 0,
            masked: false,
            opcode: 0x8,
            payload: [&4000u16.to_be_bytes()[..], b"bye now"].concat()
        }]
    );
    assert_eq!((o.close_code, o.close_reason.as_str()), (CloseCode(4000), "bye now"));
    assert_eq!((o.transport, o.state), (Transport::Close, State::Closed));
    // Qt's order (its behaviour 27 in host/tests/qt_behaviours).
    let tail = [
        Ev::AboutToClose,
        Ev::State(State::Closing),
        Ev::State(State::Closed),
        Ev::Disconnected,
        Ev::ReadChannelFinished,
    ];
    assert!(o.events.ends_with(&tail), "{:?}", o.events);
}

#[test]
fn valid_close_codes_are_echoed() {
    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
        assert_eq!(run_default(&close(code, "")).sent_close(), Some(code), "code {code}");
    }
}

#[test]
fn invalid_close_codes_are_answered_with_1002() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
        assert_eq!(run_default(&close(code, "")).sent_close(), Some(1002), "code {code}");
    }
}

#[test]
fn an_empty_close_is_answered_with_1000() {
    let o = run_default(&frame(true, 0x8, b""));
    assert_eq!(o.sent_close(), Some(1000));
    assert_eq!(o.close_code, CloseCode::NORMAL);
}

#[test]
fn a_one_byte_close_payload_is_answered_with_1002() {
    assert_eq!(run_default(&frame(true, 0x8, &[0x03])).sent_close(), Some(1002));
}

#[test]
fn a_close_reason_that_is_not_utf8_is_answered_with_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0xCE, 0xBA, 0xED, 0xA0, 0x80]);
    assert_eq!(run_default(&frame(true, 0x8, &payload)).sent_close(), Some(1007));
}

#[test]
fn input_after_the_close_is_ignored() {
    let mut script = close(1000, "");
    script.extend(text("too late"));
    script.extend(frame(true, 0x9, b"p"));
    let o = run_default(&script);
    assert_eq!(o.messages(), []);
    assert_eq!(o.frames.len(), 1);
}

#[test]
fn our_close_waits_for_the_peer_then_closes() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.conn.close(100, CloseCode(4001), "done");
    d.collect(100);
    assert_eq!(d.conn.state(), State::Closing);
    assert_eq!(d.conn.transport(), Transport::Open);
    assert_eq!(d.conn.poll_timeout(), Some(5_100));
    // Data that arrives meanwhile is still delivered (Qt 6.11).
    d.feed(200, &text("late data"));
    d.feed(300, &close(4001, "done"));
    let o = d.outcome();
    assert!(o.messages().contains(&Ev::Text("late data".into())));
    assert_eq!((o.transport, o.state), (Transport::Close, State::Closed));
    assert_eq!(o.frames.iter().filter(|f| f.opcode == 0x8).count(), 1, "our close is not repeated");
    assert_eq!(o.close_code, CloseCode(4001));
}

#[test]
fn a_peer_that_never_answers_our_close_is_dropped_at_the_close_timeout() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.conn.close(0, CloseCode::NORMAL, "");
    d.conn.handle_timeout(5_000);
    d.collect(5_000);
    assert_eq!(d.conn.transport(), Transport::Abort);
    assert!(d.events.contains(&Ev::Error(SocketError::Timeout)));
}

#[test]
fn a_close_code_that_may_not_be_sent_becomes_a_close_without_code() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.conn.close(0, CloseCode(1006), "ignored");
    d.collect(0);
    let o = d.outcome();
    assert_eq!(o.frames.last().unwrap().payload, Vec::<u8>::new());
    assert_eq!(o.close_code, CloseCode::MISSING_STATUS_CODE);
}

#[test]
fn a_long_reason_is_cut_at_a_character_boundary() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.conn.close(0, CloseCode::NORMAL, &"€".repeat(50));
    d.collect(0);
    let payload = d.outcome().frames.last().unwrap().payload.clone();
    assert!(payload.len() <= 125);
    assert!(std::str::from_utf8(&payload[2..]).is_ok());
}

#[test]
fn eof_without_a_close_reports_1006() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.conn.handle_eof(10);
    d.collect(10);
    assert_eq!(d.conn.close_code(), CloseCode::ABNORMAL_DISCONNECTION);
    assert!(
        d.events.ends_with(&[
            Ev::ReadChannelFinished,
            Ev::Error(SocketError::RemoteHostClosed),
            Ev::State(State::Closed),
            Ev::Disconnected
        ]),
        "{:?}",
        d.events
    );
}

#[test]
fn a_pong_reports_the_time_since_our_ping() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.conn.ping(1_000, &[7u8; 200]);
    d.collect(1_000);
    let ping = d.outcome().frames.last().unwrap().clone();
    assert_eq!((ping.opcode, ping.payload.len()), (0x9, 125));
    d.feed(1_250, &frame(true, 0xA, b"p"));
    assert!(d.events.contains(&Ev::Pong(250, b"p".to_vec())));
}

#[test]
fn abort_discards_output_and_sends_no_close() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.out.clear();
    d.conn.send(wsbox_core::MessageKind::Text, b"never sent");
    d.conn.abort();
    d.collect(0);
    assert!(d.out.is_empty());
    assert_eq!(d.conn.transport(), Transport::Abort);
}

#[test]
fn a_stalled_frame_closes_with_1001_but_an_idle_connection_never_times_out() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    // Idle between frames: no deadline at all.
    assert_eq!(d.conn.poll_timeout(), None);
    let message = text("0123456789");
    // Half a frame: the stall clock runs from the last byte received.
    d.feed(1_000, &message[..8]);
    assert_eq!(d.conn.poll_timeout(), Some(6_000));
    d.feed(4_000, &message[8..10]);
    assert_eq!(d.conn.poll_timeout(), Some(9_000), "progress restarts the clock");
    d.conn.handle_timeout(8_999);
    assert_eq!(d.conn.state(), State::Open);
    d.conn.handle_timeout(9_000);
    d.collect(9_000);
    let o = d.outcome();
    assert_eq!(o.sent_close(), Some(1001));
    assert_eq!(o.close_reason, "Timeout when reading data from socket.");
    assert!(o.events.contains(&Ev::Error(SocketError::Timeout)));
    assert_eq!(o.state, State::Closing);
}

#[test]
fn a_frame_that_completes_clears_the_stall_deadline() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    let message = text("hello");
    d.feed(10, &message[..3]);
    assert!(d.conn.poll_timeout().is_some());
    d.feed(20, &message[3..]);
    assert_eq!(d.conn.poll_timeout(), None);
    assert_eq!(d.outcome().messages(), [Ev::Text("hello".into())]);
}

#[test]
fn keepalive_pings_a_quiet_peer_and_closes_with_1001_when_nothing_answers() {
    let limits = Limits { keepalive_interval_ms: Some(1_000), keepalive_timeout_ms: 500, ..Limits::default() };
    let mut d = Driver::new(Config { limits, ..Config::default() });
    d.feed(0, UPGRADE);
    assert_eq!(d.conn.poll_timeout(), Some(1_000));
    // Input restarts the clock.
    d.feed(600, &text("hi"));
    assert_eq!(d.conn.poll_timeout(), Some(1_600));
    d.conn.handle_timeout(1_600);
    d.collect(1_600);
    let ping = d.outcome().frames.last().cloned().expect("a keepalive ping");
    assert_eq!(ping.opcode, 0x9);
    assert_eq!(d.conn.poll_timeout(), Some(2_100));
    // The pong answers it (and is not reported to the app).
    d.feed(1_700, &frame(true, 0xA, &ping.payload));
    assert!(!d.events.iter().any(|e| matches!(e, Ev::Pong(..))), "{:?}", d.events);
    assert_eq!(d.conn.poll_timeout(), Some(2_700));
    // Then silence: a ping at 2 700, nothing by 3 200, close 1001.
    d.conn.handle_timeout(2_700);
    d.conn.handle_timeout(3_200);
    d.collect(3_200);
    let o = d.outcome();
    assert_eq!(o.sent_close(), Some(1001));
    assert_eq!(o.close_reason, "No answer to a keepalive ping.");
    assert!(o.events.contains(&Ev::Error(SocketError::Timeout)));
}

#[test]
fn keepalive_is_off_by_default() {
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    assert_eq!(d.conn.poll_timeout(), None);
}
