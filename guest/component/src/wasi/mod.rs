//! The WASI binding: the component listens, accepts, reads and writes
//! through `wasi:sockets` and `wasi:io` itself, for hosts that implement
//! WASI 0.2 but not wsbox's `net` (stock `wasmtime run`, jco on Node).
//!
//! One `exchange` is one turn of a single poll loop: write what the runtime
//! queued (straight from its batch when the socket takes it), then one
//! `poll` over every listener, every connection that may be read and every
//! connection with output waiting, plus a timer; read each ready connection
//! until it is empty or its share of the turn is used; loop until something
//! arrived or the timeout passed. The transport policy is `wsbox-transport`,
//! the wsbox host's own (a turn of ~1 MiB, 256 KiB per connection, a 4 MiB
//! write limit that stops reading a peer whose output backs up, an 80 MiB
//! hard cap, a 30 s write timeout, a 2 s linger after our close). TLS is not
//! available here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wasip2::clocks::monotonic_clock;
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network,
};
use wasip2::sockets::tcp::{ShutdownType, TcpSocket};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;
use wsbox_runtime::{AcceptFailed, Admission, InBatch, ListenErrorKind, ListenerInfo, Net, Opened, OutBatch};
use wsbox_transport::{
    BACKLOG, LINGER_MS, MAX_CONNECTIONS, Output, Pressure, READ_CHUNK, TURN_CAP, WRITE_TIMEOUT_MS, read_share,
};

/// After a failed accept (out of descriptors), the listener rests this long.
const ACCEPT_BACKOFF_MS: u64 = 50;

struct Listener {
    // Fields drop in order: the pollable before its socket (a child first).
    ready: Pollable,
    socket: TcpSocket,
    accepting: bool,
    /// Not polled before this time (after a failed accept).
    resting_until: u64,
}

struct Conn {
    // Pollables, then streams, then the socket: children drop first.
    readable: Pollable,
    writable: Pollable,
    input: InputStream,
    output: OutputStream,
    socket: TcpSocket,
    /// Output the socket has not taken yet, and its backpressure.
    pending: Output,
    /// The peer finished sending.
    eof: bool,
    /// The runtime closed it: write what is pending, shut down, linger.
    close: bool,
    /// Shut down at this time; dropped at `linger_until`.
    linger_until: Option<u64>,
    /// Qt's `readBufferSize` (0: the transport's share).
    read_limit: usize,
    report_written: bool,
}

impl Conn {
    /// Writes `bytes` as far as the stream takes them; returns how many.
    fn write_now(&self, bytes: &[u8]) -> Result<usize, StreamError> {
        let mut done = 0;
        while done < bytes.len() {
            let permit = self.output.check_write()? as usize;
            if permit == 0 {
                break;
            }
            let n = permit.min(bytes.len() - done);
            self.output.write(&bytes[done..done + n])?;
            done += n;
        }
        Ok(done)
    }
}

/// What a pollable in the turn's list stands for.
#[derive(Clone, Copy)]
enum Ready {
    Timer,
    Accept(u32),
    Read(u32),
    Write(u32),
}

/// The `Net` of a component that brings its own sockets.
pub struct WasiNet {
    listeners: HashMap<u32, Listener>,
    conns: HashMap<u32, Conn>,
    next_id: u32,
    turns: u32,
    start_ns: u64,
    network: Network,
}

impl WasiNet {
    pub fn new() -> Self {
        Self {
            listeners: HashMap::new(),
            conns: HashMap::new(),
            next_id: 0,
            turns: 0,
            start_ns: monotonic_clock::now(),
            network: instance_network(),
        }
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Queues `bytes` for `id`, writing at once what the socket takes.
    fn queue(&mut self, id: u32, bytes: &[u8], now: u64, batch: &mut InBatch) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let mut done = 0;
        if c.pending.unwritten() == 0 {
            match c.write_now(bytes) {
                Ok(n) => done = n,
                Err(_) => return self.lose(id, batch),
            }
            if done > 0 && c.report_written {
                batch.written.push((id, done as u64));
            }
        }
        if c.pending.keep(Cow::Borrowed(bytes), done, now).is_err() {
            return self.lose(id, batch);
        }
        report_pressure(id, c.pending.pressure(), batch);
    }

