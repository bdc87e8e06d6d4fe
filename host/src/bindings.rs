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
use wasmtime::AsContext;
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, HasSelf, Lift, Linker, WasmList};

/// The event loop's `Outgoing` from either lifted form of WIT's: every
/// field but the two lists of bytes to write (`shared`, `writes`), which the
/// caller has made.
macro_rules! outgoing {
    ($o:ident, $shared:ident, $writes:ident) => {
        batch::Outgoing {
            shared: $shared,
            writes: $writes,
            close: $o.close,
            abort: $o.abort,
            upgraded: $o.upgraded,
            closing: $o.closing,
            heap_bytes: $o.heap_bytes,
            publications: $o
                .publications
                .into_iter()
                .map(|p| batch::Publication { topic: p.topic, binary: p.binary, data: p.data })
                .collect(),
            topics_joined: $o.topics_joined,
            topics_left: $o.topics_left,
            topic_counts: batch::TopicCounts {
                publications: $o.topic_counts.publications,
                delivered: $o.topic_counts.delivered,
                skipped: $o.topic_counts.skipped,
            },
        }
    };
}

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

    /// `exchange` for a linker made by the generated `add_to_linker` alone:
    /// the bytes to write were copied out of the guest's memory.
    /// [`add_to_linker`] puts [`exchange_lent`] in its place, which writes
    /// them from where they lie.
    async fn exchange(&mut self, out: net::Outgoing, timeout_ms: u32) -> wasmtime::Result<net::Incoming> {
        let shared = out.shared.iter().map(|w| batch::SharedWrite { data: &w.data, conns: w.conns.clone() }).collect();
        let writes = out.writes.iter().map(|w| batch::Write { conn: w.conn, data: &w.data }).collect();
        self.net.write_output(outgoing!(out, shared, writes));
        Ok(self.exchange_rest(timeout_ms).await)
    }
}

impl HostState {
    /// An exchange after its output is written: the event loop's turn.
    async fn exchange_rest(&mut self, timeout_ms: u32) -> net::Incoming {
        let incoming = self.net.exchange(timeout_ms).await;
        // The guest runs again from here (the watchdog's clock).
        self.watchdog.guest_resumed();
        incoming_to_wit(incoming)
    }
}

/// Adds the `net` import, served by each instance's event loop, to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    net::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    // The generated `exchange` lifts each connection's bytes into a vector
    // of its own (an allocation and a copy per connection and turn, 8% of
    // the CPU at 64 KiB messages); this one shadows it.
    linker.allow_shadowing(true);
    let result =
        linker.instance(NET_INTERFACE)?.func_wrap_async("exchange", |store, params| exchange_lent(store, params));
    linker.allow_shadowing(false);
    result
}

/// The `net` interface's name as the guest imports it.
const NET_INTERFACE: &str = "wsbox:websocket/net@0.6.0";

/// `net.exchange`, writing the guest's output from the guest's memory.
fn exchange_lent(
    mut store: StoreContextMut<'_, HostState>,
    (out, timeout_ms): (LentOutgoing, u32),
) -> Box<dyn Future<Output = wasmtime::Result<(net::Incoming,)>> + Send + '_> {
    // The lent slices live no longer than this, which ends before the
    // future below is made: nothing can keep them past `write_output`.
    let scope = ();
    // SAFETY: the lists lie in the guest's linear memory, which is not part
    // of `HostState` and which nothing reachable from it can reach (the
    // event loop never sees the store), so `data_mut` below does not alias
    // it. Only the guest (a store, `memory.grow`) or a call into it (the
    // canonical ABI's `realloc`, while a result is lowered) changes that
    // memory, and neither can happen before `write_output` returns: this
    // import has the guest suspended in it, the store is held here, no
    // wasm runs (so no epoch or fuel callback either), and the result is
    // lowered only after the future ends. Components' memories are never
    // shared with other threads. Lifting checked the lists' bounds.
    let lend = |list: &WasmList<u8>| unsafe { lent(&scope, list.as_le_slice(store.as_context())) };
    let shared = out.shared.into_iter().map(|w| batch::SharedWrite { data: lend(&w.data), conns: w.conns }).collect();
    let writes = out.writes.iter().map(|w| batch::Write { conn: w.conn, data: lend(&w.data) }).collect();
    let batch = outgoing!(out, shared, writes);
    store.data_mut().net.write_output(batch);
    Box::new(async move { Ok((store.data_mut().exchange_rest(timeout_ms).await,)) })
}

/// `bytes` with its borrow of the store exchanged for one of `scope`.
///
/// # Safety
/// The guest's memory stays as it is while `scope` lives.
unsafe fn lent<'a>(_scope: &'a (), bytes: &[u8]) -> &'a [u8] {
    // SAFETY: the same pointer and length; the caller vouches for the memory.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) }
}

/// WIT's `net.write`, its bytes left in the guest's memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct LentWrite {
    conn: u32,
    data: WasmList<u8>,
}

/// WIT's `net.shared-write`, its bytes left in the guest's memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct LentSharedWrite {
    data: WasmList<u8>,
    conns: Vec<u32>,
}

/// WIT's `net.outgoing` with the bytes to write left in the guest's memory
/// (field for field: the record's layout).
#[derive(ComponentType, Lift)]
#[component(record)]
struct LentOutgoing {
    shared: Vec<LentSharedWrite>,
    writes: Vec<LentWrite>,
    close: Vec<u32>,
    abort: Vec<u32>,
    upgraded: Vec<u32>,
    closing: Vec<u32>,
    #[component(name = "heap-bytes")]
    heap_bytes: u64,
    publications: Vec<net::Publication>,
    #[component(name = "topics-joined")]
    topics_joined: Vec<String>,
    #[component(name = "topics-left")]
    topics_left: Vec<String>,
    #[component(name = "topic-counts")]
    topic_counts: net::TopicCounts,
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

#[cfg(test)]
mod tests {
    /// The lent `exchange` shadows the generated one only under the name
    /// the guest imports: a new WIT version must move both.
    #[test]
    fn the_lent_exchange_is_registered_under_the_wit_version() {
        let worlds = include_str!("../../wit/worlds.wit");
        let version = worlds
            .lines()
            .find_map(|line| line.strip_prefix("package wsbox:websocket@")?.strip_suffix(';'))
            .expect("the WIT package line");
        assert_eq!(super::NET_INTERFACE, format!("wsbox:websocket/net@{version}"));
    }
}
