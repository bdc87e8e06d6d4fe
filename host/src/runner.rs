//! Loading and instantiating the component in wasmtime.

use crate::bindings::{self, api};
use crate::net::{AdmissionLimits, NetHost, TransportLimits};
use crate::sandbox::watchdog::EpochTicker;
use crate::sandbox::{self, ListenPolicy, SandboxLimits};
pub use crate::state::HostState;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;
use wasmtime::component::{Component, Linker};
use wasmtime::{CallHook, Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

/// The guest component built by `build.rs` and embedded in the binary
/// (world `server`: sockets through the host's `net`).
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("WSBOX_COMPONENT_PATH"));
/// The same component over `wasi:sockets` (world `server-wasi`).
pub static EMBEDDED_WASI_COMPONENT: &[u8] = include_bytes!(env!("WSBOX_WASI_COMPONENT_PATH"));
/// The echo app as a command (world `echo-command`, exports `wasi:cli/run`).
pub static EMBEDDED_COMMAND_COMPONENT: &[u8] = include_bytes!(env!("WSBOX_COMMAND_COMPONENT_PATH"));

/// How a component reaches the network, read off its imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// It imports `wsbox:websocket/net`: the host owns the sockets (and TLS)
    /// and feeds it one flat batch per turn. The fast path.
    HostFed,
    /// It imports `wasi:sockets`: it listens and accepts itself, in one poll
    /// loop; the host grants TCP on the addresses its policy allows.
    WasiSockets,
}

/// A compiled component, ready to instantiate.
pub struct WsboxComponent {
    engine: Engine,
    component: Component,
    linker: Linker<HostState>,
    binding: Binding,
    /// Advances the engine's epoch for the watchdog while the component lives.
    _ticker: EpochTicker,
}

impl WsboxComponent {
    /// The component embedded in this binary.
    pub fn embedded() -> Result<Self> {
        Self::embedded_with_config(&Self::config(true))
    }

    /// The embedded component of `binding`.
    pub fn embedded_binding(binding: Binding, config: &wasmtime::Config) -> Result<Self> {
        let bytes = match binding {
            Binding::HostFed => EMBEDDED_COMPONENT,
            Binding::WasiSockets => EMBEDDED_WASI_COMPONENT,
        };
        Self::from_bytes_with_config(bytes, config).context("compiling the embedded component")
    }