    /// Writes what `id` has pending; reports written bytes and a drain.
    fn flush(&mut self, id: u32, now: u64, batch: &mut InBatch) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let n = match c.write_now(c.pending.waiting()) {
            Ok(n) => n,
            Err(_) => return self.lose(id, batch),
        };
        c.pending.wrote(n, now);
        if n > 0 && c.report_written {
            batch.written.push((id, n as u64));
        }
        report_pressure(id, c.pending.pressure(), batch);
    }

    /// The connection failed or timed out: drop it, and report it `gone`
    /// unless the runtime had closed it already.
    fn lose(&mut self, id: u32, batch: &mut InBatch) {
        if let Some(c) = self.conns.remove(&id)
            && !c.close
        {
            batch.gone.push(id);
        }
    }

    /// Accepts what waits on a listener.
    fn accept(&mut self, listener: u32, batch: &mut InBatch) {
        while self.conns.len() < MAX_CONNECTIONS {
            let Some(l) = self.listeners.get(&listener) else { return };
            let (socket, input, output) = match l.socket.accept() {
                Ok(accepted) => accepted,
                Err(ErrorCode::WouldBlock) => return,
                Err(e) => {
                    let until = self.now_ms() + ACCEPT_BACKOFF_MS;
                    if let Some(l) = self.listeners.get_mut(&listener) {
                        l.resting_until = until;
                    }
                    let resource = matches!(e, ErrorCode::NewSocketLimit | ErrorCode::OutOfMemory);
                    batch.accept_failed.push(AcceptFailed { listener, message: format!("{e:?}"), resource });
                    return;
                }
            };
            let (peer_address, peer_port) = socket.remote_address().map(split).unwrap_or_default();
            let (local_address, local_port) = socket.local_address().map(split).unwrap_or_default();
            let id = self.id();
            self.conns.insert(
                id,
                Conn {
                    readable: input.subscribe(),
                    writable: output.subscribe(),
                    input,
                    output,
                    socket,
                    pending: Output::default(),
                    eof: false,
                    close: false,
                    linger_until: None,
                    read_limit: 0,
                    report_written: false,
                },
            );
            batch.opened.push(Opened {
                conn: id,
                listener,
                peer_address,
                peer_port,
                local_address,
                local_port,
                // A stock host has no admission policy, and no proxies it trusts.
                admission: Admission::Admit,
                trusted_proxy: false,
            });
        }
    }

    /// Reads `id` until it is empty, its share is used or the turn is full.
    fn read(&mut self, id: u32, batch: &mut InBatch) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let start = batch.data.len();
        let share = read_share(c.read_limit);
        let mut failed = false;
        while batch.data.len() - start < share && batch.data.len() < TURN_CAP {
            let want = READ_CHUNK.min(share - (batch.data.len() - start)) as u64;
            match c.input.read(want) {
                Ok(bytes) if bytes.is_empty() => break,
                Ok(bytes) => batch.data.extend_from_slice(&bytes),
                Err(StreamError::Closed) => {
                    c.eof = true;
                    break;
                }
                Err(StreamError::LastOperationFailed(_)) => {
                    failed = true;
                    break;
                }
            }
        }
        let (closed_by_us, eof) = (c.close, c.eof);
        if failed || closed_by_us {
            // Closed by us: what the peer still sends is drained, unread;
            // `sweep` drops the connection once our output is written.
            batch.data.truncate(start);
            if failed {
                self.lose(id, batch);
            }
            return;
        }
        if batch.data.len() > start {
            batch.runs.push((id, batch.data.len() as u32));
        }
        if eof {
            batch.eof.push(id);
        }
    }

    /// Shuts down closed connections whose output is written; drops those
    /// past their linger or write timeout.
    fn sweep(&mut self, now: u64, batch: &mut InBatch) {
        let mut lost = Vec::new();
        let mut done = Vec::new();
        for (&id, c) in &mut self.conns {
            if c.pending.unwritten() > 0 {
                if c.pending.stalled(now, WRITE_TIMEOUT_MS) {
                    lost.push(id);
                }
                continue;
            }
            match c.linger_until {
                Some(until) if now >= until || c.eof => done.push(id),
                Some(_) => {}
                None if c.close => {
                    let _ = c.socket.shutdown(ShutdownType::Send);
                    c.linger_until = Some(now + LINGER_MS);
                    if c.eof {
                        done.push(id);
                    }
                }
                None => {}
            }
        }
        for id in lost {
            self.lose(id, batch);
        }
        for id in done {
            self.conns.remove(&id);
        }
    }

    /// One poll over everything that can make progress (waiting up to
    /// `wait_ms`), then the progress itself.
    fn poll_once(&mut self, wait_ms: u64, batch: &mut InBatch) {
        // Wake for our own deadlines too: lingers, write timeouts, resting listeners.
        let now = self.now_ms();
        let mut wake_at = now.saturating_add(wait_ms);
        for c in self.conns.values() {
            if let Some(until) = c.linger_until {
                wake_at = wake_at.min(until);
            }
            if let Some(stall) = c.pending.stall_deadline(WRITE_TIMEOUT_MS) {
                wake_at = wake_at.min(stall);
            }
        }
        for l in self.listeners.values().filter(|l| l.resting_until > now) {
            wake_at = wake_at.min(l.resting_until);
        }
        let wait_ms = wake_at.saturating_sub(now);
        let timer = monotonic_clock::subscribe_duration(wait_ms.saturating_mul(1_000_000));
        let mut pollables: Vec<&Pollable> = vec![&timer];
        let mut what = vec![Ready::Timer];
        if self.conns.len() < MAX_CONNECTIONS {
            for (&id, l) in &self.listeners {
                if l.accepting && l.resting_until <= now {
                    pollables.push(&l.ready);
                    what.push(Ready::Accept(id));
                }
            }
        }
        for (&id, c) in &self.conns {
            if !c.eof && !c.pending.backed_up() {
                pollables.push(&c.readable);
                what.push(Ready::Read(id));
            }
            if c.pending.unwritten() > 0 {
                pollables.push(&c.writable);
                what.push(Ready::Write(id));
            }
        }
        let ready = poll(&pollables);
        drop(pollables);
        let now = self.now_ms();
        let mut reads = Vec::new();
        for i in ready {
            match what[i as usize] {
                Ready::Timer => {}
                Ready::Accept(listener) => self.accept(listener, batch),
                Ready::Read(id) => reads.push(id),
                Ready::Write(id) => self.flush(id, now, batch),
            }
        }
        // Each turn starts the reads at a different connection, so the turn
        // cap does not always fall on the same ones.
        if !reads.is_empty() {
            let first = self.turns as usize % reads.len();
            reads.rotate_left(first);
        }
        for id in reads {
            if batch.data.len() >= TURN_CAP {
                break;
            }
            self.read(id, batch);
        }
        drop(timer);
        self.sweep(now, batch);
    }
}

