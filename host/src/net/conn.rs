//! One connection's task: reads into the shared batch, drains output the
//! driver could not write at once, and closes gracefully.

use super::inbox::{ReadOutcome, Shared};
use super::{LINGER, WRITE_HARD_CAP, WRITE_HIGH_WATER};
use crate::bindings::net;
use crate::tls::TlsState;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A connection as the driver and its task share it.
pub struct Conn {
    pub id: u32,
    stream: TcpStream,
    /// The TLS session of a connection on a secure listener.
    tls: Option<Mutex<TlsState>>,
    io: Mutex<Io>,
    wake: Notify,
    /// This connection's share of the current turn (read under the inbox lock).
    share_epoch: AtomicU32,
    share_used: AtomicUsize,
    /// Most bytes read per turn (0: `CONN_SHARE`); Qt's `readBufferSize`.
    read_limit: AtomicUsize,
    /// Whether the guest wants to hear of bytes written (`bytesWritten`).
    report_written: AtomicBool,
    /// Where written byte counts go when reported.
    written: Arc<Mutex<Vec<(u32, u64)>>>,
    /// Unwritten output past which the connection is not read and is
    /// reported `backed-up` (0: [`WRITE_HIGH_WATER`]).
    write_limit: AtomicUsize,
    /// Reported `backed-up` and not yet `drained`: not read meanwhile.
    backed_up: AtomicBool,
    /// Where `backed-up` / `drained` go (weak: the shared state owns us).
    shared: Weak<Shared>,
}

/// Output and requests from the guest.
#[derive(Default)]
struct Io {
    pending: Vec<u8>,
    written: usize,
    /// When output last made progress (or became pending).
    progress: Option<tokio::time::Instant>,
    close: bool,
    abort: bool,
    failed: bool,
}

impl Io {
    fn unwritten(&self) -> usize {
        self.pending.len() - self.written
    }
}

