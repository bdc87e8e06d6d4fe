//! What the host keeps per instance, in its wasmtime store: WASI's context,
//! the instance's sockets (the event loop), its memory cap and its watchdog.

use crate::net::NetHost;
use crate::sandbox::SandboxLimits;
use crate::sandbox::limits::MemoryCap;
use crate::sandbox::watchdog::Watchdog;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What the host keeps per instance: WASI's context and the sockets.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The instance's sockets (the `net` import).
    pub net: NetHost,
    /// The memory cap, and what the guest's memories hold now.
    pub(crate) limits: MemoryCap,
    /// When the guest started running, for the watchdog.
    pub(crate) watchdog: Watchdog,
}

impl HostState {
    pub(crate) fn new(wasi: WasiCtx, net: NetHost, limits: &SandboxLimits) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            net,
            limits: MemoryCap::new(limits),
            watchdog: Watchdog::new(limits.max_run),
        }
    }

    /// Bytes of linear memory the guest holds (wasm memories only grow: this
    /// is also its high-water mark).
    pub fn guest_memory_bytes(&self) -> usize {
        self.limits.memory_bytes()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
