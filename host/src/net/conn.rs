//! One connection: its socket, its TLS session, the output the socket has
//! not taken yet, and how far it is in closing. Owned by the event loop
//! ([`super::NetHost`]), which tells it when the socket is ready.

use super::admission::AdmissionControl;
use super::batch::{self, Admission};
use super::http2::{self, Origin, Session};
use super::listener::opened_record;
use super::proxy::{self, Preamble};
use super::turn::Turn;
use crate::tls::{TlsFailure, TlsState};
use std::borrow::Cow;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wsbox_transport::{LINGER_MS, Output, OverCap, Pressure, READ_CHUNK, read_share};

/// How long a closing connection may take, then how long it lingers.
const LINGER: Duration = Duration::from_millis(LINGER_MS);

/// `at` in milliseconds on the process's clock (the transport policy's time).
pub(super) fn millis(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*EPOCH.get_or_init(Instant::now)).as_millis() as u64
}

/// How a read attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has nothing more for now (it will say when it has).
    WouldBlock,
    /// This turn has no more room for the connection: read it next turn.
    Blocked,
    /// The peer finished sending.
    Eof,
    /// The socket or the TLS session failed.
    Failed,
}

/// How discarding a lingering connection's input ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discarded {
    /// The peer closed (or the socket failed): the connection can go.
    Closed,
    WouldBlock,
    /// There may be more: again next pass.
    More,
}

/// Parts one vectored write takes; a connection given more in one exchange
/// (many publications at once) gets them joined.
const MAX_WRITE_PARTS: usize = 32;

/// Pumps of an HTTP/2 session per pass while the socket keeps taking
/// what it writes (each gives it up to the write limit).
const PUMPS_PER_PASS: usize = 4;

/// Reads per pass while discarding a lingering connection's input.
const DISCARD_READS: usize = 4;

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// The guest closed it: its output is being written, until `deadline`.
    Closing {
        deadline: Instant,
    },
    /// Our side is shut down; what the peer still sends is read and
    /// discarded until it closes too or `until` passes, so that closing the
    /// socket with unread input does not send a reset that could destroy
    /// our close frame before the peer reads it.
    Lingering {
        until: Instant,
    },
}

/// A connection whose PROXY header is still being read (see [`proxy`]):
/// the guest has not heard of it yet.
pub struct AwaitingHeader {
    pub listener: u32,
    /// The socket's addresses, which stand when the header names none.
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    /// Admission's decision, made at accept for a peer that is its own
    /// client (which must not send a header); `None` for a trusted proxy's
    /// connection (which must), decided for the client its header names.
    admitted: Option<Admission>,
    pub deadline: Instant,
    bytes: Vec<u8>,
}

impl AwaitingHeader {
    pub fn new(
        listener: u32,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        admitted: Option<Admission>,
        now: Instant,
    ) -> Self {
        Self { listener, peer, local, admitted, deadline: now + proxy::HEADER_TIMEOUT, bytes: Vec::new() }
    }

    /// The peer is a trusted proxy.
    fn is_proxied(&self) -> bool {
        self.admitted.is_none()
    }
}

/// How reading a PROXY header ended.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderOutcome {
    /// Not whole yet; the socket will say when more comes.
    Waiting,
    /// The guest hears of the connection this turn; read on.
    Opened,
    /// Refused (logged), or the peer left first: drop it; the guest never
    /// heard of it.
    Refused,
    /// Opened, then its TLS session failed: report it `gone`.
    Failed,
}

/// The socket failed (or its output passed the hard cap): drop it and
/// report it `gone`.
#[derive(Debug)]
pub struct Failed;

