//! The host-fed binding: the host owns the sockets (and TLS) and the
//! component reaches them through the `wsbox:websocket/net` import, one flat
//! batch each way per turn. The vectors of the outgoing batch go to the host
//! and come back to be reused, so a steady turn does not allocate here.

use crate::bindings::wsbox::websocket::net;
use std::time::Instant;
use wsbox_core::MessageKind;
use wsbox_runtime::{
    AcceptFailed, Admission, InBatch, ListenErrorKind, ListenerInfo, Net, Opened, OutBatch, Publication, TlsFailed,
    TlsInfo,
};

/// The `Net` of a component embedded in a host that implements `net`.
pub struct FedNet {
    start: Instant,
    forwarding: bool,
}

impl FedNet {
    pub fn new() -> Self {
        Self { start: Instant::now(), forwarding: net::forwards_publications() }
    }
}

impl Net for FedNet {
    fn listen(&mut self, address: &str, port: u16, secure: bool) -> Result<ListenerInfo, (ListenErrorKind, String)> {
        match net::listen(address, port, secure) {
            Ok(l) => Ok(ListenerInfo { id: l.id, address: l.address, port: l.port }),
            Err(e) => {
                let kind = match e.code {
                    net::ListenErrorCode::AddressInUse => ListenErrorKind::AddressInUse,
                    net::ListenErrorCode::AddressNotAvailable => ListenErrorKind::AddressNotAvailable,
                    net::ListenErrorCode::AccessDenied => ListenErrorKind::AccessDenied,
                    net::ListenErrorCode::Other => ListenErrorKind::Other,
                };
                Err((kind, e.message))
            }
        }
    }

    fn unlisten(&mut self, listener: u32) {
        net::unlisten(listener);
    }

    fn set_accepting(&mut self, listener: u32, accepting: bool) {
        net::set_accepting(listener, accepting);
    }

    fn set_read_limit(&mut self, conn: u32, bytes: u32) {
        net::set_read_limit(conn, bytes);
    }

    fn report_written(&mut self, conn: u32, enabled: bool) {
        net::report_written(conn, enabled);
    }

    fn set_write_limit(&mut self, conn: u32, bytes: u32) {
        net::set_write_limit(conn, bytes);
    }

    fn exchange(&mut self, out: &mut OutBatch, timeout_ms: u32) -> InBatch {
        // The connections' buffers are lent as they are (no copy); both
        // conversions keep the list's allocation (same layout).
        let writes =
            std::mem::take(&mut out.writes).into_iter().map(|(conn, data)| net::Write { conn, data }).collect();
        let shared =
            std::mem::take(&mut out.shared).into_iter().map(|(data, conns)| net::SharedWrite { data, conns }).collect();
        let publications = std::mem::take(&mut out.publications).into_iter().map(to_wit).collect();
        let counts = out.topic_counts;
        let record = net::Outgoing {
            shared,
            writes,
            close: std::mem::take(&mut out.close),
            abort: std::mem::take(&mut out.abort),
            upgraded: std::mem::take(&mut out.upgraded),
            closing: std::mem::take(&mut out.closing),
            heap_bytes: crate::heap::in_use(),
            publications,
            topics_joined: std::mem::take(&mut out.topics_joined),
            topics_left: std::mem::take(&mut out.topics_left),
            topic_counts: net::TopicCounts {
                publications: counts.publications,
                delivered: counts.delivered,
                skipped: counts.skipped,
            },
        };
        let incoming = net::exchange(&record, timeout_ms);
        let net::Outgoing { writes, close, abort, upgraded, closing, shared, .. } = record;
        out.writes = writes.into_iter().map(|w| (w.conn, w.data)).collect();
        // The runtime reads which connections shared writes went to.
        out.shared = shared.into_iter().map(|w| (w.data, w.conns)).collect();
        out.close = close;
        out.abort = abort;
        out.upgraded = upgraded;
        out.closing = closing;
        // Same layout: the collect reuses the lifted list's allocation.
        let runs = incoming.runs.into_iter().map(|r| (r.conn, r.end)).collect();
        let mut batch = InBatch { runs, data: incoming.data, ..InBatch::default() };
        if let Some(transport) = incoming.transport {
            fill_transport(&mut batch, transport);
        }
        batch
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn forwards_publications(&self) -> bool {
        self.forwarding
    }

    fn health_check_path(&self) -> Option<String> {
        net::health_check_path()
    }

    fn serving(&mut self) -> bool {
        net::serving()
    }

    fn page(&self) -> Option<wsbox_core::Page> {
        net::page().map(|p| wsbox_core::Page { path: p.path, content_type: p.content_type, body: p.body.into() })
    }
}

fn to_wit(p: Publication) -> net::Publication {
    net::Publication { topic: p.topic, binary: p.kind == MessageKind::Binary, data: p.data }
}

fn from_wit(p: net::Publication) -> Publication {
    let kind = if p.binary { MessageKind::Binary } else { MessageKind::Text };
    Publication { topic: p.topic, kind, data: p.data }
}

/// The rarer half of a turn's input.
fn fill_transport(batch: &mut InBatch, t: net::TransportEvents) {
    batch.accept_failed = t
        .accept_failed
        .into_iter()
        .map(|f| AcceptFailed { listener: f.listener, message: f.message, resource: f.out_of_resources })
        .collect();
    batch.written = t.written_conns.into_iter().zip(t.written_bytes).collect();
    batch.opened = t
        .opened
        .into_iter()
        .map(|o| Opened {
            conn: o.conn,
            listener: o.listener,
            peer_address: o.peer_address,
            peer_port: o.peer_port,
            local_address: o.local_address,
            local_port: o.local_port,
            trusted_proxy: o.trusted_proxy,
            admission: match o.admission {
                net::Admission::Admit => Admission::Admit,
                net::Admission::AdmitUncompressed => Admission::AdmitUncompressed,
                net::Admission::RefuseBusy => Admission::RefuseBusy,
                net::Admission::RefuseAddress => Admission::RefuseAddress,
            },
        })
        .collect();
    batch.eof = t.eof;
    batch.gone = t.gone;
    batch.backed_up = t.backed_up;
    batch.drained = t.drained;
    batch.publications = t.publications.into_iter().map(from_wit).collect();
    batch.broker_connected = t.broker_connected;
    batch.tls_established = t
        .tls_established
        .into_iter()
        .map(|t| {
            let info = TlsInfo {
                protocol: t.protocol,
                cipher: t.cipher,
                server_name: t.server_name,
                alpn: t.alpn,
                peer_certificates: t.peer_certificates,
            };
            (t.conn, info)
        })
        .collect();
    batch.tls_failed = t
        .tls_failed
        .into_iter()
        .map(|f| TlsFailed {
            conn: f.conn,
            message: f.message,
            alert_received: f.alert_received,
            peer_verify: f.peer_verify,
        })
        .collect();
}
