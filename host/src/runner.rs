//! Loading and instantiating the component in wasmtime.

use crate::bindings::{self, api};
use crate::net::NetHost;
use crate::sandbox::{self, ListenPolicy};
use anyhow::{Context, Result};
use std::path::Path;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The guest component built by `build.rs` and embedded in the binary.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("WSBOX_COMPONENT_PATH"));

/// What the host keeps per instance: WASI's context and the sockets.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The instance's sockets (the `net` import).
    pub net: NetHost,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A compiled component, ready to instantiate.
pub struct WsboxComponent {
    engine: Engine,
    component: Component,
    linker: Linker<HostState>,
}

impl WsboxComponent {
    /// The component embedded in this binary.
    pub fn embedded() -> Result<Self> {
        Self::from_bytes(EMBEDDED_COMPONENT).context("compiling the embedded component")
    }

    /// A component from a `.wasm` file (`--component PATH`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading the component {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("compiling the component {}", path.display()))
    }

    /// A component from bytes, compiled with wasmtime's defaults.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_with_config(bytes, &wasmtime::Config::new())
    }

    /// A component from bytes, compiled by an engine made from `config`
    /// (for embedders who tune wasmtime: memory, caching, a host memory
    /// creator).
    pub fn from_bytes_with_config(bytes: &[u8], config: &wasmtime::Config) -> Result<Self> {
        let engine = Engine::new(config)?;
        let component = Component::from_binary(&engine, bytes)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::net::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        Ok(Self { engine, component, linker })
    }

    /// A fresh instance whose sockets follow `policy`; secure listeners use `tls`.
    pub async fn instantiate(
        &self,
        policy: ListenPolicy,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> Result<Instance> {
        let state =
            HostState { wasi: sandbox::wasi_ctx(), table: ResourceTable::new(), net: NetHost::new(policy, tls) };
        let mut store = Store::new(&self.engine, state);
        let bindings = bindings::Server::instantiate_async(&mut store, &self.component, &self.linker).await?;
        let api = bindings.wsbox_websocket_websocket_server().clone();
        Ok(Instance { store, api })
    }
}

/// A running component instance: its store and its exported API.
pub struct Instance {
    /// The store every call goes through.
    pub store: Store<HostState>,
    /// `wsbox:websocket/websocket-server`.
    pub api: api::Guest,
}
