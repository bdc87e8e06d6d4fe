//! One HTTP/2 connection (the "carrier") and the WebSockets it carries.
//!
//! The carrier is a TLS connection whose ALPN chose `h2`. The guest never
//! sees it; it sees each extended CONNECT stream as a connection of its
//! own, with a fresh id, the carrier's addresses and TLS session, the
//! translated upgrade request as its first input and the stream's DATA as
//! the rest ([`super::translate`]). What the guest writes to a stream is
//! its answer head (translated back), then frames, sent as the stream's
//! flow control allows; what waits for window is the stream's output, under
//! the same write limit and hard cap as a socket's.

use super::io::PipeIo;
use super::translate::{self, Answer, Asked};
use super::{CONNECTION_WINDOW, Deadlines, MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST, STREAM_WINDOW};
use crate::net::admission::AdmissionControl;
use crate::net::batch;
use crate::net::turn::Turn;
use bytes::Bytes;
use h2::server::{Connection, Handshake, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::StatusCode;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use wsbox_transport::{LINGER_MS, Output, OverCap, Pressure, read_share};

/// What every stream of a carrier inherits from it.
#[derive(Clone, Debug)]
pub struct Origin {
    /// How the guest first heard of the carrier (its addresses, listener).
    pub opened: batch::Opened,
    /// The carrier's TLS session (ALPN `h2`: how the app can tell).
    pub tls: batch::TlsSession,
}

/// What the event loop lends a session while it runs.
pub struct Loop<'a> {
    pub turn: &'a mut Turn,
    pub next_id: &'a mut u32,
    pub admission: &'a mut AdmissionControl,
    pub now: Instant,
    pub now_ms: u64,
    /// The health check's and the page's paths: the plain requests the
    /// guest answers.
    pub health_path: Option<&'a str>,
    pub page_path: Option<&'a str>,
    /// Streams that began (the loop routes their ids to the carrier) and
    /// ended (it forgets them; `gone` already told the guest where due).
    pub began: Vec<u32>,
    pub ended: Vec<u32>,
    /// Extended CONNECTs for a WebSocket handed to the guest (a metric).
    pub websockets: u64,
    /// How many more connections the guest may be given (the connection
    /// cap counts streams too); past it, requests get 503.
    pub stream_room: usize,
}

enum State {
    Handshaking(Handshake<PipeIo, Bytes>),
    Serving(Connection<PipeIo, Bytes>),
    Closed,
}

/// One stream the guest serves.
struct Stream {
    recv: RecvStream,
    /// Until the guest's answer head is whole.
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    /// The guest's answer head so far.
    head: Vec<u8>,
    /// Waits for send window.
    output: Output,
    /// Received, not yet handed to the guest (the turn was full).
    held: Bytes,
    /// The guest closed it: END_STREAM once the output is sent.
    closing: bool,
    /// END_STREAM (or a reset) went out; the stream goes at `linger_until`
    /// unless the peer ends its side first.
    ended: bool,
    linger_until: Option<Instant>,
    /// The peer's END_STREAM came (`eof` told).
    peer_done: bool,
    /// An extended CONNECT for a WebSocket (not a plain request).
    websocket_request: bool,
    /// Told to the guest as upgraded and not yet sent its close frame.
    pub websocket: bool,
    pub close_sent: bool,
    report_written: bool,
    read_limit: usize,
    share_epoch: u32,
    share_used: usize,
}

/// An HTTP/2 connection and its streams.
pub struct Session {
    io: PipeIo,
    state: State,
    streams: FxHashMap<u32, Stream>,
    origin: Origin,
    going_away: bool,
    /// While it has no stream: when it is told to go away (the client did
    /// not finish the HTTP/2 handshake, or stays idle).
    idle_until: Option<Instant>,
    /// How long a started connection may stay without a stream.
    idle: Duration,
    /// Once going away with no stream left: when the connection closes
    /// even if the peer never acknowledges the GOAWAY.
    closing_until: Option<Instant>,
    /// New requests wait: the turn had no room for another request head.
    accept_paused: bool,
}

/// What one pump produced.
pub struct Pumped {
    /// Bytes for the carrier's socket.
    pub out: Vec<u8>,
    /// `h2` had more to write than the room it was given.
    pub blocked: bool,
}

/// Rounds of polling per pump: each round may free window or buffer for the
/// next; a few are enough, and the next event polls again anyway.
const ROUNDS: usize = 8;