pub struct Conn {
    pub id: u32,
    /// The client's address (admission counts connections by it).
    pub peer: IpAddr,
    /// The guest upgraded it (`outgoing.upgraded`) and has not sent its
    /// close frame (`outgoing.closing`): if the instance fails, the host
    /// sends one.
    pub websocket: bool,
    pub close_sent: bool,
    /// Its first output (the answer to its HTTP request) was counted.
    pub answered: bool,
    stream: mio::net::TcpStream,
    /// The TLS session of a connection on a secure listener, boxed: it is
    /// over a kilobyte, and inline it would spread every connection of the
    /// loop's table over that much more memory (a broadcast touches each
    /// subscriber's entry; a cache miss each, and more of them, otherwise).
    tls: Option<Box<TlsState>>,
    pub phase: Phase,
    /// The socket said readable and has not said would-block since
    /// (readiness is edge-triggered).
    pub readable: bool,
    /// The readiness said the peer closed or the socket errored: read until
    /// would-block (a short read does not prove the socket empty then).
    hup: bool,
    /// In the event loop's queue of connections to read.
    pub queued: bool,
    /// The peer finished sending (reported `eof`).
    pub peer_done: bool,
    /// This connection's share of the current turn.
    share_epoch: u32,
    share_used: usize,
    /// Most bytes read per turn (0: the transport's share); Qt's `readBufferSize`.
    pub read_limit: usize,
    /// Whether the guest wants to hear of bytes written (`bytesWritten`).
    pub report_written: bool,
    /// Output the socket has not taken yet, and its backpressure.
    output: Output,
    /// Its PROXY header is still being read.
    awaiting: Option<Box<AwaitingHeader>>,
    /// Admission counts it under `peer` (`closed` is owed when it goes).
    pub counted: bool,
    /// On a secure listener: how the guest heard of the connection, kept
    /// for the streams it carries if its TLS handshake chooses HTTP/2.
    announcement: Option<Box<batch::Opened>>,
    /// The HTTP/2 session of a connection whose TLS handshake chose `h2`:
    /// the guest does not see this connection (it was told it is gone), it
    /// sees the session's streams.
    h2: Option<Box<Session>>,
}

impl Conn {
    pub fn new(id: u32, stream: mio::net::TcpStream, tls: Option<TlsState>, peer: IpAddr) -> Self {
        Self {
            id,
            peer,
            websocket: false,
            answered: false,
            close_sent: false,
            stream,
            tls: tls.map(Box::new),
            phase: Phase::Open,
            readable: false,
            hup: false,
            queued: false,
            peer_done: false,
            share_epoch: 0,
            share_used: 0,
            read_limit: 0,
            report_written: false,
            output: Output::default(),
            awaiting: None,
            counted: false,
            announcement: None,
            h2: None,
        }
    }

    /// The connection starts with a PROXY header (or, from a peer that is
    /// not a trusted proxy, must not): announced once it has been read.
    pub fn await_header(&mut self, awaiting: AwaitingHeader) {
        self.awaiting = Some(Box::new(awaiting));
    }

    /// Whether the guest knows the connection as one of its own (`opened`,
    /// and not an HTTP/2 carrier, whose streams it knows instead).
    pub fn announced(&self) -> bool {
        self.awaiting.is_none() && self.h2.is_none()
    }

    /// Whether the connection's PROXY header is still being read.
    pub fn awaiting_header(&self) -> bool {
        self.awaiting.is_some()
    }

    /// Keeps how the guest heard of a secure connection, should it carry
    /// HTTP/2 streams.
    pub fn remember_announcement(&mut self, opened: &batch::Opened) {
        if self.tls.is_some() {
            self.announcement = Some(Box::new(opened.clone()));
        }
    }

    /// The HTTP/2 session this connection carries, if it does.
    pub fn h2(&mut self) -> Option<&mut Session> {
        self.h2.as_deref_mut()
    }

    pub fn h2_ref(&self) -> Option<&Session> {
        self.h2.as_deref()
    }

    pub fn is_carrier(&self) -> bool {
        self.h2.is_some()
    }

