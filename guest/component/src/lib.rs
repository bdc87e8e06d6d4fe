//! The wsbox component: the sans-io protocol core (`wsbox-core`) under a thin
//! I/O binding, exporting Qt's `QWebSocketServer` API as
//! `wsbox:websocket/websocket-server`.
//!
//! - [`runtime`]: the event loop shared by every binding: servers, sockets,
//!   pending queues, timers, and the mapping from core events to Qt's signals.
//! - [`fed`]: the host-fed binding: sockets are the host's, reached through
//!   the `wsbox:websocket/net` import, one flat batch each way per turn.
//! - [`exports`]: the WIT resources `server` and `websocket`.

mod exports;
#[cfg(feature = "faults")]
mod faults;
mod fed;
mod runtime;

/// Generated from `wit/`.
mod bindings {
    wit_bindgen::generate!({
        world: "server",
        path: "../../wit",
    });

    use crate::exports::Component;
    export!(Component with_types_in self);
}
