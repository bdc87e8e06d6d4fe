//! The batch one turn hands to the guest: everything that happened on the
//! sockets since the last `exchange`, with the input flat (conns, ends, one
//! byte list).

use super::TURN_CAP;
use super::batch as net;

/// What arrived since the last turn.
#[derive(Default)]
pub struct Turn {
    pub opened: Vec<net::Opened>,
    runs: Vec<net::InputRun>,
    /// Input, read straight into its spare capacity. Each turn hands its
    /// buffer to the guest, so the next one starts empty.
    pub data: Vec<u8>,
    /// How much input the last turn carried: the next turn's buffer starts
    /// that large, so a busy turn does not grow (and copy) its buffer read
    /// by read.
    last_len: usize,
    pub eof: Vec<u32>,
    pub gone: Vec<u32>,
    pub tls_established: Vec<net::TlsSession>,
    pub tls_failed: Vec<net::TlsFailure>,
    pub accept_failed: Vec<net::AcceptFailure>,
    /// Bytes written per connection, for connections whose guest asked
    /// (these never end a wait by themselves).
    written: Vec<(u32, u64)>,
    /// Connections whose output crossed its write limit, either way, since
    /// the last turn: the turn reports the state each is in then.
    pressure: Vec<u32>,
    /// One of them drained (that ends a wait; backing up does not).
    drained: bool,
    /// Counts turns, so each connection's share restarts every turn.
    pub epoch: u32,
    /// Publications from other instances, and a change of the broker
    /// connection (see [`crate::topics`]).
    pub publications: Vec<net::Publication>,
    pub broker_connected: Option<bool>,
    /// A connection was left unread for want of its share (see
    /// `NetHost::read`): the turn ends without waiting.
    pub more_to_read: bool,
}

impl Turn {
    /// Bytes this turn can still take.
    pub fn room(&self) -> usize {
        TURN_CAP.saturating_sub(self.data.len())
    }

    /// The buffer to read into, with room for at least `max` more bytes.
    pub fn read_buffer(&mut self, max: usize) -> &mut Vec<u8> {
        if self.data.capacity() == 0 {
            self.data.reserve(self.last_len.min(TURN_CAP).max(max));
        }
        self.data.reserve(max);
        &mut self.data
    }

    /// Books the `n` bytes just appended to `data` to `conn`: one item per
    /// run of input from one connection.
    pub fn record_input(&mut self, conn: u32, n: usize) {
        if n == 0 {
            return;
        }
        let end = self.data.len() as u32;
        match self.runs.last_mut() {
            Some(run) if run.conn == conn => run.end = end,
            _ => self.runs.push(net::InputRun { conn, end }),
        }
    }

    pub fn record_written(&mut self, conn: u32, n: usize) {
        if n > 0 {
            self.written.push((conn, n as u64));
        }
    }

    /// A connection's output crossed its write limit (up) or drained to half
    /// of it (down).
    pub fn record_pressure(&mut self, conn: u32, backed_up: bool) {
        if !self.pressure.contains(&conn) {
            self.pressure.push(conn);
        }
        self.drained |= !backed_up;
    }

    /// Whether any connection's input was read into this turn.
    pub fn has_input(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Whether the guest should get its turn now (`written` and `backed-up`
    /// alone do not end a wait).
    pub fn has_news(&self) -> bool {
        !self.runs.is_empty() || self.drained || self.more_to_read || self.has_connection_events()
    }

    /// Accepts, EOFs, failures and TLS outcomes: news, and part of the
    /// rarer half of `incoming`.
    fn has_connection_events(&self) -> bool {
        !(self.opened.is_empty()
            && self.eof.is_empty()
            && self.gone.is_empty()
            && self.tls_established.is_empty()
            && self.tls_failed.is_empty()
            && self.accept_failed.is_empty()
            && self.publications.is_empty()
            && self.broker_connected.is_none())
    }

    /// Hands the batch over and starts the next turn; `backed_up` tells
    /// whether a connection is backed up now (`None`: it is gone).
    pub fn take(&mut self, backed_up_now: impl Fn(u32) -> Option<bool>) -> net::Incoming {
        self.epoch = self.epoch.wrapping_add(1);
        self.drained = false;
        self.more_to_read = false;
        let rare = self.has_connection_events() || !self.written.is_empty() || !self.pressure.is_empty();
        let transport = rare.then(|| {
            let (written_conns, written_bytes) = self.written.drain(..).unzip();
            let (mut backed_up, mut drained) = (Vec::new(), Vec::new());
            for id in self.pressure.drain(..) {
                match backed_up_now(id) {
                    Some(true) => backed_up.push(id),
                    Some(false) => drained.push(id),
                    None => {}
                }
            }
            net::TransportEvents {
                opened: std::mem::take(&mut self.opened),
                eof: std::mem::take(&mut self.eof),
                gone: std::mem::take(&mut self.gone),
                tls_established: std::mem::take(&mut self.tls_established),
                tls_failed: std::mem::take(&mut self.tls_failed),
                accept_failed: std::mem::take(&mut self.accept_failed),
                written_conns,
                written_bytes,
                backed_up,
                drained,
                publications: std::mem::take(&mut self.publications),
                broker_connected: self.broker_connected.take(),
            }
        });
        self.last_len = self.data.len();
        net::Incoming { runs: std::mem::take(&mut self.runs), data: std::mem::take(&mut self.data), transport }
    }
}
