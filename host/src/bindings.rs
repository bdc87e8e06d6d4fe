//! Host bindings for the `wsbox:websocket/server` world, generated from
//! `wit/`, and the `net` import they declare, served by the instance's event
//! loop. Imports (`net`) are async and may trap; exports are called
//! asynchronously.
//!
//! The event loop speaks its own types (`net::batch`), which mirror the WIT
//! records field for field; the conversions below move them across (lists
//! move whole, or element by element into the same allocation), so only
//! this module and the runner know the generated code.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "server",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::exports::wsbox::websocket::websocket_server as api;
pub use self::wsbox::websocket::net;

use crate::net::batch;
use crate::state::HostState;

/// The `net` import, served by the instance's [`NetHost`](crate::net::NetHost).
impl net::Host for HostState {
    async fn listen(
        &mut self,
        address: String,
        port: u16,
        secure: bool,
    ) -> wasmtime::Result<Result<net::Listener, net::ListenError>> {
        Ok(self.net.listen(address, port, secure).map(listener).map_err(listen_error))
    }

    async fn unlisten(&mut self, listener: u32) -> wasmtime::Result<()> {
        self.net.unlisten(listener);
        Ok(())
    }

    async fn set_accepting(&mut self, listener: u32, accepting: bool) -> wasmtime::Result<()> {
        self.net.set_accepting(listener, accepting);
        Ok(())
    }

    async fn set_read_limit(&mut self, conn: u32, bytes: u32) -> wasmtime::Result<()> {
        self.net.set_read_limit(conn, bytes);
        Ok(())
    }

    async fn set_write_limit(&mut self, conn: u32, bytes: u32) -> wasmtime::Result<()> {
        self.net.set_write_limit(conn, bytes);
        Ok(())
    }

    async fn report_written(&mut self, conn: u32, enabled: bool) -> wasmtime::Result<()> {
        self.net.report_written(conn, enabled);
        Ok(())
    }

    async fn forwards_publications(&mut self) -> wasmtime::Result<bool> {
        Ok(self.net.forwards_publications())
    }

    async fn health_check_path(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.net.health_check_path())
    }

    async fn serving(&mut self) -> wasmtime::Result<bool> {
        Ok(self.net.serving())
    }

    async fn page(&mut self) -> wasmtime::Result<Option<net::ServedPage>> {
        Ok(self.net.page().map(|p| net::ServedPage {
            path: p.path.clone(),
            content_type: p.content_type.clone(),
            body: p.body.to_vec(),
        }))
    }

    async fn exchange(&mut self, out: net::Outgoing, timeout_ms: u32) -> wasmtime::Result<net::Incoming> {
        let incoming = self.net.exchange(outgoing(out), timeout_ms).await;
        // The guest runs again from here (the watchdog's clock).
        self.watchdog.guest_resumed();
        Ok(incoming_to_wit(incoming))
    }
}

fn listener(l: batch::Listener) -> net::Listener {
    net::Listener { id: l.id, address: l.address, port: l.port }
}

fn listen_error(e: batch::ListenError) -> net::ListenError {
    let code = match e.code {
        batch::ListenErrorCode::AddressInUse => net::ListenErrorCode::AddressInUse,
        batch::ListenErrorCode::AddressNotAvailable => net::ListenErrorCode::AddressNotAvailable,
        batch::ListenErrorCode::AccessDenied => net::ListenErrorCode::AccessDenied,
        batch::ListenErrorCode::Other => net::ListenErrorCode::Other,
    };
    net::ListenError { code, message: e.message }
}

fn outgoing(o: net::Outgoing) -> batch::Outgoing {
    batch::Outgoing {
        shared: o.shared.into_iter().map(|w| batch::SharedWrite { data: w.data, conns: w.conns }).collect(),
        writes: o.writes.into_iter().map(|w| batch::Write { conn: w.conn, data: w.data }).collect(),
        close: o.close,
        abort: o.abort,
        upgraded: o.upgraded,
        closing: o.closing,
        heap_bytes: o.heap_bytes,
        publications: o
            .publications
            .into_iter()
            .map(|p| batch::Publication { topic: p.topic, binary: p.binary, data: p.data })
            .collect(),
        topics_joined: o.topics_joined,
        topics_left: o.topics_left,
        topic_counts: batch::TopicCounts {
            publications: o.topic_counts.publications,
            delivered: o.topic_counts.delivered,
            skipped: o.topic_counts.skipped,
        },
    }
}

fn incoming_to_wit(i: batch::Incoming) -> net::Incoming {
    net::Incoming {
        runs: i.runs.into_iter().map(|r| net::InputRun { conn: r.conn, end: r.end }).collect(),
        data: i.data,
        transport: i.transport.map(transport_events),
    }
}

fn transport_events(t: batch::TransportEvents) -> net::TransportEvents {
    net::TransportEvents {
        opened: t.opened.into_iter().map(opened).collect(),
        eof: t.eof,
        gone: t.gone,
        tls_established: t.tls_established.into_iter().map(tls_session).collect(),
        tls_failed: t.tls_failed.into_iter().map(tls_failure).collect(),
        accept_failed: t
            .accept_failed
            .into_iter()
            .map(|f| net::AcceptFailure {
                listener: f.listener,
                message: f.message,
                out_of_resources: f.out_of_resources,
            })
            .collect(),
        written_conns: t.written_conns,
        written_bytes: t.written_bytes,
        backed_up: t.backed_up,
        drained: t.drained,
        publications: t
            .publications
            .into_iter()
            .map(|p| net::Publication { topic: p.topic, binary: p.binary, data: p.data })
            .collect(),
        broker_connected: t.broker_connected,
    }
}

fn opened(o: batch::Opened) -> net::Opened {
    let admission = match o.admission {
        batch::Admission::Admit => net::Admission::Admit,
        batch::Admission::AdmitUncompressed => net::Admission::AdmitUncompressed,
        batch::Admission::RefuseBusy => net::Admission::RefuseBusy,
        batch::Admission::RefuseAddress => net::Admission::RefuseAddress,
    };
    net::Opened {
        conn: o.conn,
        listener: o.listener,
        peer_address: o.peer_address,
        peer_port: o.peer_port,
        local_address: o.local_address,
        local_port: o.local_port,
        admission,
        trusted_proxy: o.trusted_proxy,
    }
}

fn tls_session(s: batch::TlsSession) -> net::TlsSession {
    net::TlsSession {
        conn: s.conn,
        protocol: s.protocol,
        cipher: s.cipher,
        server_name: s.server_name,
        alpn: s.alpn,
        peer_certificates: s.peer_certificates,
    }
}

fn tls_failure(f: batch::TlsFailure) -> net::TlsFailure {
    net::TlsFailure { conn: f.conn, message: f.message, alert_received: f.alert_received, peer_verify: f.peer_verify }
}