    /// How this component reaches the network.
    pub fn binding(&self) -> Binding {
        self.binding
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
        if std::env::var_os("WSBOX_PERFMAP").is_some() {
            // `perf` names the guest's functions from /tmp/perf-PID.map.
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        config
    }

    /// A component from bytes, compiled by an engine made from `config`
    /// (for embedders who tune wasmtime: memory, caching, a host memory
    /// creator). The watchdog (`SandboxLimits::max_run`) works only when
    /// `config` has epoch interruption on, as [`WsboxComponent::config`]'s has.
    pub fn from_bytes_with_config(bytes: &[u8], config: &wasmtime::Config) -> Result<Self> {
        let engine = Engine::new(config)?;
        let component = Component::from_binary(&engine, bytes)?;
        let imports: Vec<String> =
            component.component_type().imports(&engine).map(|(name, _)| name.to_string()).collect();
        let binding = if imports.iter().any(|i| i.starts_with("wsbox:websocket/net")) {
            Binding::HostFed
        } else if imports.iter().any(|i| i.starts_with("wasi:sockets/tcp")) {
            Binding::WasiSockets
        } else {
            anyhow::bail!(
                "the component imports neither wsbox:websocket/net nor wasi:sockets/tcp, so it cannot reach \
                 the network (imports: {})",
                imports.join(", ")
            );
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::add_to_linker(&mut linker)?;
        let _ticker = EpochTicker::start(&engine)?;
        Ok(Self { engine, component, linker, binding, _ticker })
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
        // The admission policy's memory marks are fractions of the sandbox's cap.
        let admission = AdmissionLimits { memory_cap: limits.max_memory, ..transport.admission };
        let transport = TransportLimits { admission, ..transport };
        let wasi = match self.binding {
            Binding::HostFed => sandbox::wasi_ctx(),
            Binding::WasiSockets => sandbox::wasi_ctx_with_sockets(&policy),
        };
        let mut store = self.store(wasi, policy, tls, limits, transport);
        // Either world exports the same interface: look it up by name.
        let pre = self.linker.instantiate_pre(&self.component)?;
        let indices = api::GuestIndices::new(&pre)?;
        let instance = pre.instantiate_async(&mut store).await?;
        let api = indices.load(&mut store, &instance)?;
        Ok(Instance { store, api, binding: self.binding })
    }

    /// Runs an app component: a world-`app` component (server logic in any
    /// language, exporting `wasi:cli/run`) composed with a server component
    /// of either binding (`wac plug app.wasm --plug wsbox-server.wasm`).
    /// `args` are its command line (the first is its name); it may write to
    /// stdout and stderr. Returns when its `run` does.
    pub async fn run_app(
        &self,
        args: &[String],
        policy: ListenPolicy,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        limits: SandboxLimits,
        transport: TransportLimits,
    ) -> Result<()> {
        let wasi = sandbox::wasi_ctx_for_app(args, (self.binding == Binding::WasiSockets).then_some(&policy));
        let mut store = self.store(wasi, policy, tls, limits, transport);
        let command =
            wasmtime_wasi::p2::bindings::Command::instantiate_async(&mut store, &self.component, &self.linker)
                .await
                .map_err(anyhow::Error::from)
                .context("the app does not export wasi:cli/run@0.2 (is it a world `app` component, composed?)")?;
        drive(self.binding, command.wasi_cli_run().call_run(&mut store))
            .await?
            .map_err(|()| anyhow::anyhow!("the app's run returned an error"))
    }

    /// A store for one instance, with the memory cap and the watchdog.
    fn store(
        &self,
        wasi: WasiCtx,
        policy: ListenPolicy,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        limits: SandboxLimits,
        transport: TransportLimits,
    ) -> Store<HostState> {
        let state = HostState::new(wasi, NetHost::with_limits(policy, tls, transport), &limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // The watchdog: wasm that runs longer than `max_run` without
        // returning or waiting in `net.exchange` is stopped with a trap.
        // (Async component imports do not report their return through
        // wasmtime's call hook, so `exchange` stamps its own return.)
        store.call_hook(|mut ctx, hook| {
            if matches!(hook, CallHook::CallingWasm) {
                ctx.data_mut().watchdog.guest_resumed();
            }
            Ok(())
        });
        // A WASI-binding guest under load may not wait for long (its poll
        // keeps finding something ready); yielding at each tick lets the
        // writes wasmtime-wasi runs as tasks make progress meanwhile.
        let binding = self.binding;
        store.epoch_deadline_callback(move |mut ctx| {
            ctx.data_mut().watchdog.check(Instant::now())?;
            Ok(match binding {
                Binding::HostFed => UpdateDeadline::Continue(1),
                Binding::WasiSockets => UpdateDeadline::Yield(1),
            })
        });
        store.set_epoch_deadline(1);
        store
    }
}

/// A running component instance: its store and its exported API.
pub struct Instance {
    /// The store every call goes through.
    pub store: Store<HostState>,
    /// `wsbox:websocket/websocket-server`.
    pub api: api::Guest,
    /// How the component reaches the network. Calls into a
    /// [`Binding::WasiSockets`] instance should run inside
    /// [`tokio::task::coop::unconstrained`] (see [`drive`]).
    pub binding: Binding,
}

/// Runs an app's calls into an instance of `binding`. A WASI-binding guest
/// polls every socket in one call; under tokio's cooperative budget (128
/// polls per task turn) wasmtime-wasi 48 then answers `check-write` with 0
/// for every socket at once and the guest stalls past ~128 connections
/// (wasmtime issue #14174, fixed in wasmtime-wasi 50). Lifting the budget
/// for the call avoids it; the host-fed binding needs nothing.
pub async fn drive<F: std::future::Future>(binding: Binding, calls: F) -> F::Output {
    match binding {
        Binding::HostFed => calls.await,
        Binding::WasiSockets => tokio::task::coop::unconstrained(calls).await,
    }
}
