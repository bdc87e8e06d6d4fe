//! The shared flat batch that connection tasks read into and the guest's
//! `exchange` takes once per turn.

use super::TURN_CAP;
use super::conn::Conn;
use crate::bindings::net;
use crate::tls::{TlsFailure, TlsState};
use bytes::BufMut;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Largest single read into the batch.
const READ_CHUNK: usize = 64 * 1024;

/// State shared by the driver (the guest's `exchange`) and the tasks.
#[derive(Default)]
pub struct Shared {
    /// Every open connection, by id.
    pub conns: Mutex<HashMap<u32, Arc<Conn>>>,
    inbox: Mutex<Inbox>,
    /// Signalled when the inbox goes from empty to not empty.
    ready: Notify,
    /// Set by [`Shared::interrupt`]: the current wait ends without input.
    interrupted: AtomicBool,
    /// The instance's sockets are being dropped: accept no more.
    pub closed: AtomicBool,
    next_conn: AtomicU32,
    /// Bytes written per connection since the last turn, for connections
    /// whose guest asked (does not wake the guest by itself).
    written: Arc<Mutex<Vec<(u32, u64)>>>,
    /// The operator's limits.
    pub limits: super::TransportLimits,
    /// Signalled when a connection ends (the accept loops wait on it at the cap).
    pub conn_closed: Notify,
}

/// What arrived since the last turn.
#[derive(Default)]
struct Inbox {
    opened: Vec<net::Opened>,
    conns: Vec<u32>,
    ends: Vec<u32>,
    data: Vec<u8>,
    eof: Vec<u32>,
    gone: Vec<u32>,
    tls_established: Vec<net::TlsSession>,
    tls_failed: Vec<net::TlsFailure>,
    accept_failed: Vec<net::AcceptFailure>,
    /// Connections whose output crossed its write limit, either way, since
    /// the last turn: the turn reports the state each is in then.
    pressure: Vec<u32>,
    /// One of them drained (that ends a wait; backing up does not).
    drained: bool,
    /// Counts turns, so each connection's share restarts every turn.
    epoch: u32,
    /// Connections that stopped reading because this turn is full.
    blocked: Vec<Arc<Conn>>,
}

impl Inbox {
    /// Books `n` bytes just appended to `data` to `conn`: one item per
    /// connection run, extended while the same connection keeps reading.
    fn record_input(&mut self, conn: &Conn, n: usize) {
        let end = self.data.len() as u32;
        if self.conns.last() == Some(&conn.id) {
            *self.ends.last_mut().expect("ends follow conns") = end;
        } else {
            self.conns.push(conn.id);
            self.ends.push(end);
        }
        conn.add_turn_share(n);
    }

    fn is_empty(&self) -> bool {
        self.opened.is_empty()
            && self.conns.is_empty()
            && self.eof.is_empty()
            && self.gone.is_empty()
            && self.tls_established.is_empty()
            && self.tls_failed.is_empty()
            && self.accept_failed.is_empty()
            && !self.drained
    }
}

/// How a read attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has nothing more for now.
    WouldBlock,
    /// This turn has no more room for the connection; wait for the next.
    Blocked,
    /// The peer finished sending.
    Eof,
    /// The socket failed.
    Failed,
}

impl Shared {
    /// Shared state for an instance with these transport limits.
    pub fn with_limits(limits: super::TransportLimits) -> Self {
        Self { limits, ..Self::default() }
    }

    pub fn next_conn_id(&self) -> u32 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn push(&self, f: impl FnOnce(&mut Inbox)) {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        let was_empty = inbox.is_empty();
        f(&mut inbox);
        drop(inbox);
        if was_empty {
            self.ready.notify_one();
        }
    }

    pub fn push_opened(&self, opened: net::Opened) {
        self.push(|i| i.opened.push(opened));
    }

    pub fn push_gone(&self, id: u32) {
        self.push(|i| i.gone.push(id));
    }

    pub fn push_accept_failed(&self, failure: net::AcceptFailure) {
        self.push(|i| i.accept_failed.push(failure));
    }

    /// A connection's output crossed its write limit (up) or drained (down).
    pub fn push_pressure(&self, id: u32, backed_up: bool) {
        self.push(|i| {
            if !i.pressure.contains(&id) {
                i.pressure.push(id);
            }
            i.drained |= !backed_up;
        });
    }

    pub fn written_sink(&self) -> Arc<Mutex<Vec<(u32, u64)>>> {
        Arc::clone(&self.written)
    }

