//! Accepting connections on a listener the guest asked for.

use super::inbox::Shared;
use crate::bindings::net;
use crate::tls::TlsState;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Accepts until the task is aborted (`unlisten`). Each connection gets an
/// id, a task of its own, and an `opened` entry in the next turn.
/// While `accepting` says false, nothing is accepted: new connections wait
/// in the OS backlog (Qt's `pauseAccepting`).
pub async fn accept_loop(
    listener_id: u32,
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    mut accepting: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if accepting.wait_for(|on| *on).await.is_err() {
            return;
        }
        // At the connection cap, new connections wait in the backlog.
        let closed = shared.conn_closed.notified();
        if shared.conns.lock().expect("conns lock").len() >= shared.limits.max_connections {
            tracing::warn!(
                listener = listener_id,
                max = shared.limits.max_connections,
                "connection cap reached; not accepting"
            );
            closed.await;
            continue;
        }
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = accepting.changed() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory: tell the guest, back off instead of spinning.
                tracing::warn!(listener = listener_id, error = %e, "accept failed");
                let resource = matches!(e.raw_os_error(), Some(23 | 24 | 12 | 105)); // ENFILE, EMFILE, ENOMEM, ENOBUFS
                shared.push_accept_failed(net::AcceptFailure {
                    listener: listener_id,
                    message: e.to_string(),
                    out_of_resources: resource,
                });
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