    /// Runs the connection's HTTP/2 session and writes what it produced;
    /// again while the session had more to write than the socket's room
    /// and the socket took it all. `Ok(true)`: it still has more, though
    /// the socket has room (the caller runs it again next turn).
    pub fn pump_h2(&mut self, lp: &mut http2::Loop<'_>) -> Result<bool, Failed> {
        for _ in 0..PUMPS_PER_PASS {
            let Some(h2) = self.h2.as_deref_mut() else { return Ok(false) };
            if self.phase != Phase::Open {
                return Ok(false);
            }
            // h2's writes wait while the socket holds a write limit's worth.
            let room = self.output.limit().saturating_sub(self.output.unwritten());
            let pumped = h2.pump(lp, room);
            if !pumped.out.is_empty() {
                self.write(Cow::Owned(pumped.out), lp.turn)?;
            }
            if !pumped.blocked || self.output.unwritten() >= self.output.limit() {
                // Not blocked, or blocked by the socket: its drain pumps again.
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the connection's first bytes until they tell whether a PROXY
    /// header is there and it is whole; then announces the connection with
    /// the client's addresses (admitted by the client's address), and what
    /// followed the header becomes its first input.
    pub fn read_header(&mut self, turn: &mut Turn, admission: &mut AdmissionControl, now: Instant) -> HeaderOutcome {
        let Some(awaiting) = self.awaiting.as_mut() else { return HeaderOutcome::Opened };
        let mut chunk = [0u8; 512];
        loop {
            let refusal = match (proxy::read_preamble(&awaiting.bytes), awaiting.is_proxied()) {
                (Preamble::Incomplete, _) => None,
                (Preamble::Header { len, client, server }, true) => {
                    return self.open_after_header(len, client, server, turn, admission, now);
                }
                (Preamble::Absent, false) => return self.open_after_header(0, None, None, turn, admission, now),
                (Preamble::Header { .. }, false) => {
                    Some("a PROXY header from a peer that is not a trusted proxy (--trusted-proxy)".to_string())
                }
                (Preamble::Absent, true) => Some("a trusted proxy's connection without a PROXY header".to_string()),
                (Preamble::Malformed(why), _) => Some(format!("a malformed PROXY header: {why}")),
            };
            if let Some(refusal) = refusal {
                tracing::warn!(peer = %awaiting.peer, "connection refused: {refusal}");
                return HeaderOutcome::Refused;
            }
            let room = (proxy::MAX_HEADER - awaiting.bytes.len()).min(chunk.len());
            match Read::read(&mut &self.stream, &mut chunk[..room]) {
                Ok(0) => return HeaderOutcome::Refused,
                Ok(n) => awaiting.bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.readable = false;
                    return HeaderOutcome::Waiting;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return HeaderOutcome::Refused,
            }
        }
    }

    fn open_after_header(
        &mut self,
        len: usize,
        client: Option<SocketAddr>,
        server: Option<SocketAddr>,
        turn: &mut Turn,
        admission: &mut AdmissionControl,
        now: Instant,
    ) -> HeaderOutcome {
        let Some(awaiting) = self.awaiting.take() else { return HeaderOutcome::Opened };
        let peer = client.unwrap_or(awaiting.peer);
        let admitted = match awaiting.admitted {
            Some(admitted) => admitted,
            None => {
                self.peer = peer.ip();
                self.counted = true;
                admission.decide(peer.ip(), now)
            }
        };
        // The client a PROXY header names is a client: its requests' own
        // `Forwarded` headers are not read.
        let opened = opened_record(self.id, awaiting.listener, peer, server.or(awaiting.local), admitted, false);
        self.remember_announcement(&opened);
        turn.opened.push(opened);
        let rest = &awaiting.bytes[len..];
        if rest.is_empty() {
            return HeaderOutcome::Opened;
        }
        let Some(mut tls) = self.tls.take() else {
            turn.read_buffer(rest.len()).extend_from_slice(rest);
            turn.record_input(self.id, rest.len());
            self.share_left(turn.epoch);
            self.share_used += rest.len();
            return HeaderOutcome::Opened;
        };
        let mut records = Vec::new();
        let received = tls.receive(rest, &mut records);
        let mut outcome = match self.write_raw(Cow::Owned(records), turn) {
            Ok(()) => HeaderOutcome::Opened,
            Err(Failed) => HeaderOutcome::Failed,
        };
        if let Err(failure) = received {
            self.tls_failed(&mut tls, turn, failure);
            outcome = HeaderOutcome::Failed;
        }
        self.tls = Some(tls);
        outcome
    }

    pub fn stream_mut(&mut self) -> &mut mio::net::TcpStream {
        &mut self.stream
    }

    /// The readiness event said the peer closed or the socket errored.
    pub fn saw_hangup(&mut self) {
        self.hup = true;
    }

    pub fn unwritten(&self) -> usize {
        self.output.unwritten()
    }

    /// Whether the output is over its limit (reported `backed-up`).
    pub fn backed_up(&self) -> bool {
        self.output.backed_up()
    }

    /// Unwritten output past which the connection is not read and is
    /// reported `backed-up` (0: the transport's default).
    pub fn set_write_limit(&mut self, bytes: usize) {
        self.output.set_limit(bytes);
    }

    /// Whether input should be read into the batch now.
    pub fn wants_input(&self) -> bool {
        self.phase == Phase::Open && !self.peer_done && !self.output.backed_up()
    }

    /// Whether the event loop should read this socket when it is readable:
    /// for the guest, or to discard while lingering.
    pub fn wants_reading(&self) -> bool {
        self.wants_input() || matches!(self.phase, Phase::Lingering { .. })
    }

    /// Whether a deadline runs for this connection (the event loop then
    /// looks at it every housekeeping tick).
    pub fn has_timer(&self) -> bool {
        self.phase != Phase::Open
            || self.unwritten() > 0
            || self.awaiting.is_some()
            || self.h2.as_ref().is_some_and(|h2| h2.has_timer())
    }

    fn share_left(&mut self, epoch: u32) -> usize {
        if self.share_epoch != epoch {
            self.share_epoch = epoch;
            self.share_used = 0;
        }
        read_share(self.read_limit).saturating_sub(self.share_used)
    }

    /// Reads straight into the batch until the socket would block, the
    /// connection's share of this turn is used, or the turn is full. A TLS
    /// connection that chooses HTTP/2 keeps `h2` while it has no stream.
    pub fn read_into(&mut self, turn: &mut Turn, scratch: &mut [u8], h2: http2::Deadlines) -> ReadOutcome {
        if let Some(mut tls) = self.tls.take() {
            let outcome = self.read_tls_into(&mut tls, turn, scratch, h2);
            self.tls = Some(tls);
            return outcome;
        }
        loop {
            let room = turn.room().min(self.share_left(turn.epoch)).min(READ_CHUNK);
            if room == 0 {
                return ReadOutcome::Blocked;
            }
            match recv_into(&self.stream, turn.read_buffer(room), room) {
                Ok(0) => return self.eof(turn),
                Ok(n) => {
                    turn.record_input(self.id, n);
                    self.share_used += n;
                    // A short read emptied the socket: anything arriving
                    // later raises a new readiness edge, so the empty read
                    // that would prove it can be skipped. Not after a
                    // hang-up, whose edge may already be spent.
                    if n < room && !self.hup {
                        self.readable = false;
                        return ReadOutcome::WouldBlock;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.readable = false;
                    return ReadOutcome::WouldBlock;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return ReadOutcome::Failed,
            }
        }
    }

    /// The TLS version of [`Conn::read_into`]: raw bytes go through rustls,
    /// the plaintext into the batch within the same shares; handshake
    /// records go back out at once.
    fn read_tls_into(
        &mut self,
        tls: &mut TlsState,
        turn: &mut Turn,
        raw: &mut [u8],
        h2: http2::Deadlines,
    ) -> ReadOutcome {
        let mut records = Vec::new();
        loop {
            // Plaintext rustls already holds comes first.
            if let Some(session) = tls.take_new_session() {
                let session = batch::TlsSession {
                    conn: self.id,
                    protocol: session.protocol,
                    cipher: session.cipher,
                    server_name: session.server_name,
                    alpn: session.alpn,
                    peer_certificates: session.peer_certificates,
                };
                match self.announcement.take() {
                    Some(opened) if session.alpn.as_bytes() == crate::tls::ALPN_H2 => {
                        // HTTP/2: the guest forgets this connection and
                        // hears of each WebSocket stream instead; what it
                        // asked of this connection no longer applies.
                        turn.gone.push(self.id);
                        self.output.set_limit(0);
                        self.report_written = false;
                        self.read_limit = 0;
                        let origin = Origin { opened: *opened, tls: session };
                        self.h2 = Some(Box::new(Session::new(origin, Instant::now(), h2)));
                    }
                    _ => turn.tls_established.push(session),
                }
            }
            // A carrier's plaintext goes to its session, not the turn; the
            // share bounds it all the same.
            let share = self.share_left(turn.epoch);
            let room = if self.h2.is_some() { share } else { turn.room().min(share) };
            let taken = match self.h2.as_deref_mut() {
                Some(h2) => {
                    let mut plaintext = Vec::new();
                    let taken = tls.take_plaintext(&mut plaintext, room);
                    h2.receive(&plaintext);
                    taken
                }
                None => tls.take_plaintext(turn.read_buffer(room), room),
            };
            let (n, more) = match taken {
                Ok(taken) => taken,
                Err(failure) => return self.tls_failed(tls, turn, failure),
            };
            if self.h2.is_none() {
                turn.record_input(self.id, n);
            }
            self.share_used += n;
            if more && n == room {
                return ReadOutcome::Blocked;
            }
            if tls.peer_closed() {
                // close_notify: the peer sends nothing more.
                return self.eof(turn);
            }
            let n = match Read::read(&mut &self.stream, raw) {
                Ok(0) => return self.eof(turn),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.readable = false;
                    return ReadOutcome::WouldBlock;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Failed,
            };
            records.clear();
            let result = tls.receive(&raw[..n], &mut records);
            if self.write_raw(Cow::Borrowed(&records), turn).is_err() {
                return ReadOutcome::Failed;
            }
            if let Err(failure) = result {
                return self.tls_failed(tls, turn, failure);
            }
        }
    }

    fn eof(&mut self, turn: &mut Turn) -> ReadOutcome {
        self.peer_done = true;
        self.readable = false;
        match self.h2.as_deref_mut() {
            Some(h2) => h2.peer_closed(),
            None => turn.eof.push(self.id),
        }
        ReadOutcome::Eof
    }

    /// Sends rustls's alert and reports the failure to the guest.
    fn tls_failed(&mut self, tls: &mut TlsState, turn: &mut Turn, failure: TlsFailure) -> ReadOutcome {
        let mut records = Vec::new();
        tls.flush_into(&mut records);
        let _ = self.write_raw(Cow::Owned(records), turn);
        tracing::debug!(conn = self.id, error = %failure.message, "TLS failed");
        if self.h2.is_some() {
            // The guest does not know the carrier (its streams are reported gone).
            return ReadOutcome::Failed;
        }
        turn.tls_failed.push(super::batch::TlsFailure {
            conn: self.id,
            message: failure.message,
            alert_received: failure.alert_received,
            peer_verify: failure.peer_verify,
        });
        ReadOutcome::Failed
    }

    /// While lingering: reads and discards, a few chunks at a time so a
    /// peer that keeps sending cannot hold the event loop.
    pub fn discard_input(&mut self, scratch: &mut [u8]) -> Discarded {
        for _ in 0..DISCARD_READS {
            match Read::read(&mut &self.stream, scratch) {
                Ok(0) => return Discarded::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Discarded::WouldBlock;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Discarded::Closed,
            }
        }
        Discarded::More
    }

    /// Writes the guest's `bytes` (encrypted first on a TLS connection).
    pub fn write(&mut self, bytes: Cow<'_, [u8]>, turn: &mut Turn) -> Result<(), Failed> {
        match &mut self.tls {
            Some(tls) => {
                let mut records = Vec::with_capacity(bytes.len() + 64);
                tls.encrypt(&bytes, &mut records);
                self.write_raw(Cow::Owned(records), turn)
            }
            None => self.write_raw(bytes, turn),
        }
    }

    /// Writes `parts` one after another, as one send where the socket takes
    /// them (a vectored write: the parts are not joined first).
    pub fn write_parts(&mut self, parts: &[&[u8]], turn: &mut Turn) -> Result<(), Failed> {
        if let [one] = parts {
            return self.write(Cow::Borrowed(one), turn);
        }
        if let Some(tls) = &mut self.tls {
            let mut records = Vec::with_capacity(parts.iter().map(|p| p.len() + 64).sum());
            for part in parts {
                tls.encrypt(part, &mut records);
            }
            return self.write_raw(Cow::Owned(records), turn);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 || self.phase != Phase::Open {
            return Ok(());
        }
        let mut done = 0;
        if self.unwritten() == 0 && parts.len() <= MAX_WRITE_PARTS {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_PARTS];
            for (slice, part) in slices.iter_mut().zip(parts) {
                *slice = IoSlice::new(part);
            }
            let mut left = &mut slices[..parts.len()];
            while done < total {
                // sendmsg, not mio's writev: the socket path, not the file one.
                match socket2::SockRef::from(&self.stream).send_vectored(left) {
                    Ok(n) => {
                        done += n;
                        IoSlice::advance_slices(&mut left, n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(Failed),
                }
            }
            self.wrote(done, turn);
        }
        if done == total {
            self.update_pressure(turn);
            return Ok(());
        }
        // The rest waits, joined (the socket is full or output is waiting).
        let mut rest = Vec::with_capacity(total - done);
        let mut skip = done;
        for part in parts {
            let from = skip.min(part.len());
            skip -= from;
            rest.extend_from_slice(&part[from..]);
        }
        self.write_raw(Cow::Owned(rest), turn)
    }

    /// Writes `bytes` now as far as the socket takes them; the rest waits
    /// for writability, after anything already waiting. Ignored once the
    /// guest closed the connection.
    fn write_raw(&mut self, bytes: Cow<'_, [u8]>, turn: &mut Turn) -> Result<(), Failed> {
        if bytes.is_empty() || self.phase != Phase::Open {
            return Ok(());
        }
        let mut done = 0;
        if self.unwritten() == 0 {
            while done < bytes.len() {
                match self.stream.write(&bytes[done..]) {
                    Ok(n) => done += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(Failed),
                }
            }
            self.wrote(done, turn);
        }
        if done < bytes.len() && self.output.keep(bytes, done, millis(Instant::now())) == Err(OverCap) {
            // The peer does not read: drop it rather than grow without bound.
            tracing::debug!(conn = self.id, "output over its cap; dropping the connection");
            return Err(Failed);
        }
        self.update_pressure(turn);
        Ok(())
    }

    fn wrote(&self, n: usize, turn: &mut Turn) {
        if self.report_written {
            turn.record_written(self.id, n);
        }
    }

    /// Writes what is pending, as far as the socket takes it.
    pub fn drain(&mut self, turn: &mut Turn) -> Result<(), Failed> {
        while self.output.unwritten() > 0 {
            match self.stream.write(self.output.waiting()) {
                Ok(n) => {
                    self.output.wrote(n, millis(Instant::now()));
                    self.wrote(n, turn);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Failed),
            }
        }
        self.update_pressure(turn);
        Ok(())
    }

    /// Reports a change of backpressure (past the write limit the
    /// connection is not read until its output drains to half of it).
    fn update_pressure(&mut self, turn: &mut Turn) {
        if let Some(change) = self.output.pressure()
            && self.h2.is_none()
        {
            turn.record_pressure(self.id, change == Pressure::BackedUp);
        }
    }

    /// The guest closed the connection: a TLS session says close_notify,
    /// then the output is written (for at most [`LINGER`]) before lingering.
    pub fn close(&mut self, turn: &mut Turn, now: Instant) {
        if self.phase != Phase::Open {
            return;
        }
        if let Some(tls) = &mut self.tls {
            let mut records = Vec::new();
            tls.close_notify(&mut records);
            // A failed write shows again when the output is drained.
            let _ = self.write_raw(Cow::Owned(records), turn);
        }
        self.phase = Phase::Closing { deadline: now + LINGER };
    }

    /// Moves a closing connection on once its output is written: shuts our
    /// side down and lingers (or is done at once when the peer finished
    /// too). True when the connection can go.
    pub fn advance_close(&mut self, now: Instant) -> bool {
        if !matches!(self.phase, Phase::Closing { .. }) || self.unwritten() > 0 {
            return false;
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        if self.peer_done {
            return true;
        }
        self.phase = Phase::Lingering { until: now + LINGER };
        false
    }

    /// Whether a deadline passed: the close took too long (true: drop it
    /// quietly), or the output made no progress for `write_timeout` (a
    /// peer that does not read: `Err`, report it gone).
    pub fn expired(&self, now: Instant, write_timeout: Duration) -> Result<bool, Failed> {
        if let Some(awaiting) = &self.awaiting {
            let late = now >= awaiting.deadline;
            if late {
                tracing::debug!(peer = %awaiting.peer, "no PROXY header in time; dropping the connection");
            }
            return Ok(late);
        }
        match self.phase {
            Phase::Closing { deadline } => Ok(now >= deadline),
            Phase::Lingering { until } => Ok(now >= until),
            Phase::Open if self.output.stalled(millis(now), write_timeout.as_millis() as u64) => {
                tracing::debug!(conn = self.id, "output stalled past the write timeout; dropping the connection");
                Err(Failed)
            }
            Phase::Open => Ok(false),
        }
    }
}

/// Reads into `buf`'s spare capacity (at most `max` bytes), without zeroing
/// it first, and extends `buf` by what was read.
fn recv_into(stream: &mio::net::TcpStream, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
    buf.reserve(max);
    let len = buf.len();
    let spare: &mut [MaybeUninit<u8>] = &mut buf.spare_capacity_mut()[..max];
    let n = socket2::SockRef::from(stream).recv(spare)?;
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(len + n) };
    Ok(n)
}
