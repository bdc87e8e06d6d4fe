//! Text validation (RFC 6455 §8.1): UTF-8 checked as bytes arrive.

mod peer;

use peer::*;
use wsbox_core::{Config, State, Transport};

#[test]
fn utf8_split_across_fragments_is_accepted() {
    let bytes = "κόσμε".as_bytes();
    let mut script = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        script.extend(frame(i == bytes.len() - 1, opcode, std::slice::from_ref(b)));
    }
    assert_eq!(run_default(&script).messages(), [Ev::Text("κόσμε".into())]);
}

#[test]
fn invalid_utf8_fails_with_1007() {
    let o = run_default(&frame(true, 0x1, &[0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xED, 0xA0, 0x80, 0x65]));
    assert_eq!(o.sent_close(), Some(1007));
    assert_eq!(o.transport, Transport::Close);
    assert_eq!(o.messages(), []);
}

#[test]
fn text_ending_inside_a_code_point_fails_with_1007() {
    assert_eq!(run_default(&frame(true, 0x1, &[b'a', 0xE2, 0x82])).sent_close(), Some(1007));
}

#[test]
fn invalid_utf8_fails_fast_in_the_middle_of_a_frame() {
    // Autobahn 6.4.*: the bad byte arrives while the frame is far from complete.
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.extend_from_slice(&[0xF4, 0x90, 0x80, 0x80]);
    payload.extend_from_slice(&[b'x'; 1000]);
    let whole = frame(true, 0x1, &payload);
    let cut = 2 + 2 + 4 + "κόσμε".len() + 2; // header + mask + text + F4 90
    let mut d = Driver::new(Config::default());
    d.feed(0, UPGRADE);
    d.feed(0, &whole[..cut]);
    let o = d.outcome();
    assert_eq!(o.sent_close(), Some(1007), "must fail before the frame completes");
    assert_eq!(o.state, State::Closed);
}

#[test]
fn binary_messages_are_not_validated() {
    let o = run_default(&binary(&[0xFF, 0xFE, 0xED, 0xA0, 0x80]));
    assert_eq!(o.messages(), [Ev::Binary(vec![0xFF, 0xFE, 0xED, 0xA0, 0x80])]);
}