impl Net for WasiNet {
    fn listen(&mut self, address: &str, port: u16, secure: bool) -> Result<ListenerInfo, (ListenErrorKind, String)> {
        if secure {
            return Err((
                ListenErrorKind::AccessDenied,
                "wss:// needs the wsbox host (it terminates TLS); the WASI binding serves ws:// only".into(),
            ));
        }
        let ip: IpAddr = match address {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            other => other
                .parse()
                .map_err(|_| (ListenErrorKind::AddressNotAvailable, format!("not an IP address: {other}")))?,
        };
        let fail = |e: ErrorCode| {
            let kind = match e {
                ErrorCode::AddressInUse => ListenErrorKind::AddressInUse,
                ErrorCode::AddressNotBindable | ErrorCode::InvalidArgument => ListenErrorKind::AddressNotAvailable,
                ErrorCode::AccessDenied => ListenErrorKind::AccessDenied,
                _ => ListenErrorKind::Other,
            };
            (kind, format!("cannot listen on {address}:{port}: {e:?}"))
        };
        let (family, local) = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                (
                    IpAddressFamily::Ipv4,
                    IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (o[0], o[1], o[2], o[3]) }),
                )
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let address = (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
                (
                    IpAddressFamily::Ipv6,
                    IpSocketAddress::Ipv6(Ipv6SocketAddress { port, flow_info: 0, address, scope_id: 0 }),
                )
            }
        };
        let socket = create_tcp_socket(family).map_err(fail)?;
        let ready = socket.subscribe();
        socket.start_bind(&self.network, local).map_err(fail)?;
        finish(&ready, || socket.finish_bind()).map_err(fail)?;
        let _ = socket.set_listen_backlog_size(u64::from(BACKLOG));
        socket.start_listen().map_err(fail)?;
        finish(&ready, || socket.finish_listen()).map_err(fail)?;
        let (bound, port) = socket.local_address().map(split).map_err(fail)?;
        let id = self.id();
        self.listeners.insert(id, Listener { ready, socket, accepting: true, resting_until: 0 });
        Ok(ListenerInfo { id, address: bound, port })
    }

    fn unlisten(&mut self, listener: u32) {
        self.listeners.remove(&listener);
    }

    fn set_accepting(&mut self, listener: u32, accepting: bool) {
        if let Some(l) = self.listeners.get_mut(&listener) {
            l.accepting = accepting;
        }
    }

    fn set_read_limit(&mut self, conn: u32, bytes: u32) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.read_limit = bytes as usize;
        }
    }

    fn report_written(&mut self, conn: u32, enabled: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.report_written = enabled;
        }
    }

    fn set_write_limit(&mut self, conn: u32, bytes: u32) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pending.set_limit(bytes as usize);
        }
    }

    fn exchange(&mut self, out: &mut OutBatch, timeout_ms: u32) -> InBatch {
        self.turns = self.turns.wrapping_add(1);
        let mut batch = InBatch::default();
        let now = self.now_ms();
        // A connection's share of a publication precedes its own output.
        for (bytes, conns) in &out.shared {
            for id in conns {
                self.queue(*id, bytes, now, &mut batch);
            }
        }
        for (id, bytes) in &out.writes {
            self.queue(*id, bytes, now, &mut batch);
        }
        for id in &out.close {
            if let Some(c) = self.conns.get_mut(id) {
                c.close = true;
            }
        }
        for id in &out.abort {
            self.conns.remove(id);
        }

        let deadline = now + u64::from(timeout_ms);
        let mut wait = 0;
        loop {
            self.poll_once(wait, &mut batch);
            let now = self.now_ms();
            if has_news(&batch) || now >= deadline {
                return batch;
            }
            wait = deadline - now;
        }
    }

    fn now_ms(&self) -> u64 {
        monotonic_clock::now().saturating_sub(self.start_ns) / 1_000_000
    }
}

