//! A scripted client for driving the sans-io core: builds masked frames
//! (valid and invalid), feeds a script at every chop size, and decodes what
//! the server sent back.

#![allow(dead_code)]

use std::sync::Arc;
use wsbox_core::{CloseCode, Config, Connection, Event, State, Transport};

pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub const UPGRADE: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example:1234\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Origin: http://example.com\r\n\r\n";

/// A masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame((fin as u8) << 7 | opcode, payload, true)
}

/// A frame with a chosen first byte (RSV bits, reserved opcodes), masked or not.
pub fn raw_frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

pub fn text(payload: &str) -> Vec<u8> {
    frame(true, 0x1, payload.as_bytes())
}

pub fn binary(payload: &[u8]) -> Vec<u8> {
    frame(true, 0x2, payload)
}

pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(true, 0x8, &payload)
}

/// An event with owned payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    UpgradeRequested,
    Upgraded,
    Refused(u16),
    TextFrame(Vec<u8>, bool),
    BinaryFrame(Vec<u8>, bool),
    Text(String),
    Binary(Vec<u8>),
    Pong(u64, Vec<u8>),
    State(State),
    AboutToClose,
    ReadChannelFinished,
    Disconnected,
    Error(wsbox_core::SocketError),
}

/// A frame the server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Everything the server did for one script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub http: String,
    pub frames: Vec<ServerFrame>,
    pub events: Vec<Ev>,
    pub transport: Transport,
    pub state: State,
    pub close_code: CloseCode,
    pub close_reason: String,
}

impl Outcome {
    pub fn messages(&self) -> Vec<Ev> {
        self.events.iter().filter(|e| matches!(e, Ev::Text(_) | Ev::Binary(_))).cloned().collect()
    }

    /// The close code of the last close frame the server sent.
    pub fn sent_close(&self) -> Option<u16> {
        self.frames.iter().rev().find(|f| f.opcode == 0x8).and_then(ServerFrame::close_code)
    }
}

/// A connection under test with its collected output.
pub struct Driver {
    pub conn: Connection,
    pub out: Vec<u8>,
    pub events: Vec<Ev>,
    pub auto_accept: bool,
}

impl Driver {
    pub fn new(config: Config) -> Self {
        Self { conn: Connection::new(Arc::new(config), 0), out: Vec::new(), events: Vec::new(), auto_accept: true }
    }

    pub fn feed(&mut self, now: u64, bytes: &[u8]) {
        self.conn.handle_input(now, bytes);
        self.collect(now);
    }

    pub fn collect(&mut self, now: u64) {
        loop {
            let mut requested = false;
            let events = &mut self.events;
            self.conn.drain_events(|e| {
                events.push(match e {
                    Event::UpgradeRequested => {
                        requested = true;
                        Ev::UpgradeRequested
                    }
                    Event::Upgraded => Ev::Upgraded,
                    Event::HandshakeRefused(e) => Ev::Refused(e.status().0),
                    Event::TextFrame { frame, is_last } => Ev::TextFrame(frame.to_vec(), is_last),
                    Event::BinaryFrame { frame, is_last } => Ev::BinaryFrame(frame.to_vec(), is_last),
                    Event::TextMessage(t) => Ev::Text(String::from_utf8(t.to_vec()).expect("text events are UTF-8")),
                    Event::BinaryMessage(b) => Ev::Binary(b.to_vec()),
                    Event::Pong { elapsed_ms, payload } => Ev::Pong(elapsed_ms, payload.to_vec()),
                    Event::StateChanged(s) => Ev::State(s),
                    Event::AboutToClose => Ev::AboutToClose,
                    Event::ReadChannelFinished => Ev::ReadChannelFinished,
                    Event::Disconnected => Ev::Disconnected,
                    Event::Error(e) => Ev::Error(e),
                })
            });
            if requested && self.auto_accept {
                self.conn.accept_upgrade(now);
                continue;
            }
            if self.conn.has_pending_failure() {
                // An app that has answered every message so far.
                self.conn.end_round();
                continue;
            }
            break;
        }
        self.conn.take_transmit(&mut self.out);
    }

    pub fn outcome(&self) -> Outcome {
        let (http, frames) = decode_server_output(&self.out);
        Outcome {
            http,
            frames,
            events: self.events.clone(),
            transport: self.conn.transport(),
            state: self.conn.state(),
            close_code: self.conn.close_code(),
            close_reason: self.conn.close_reason().to_string(),
        }
    }
}

/// The chop sizes every script is fed at: 1 byte, a few small sizes,
/// pseudo-random splits, and everything at once.
pub fn chops(len: usize) -> Vec<Vec<usize>> {
    let mut plans = vec![
        vec![1; len],
        vec![2; len.div_ceil(2)],
        vec![3; len.div_ceil(3)],
        vec![7; len.div_ceil(7)],
        vec![len.max(1)],
    ];
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..3 {
        let mut plan = Vec::new();
        let mut left = len;
        while left > 0 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 40 + 1) as usize;
            plan.push(n.min(left));
            left -= n.min(left);
        }
        plans.push(plan);
    }
    plans
}

/// Runs `script` (the upgrade request first, unless `with_upgrade` is false)
/// through a fresh connection at every chop size; asserts every chop gives
/// the same outcome and returns it.
pub fn run(config: Config, with_upgrade: bool, script: &[u8]) -> Outcome {
    let mut full = if with_upgrade { UPGRADE.to_vec() } else { Vec::new() };
    full.extend_from_slice(script);
    let mut first: Option<Outcome> = None;
    for plan in chops(full.len()) {
        let mut d = Driver::new(config.clone());
        let mut at = 0;
        for n in &plan {
            let n = (*n).min(full.len() - at);
            d.feed(1, &full[at..at + n]);
            at += n;
        }
        let outcome = d.outcome();
        match &first {
            None => first = Some(outcome),
            Some(f) => assert_eq!(&outcome, f, "chop plan {:?} differs", &plan[..plan.len().min(12)]),
        }
    }
    first.expect("at least one chop plan")
}

pub fn run_default(script: &[u8]) -> Outcome {
    run(Config::default(), true, script)
}

/// Splits server output into the HTTP head and the frames after it.
pub fn decode_server_output(out: &[u8]) -> (String, Vec<ServerFrame>) {
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(0);
    let http = String::from_utf8_lossy(&out[..head_end]).into_owned();
    if !http.starts_with("HTTP/1.1 101") {
        return (String::from_utf8_lossy(out).into_owned(), Vec::new());
    }
    let mut frames = Vec::new();
    let mut rest = &out[head_end..];
    while rest.len() >= 2 {
        let (b0, b1) = (rest[0], rest[1]);
        assert_eq!(b1 & 0x80, 0, "server frames are never masked");
        let (len, at) = match b1 & 0x7F {
            126 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 => (u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        frames.push(ServerFrame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0xF,
            payload: rest[at..at + len].to_vec(),
        });
        rest = &rest[at + len..];
    }
    assert!(rest.is_empty(), "trailing bytes after the last server frame");
    (http, frames)
}
