//! Messages as the app gets them, whatever their sizes and however their
//! bytes arrive; text validation (RFC 6455 §8.1): UTF-8 checked as bytes
//! arrive.

use wsbox_core::{Config, State, Transport};
use wsbox_testkit::driver::*;

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

#[test]
fn large_and_small_messages_in_one_input_arrive_whole_and_in_order() {
    // Sizes around the assembler's thresholds: kept in the arena, a buffer
    // of their own (over 16 KiB), sized from the header (up to 64 KiB) or
    // grown as bytes arrive (over it).
    let pattern = |len: usize, seed: u8| -> Vec<u8> { (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect() };
    let messages = [
        Ev::Binary(pattern(20 * 1024, 1)),
        Ev::Text("small".repeat(20)),
        Ev::Binary(pattern(40 * 1024, 2)),
        Ev::Binary(pattern(100, 3)),
        Ev::Binary(pattern(70 * 1024, 4)),
        Ev::Binary(pattern(64 * 1024, 5)),
    ];
    let mut script = Vec::new();
    for m in &messages {
        script.extend(match m {
            Ev::Binary(b) => binary(b),
            Ev::Text(t) => text(t),
            _ => unreachable!(),
        });
    }
    assert_eq!(run_default(&script).messages(), messages, "in one input");
    for chunk in [1000, 3 * 1024, 50 * 1024] {
        let mut d = Driver::new(Config::default());
        d.feed(0, UPGRADE);
        for piece in script.chunks(chunk) {
            d.feed(1, piece);
        }
        assert_eq!(d.outcome().messages(), messages, "in pieces of {chunk} bytes");
    }
}
