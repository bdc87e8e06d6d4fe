//! Accepting connections on a listener the guest asked for.

use super::inbox::Shared;
use crate::bindings::net;
use crate::tls::TlsState;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Accepts until the task is aborted (`unlisten`). Each connection gets an
/// id, a task of its own, and an `opened` entry in the next turn.
pub async fn accept_loop(
    listener_id: u32,
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                tracing::warn!(listener = listener_id, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let id = shared.next_conn_id();
        let opened = net::Opened {
            conn: id,
            listener: listener_id,
            peer_address: peer.ip().to_string(),
            peer_port: peer.port(),
            local_address: local.map(|a| a.ip().to_string()).unwrap_or_default(),
            local_port: local.map_or(0, |a| a.port()),
        };
        let session = match &tls {
            None => None,
            Some(config) => match TlsState::new(Arc::clone(config)) {
                Ok(state) => Some(state),
                Err(e) => {
                    tracing::warn!(listener = listener_id, error = %e, "cannot start a TLS session");
                    continue;
                }
            },
        };
        super::spawn_conn(id, stream, session, opened, Arc::clone(&shared));
    }
}