impl Session {
    /// A session over a connection whose TLS just chose `h2`, which keeps
    /// `deadlines` while it has no stream.
    pub fn new(origin: Origin, now: Instant, deadlines: Deadlines) -> Self {
        let io = PipeIo::default();
        let mut builder = h2::server::Builder::new();
        builder
            .enable_connect_protocol()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_header_list_size(MAX_HEADER_LIST);
        let handshake = builder.handshake(io.clone());
        Self {
            io,
            state: State::Handshaking(handshake),
            streams: FxHashMap::default(),
            origin,
            going_away: false,
            idle_until: deadlines.handshake.map(|timeout| now + timeout),
            idle: deadlines.idle,
            closing_until: None,
            accept_paused: false,
        }
    }

    /// Plaintext from the peer.
    pub fn receive(&mut self, plaintext: &[u8]) {
        self.io.lock().push_inbound(plaintext);
    }

    /// The peer sends nothing more.
    pub fn peer_closed(&mut self) {
        self.io.lock().inbound_closed = true;
    }

    /// Whether the connection is over (the carrier can close).
    pub fn is_closed(&self, now: Instant) -> bool {
        matches!(self.state, State::Closed) || self.closing_until.is_some_and(|until| now >= until)
    }

    /// Whether it has work the next turn must do without being asked by a
    /// socket: input held for a stream (the turn was full, or the stream's
    /// share used), or requests waiting for room in the turn.
    pub fn wants_pump(&self) -> bool {
        // A stream whose output is backed up takes no input: its drain
        // (a window update, read from the socket) runs the session.
        self.accept_paused || self.streams.values().any(|s| !s.held.is_empty() && !s.output.backed_up())
    }

