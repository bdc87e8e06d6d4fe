//! The wsbox component: the sans-io protocol core (`wsbox-core`) under a thin
//! I/O binding, exporting Qt's `QWebSocketServer` API as
//! `wsbox:websocket/websocket-server`.
//!
//! - `wsbox-runtime` (a crate of its own, tested natively): the event loop
//!   shared by every binding: servers, sockets, pending queues, timers, and
//!   the mapping from core events to Qt's signals.
//! - [`fed`]: the host-fed binding (world `server`, the default): sockets are
//!   the host's, reached through the `wsbox:websocket/net` import, one flat
//!   batch each way per turn.
//! - [`wasi`]: the WASI binding (world `server-wasi`, feature `wasi-sockets`):
//!   the component listens and accepts through `wasi:sockets` in one poll loop.
//! - [`command`]: the echo app behind `wasi:cli/run` (world `echo-command`,
//!   feature `command`), for `wasmtime run`.
//! - [`exports`]: the WIT resources `server` and `websocket`.
//! - `heap`: the allocator, counting the bytes in use for the host-fed
//!   binding's admission policy.

#[cfg(feature = "command")]
mod command;
mod exports;
#[cfg(feature = "faults")]
mod faults;
#[cfg(not(feature = "wasi-sockets"))]
mod fed;
#[cfg(not(feature = "wasi-sockets"))]
mod heap;
#[cfg(feature = "wasi-sockets")]
mod wasi;

/// The binding this build serves through.
#[cfg(not(feature = "wasi-sockets"))]
type Binding = fed::FedNet;
#[cfg(feature = "wasi-sockets")]
type Binding = wasi::WasiNet;

/// Generated from `wit/`; WASI's imports are the `wasip2` crate's types.
mod bindings {
    #[cfg(not(feature = "wasi-sockets"))]
    wit_bindgen::generate!({
        world: "server",
        path: "../../wit",
    });

    /// A world that imports WASI 0.2.12, its imports mapped to `wasip2`'s types.
    #[cfg(feature = "wasi-sockets")]
    macro_rules! wasi_world {
        ($world:literal) => {
            wit_bindgen::generate!({
                world: $world,
                path: "../../wit",
                with: {
                    "wasi:io/error@0.2.12": wasip2::io::error,
                    "wasi:io/poll@0.2.12": wasip2::io::poll,
                    "wasi:io/streams@0.2.12": wasip2::io::streams,
                    "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
                    "wasi:sockets/network@0.2.12": wasip2::sockets::network,
                    "wasi:sockets/instance-network@0.2.12": wasip2::sockets::instance_network,
                    "wasi:sockets/tcp@0.2.12": wasip2::sockets::tcp,
                    "wasi:sockets/tcp-create-socket@0.2.12": wasip2::sockets::tcp_create_socket,
                },
            });
        };
    }
    #[cfg(all(feature = "wasi-sockets", not(feature = "command")))]
    wasi_world!("server-wasi");
    #[cfg(feature = "command")]
    wasi_world!("echo-command");

    use crate::exports::Component;
    export!(Component with_types_in self);
}
