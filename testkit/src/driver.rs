//! A scripted client for driving the sans-io core: feeds a script at every
//! chop size and collects what the server sent back and signalled.

pub use crate::frames::*;
pub use crate::upgrade::UPGRADE;
use std::sync::Arc;
use wsbox_core::{CloseCode, Config, Connection, Event, State, Transport};

/// An event with owned payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    UpgradeRequested,
    Upgraded,
    Refused(u16),
    HealthCheck,
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
                    Event::HealthCheck => Ev::HealthCheck,
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