    pub fn stream_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.keys().copied()
    }

    /// (upgraded, closing) for each stream, for the loop's census.
    pub fn stream_states(&self) -> impl Iterator<Item = (bool, bool)> + '_ {
        self.streams.values().map(|s| (s.websocket, s.close_sent || s.closing))
    }

    /// Tells the peer to open no new stream (GOAWAY); the streams it has
    /// go on until they end.
    pub fn go_away(&mut self) {
        self.going_away = true;
        if let State::Serving(connection) = &mut self.state {
            connection.graceful_shutdown();
        }
    }

    /// The listener the carrier was accepted on.
    pub fn listener(&self) -> u32 {
        self.origin.opened.listener
    }

    /// Whether the guest has begun answering stream `id`'s request.
    pub fn answered(&self, id: u32) -> bool {
        self.streams.get(&id).is_none_or(|s| s.respond.is_none() || !s.head.is_empty())
    }

    pub fn backed_up(&self, id: u32) -> Option<bool> {
        self.streams.get(&id).map(|s| s.output.backed_up())
    }

    pub fn set_write_limit(&mut self, id: u32, bytes: usize) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.output.set_limit(bytes);
        }
    }

    pub fn set_read_limit(&mut self, id: u32, bytes: usize) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.read_limit = bytes;
        }
    }

    pub fn report_written(&mut self, id: u32, enabled: bool) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.report_written = enabled;
        }
    }

    pub fn mark(&mut self, id: u32, upgraded: bool, closing: bool) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.websocket |= upgraded;
            s.close_sent |= closing;
        }
    }

    pub fn is_open_websocket(&self, id: u32) -> bool {
        self.streams.get(&id).is_some_and(|s| s.websocket && !s.close_sent && !s.closing && !s.ended)
    }

    /// The guest's bytes for stream `id`: its answer head first (held until
    /// whole, then sent translated), then what follows it. Err: the stream
    /// failed (reset; the caller reports it gone).
    pub fn write(&mut self, id: u32, bytes: Cow<'_, [u8]>, turn: &mut Turn, now_ms: u64) -> Result<(), ()> {
        let Some(s) = self.streams.get_mut(&id) else { return Ok(()) };
        let written = write_stream(id, s, bytes, turn, now_ms);
        if written.is_err() {
            self.streams.remove(&id);
        }
        written
    }

    /// The guest closed stream `id`: END_STREAM once its output is sent.
    pub fn close(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.closing = true;
        }
    }

    /// The guest dropped stream `id`: reset it now.
    pub fn abort(&mut self, id: u32) {
        if let Some(mut s) = self.streams.remove(&id) {
            reset(&mut s, Reason::CANCEL);
        }
    }

    /// Whether a stream's deadline runs.
    pub fn has_timer(&self) -> bool {
        self.idle_until.is_some()
            || self.closing_until.is_some()
            || self.streams.values().any(|s| s.linger_until.is_some() || s.output.unwritten() > 0)
    }

    /// Streams whose output made no progress for `timeout_ms` (the peer
    /// gives no window): reset, to be reported gone.
    pub fn stalled(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<u32> {
        let stalled: Vec<u32> =
            self.streams.iter().filter(|(_, s)| s.output.stalled(now_ms, timeout_ms)).map(|(&id, _)| id).collect();
        for id in &stalled {
            self.abort(*id);
        }
        stalled
    }

    /// Runs the connection: takes new streams, hands received DATA to the
    /// guest, sends what the window allows, ends streams that are done.
    /// `room`: how much the carrier's socket may still be given. Returns
    /// what `h2` wrote, for the carrier's socket.
    pub fn pump(&mut self, lp: &mut Loop<'_>, room: usize) -> Pumped {
        let mut task = Context::from_waker(Waker::noop());
        {
            let mut pipe = self.io.lock();
            pipe.room = room;
            pipe.blocked = false;
        }
        if self.idle_until.is_some_and(|until| lp.now >= until) {
            tracing::debug!(carrier = self.origin.opened.conn, "HTTP/2 connection idle; going away");
            self.go_away();
        }
        for _ in 0..ROUNDS {
            let written = self.io.lock().outbound.len();
            let mut progress = self.poll_connection(&mut task, lp);
            let ids: Vec<u32> = self.streams.keys().copied().collect();
            for id in ids {
                progress |= self.service_stream(id, &mut task, lp);
            }
            // What the streams queued goes out on the connection's next poll.
            progress |= self.poll_connection(&mut task, lp);
            if !progress && self.io.lock().outbound.len() == written {
                break;
            }
        }
        if self.streams.is_empty() {
            if self.going_away {
                self.closing_until.get_or_insert(lp.now + Duration::from_millis(LINGER_MS));
            } else {
                self.idle_until.get_or_insert(lp.now + self.idle);
            }
        } else {
            self.idle_until = None;
        }
        let mut pipe = self.io.lock();
        Pumped { out: std::mem::take(&mut pipe.outbound), blocked: pipe.blocked }
    }

    /// Polls the handshake or the connection; true if something happened.
    fn poll_connection(&mut self, task: &mut Context<'_>, lp: &mut Loop<'_>) -> bool {
        if let State::Handshaking(handshake) = &mut self.state {
            match Pin::new(handshake).poll(task) {
                Poll::Ready(Ok(mut connection)) => {
                    if self.going_away {
                        connection.graceful_shutdown();
                    }
                    self.state = State::Serving(connection);
                    // Started: from now on only idleness ends it.
                    self.idle_until = Some(lp.now + self.idle);
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "HTTP/2 handshake failed");
                    self.close_all(lp);
                    return true;
                }
                Poll::Pending => return false,
            }
        }
        let mut progress = false;
        loop {
            let State::Serving(connection) = &mut self.state else { return progress };
            // A request head becomes guest input: only while the turn has
            // room for the largest one (the rest wait in h2, unread).
            self.accept_paused = lp.turn.room() < MAX_HEADER_LIST as usize;
            if self.accept_paused {
                return progress;
            }
            match connection.poll_accept(task) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    progress = true;
                    self.take_request(request, respond, lp);
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "HTTP/2 connection ended");
                    self.close_all(lp);
                    return true;
                }
                Poll::Ready(None) => {
                    self.close_all(lp);
                    return true;
                }
                Poll::Pending => return progress,
            }
        }
    }

    /// The connection is over: every stream is gone.
    fn close_all(&mut self, lp: &mut Loop<'_>) {
        self.state = State::Closed;
        for (id, s) in self.streams.drain() {
            if !s.ended || !s.peer_done {
                lp.turn.gone.push(id);
            }
            lp.ended.push(id);
        }
    }

    /// A new request: a WebSocket (or a plain GET) for the guest, anything
    /// else answered here.
    fn take_request(
        &mut self,
        request: http::Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        lp: &mut Loop<'_>,
    ) {
        let protocol = request.extensions().get::<h2::ext::Protocol>().map(|p| p.as_str().to_owned());
        let mut kind = translate::asked(&request, protocol.as_deref());
        let path = Some(request.uri().path());
        if kind == Asked::Plain && lp.health_path != path && lp.page_path != path {
            kind = Asked::Other;
        }
        tracing::debug!(carrier = self.origin.opened.conn, path = request.uri().path(), ?kind, "HTTP/2 request");
        if self.going_away && matches!(kind, Asked::WebSocket | Asked::Plain) {
            // Sent before our GOAWAY reached the client: refused as safe
            // to retry (on a new connection; RFC 9113 §8.7).
            respond.send_reset(Reason::REFUSED_STREAM);
            return;
        }
        let refusal = match kind {
            Asked::WebSocket | Asked::Plain if lp.stream_room == 0 => {
                Some((StatusCode::SERVICE_UNAVAILABLE, "the server is at its connection cap\n"))
            }
            Asked::WebSocket | Asked::Plain => None,
            Asked::UnknownProtocol => Some((StatusCode::NOT_IMPLEMENTED, "only the websocket protocol is served\n")),
            Asked::Other => Some((StatusCode::NOT_FOUND, "not found: this server serves WebSockets\n")),
        };
        if let Some((status, text)) = refusal {
            let (response, body) = translate::host_response(status, text);
            if let Ok(mut send) = respond.send_response(response, false) {
                let _ = send.send_data(body, true);
            }
            return;
        }
        let head = translate::request_head(&request, &kind);
        lp.websockets += u64::from(kind == Asked::WebSocket);
        let id = *lp.next_id;
        *lp.next_id += 1;
        let peer = self.origin.opened.peer_address.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        lp.stream_room -= 1;
        // Admitted as a connection of the client's (a trusted proxy's
        // clients are not held to its address's limits).
        let admission = if self.origin.opened.trusted_proxy {
            lp.admission.decide_for_proxy(peer, lp.now)
        } else {
            lp.admission.decide(peer, lp.now)
        };
        lp.turn.opened.push(batch::Opened { conn: id, admission, ..self.origin.opened.clone() });
        lp.turn.tls_established.push(batch::TlsSession { conn: id, ..self.origin.tls.clone() });
        lp.turn.read_buffer(head.len()).extend_from_slice(&head);
        lp.turn.record_input(id, head.len());
        lp.began.push(id);
        self.streams.insert(
            id,
            Stream {
                recv: request.into_body(),
                respond: Some(respond),
                send: None,
                head: Vec::new(),
                output: Output::default(),
                held: Bytes::new(),
                closing: false,
                ended: false,
                linger_until: None,
                peer_done: false,
                websocket_request: kind == Asked::WebSocket,
                websocket: false,
                close_sent: false,
                report_written: false,
                read_limit: 0,
                share_epoch: 0,
                share_used: 0,
            },
        );
    }

    /// Moves one stream along; true if something happened.
    fn service_stream(&mut self, id: u32, task: &mut Context<'_>, lp: &mut Loop<'_>) -> bool {
        let Some(s) = self.streams.get_mut(&id) else { return false };
        let mut progress = false;
        // A reset from the peer ends the stream.
        let peer_reset = match (&mut s.send, &mut s.respond) {
            (Some(send), _) => send.poll_reset(task).is_ready(),
            (None, Some(respond)) => respond.poll_reset(task).is_ready(),
            (None, None) => false,
        };
        if peer_reset {
            self.streams.remove(&id);
            lp.turn.gone.push(id);
            lp.ended.push(id);
            return true;
        }
        // Input, within the turn's room and the stream's share.
        if !s.peer_done {
            loop {
                if !s.held.is_empty() {
                    let wanted = !s.closing && !s.ended && !s.output.backed_up();
                    let n = if wanted {
                        if s.share_epoch != lp.turn.epoch {
                            s.share_epoch = lp.turn.epoch;
                            s.share_used = 0;
                        }
                        let share = read_share(s.read_limit).saturating_sub(s.share_used);
                        let n = s.held.len().min(lp.turn.room()).min(share);
                        lp.turn.read_buffer(n).extend_from_slice(&s.held[..n]);
                        lp.turn.record_input(id, n);
                        s.share_used += n;
                        n
                    } else if s.closing || s.ended {
                        // Closed by the guest: what still comes is dropped.
                        s.held.len()
                    } else {
                        0
                    };
                    if n == 0 {
                        break;
                    }
                    let _ = s.recv.flow_control().release_capacity(n);
                    let _ = s.held.split_to(n);
                    progress = true;
                    if !s.held.is_empty() {
                        break;
                    }
                }
                match s.recv.poll_data(task) {
                    Poll::Ready(Some(Ok(data))) => s.held = data,
                    Poll::Ready(Some(Err(_))) => {
                        self.streams.remove(&id);
                        lp.turn.gone.push(id);
                        lp.ended.push(id);
                        return true;
                    }
                    Poll::Ready(None) => {
                        s.peer_done = true;
                        if !s.closing && !s.ended {
                            lp.turn.eof.push(id);
                        }
                        progress = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        // Output, as the window allows.
        if let Some(send) = &mut s.send
            && s.output.unwritten() > 0
        {
            send.reserve_capacity(s.output.unwritten());
            let n = send.capacity().min(s.output.unwritten());
            if n > 0 {
                let data = Bytes::copy_from_slice(&s.output.waiting()[..n]);
                if send.send_data(data, false).is_err() {
                    self.streams.remove(&id);
                    lp.turn.gone.push(id);
                    lp.ended.push(id);
                    return true;
                }
                s.output.wrote(n, lp.now_ms);
                if s.report_written {
                    lp.turn.record_written(id, n);
                }
                if let Some(change) = s.output.pressure() {
                    lp.turn.record_pressure(id, change == Pressure::BackedUp);
                }
                progress = true;
            }
        }
        // The guest's close, once its output is out.
        if s.closing && !s.ended && s.output.unwritten() == 0 {
            match (&mut s.send, s.respond.take()) {
                (Some(send), _) => {
                    let _ = send.send_data(Bytes::new(), true);
                }
                // Closed without an answer: nothing to end but the stream.
                (None, Some(mut respond)) => respond.send_reset(Reason::CANCEL),
                (None, None) => {}
            }
            s.ended = true;
            s.linger_until = Some(lp.now + Duration::from_millis(LINGER_MS));
            progress = true;
        }
        if s.ended && (s.peer_done || s.linger_until.is_some_and(|until| lp.now >= until)) {
            let mut s = self.streams.remove(&id).expect("present");
            if !s.peer_done {
                reset(&mut s, Reason::CANCEL);
            }
            lp.ended.push(id);
            return true;
        }
        progress
    }
}

fn reset(s: &mut Stream, reason: Reason) {
    match (&mut s.send, &mut s.respond) {
        (Some(send), _) => send.send_reset(reason),
        (None, Some(respond)) => respond.send_reset(reason),
        (None, None) => {}
    }
}

/// [`Session::write`] for one stream.
fn write_stream(id: u32, s: &mut Stream, bytes: Cow<'_, [u8]>, turn: &mut Turn, now_ms: u64) -> Result<(), ()> {
    if s.closing || s.ended {
        return Ok(());
    }
    let body = match s.respond.take() {
        None => bytes,
        Some(mut respond) => {
            s.head.extend_from_slice(&bytes);
            match translate::answer(&s.head) {
                Answer::Partial if s.head.len() <= wsbox_defaults::MAX_REQUEST_HEAD => {
                    s.respond = Some(respond);
                    return Ok(());
                }
                Answer::Partial | Answer::Invalid(_) => {
                    let why = match translate::answer(&s.head) {
                        Answer::Invalid(why) => why,
                        _ => "its head is too long",
                    };
                    tracing::debug!(stream = id, why, "the guest's answer cannot be sent over HTTP/2");
                    respond.send_reset(Reason::INTERNAL_ERROR);
                    return Err(());
                }
                Answer::Head { mut response, upgraded, body_at } => {
                    if s.websocket_request && !upgraded && response.status().is_success() {
                        // A 2xx to CONNECT opens the tunnel (RFC 9110
                        // §9.3.6): only a 101 may become one.
                        *response.status_mut() = StatusCode::BAD_GATEWAY;
                    }
                    let send = respond.send_response(response, false).map_err(|_| ())?;
                    s.send = Some(send);
                    let head = std::mem::take(&mut s.head);
                    Cow::Owned(head[body_at..].to_vec())
                }
            }
        }
    };
    if body.is_empty() {
        return Ok(());
    }
    if s.output.keep(body, 0, now_ms) == Err(OverCap) {
        tracing::debug!(stream = id, "output over its cap; resetting the stream");
        if let Some(send) = &mut s.send {
            send.send_reset(Reason::CANCEL);
        }
        return Err(());
    }
    if let Some(change) = s.output.pressure() {
        turn.record_pressure(id, change == Pressure::BackedUp);
    }
    Ok(())
}