impl Conn {
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn tls(&self) -> Option<&Mutex<TlsState>> {
        self.tls.as_ref()
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn turn_share_used(&self, epoch: u32) -> usize {
        if self.share_epoch.swap(epoch, Ordering::Relaxed) != epoch {
            self.share_used.store(0, Ordering::Relaxed);
        }
        self.share_used.load(Ordering::Relaxed)
    }

    pub fn add_turn_share(&self, n: usize) {
        self.share_used.fetch_add(n, Ordering::Relaxed);
    }

    /// This connection's share of a turn.
    pub fn turn_share(&self) -> usize {
        match self.read_limit.load(Ordering::Relaxed) {
            0 => super::CONN_SHARE,
            limit => limit.min(super::CONN_SHARE),
        }
    }

    pub fn set_read_limit(&self, bytes: usize) {
        self.read_limit.store(bytes, Ordering::Relaxed);
    }

    pub fn set_write_limit(&self, bytes: usize) {
        self.write_limit.store(bytes, Ordering::Relaxed);
    }

    fn write_limit(&self) -> usize {
        match self.write_limit.load(Ordering::Relaxed) {
            0 => WRITE_HIGH_WATER,
            limit => limit,
        }
    }

    /// Whether the output is backed up: then the peer is not read until
    /// it has drained to half the limit.
    fn is_backed_up(&self, unwritten: usize) -> bool {
        self.backed_up.load(Ordering::Relaxed) || unwritten >= self.write_limit()
    }

    /// Decides, under the io lock, whether the output crossed the limit
    /// (up) or drained to half of it (down); true when it changed. The change
    /// is then reported with [`Conn::report_pressure`] after the lock.
    fn pressure_changed(&self, unwritten: usize) -> bool {
        let limit = self.write_limit();
        if unwritten > limit {
            !self.backed_up.swap(true, Ordering::Relaxed)
        } else if unwritten <= limit / 2 {
            self.backed_up.swap(false, Ordering::Relaxed)
        } else {
            false
        }
    }

    /// Tells the guest the output's state changed; the turn reports the
    /// state it finds then, so reports racing each other cannot mislead.
    fn report_pressure(&self, changed: bool) {
        if changed && let Some(shared) = self.shared.upgrade() {
            shared.push_pressure(self.id, self.backed_up.load(Ordering::Relaxed));
        }
    }

    /// Whether the output is over its limit (reported `backed-up`).
    pub fn backed_up(&self) -> bool {
        self.backed_up.load(Ordering::Relaxed)
    }

    pub fn set_report_written(&self, enabled: bool) {
        self.report_written.store(enabled, Ordering::Relaxed);
    }

    fn wrote(&self, n: usize) {
        if n > 0 && self.report_written.load(Ordering::Relaxed) {
            self.written.lock().expect("written lock").push((self.id, n as u64));
        }
    }

    /// Writes the guest's `bytes` (encrypted first on a TLS connection).
    pub fn write(&self, bytes: &[u8]) {
        match &self.tls {
            Some(tls) => {
                // Records leave in the order rustls numbered them: hold the
                // session until they are queued.
                let mut session = tls.lock().expect("tls lock");
                let mut records = Vec::with_capacity(bytes.len() + 64);
                session.encrypt(bytes, &mut records);
                self.write_raw(&records);
            }
            None => self.write_raw(bytes),
        }
    }

    /// Writes `bytes` now as far as the socket takes them; the rest waits
    /// for writability, after anything already waiting.
    pub fn write_raw(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut io = self.io.lock().expect("io lock");
        if io.close || io.abort || io.failed {
            return;
        }
        let mut done = 0;
        if io.unwritten() == 0 {
            while done < bytes.len() {
                match self.stream.try_write(&bytes[done..]) {
                    Ok(n) => done += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        io.failed = true;
                        drop(io);
                        return self.wake();
                    }
                }
            }
            self.wrote(done);
        }
        if done < bytes.len() {
            let was_idle = io.unwritten() == 0;
            if io.unwritten() + bytes.len() - done > WRITE_HARD_CAP {
                // The peer does not read: drop it rather than grow without bound.
                tracing::debug!(conn = self.id, "output over its cap; dropping the connection");
                io.failed = true;
                drop(io);
                return self.wake();
            }
            if io.written > io.pending.len() / 2 {
                let written = io.written;
                io.pending.drain(..written);
                io.written = 0;
            }
            io.pending.extend_from_slice(&bytes[done..]);
            if was_idle {
                io.progress = Some(tokio::time::Instant::now());
            }
            let changed = self.pressure_changed(io.unwritten());
            drop(io);
            self.report_pressure(changed);
            if was_idle {
                self.wake();
            }
        }
    }

    /// Close once the output is written (a TLS session says close_notify first).
    pub fn close(&self) {
        if let Some(tls) = &self.tls {
            let mut session = tls.lock().expect("tls lock");
            let mut records = Vec::new();
            session.close_notify(&mut records);
            self.write_raw(&records);
        }
        self.io.lock().expect("io lock").close = true;
        self.wake();
    }

    /// Drop now.
    pub fn abort(&self) {
        self.io.lock().expect("io lock").abort = true;
        self.wake();
    }

