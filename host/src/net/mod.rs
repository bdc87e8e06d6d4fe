//! The host's side of the host-fed binding: the `wsbox:websocket/net` import.
//!
//! The host owns every socket. Per connection a tokio task reads until the
//! socket would block, straight into one shared flat batch (the [`inbox`]),
//! and drains output that could not be written at once. Once per turn the
//! guest calls `exchange`: the host writes the guest's output (one
//! `try_write` per connection), waits for input up to the turn's timeout, and
//! hands the whole batch over. A turn stops growing near [`TURN_CAP`] bytes
//! and gives each connection at most [`CONN_SHARE`] of it (fairness); a
//! connection whose output backs up past [`WRITE_HIGH_WATER`] is not read
//! until it drains (backpressure).

mod conn;
mod inbox;
mod listener;

use crate::bindings::net;
use crate::sandbox::ListenPolicy;
use inbox::Shared;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A turn stops taking input near this many bytes, so the batch stays
/// cache-sized (measured: 35 MB turns fell to 0.48× native throughput).
pub const TURN_CAP: usize = 1024 * 1024;
/// Most bytes one connection may add to one turn.
pub const CONN_SHARE: usize = 256 * 1024;
/// Unwritten output above which a connection is not read any more.
pub const WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Unwritten output above which the connection is dropped (reported `gone`):
/// a peer that does not read cannot grow the host's memory past this. It
/// leaves room for one largest message (64 MiB) in flight.
pub const WRITE_HARD_CAP: usize = 80 * 1024 * 1024;
/// How long a closed connection keeps draining what the peer still sends,
/// so that our close frame is not destroyed by a reset.
pub const LINGER: Duration = Duration::from_secs(2);

/// The operator's transport limits for one instance.
#[derive(Clone, Copy, Debug)]
pub struct TransportLimits {
    /// Open connections at most; past it new ones wait in the OS backlog
    /// until one closes. Default 10 000.
    pub max_connections: usize,
    /// A connection whose output makes no progress this long (the peer does
    /// not read) is dropped. Default 30 s.
    pub write_timeout: Duration,
    /// Listen with SO_REUSEPORT, so that several instances (one per worker
    /// thread) share a port and the kernel spreads connections across them.
    pub reuse_port: bool,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self { max_connections: 10_000, write_timeout: Duration::from_secs(30), reuse_port: false }
    }
}

/// Wakes an instance that waits in `exchange`, e.g. to shut down.
#[derive(Clone)]
pub struct Interrupter(Arc<Shared>);

impl Interrupter {
    /// The guest's current (or next) wait for input returns at once.
    pub fn interrupt(&self) {
        self.0.interrupt();
    }
}

/// The host's sockets for one component instance.
pub struct NetHost {
    policy: ListenPolicy,
    /// The operator's TLS identity; secure listeners need it.
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    listeners: HashMap<u32, Listening>,
    next_listener: u32,
}

/// A listener's accept task and its pause switch.
struct Listening {
    task: JoinHandle<()>,
    accepting: tokio::sync::watch::Sender<bool>,
}

impl NetHost {
    /// Sockets governed by `policy` (where the component may listen), with
    /// the TLS identity secure listeners use.
    pub fn new(policy: ListenPolicy, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self::with_limits(policy, tls, TransportLimits::default())
    }

    /// [`NetHost::new`] with the operator's transport limits.
    pub fn with_limits(policy: ListenPolicy, tls: Option<Arc<rustls::ServerConfig>>, limits: TransportLimits) -> Self {
        let shared = Arc::new(Shared::with_limits(limits));
        Self { policy, tls, shared, listeners: HashMap::new(), next_listener: 1 }
    }

