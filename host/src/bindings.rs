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

/// The `net` import, served by the instance's [`NetHost`](crate::net::NetHost).
impl net::Host for crate::runner::HostState {
    async fn listen(
        &mut self,
        address: String,
        port: u16,
        secure: bool,
    ) -> wasmtime::Result<Result<net::Listener, net::ListenError>> {
        Ok(self.net.listen(address, port, secure))
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

    async fn exchange(&mut self, out: net::Outgoing, timeout_ms: u32) -> wasmtime::Result<net::Incoming> {
        let incoming = self.net.exchange(out, timeout_ms).await;
        // The guest runs again from here (the watchdog's clock).
        self.watchdog.guest_resumed();
        Ok(incoming)
    }
}
