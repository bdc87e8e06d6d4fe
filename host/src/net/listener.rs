//! A listener the guest asked for, and accepting from it.

use super::admission::AdmissionControl;
use super::batch as net;
use super::conn::{AwaitingHeader, Conn};
use super::proxy::TrustedProxies;
use super::turn::Turn;
use crate::tls::TlsState;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a listener rests after a failed `accept` (out of descriptors,
/// say) instead of spinning on it.
const REST_AFTER_FAILURE: Duration = Duration::from_millis(50);

pub struct Listening {
    pub id: u32,
    tcp: mio::net::TcpListener,
    /// The TLS identity of a secure listener.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// False while paused (Qt's `pauseAccepting`): new connections wait in
    /// the OS backlog.
    pub accepting: bool,
    /// The socket said readable and has not said would-block since.
    pub acceptable: bool,
    /// After a failed accept: not before then.
    pub resting_until: Option<Instant>,
}

impl Listening {
    /// Binds `addr` (with SO_REUSEPORT when `reuse_port`, so that several
    /// instances share the port) and listens.
    pub fn bind(
        id: u32,
        addr: SocketAddr,
        reuse_port: bool,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let tcp = mio::net::TcpListener::from_std(socket.into());
        Ok(Self { id, tcp, tls, accepting: true, acceptable: true, resting_until: None })
    }

    /// A listener taken over from another instance, as listener `id` of
    /// this one, accepting again.
    pub fn renumbered(self, id: u32, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self { id, tls, accepting: true, acceptable: true, resting_until: None, ..self }
    }

    pub fn is_secure(&self) -> bool {
        self.tls.is_some()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn source(&mut self) -> &mut mio::net::TcpListener {
        &mut self.tcp
    }

    /// Whether to try accepting now.
    pub fn may_accept(&self, now: Instant) -> bool {
        self.accepting && self.acceptable && self.resting_until.is_none_or(|until| now >= until)
    }

    /// Accepts one connection, numbered `id`, and books its `opened` entry;
    /// `None` when nothing is waiting. A failed accept is reported to the
    /// guest and rests the listener.
    /// With the PROXY protocol on, the connection is announced (and
    /// admitted) once its header is read instead.
    pub fn accept(
        &mut self,
        id: u32,
        turn: &mut Turn,
        now: Instant,
        admission: &mut AdmissionControl,
        proxy: &TrustedProxies,
    ) -> Option<Conn> {
        self.resting_until = None;
        let (stream, peer, session) = loop {
            let (stream, peer) = match self.tcp.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.acceptable = false;
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(listener = self.id, error = %e, "accept failed");
                    let resource = matches!(e.raw_os_error(), Some(23 | 24 | 12 | 105)); // ENFILE, EMFILE, ENOMEM, ENOBUFS
                    turn.accept_failed.push(net::AcceptFailure {
                        listener: self.id,
                        message: e.to_string(),
                        out_of_resources: resource,
                    });
                    self.resting_until = Some(now + REST_AFTER_FAILURE);
                    return None;
                }
            };
            match &self.tls {
                None => break (stream, peer, None),
                Some(config) => match TlsState::new(Arc::clone(config)) {
                    Ok(state) => break (stream, peer, Some(state)),
                    // Dropping the stream refuses this one; go on with the next.
                    Err(e) => tracing::warn!(listener = self.id, error = %e, "cannot start a TLS session"),
                },
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let mut conn = Conn::new(id, stream, session, peer.ip());
        let header_expected = proxy.reads_header() && proxy.trusts(peer.ip());
        // A trusted proxy's connection is admitted by the client its header
        // names; any other peer is its own client, admitted now (so that one
        // address cannot hold idle connections past its limits).
        let forwards = proxy.forwards(peer.ip());
        let admitted = (!header_expected).then(|| {
            conn.counted = true;
            if forwards { admission.decide_for_proxy(peer.ip(), now) } else { admission.decide(peer.ip(), now) }
        });
        match admitted {
            Some(admitted) if !proxy.reads_header() => {
                let opened = opened_record(id, self.id, peer, local, admitted, forwards);
                conn.remember_announcement(&opened);
                turn.opened.push(opened);
            }
            admitted => conn.await_header(AwaitingHeader::new(self.id, peer, local, admitted, now)),
        }
        Some(conn)
    }
}

/// The `opened` entry that announces connection `conn` to the guest.
pub fn opened_record(
    conn: u32,
    listener: u32,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    admission: net::Admission,
    trusted_proxy: bool,
) -> net::Opened {
    net::Opened {
        conn,
        listener,
        peer_address: peer.ip().to_string(),
        peer_port: peer.port(),
        local_address: local.map(|a| a.ip().to_string()).unwrap_or_default(),
        local_port: local.map_or(0, |a| a.port()),
        admission,
        trusted_proxy,
    }
}
