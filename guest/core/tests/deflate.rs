//! permessage-deflate through the connection (RFC 7692): negotiation,
//! compressed frames at every chop size, context takeover, the bounded
//! inflate.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wsbox_core::{Config, DeflateConfig, Limits, MessageKind, State};
use wsbox_testkit::driver::*;

fn upgrade_offering(offer: &str) -> Vec<u8> {
    String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replace("Origin:", &format!("Sec-WebSocket-Extensions: {offer}\r\nOrigin:"))
        .into_bytes()
}

/// A client compressor (raw deflate, 32 KiB window).
fn client_compressor() -> Compress {
    Compress::new_with_window_bits(Compression::default(), false, 15)
}

/// Compresses one message the way a client does: sync flush, tail removed.
fn compress(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

fn inflate_server_message(d: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
    out
}

#[test]
fn an_offer_is_accepted_in_the_101_response() {
    let o = run(Config::default(), false, &upgrade_offering("permessage-deflate; client_max_window_bits"));
    assert!(
        o.http.contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12\r\n"),
        "{}",
        o.http
    );
    // A client whose window cannot be limited is asked not to keep its context.
    let o = run(Config::default(), false, &upgrade_offering("permessage-deflate; server_max_window_bits=10"));
    assert!(o.http.contains(
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_max_window_bits=10\r\n"
    ));
}

#[test]
fn deflate_switched_off_declines_every_offer() {
    let config = Config { deflate: None, ..Config::default() };
    let o = run(config, false, &upgrade_offering("permessage-deflate"));
    assert!(o.http.starts_with("HTTP/1.1 101"));
    assert!(!o.http.contains("Sec-WebSocket-Extensions"));
}

#[test]
fn a_bad_offer_is_declined_without_failing_the_handshake() {
    let o = run(Config::default(), false, &upgrade_offering("permessage-deflate; server_max_window_bits=20"));
    assert!(o.http.starts_with("HTTP/1.1 101"));
    assert!(!o.http.contains("Sec-WebSocket-Extensions"));
}

#[test]
fn compressed_messages_are_inflated_at_every_chop_size_with_context_takeover() {
    // The window the server asks for (client_max_window_bits=12).
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 12);
    let first = "Hello, compressed world! ".repeat(20);
    let second = first.clone(); // compresses to a back-reference into the first
    let mut script = upgrade_offering("permessage-deflate; client_max_window_bits");
    script.extend(raw_frame(0xC1, &compress(&mut c, first.as_bytes()), true));
    script.extend(raw_frame(0xC2, &compress(&mut c, second.as_bytes()), true));
    let o = run(Config::default(), false, &script);
    assert_eq!(o.messages(), [Ev::Text(first), Ev::Binary(second.into_bytes())]);
}

#[test]
fn a_fragmented_compressed_message_has_rsv1_on_its_first_frame_only() {
    let mut c = client_compressor();
    let text = "fragmented and compressed ".repeat(10);
    let z = compress(&mut c, text.as_bytes());
    let (a, b) = z.split_at(z.len() / 2);
    let mut script = upgrade_offering("permessage-deflate");
    script.extend(raw_frame(0x41, a, true)); // RSV1, text, no FIN
    script.extend(raw_frame(0x80, b, true)); // FIN, continuation
    assert_eq!(run(Config::default(), false, &script).messages(), [Ev::Text(text)]);
}

#[test]
fn rsv1_on_a_continuation_or_control_frame_fails_with_1002() {
    let mut script = upgrade_offering("permessage-deflate");
    script.extend(raw_frame(0x01, b"a", true));
    script.extend(raw_frame(0xC0, b"b", true));
    assert_eq!(run(Config::default(), false, &script).sent_close(), Some(1002));
    let mut script = upgrade_offering("permessage-deflate");
    script.extend(raw_frame(0xC9, b"", true));
    assert_eq!(run(Config::default(), false, &script).sent_close(), Some(1002));
}

#[test]
fn corrupt_deflate_data_fails_with_1007() {
    let mut script = upgrade_offering("permessage-deflate");
    script.extend(raw_frame(0xC2, &[0xFF, 0xFF, 0xFF, 0xFF], true));
    assert_eq!(run(Config::default(), false, &script).sent_close(), Some(1007));
}

#[test]
fn invalid_utf8_inside_compressed_text_fails_with_1007() {
    let mut c = client_compressor();
    let mut script = upgrade_offering("permessage-deflate");
    script.extend(raw_frame(0xC1, &compress(&mut c, &[b'o', b'k', 0xED, 0xA0, 0x80]), true));
    assert_eq!(run(Config::default(), false, &script).sent_close(), Some(1007));
}