    /// A handle that ends the instance's current wait for input (see
    /// [`Interrupter::interrupt`]); safe to use from any task.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter(Arc::clone(&self.shared))
    }

    /// The number of connections the host holds open.
    pub fn connection_count(&self) -> usize {
        self.shared.conns.lock().expect("conns lock").len()
    }

    async fn listen(&mut self, address: String, port: u16, secure: bool) -> Result<net::Listener, net::ListenError> {
        let denied = |message: String| net::ListenError { code: net::ListenErrorCode::AccessDenied, message };
        let tls = match (secure, &self.tls) {
            (false, _) => None,
            (true, Some(config)) => Some(Arc::clone(config)),
            (true, None) => {
                return Err(denied("wss:// needs a certificate: start wsbox with --tls-cert and --tls-key".into()));
            }
        };
        let ip = address.parse().map_err(|_| net::ListenError {
            code: net::ListenErrorCode::AddressNotAvailable,
            message: format!("'{address}' is not an IP address"),
        })?;
        let requested = SocketAddr::new(ip, port);
        if !self.policy.allows(requested) {
            return Err(denied(format!("the host does not allow listening on {requested} (allowed: {})", self.policy)));
        }
        let tcp = bind(requested, self.shared.limits.reuse_port).map_err(|e| net::ListenError {
            code: match e.kind() {
                std::io::ErrorKind::AddrInUse => net::ListenErrorCode::AddressInUse,
                std::io::ErrorKind::AddrNotAvailable => net::ListenErrorCode::AddressNotAvailable,
                std::io::ErrorKind::PermissionDenied => net::ListenErrorCode::AccessDenied,
                _ => net::ListenErrorCode::Other,
            },
            message: e.to_string(),
        })?;
        let local = tcp
            .local_addr()
            .map_err(|e| net::ListenError { code: net::ListenErrorCode::Other, message: e.to_string() })?;
        let id = self.next_listener;
        self.next_listener += 1;
        let (accepting, switch) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(listener::accept_loop(id, tcp, tls, Arc::clone(&self.shared), switch));
        self.listeners.insert(id, Listening { task, accepting });
        tracing::debug!(listener = id, %local, "listening");
        Ok(net::Listener { id, address: local.ip().to_string(), port: local.port() })
    }

    /// Writes the guest's output, then waits for input and hands it over.
    async fn exchange(&mut self, out: net::Outgoing, timeout_ms: u32) -> net::Incoming {
        self.write(&out);
        self.shared.wait_for_input(Duration::from_millis(timeout_ms as u64)).await;
        self.shared.take_turn()
    }

    fn write(&self, out: &net::Outgoing) {
        let conns = self.shared.conns.lock().expect("conns lock");
        let mut start = 0usize;
        for (id, end) in out.conns.iter().zip(&out.ends) {
            let end = (*end as usize).clamp(start, out.data.len());
            if let Some(conn) = conns.get(id) {
                conn.write(&out.data[start..end]);
            }
            start = end;
        }
        for id in &out.close {
            if let Some(conn) = conns.get(id) {
                conn.close();
            }
        }
        for id in &out.abort {
            if let Some(conn) = conns.get(id) {
                conn.abort();
            }
        }
    }
}

/// A listening socket on `addr` (with SO_REUSEPORT when `reuse_port`).
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Drop for NetHost {
    fn drop(&mut self) {
        self.shared.closed.store(true, std::sync::atomic::Ordering::Release);
        for (_, listening) in self.listeners.drain() {
            listening.task.abort();
        }
        for conn in self.shared.conns.lock().expect("conns lock").values() {
            conn.abort();
        }
    }
}

impl net::Host for crate::runner::HostState {
    async fn listen(
        &mut self,
        address: String,
        port: u16,
        secure: bool,
    ) -> wasmtime::Result<Result<net::Listener, net::ListenError>> {
        Ok(self.net.listen(address, port, secure).await)
    }

    async fn unlisten(&mut self, listener: u32) -> wasmtime::Result<()> {
        if let Some(listening) = self.net.listeners.remove(&listener) {
            listening.task.abort();
        }
        Ok(())
    }

    async fn set_accepting(&mut self, listener: u32, accepting: bool) -> wasmtime::Result<()> {
        if let Some(listening) = self.net.listeners.get(&listener) {
            listening.accepting.send_replace(accepting);
        }
        Ok(())
    }

    async fn set_read_limit(&mut self, conn: u32, bytes: u32) -> wasmtime::Result<()> {
        if let Some(conn) = self.net.shared.conns.lock().expect("conns lock").get(&conn) {
            conn.set_read_limit(bytes as usize);
        }
        Ok(())
    }

    async fn set_write_limit(&mut self, conn: u32, bytes: u32) -> wasmtime::Result<()> {
        if let Some(conn) = self.net.shared.conns.lock().expect("conns lock").get(&conn) {
            conn.set_write_limit(bytes as usize);
        }
        Ok(())
    }

    async fn report_written(&mut self, conn: u32, enabled: bool) -> wasmtime::Result<()> {
        if let Some(conn) = self.net.shared.conns.lock().expect("conns lock").get(&conn) {
            conn.set_report_written(enabled);
        }
        Ok(())
    }

    async fn exchange(&mut self, out: net::Outgoing, timeout_ms: u32) -> wasmtime::Result<net::Incoming> {
        let incoming = self.net.exchange(out, timeout_ms).await;
        // The guest runs again from here (the watchdog's clock).
        self.running_since = std::time::Instant::now();
        Ok(incoming)
    }
}

use conn::spawn as spawn_conn;