    /// Reads from `conn` straight into the batch until the socket would
    /// block, the connection's share of this turn is used, or the turn is full.
    pub fn read_from(&self, conn: &Arc<Conn>) -> ReadOutcome {
        if let Some(tls) = conn.tls() {
            return self.read_tls_from(conn, &mut tls.lock().expect("tls lock"));
        }
        let mut inbox = self.inbox.lock().expect("inbox lock");
        let was_empty = inbox.is_empty();
        let outcome = loop {
            let used = conn.turn_share_used(inbox.epoch);
            let room =
                TURN_CAP.saturating_sub(inbox.data.len()).min(conn.turn_share().saturating_sub(used)).min(READ_CHUNK);
            if room == 0 {
                inbox.blocked.push(Arc::clone(conn));
                break ReadOutcome::Blocked;
            }
            inbox.data.reserve(room);
            let before = inbox.data.len();
            let result = conn.stream().try_read_buf(&mut (&mut inbox.data).limit(room));
            match result {
                Ok(0) => {
                    inbox.eof.push(conn.id);
                    break ReadOutcome::Eof;
                }
                Ok(n) => {
                    debug_assert_eq!(inbox.data.len(), before + n);
                    inbox.record_input(conn, n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break ReadOutcome::WouldBlock,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break ReadOutcome::Failed,
            }
        };
        let now_ready = was_empty && !inbox.is_empty();
        drop(inbox);
        if now_ready {
            self.ready.notify_one();
        }
        outcome
    }

    /// The TLS version of [`Shared::read_from`]: raw bytes from the socket go
    /// through rustls; the plaintext goes into the batch, within the same
    /// shares; handshake records go back out at once.
    fn read_tls_from(&self, conn: &Arc<Conn>, tls: &mut TlsState) -> ReadOutcome {
        let mut raw = vec![0u8; READ_CHUNK];
        let mut records = Vec::new();
        loop {
            // Plaintext rustls already holds comes first.
            {
                let mut inbox = self.inbox.lock().expect("inbox lock");
                let was_empty = inbox.is_empty();
                if let Some(session) = tls.take_new_session() {
                    inbox.tls_established.push(net::TlsSession {
                        conn: conn.id,
                        protocol: session.protocol,
                        cipher: session.cipher,
                        server_name: session.server_name,
                        alpn: session.alpn,
                        peer_certificates: session.peer_certificates,
                    });
                }
                let used = conn.turn_share_used(inbox.epoch);
                let room = TURN_CAP.saturating_sub(inbox.data.len()).min(conn.turn_share().saturating_sub(used));
                let (n, more) = match tls.take_plaintext(&mut inbox.data, room) {
                    Ok(taken) => taken,
                    Err(failure) => {
                        drop(inbox);
                        return self.tls_failed(conn, tls, failure);
                    }
                };
                if n > 0 {
                    inbox.record_input(conn, n);
                }
                let blocked = more && n == room;
                if blocked {
                    inbox.blocked.push(Arc::clone(conn));
                }
                let now_ready = was_empty && !inbox.is_empty();
                drop(inbox);
                if now_ready {
                    self.ready.notify_one();
                }
                if blocked {
                    return ReadOutcome::Blocked;
                }
            }
            if tls.peer_closed() {
                // close_notify: the peer sends nothing more.
                self.push(|i| i.eof.push(conn.id));
                return ReadOutcome::Eof;
            }
            let n = match conn.stream().try_read(&mut raw) {
                Ok(0) => {
                    self.push(|i| i.eof.push(conn.id));
                    return ReadOutcome::Eof;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Failed,
            };
            records.clear();
            let result = tls.receive(&raw[..n], &mut records);
            conn.write_raw(&records);
            if let Err(failure) = result {
                return self.tls_failed(conn, tls, failure);
            }
        }
    }

    /// Sends rustls's alert, reports the failure to the guest, ends the connection.
    fn tls_failed(&self, conn: &Conn, tls: &mut TlsState, failure: TlsFailure) -> ReadOutcome {
        let mut records = Vec::new();
        tls.flush_into(&mut records);
        conn.write_raw(&records);
        tracing::debug!(conn = conn.id, error = %failure.message, "TLS failed");
        self.push(|i| {
            i.tls_failed.push(net::TlsFailure {
                conn: conn.id,
                message: failure.message,
                alert_received: failure.alert_received,
                peer_verify: failure.peer_verify,
            })
        });
        ReadOutcome::Failed
    }

    /// Waits until something arrived or `timeout` passed.
    pub async fn wait_for_input(&self, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.inbox.lock().expect("inbox lock").is_empty() || self.interrupted.swap(false, Ordering::AcqRel) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Ends the current (or next) wait for input at once, so the app gets its
    /// turn back (a shutdown request, for instance).
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Hands the batch over and starts the next turn.
    pub fn take_turn(&self) -> net::Incoming {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        inbox.epoch = inbox.epoch.wrapping_add(1);
        let blocked = std::mem::take(&mut inbox.blocked);
        let incoming = net::Incoming {
            opened: std::mem::take(&mut inbox.opened),
            conns: std::mem::take(&mut inbox.conns),
            ends: std::mem::take(&mut inbox.ends),
            data: std::mem::take(&mut inbox.data),
            eof: std::mem::take(&mut inbox.eof),
            gone: std::mem::take(&mut inbox.gone),
            tls_established: std::mem::take(&mut inbox.tls_established),
            tls_failed: std::mem::take(&mut inbox.tls_failed),
            accept_failed: std::mem::take(&mut inbox.accept_failed),
            written_conns: Vec::new(),
            written_bytes: Vec::new(),
            backed_up: Vec::new(),
            drained: Vec::new(),
        };
        let pressure = std::mem::take(&mut inbox.pressure);
        inbox.drained = false;
        drop(inbox);
        let mut incoming = incoming;
        for (conn, bytes) in self.written.lock().expect("written lock").drain(..) {
            incoming.written_conns.push(conn);
            incoming.written_bytes.push(bytes);
        }
        if !pressure.is_empty() {
            let conns = self.conns.lock().expect("conns lock");
            for id in pressure {
                match conns.get(&id) {
                    Some(conn) if conn.backed_up() => incoming.backed_up.push(id),
                    Some(_) => incoming.drained.push(id),
                    None => {}
                }
            }
        }
        for conn in blocked {
            conn.wake();
        }
        incoming
    }
}
