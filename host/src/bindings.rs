//! Host bindings for the `wsbox:websocket/server` world, generated from `wit/`.
//! Imports (`net`) are async and may trap; exports are called asynchronously.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "server",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::exports::wsbox::websocket::websocket_server as api;
pub use self::wsbox::websocket::net;
