//! Loading and instantiating the component in wasmtime.

use crate::bindings::{self, api};
use crate::net::{NetHost, TransportLimits};
use crate::sandbox::{self, ListenPolicy, SandboxLimits};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{CallHook, Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The guest component built by `build.rs` and embedded in the binary.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("WSBOX_COMPONENT_PATH"));

/// What the host keeps per instance: WASI's context and the sockets.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The instance's sockets (the `net` import).
    pub net: NetHost,
    /// The memory cap.
    limits: StoreLimits,
    /// When the guest last started running: entering an export, or
    /// getting control back from `net.exchange` (where it waits). Calls to
    /// WASI in between are short and do not count as waiting.
    pub(crate) running_since: Instant,
}

/// How often the engine's epoch advances: the watchdog's resolution.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
    /// Stops the epoch ticker thread when the component is dropped.
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for WsboxComponent {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl WsboxComponent {
    /// The component embedded in this binary.
    pub fn embedded() -> Result<Self> {
        Self::embedded_with_config(&Self::config(true))
    }

    /// [`WsboxComponent::embedded`] with an engine made from `config`.
    pub fn embedded_with_config(config: &wasmtime::Config) -> Result<Self> {
        Self::from_bytes_with_config(EMBEDDED_COMPONENT, config).context("compiling the embedded component")
    }

    /// A component from a `.wasm` file (`--component PATH`).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with_config(path, &Self::config(true))
    }

    /// [`WsboxComponent::from_file`] with an engine made from `config`.
    pub fn from_file_with_config(path: &Path, config: &wasmtime::Config) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading the component {}", path.display()))?;
        Self::from_bytes_with_config(&bytes, config)
            .with_context(|| format!("compiling the component {}", path.display()))
    }

    /// A component from bytes, compiled with [`WsboxComponent::config`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_with_config(bytes, &Self::config(true))
    }

    /// wasmtime's defaults, with epoch interruption when `watchdog` is on.
    /// The watchdog costs a check on every loop iteration of the guest: it
    /// took 18% of the 64 KiB-message throughput until the unmasking loop
    /// was unrolled to 64 bytes an iteration; now it is within run-to-run
    /// noise. `--max-guest-run-ms 0` turns it off.
    pub fn config(watchdog: bool) -> wasmtime::Config {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(watchdog);
        config
    }

    /// A component from bytes, compiled by an engine made from `config`
    /// (for embedders who tune wasmtime: memory, caching, a host memory
    /// creator). The watchdog (`SandboxLimits::max_run`) works only when
    /// `config` has epoch interruption on, as [`WsboxComponent::config`]'s has.
    pub fn from_bytes_with_config(bytes: &[u8], config: &wasmtime::Config) -> Result<Self> {
        let engine = Engine::new(config)?;
        let component = Component::from_binary(&engine, bytes)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::net::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), Arc::clone(&ticker_stop));
        std::thread::Builder::new().name("wsbox-epoch".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                ticking.increment_epoch();
            }
        })?;
        Ok(Self { engine, component, linker, ticker_stop })
    }

    /// A fresh instance whose sockets follow `policy`; secure listeners use `tls`.
    pub async fn instantiate(
        &self,
        policy: ListenPolicy,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> Result<Instance> {
        self.instantiate_with(policy, tls, SandboxLimits::default(), TransportLimits::default()).await
    }

    /// [`WsboxComponent::instantiate`] with the guest's memory and run-time
    /// limits and the host's transport limits.
    pub async fn instantiate_with(
        &self,
        policy: ListenPolicy,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        limits: SandboxLimits,
        transport: TransportLimits,
    ) -> Result<Instance> {
        let state = HostState {
            wasi: sandbox::wasi_ctx(),
            table: ResourceTable::new(),
            net: NetHost::with_limits(policy, tls, transport),
            limits: StoreLimitsBuilder::new().memory_size(limits.max_memory).build(),
            running_since: Instant::now(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // The watchdog: wasm that runs longer than `max_run` without
        // returning or waiting in `net.exchange` is stopped with a trap.
        // (Async component imports do not report their return through
        // wasmtime's call hook, so `exchange` stamps its own return.)
        store.call_hook(|mut ctx, hook| {
            if matches!(hook, CallHook::CallingWasm) {
                ctx.data_mut().running_since = Instant::now();
            }
            Ok(())
        });
        let max_run = limits.max_run;
        store.epoch_deadline_callback(move |ctx| {
            if ctx.data().running_since.elapsed() > max_run {
                return Err(wasmtime::format_err!(
                    "the guest ran for more than {} ms without returning or waiting (stopped by the watchdog)",
                    max_run.as_millis()
                ));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
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