#[test]
fn outgoing_messages_are_compressed_above_the_minimum_size() {
    let mut d = Driver::new(Config::default());
    d.feed(0, &upgrade_offering("permessage-deflate"));
    let big = "compress me ".repeat(100);
    d.conn.send(MessageKind::Text, big.as_bytes());
    d.conn.send(MessageKind::Text, big.as_bytes());
    d.conn.send(MessageKind::Text, b"tiny");
    d.collect(0);
    let frames = d.outcome().frames;
    assert_eq!(frames.iter().map(|f| f.rsv).collect::<Vec<_>>(), [4, 4, 0], "RSV1 only on compressed messages");
    assert!(frames[1].payload.len() < frames[0].payload.len(), "context takeover: the repeat is shorter");
    let mut inflate = Decompress::new_with_window_bits(false, 15);
    assert_eq!(inflate_server_message(&mut inflate, &frames[0].payload), big.as_bytes());
    assert_eq!(inflate_server_message(&mut inflate, &frames[1].payload), big.as_bytes());
    assert_eq!(frames[2].payload, b"tiny");
}

#[test]
fn server_no_context_takeover_compresses_each_message_alone() {
    let mut d = Driver::new(Config::default());
    d.feed(0, &upgrade_offering("permessage-deflate; server_no_context_takeover"));
    assert_eq!(d.conn.extensions(), Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"));
    let big = "compress me ".repeat(100);
    d.conn.send(MessageKind::Binary, big.as_bytes());
    d.conn.send(MessageKind::Binary, big.as_bytes());
    d.collect(0);
    let frames = d.outcome().frames;
    assert_eq!(frames[0].payload, frames[1].payload);
    let mut fresh = Decompress::new_with_window_bits(false, 15);
    assert_eq!(inflate_server_message(&mut fresh, &frames[1].payload), big.as_bytes());
}

#[test]
fn a_256_byte_server_window_is_honoured_with_stored_blocks() {
    let mut d = Driver::new(Config::default());
    d.feed(0, &upgrade_offering("permessage-deflate; server_max_window_bits=8"));
    let text = "abcdefgh".repeat(200);
    d.conn.send(MessageKind::Text, text.as_bytes());
    d.collect(0);
    let frame = &d.outcome().frames[0];
    // A decompressor with a 256-byte window (9 is zlib's smallest for raw
    // inflate, and stored blocks need none) reads it.
    let mut inflate = Decompress::new_with_window_bits(false, 9);
    assert_eq!(inflate_server_message(&mut inflate, &frame.payload), text.as_bytes());
}

#[test]
fn outgoing_fragments_carry_rsv1_only_first() {
    let limits = Limits { outgoing_frame_size: 16, ..Limits::default() };
    let mut d = Driver::new(Config { limits, ..Config::default() });
    d.feed(0, &upgrade_offering("permessage-deflate"));
    let data: Vec<u8> = (0..400u32).map(|i| (i * 7919 % 251) as u8).collect();
    d.conn.send(MessageKind::Binary, &data);
    d.collect(0);
    let frames = d.outcome().frames;
    assert!(frames.len() > 2);
    assert_eq!(frames[0].rsv, 4);
    assert!(frames[1..].iter().all(|f| f.rsv == 0 && f.opcode == 0));
    let joined: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(inflate_server_message(&mut Decompress::new_with_window_bits(false, 15), &joined), data);
}

#[test]
fn a_message_that_inflates_past_the_limit_fails_with_1009() {
    let limits = Limits { max_message_size: 100_000, ..Limits::default() };
    let mut c = client_compressor();
    let mut script = upgrade_offering("permessage-deflate");
    script.extend(raw_frame(0xC2, &compress(&mut c, &vec![0u8; 100_001]), true));
    let o = run(Config { limits, ..Config::default() }, false, &script);
    assert_eq!(o.sent_close(), Some(1009));
    assert_eq!(o.state, State::Closed);
}

#[test]
fn config_tunes_what_is_offered_back() {
    let deflate =
        DeflateConfig { client_max_window_bits: 10, client_no_context_takeover: true, ..DeflateConfig::default() };
    let config = Config { deflate: Some(deflate), ..Config::default() };
    let o = run(config, false, &upgrade_offering("permessage-deflate; client_max_window_bits"));
    assert!(
        o.http.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits=10\r\n"
        ),
        "{}",
        o.http
    );
}
