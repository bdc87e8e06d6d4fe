//! The fuzz targets' bodies, shared by `fuzz/` (libFuzzer, `just fuzz`) and
//! by the core's `tests/fuzz_corpus.rs`, which replays the committed corpus natively in
//! every `cargo test`. Each takes arbitrary bytes and checks the invariants
//! that must hold for any input: no panic, no output past a limit, text
//! events that are UTF-8, server frames that are well-formed and unmasked.

use crate::frames::{decode_server_output, raw_frame};
use arbitrary::{Arbitrary, Unstructured};
use std::sync::Arc;
use wsbox_core::deflate::{DeflateConfig, DeflateParams, Inflater};
use wsbox_core::frame::{Chunk, Decoder};
use wsbox_core::handshake::parse_request;
use wsbox_core::{CloseCode, Config, Connection, Event, Limits, MessageKind, State, Transport};

/// The upgrade request parser on any bytes.
pub fn handshake(data: &[u8]) {
    let max_head = 4096;
    match parse_request(data, max_head) {
        Ok(Some((request, used))) => {
            assert!(used <= data.len() && used <= max_head + 4, "used {used} of {}", data.len());
            assert!(!request.key.is_empty(), "a parsed request has a key");
            assert!(request.headers.iter().all(|(name, _)| name.chars().all(|c| !c.is_ascii_uppercase())));
        }
        Ok(None) => assert!(data.len() <= max_head + 4, "an over-long head must be refused, not awaited"),
        Err(error) => {
            let (status, _) = error.status();
            assert!((400..500).contains(&status), "refusals are 4xx: {status}");
        }
    }
}

/// The frame decoder on any bytes, fed in chunks whose sizes the first
/// byte chooses: payload chunks add up to each header's length.
pub fn frame_decoder(data: &[u8]) {
    let Some((&chop, stream)) = data.split_first() else { return };
    let chop = usize::from(chop % 64) + 1;
    let mut decoder = Decoder::default();
    let mut expected: Option<u64> = None;
    let mut seen = 0u64;
    for mut input in stream.chunks(chop) {
        loop {
            match decoder.decode(&mut input, chop % 2 == 0, 1 << 20) {
                Ok(Some(Chunk::Header(header))) => {
                    assert!(expected.is_none(), "a header inside a frame");
                    assert!(header.payload_len <= 1 << 20, "the size limit holds from the header");
                    expected = Some(header.payload_len);
                    seen = 0;
                }
                Ok(Some(Chunk::Payload { masked, offset, last })) => {
                    let len = expected.expect("payload follows a header");
                    assert_eq!(offset as u64, seen);
                    seen += masked.len() as u64;
                    assert!(seen <= len);
                    if last {
                        assert_eq!(seen, len, "a frame ends when its payload is complete");
                        expected = None;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Inflating any bytes as one message: never past the limit, never a panic.
pub fn inflate(data: &[u8]) {
    let Some((&flags, compressed)) = data.split_first() else { return };
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: flags & 1 != 0,
        server_max_window_bits: 15,
        client_max_window_bits: 8 + (flags >> 1) % 8,
    };
    let limit = 64 * 1024;
    let mut inflater = Inflater::new(&params);
    let mut out = Vec::new();
    for piece in compressed.chunks(usize::from(flags % 32) + 1) {
        if inflater.inflate(piece, &mut out, limit).is_err() {
            return;
        }
        assert!(out.len() as u64 <= limit, "inflated past the limit: {}", out.len());
    }
    if inflater.finish_message(&mut out, limit).is_ok() {
        assert!(out.len() as u64 <= limit);
    }
}

/// One step of a connection's life.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// Raw bytes from the peer.
    Peer(Vec<u8>),
    /// A well-formed masked frame from the peer (so the fuzzer gets past framing).
    Frame {
        fin: bool,
        rsv1: bool,
        opcode: u8,
        payload: Vec<u8>,
    },
    /// The app sends a message.
    Send {
        text: bool,
        payload: Vec<u8>,
    },
    Ping(Vec<u8>),
    Close {
        code: u16,
        reason: String,
    },
    Abort,
    /// Time passes (ms).
    Tick(u16),
    Eof,
    Reset,
    /// The app has answered the turn's messages.
    EndRound,
}

/// What a connection fuzz case starts from.
#[derive(Arbitrary, Debug)]
struct Setup {
    deflate: bool,
    frame_events: bool,
    max_frame: u16,
    max_message: u16,
    outgoing_frame: u8,
    ops: Vec<Op>,
}

/// A connection driven by any sequence of peer bytes, app calls and timer
/// ticks, after a valid upgrade request.
pub fn connection(data: &[u8]) {
    let Ok(setup) = Setup::arbitrary(&mut Unstructured::new(data)) else { return };
    let limits = Limits {
        max_frame_size: u64::from(setup.max_frame) + 1,
        max_message_size: u64::from(setup.max_message) + 1,
        outgoing_frame_size: u64::from(setup.outgoing_frame) + 1,
        ..Limits::default()
    };
    let deflate = setup.deflate.then(DeflateConfig::default);
    let config = Config { limits, frame_events: setup.frame_events, deflate, ..Config::default() };
    let mut conn = Connection::new(Arc::new(config), 0);
    let mut now = 0u64;
    let mut wire = Vec::new();
    let offer = if setup.deflate { "Sec-WebSocket-Extensions: permessage-deflate\r\n" } else { "" };
    let request = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    conn.handle_input(now, request.as_bytes());
    settle(&mut conn, now, &mut wire);
    for op in setup.ops {
        match op {
            Op::Peer(bytes) => conn.handle_input(now, &bytes),
            Op::Frame { fin, rsv1, opcode, payload } => {
                conn.handle_input(now, &client_frame(fin, rsv1, opcode, &payload))
            }
            Op::Send { text, payload } => {
                let kind = if text { MessageKind::Text } else { MessageKind::Binary };
                let text_ok = !text || std::str::from_utf8(&payload).is_ok();
                if text_ok {
                    conn.send(kind, &payload);
                }
            }
            Op::Ping(payload) => conn.ping(now, &payload),
            Op::Close { code, reason } => conn.close(now, CloseCode(code), &reason),
            Op::Abort => conn.abort(),
            Op::Tick(ms) => {
                now += u64::from(ms);
                conn.handle_timeout(now);
            }
            Op::Eof => conn.handle_eof(now),
            Op::Reset => conn.handle_reset(now),
            Op::EndRound => conn.end_round(),
        }
        settle(&mut conn, now, &mut wire);
        if conn.state() == State::Closed {
            assert_ne!(conn.transport(), Transport::Open, "a closed connection releases its transport");
        }
    }
    check_server_frames(&wire);
}

/// Drains events (accepting the upgrade), checks them, collects output.
fn settle(conn: &mut Connection, now: u64, wire: &mut Vec<u8>) {
    loop {
        let mut requested = false;
        conn.drain_events(|event| match event {
            Event::UpgradeRequested => requested = true,
            Event::TextMessage(text) | Event::TextFrame { frame: text, .. } => {
                assert!(std::str::from_utf8(text).is_ok(), "text events are UTF-8");
            }
            _ => {}
        });
        if !requested {
            break;
        }
        conn.accept_upgrade(now);
    }
    conn.take_transmit(wire);
}

/// Everything after the 101 response parses as unmasked server frames.
fn check_server_frames(wire: &[u8]) {
    let _ = decode_server_output(wire);
}

fn client_frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(u8::from(fin) << 7 | u8::from(rsv1) << 6 | (opcode & 0x0F), payload, true)
}