/// Reports a change of backpressure in the batch.
fn report_pressure(id: u32, change: Option<Pressure>, batch: &mut InBatch) {
    match change {
        Some(Pressure::BackedUp) => batch.backed_up.push(id),
        Some(Pressure::Drained) => batch.drained.push(id),
        None => {}
    }
}

/// Whether a batch holds anything the runtime must see (written-byte
/// reports do not end a wait, as in the host's `net`).
fn has_news(b: &InBatch) -> bool {
    !(b.opened.is_empty()
        && b.runs.is_empty()
        && b.eof.is_empty()
        && b.gone.is_empty()
        && b.accept_failed.is_empty()
        && b.drained.is_empty()
        && b.backed_up.is_empty())
}

/// Finishes a `start-*` operation, waiting while it would block.
fn finish<T>(ready: &Pollable, mut f: impl FnMut() -> Result<T, ErrorCode>) -> Result<T, ErrorCode> {
    loop {
        match f() {
            Err(ErrorCode::WouldBlock) => ready.block(),
            r => return r,
        }
    }
}

/// An address as text and its port.
fn split(a: IpSocketAddress) -> (String, u16) {
    match a {
        IpSocketAddress::Ipv4(v4) => {
            let (a, b, c, d) = v4.address;
            (Ipv4Addr::new(a, b, c, d).to_string(), v4.port)
        }
        IpSocketAddress::Ipv6(v6) => {
            let (a, b, c, d, e, f, g, h) = v6.address;
            (Ipv6Addr::new(a, b, c, d, e, f, g, h).to_string(), v6.port)
        }
    }
}