    /// Writes what is pending; false when the socket failed.
    fn drain(&self) -> bool {
        let mut io = self.io.lock().expect("io lock");
        while io.unwritten() > 0 {
            match self.stream.try_write(&io.pending[io.written..]) {
                Ok(n) => {
                    io.written += n;
                    io.progress = Some(tokio::time::Instant::now());
                    self.wrote(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if io.unwritten() == 0 {
            io.pending.clear();
            io.written = 0;
            if io.pending.capacity() > WRITE_HIGH_WATER {
                io.pending = Vec::new();
            }
        }
        let changed = self.pressure_changed(io.unwritten());
        drop(io);
        self.report_pressure(changed);
        true
    }
}

/// Registers an accepted connection and starts its task.
pub fn spawn(id: u32, stream: TcpStream, tls: Option<TlsState>, opened: net::Opened, shared: Arc<Shared>) {
    let conn = Arc::new(Conn {
        id,
        stream,
        tls: tls.map(Mutex::new),
        io: Mutex::new(Io::default()),
        wake: Notify::new(),
        share_epoch: AtomicU32::new(0),
        share_used: AtomicUsize::new(0),
        read_limit: AtomicUsize::new(0),
        report_written: AtomicBool::new(false),
        written: shared.written_sink(),
        write_limit: AtomicUsize::new(0),
        backed_up: AtomicBool::new(false),
        shared: Arc::downgrade(&shared),
    });
    {
        let mut conns = shared.conns.lock().expect("conns lock");
        if shared.closed.load(std::sync::atomic::Ordering::Acquire) {
            return; // the instance is going away
        }
        conns.insert(id, Arc::clone(&conn));
    }
    shared.push_opened(opened);
    tokio::spawn(async move {
        let requested = drive(&conn, &shared).await;
        shared.conns.lock().expect("conns lock").remove(&conn.id);
        shared.conn_closed.notify_waiters();
        if !requested {
            shared.push_gone(conn.id);
        }
    });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    On,
    /// Waiting for the next turn (this one is full).
    Blocked,
    /// The peer finished sending.
    Done,
}

/// Runs the connection until the guest closes or aborts it (true) or the
/// socket fails (false).
async fn drive(conn: &Arc<Conn>, shared: &Shared) -> bool {
    let mut reading = Reading::On;
    // Once closing, a peer that never takes our last bytes is dropped.
    let mut close_deadline: Option<tokio::time::Instant> = None;
    loop {
        let woken = conn.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (unwritten, close, abort, failed, progress) = {
            let io = conn.io.lock().expect("io lock");
            (io.unwritten(), io.close, io.abort, io.failed, io.progress)
        };
        if failed {
            return false;
        }
        if abort {
            return true;
        }
        if close && unwritten == 0 {
            linger(conn, reading == Reading::Done).await;
            return true;
        }
        if close && close_deadline.is_none() {
            close_deadline = Some(tokio::time::Instant::now() + LINGER);
        }
        let deadline = close_deadline.unwrap_or_else(|| tokio::time::Instant::now() + LINGER);
        let want_read = reading == Reading::On && !conn.is_backed_up(unwritten) && !close;
        tokio::select! {
            ready = conn.stream.readable(), if want_read => {
                if ready.is_err() {
                    return false;
                }
                match shared.read_from(conn) {
                    ReadOutcome::WouldBlock => {}
                    ReadOutcome::Blocked => reading = Reading::Blocked,
                    ReadOutcome::Eof => reading = Reading::Done,
                    ReadOutcome::Failed => return false,
                }
            }
            ready = conn.stream.writable(), if unwritten > 0 => {
                if ready.is_err() || !conn.drain() {
                    return false;
                }
                // Output drained: a reader held back by it may go on (the
                // woken arm below).
                if reading == Reading::Blocked && !conn.is_backed_up(conn.io.lock().expect("io lock").unwritten()) {
                    conn.wake();
                }
            }
            _ = tokio::time::sleep_until(deadline), if close_deadline.is_some() => return true,
            // A peer that does not read: its output has not moved for the write timeout.
            _ = tokio::time::sleep_until(progress.unwrap_or_else(tokio::time::Instant::now) + shared.limits.write_timeout),
                if unwritten > 0 && !close => {
                tracing::debug!(conn = conn.id, "output stalled past the write timeout; dropping the connection");
                return false;
            }
            _ = &mut woken => {
                // Backpressure holds here too: no reading while the output is backed up.
                if reading == Reading::Blocked && !conn.is_backed_up(unwritten) {
                    // A new turn: take what is buffered (TLS plaintext) even
                    // if the socket has nothing new.
                    reading = match shared.read_from(conn) {
                        ReadOutcome::WouldBlock => Reading::On,
                        ReadOutcome::Blocked => Reading::Blocked,
                        ReadOutcome::Eof => Reading::Done,
                        ReadOutcome::Failed => return false,
                    };
                }
            }
        }
    }
}

/// Shuts down our sending side, then reads and discards what the peer still
/// sends until it closes too (or [`LINGER`] passes): closing a socket with
/// unread input makes the kernel send a reset, which can destroy our close
/// frame before the peer reads it.
async fn linger(conn: &Conn, peer_done: bool) {
    let _ = socket2::SockRef::from(&conn.stream).shutdown(std::net::Shutdown::Write);
    if peer_done {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 4096];
        loop {
            if conn.stream.readable().await.is_err() {
                return;
            }
            match conn.stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
