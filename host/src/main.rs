//! `wsbox`: serves the echo app through the sandboxed component.

use anyhow::{Context, Result};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;
use wsbox::apps::echo::{EchoOptions, Ending};
use wsbox::cli::{BindingArg, Command, LogFormat, RunArgs, ServeArgs};
use wsbox::net::{AdmissionLimits, Interrupter, NetHost, TransportLimits};
use wsbox::runner::{Binding, WsboxComponent};
use wsbox::sandbox::{ListenPolicy, SandboxLimits};
use wsbox::tls::{TlsFiles, load_server_config};

/// mimalloc instead of glibc's malloc: the flat per-turn batches are up to
/// 1 MiB, allocated on one thread and freed on another; glibc returned those
/// pages to the kernel and faulted them in again every turn (measured: ~15%
/// of server CPU in page faults at 64 KiB messages).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = wsbox::cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Components(args)) => return write_components(&args.out),
        Some(Command::Run(args)) => return run_app(&args),
        None => cli.serve,
    };
    // A bare level applies to wsbox; other crates (wasmtime, cranelift) stay at warn.
    let directive = if args.log_level.contains(['=', ',']) {
        args.log_level.clone()
    } else {
        format!("warn,wsbox={}", args.log_level)
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&directive));
    let filter = match filter {
        Ok(f) => f,
        Err(e) => return fail(&format!("invalid --log-level '{}': {e}", args.log_level)),
    };
    // Colours only on a terminal: logs piped to a file or a collector stay plain.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

/// `wsbox run`: an app component, until its `run` returns.
fn run_app(args: &RunArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let run = async {
        let mut config = WsboxComponent::config(true);
        if let Ok(cache) = wasmtime::Cache::new(wasmtime::CacheConfig::new()) {
            config.cache(Some(cache));
        }
        let component = WsboxComponent::from_file_with_config(&args.app, &config)?;
        let name = args.app.file_name().map_or("app".into(), |n| n.to_string_lossy().into_owned());
        let argv: Vec<String> = std::iter::once(name).chain(args.args.iter().cloned()).collect();
        let limits = SandboxLimits {
            max_memory: usize::try_from(args.max_guest_memory_mib).unwrap_or(usize::MAX).saturating_mul(1024 * 1024),
            ..SandboxLimits::default()
        };
        let policy = ListenPolicy::new(args.allow_listen.iter().copied());
        component.run_app(&argv, policy, None, limits, TransportLimits::default()).await
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

/// `wsbox components`: the embedded components, written out.
fn write_components(dir: &std::path::Path) -> ExitCode {
    use wsbox::runner::{EMBEDDED_COMMAND_COMPONENT, EMBEDDED_COMPONENT, EMBEDDED_WASI_COMPONENT};
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(&format!("cannot create {}: {e}", dir.display()));
    }
    for (file, bytes, what) in [
        ("wsbox-server.wasm", EMBEDDED_COMPONENT, "host-fed component (world server: imports wsbox:websocket/net)"),
        ("wsbox-server-wasi.wasm", EMBEDDED_WASI_COMPONENT, "WASI component (world server-wasi: any WASI 0.2 host)"),
        (
            "wsbox-echo.wasm",
            EMBEDDED_COMMAND_COMPONENT,
            "echo command (world echo-command: wasmtime run -S inherit-network)",
        ),
    ] {
        let path = dir.join(file);
        if let Err(e) = std::fs::write(&path, bytes) {
            return fail(&format!("cannot write {}: {e}", path.display()));
        }
        println!("{}\t{what}", path.display());
    }
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wsbox: error: {message}");
    ExitCode::FAILURE
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut config = WsboxComponent::config(args.max_guest_run_ms > 0);
    if !args.no_compile_cache {
        let mut cache = wasmtime::CacheConfig::new();
        if let Some(dir) = &args.compile_cache_dir {
            cache.with_directory(dir);
        }
        // A cache that cannot be set up costs start-up time, nothing else.
        match wasmtime::Cache::new(cache) {
            Ok(cache) => {
                tracing::debug!(directory = %cache.directory().display(), "compile cache");
                config.cache(Some(cache));
            }
            Err(e) => tracing::warn!("no compile cache ({e:#}); compiling at every start"),
        }
    }
    let component = match (&args.component, args.binding) {
        (Some(path), _) => WsboxComponent::from_file_with_config(path, &config)?,
        (None, BindingArg::HostFed) => WsboxComponent::embedded_with_config(&config)?,
        (None, BindingArg::Wasi) => WsboxComponent::embedded_binding(Binding::WasiSockets, &config)?,
    };
    if component.binding() == Binding::WasiSockets && args.workers > 1 {
        anyhow::bail!(
            "--workers needs the host-fed binding (the WASI component binds its own sockets, without SO_REUSEPORT)"
        );
    }
    if component.binding() == Binding::WasiSockets && args.tls_cert.is_some() {
        anyhow::bail!(
            "wss:// needs the host-fed binding (the host terminates TLS); drop --binding wasi or the --tls-* flags"
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(load_server_config(&TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        })?),
        _ => None,
    };
    let tls_listen = tls.as_ref().map(|_| args.tls_listen);
    let policy = ListenPolicy::new(std::iter::once(args.listen).chain(tls_listen));
    let limits = SandboxLimits {
        max_memory: usize::try_from(args.max_guest_memory_mib).unwrap_or(usize::MAX).saturating_mul(1024 * 1024),
        // 0 turns the watchdog off (the engine has no epoch checks then).
        max_run: if args.max_guest_run_ms > 0 { Duration::from_millis(args.max_guest_run_ms) } else { Duration::MAX },
    };
    let transport = TransportLimits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        write_timeout: Duration::from_millis(args.write_timeout_ms),
        admission: AdmissionLimits {
            max_per_address: args.max_connections_per_address,
            handshakes_per_address_per_second: args.max_handshakes_per_address_per_second,
            limit_loopback: args.address_limits_on_loopback,
            ..AdmissionLimits::default()
        },
        ..TransportLimits::default()
    };
    let options = EchoOptions {
        name: args.server_name.clone(),
        listen: args.listen,
        tls_listen,
        compression: args.compression(),
        handshake_timeout_ms: args.handshake_timeout_ms,
        shutdown_grace: Duration::from_millis(args.shutdown_timeout_ms),
        max_pending_connections: args.max_pending_connections,
        subprotocols: args.subprotocols.clone(),
        allowed_origins: args.allowed_origins.clone(),
        max_frame_size: args.max_frame_size,
        max_message_size: args.max_message_size,
        outgoing_frame_size: args.outgoing_frame_size,
        keepalive_interval_ms: args.keepalive_interval_ms,
        keepalive_timeout_ms: args.keepalive_timeout_ms,
        max_send_buffer: args.max_send_buffer,
        max_handshaking_connections: args.max_handshaking_connections,
        recycle_when_idle: true,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let workers = usize::from(args.workers);
    // Each worker's running instance's interrupter (a new one after each restart).
    let interrupters: Arc<Mutex<Vec<Option<Interrupter>>>> = Arc::new(Mutex::new(vec![None; workers]));
    let (flag, interrupting) = (Arc::clone(&stop), Arc::clone(&interrupters));
    // Registered here, before anything listens: a signal that comes as soon
    // as the listening line is out must find the handler, not the default
    // action (which would reset every connection without a close).
    let mut signals = ShutdownSignals::register()?;
    tokio::spawn(async move {
        let signal = signals.next().await;
        tracing::info!(signal, "shutdown requested (a second Ctrl-C or SIGTERM exits at once)");
        flag.store(true, Ordering::Release);
        for interrupter in interrupting.lock().expect("interrupter lock").iter().flatten() {
            interrupter.interrupt();
        }
        let signal = signals.next().await;
        tracing::warn!(signal, "second shutdown signal: exiting without waiting for connections to close");
        std::process::exit(130);
    });
    let worker = Worker {
        component: Arc::new(component),
        component_name: args.component.as_ref().map_or("embedded".to_string(), |p| p.display().to_string()),
        options,
        policy,
        tls,
        limits,
        transport: TransportLimits { reuse_port: workers > 1, ..transport },
        stop,
        interrupters,
        deflate: !args.no_deflate,
        handshake_timeout_ms: args.handshake_timeout_ms,
        max_guest_memory_mib: args.max_guest_memory_mib,
    };
    if workers == 1 {
        // One worker logs without a worker field, as before workers existed.
        return worker.supervise(0, announce).await;
    }
    // Worker 0 binds first, so that a port 0 becomes the port all share
    // (SO_REUSEPORT: the kernel spreads connections across the workers).
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut threads = vec![worker.spawn_thread(0, bound_tx.clone())?];
    let per_worker = 1 + usize::from(worker.options.tls_listen.is_some());
    let urls: Vec<String> =
        await_listening(&bound_rx, &threads, 0..1, per_worker).into_iter().map(|(_, url)| url).collect();
    let port_of = |scheme: &str| {
        urls.iter().find(|u| u.starts_with(scheme)).and_then(|u| u.rsplit(':').next()?.parse::<u16>().ok())
    };
    let mut rest = worker.clone();
    if let Some(port) = port_of("ws://") {
        rest.options.listen.set_port(port);
    }
    if let (Some(tls_listen), Some(port)) = (rest.options.tls_listen.as_mut(), port_of("wss://")) {
        tls_listen.set_port(port);
    }
    rest.policy = ListenPolicy::new(std::iter::once(rest.options.listen).chain(rest.options.tls_listen));
    if !threads[0].is_finished() {
        for index in 1..workers {
            threads.push(rest.spawn_thread(index, bound_tx.clone())?);
        }
        // "Listening" once every worker listens: a client that connects on
        // that line may be handed to any of them.
        let all = (workers - 1) * per_worker;
        if await_listening(&bound_rx, &threads, 1..workers, all).len() == all {
            urls.iter().for_each(|url| announce(url));
        }
    }
    drop(bound_tx);
    // Whichever worker ends first (an error, or the shutdown) ends them all.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<()>>();
    let done_rx = Arc::new(Mutex::new(done_rx));
    let count = threads.len();
    for thread in threads {
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let outcome = thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")));
            let _ = done.send(outcome);
        });
    }
    drop(done_tx);
    let mut result = Ok(());
    for _ in 0..count {
        let outcome = tokio::task::spawn_blocking({
            let done_rx = std::sync::Arc::clone(&done_rx);
            move || done_rx.lock().expect("done lock").recv()
        })
        .await?;
        let Ok(outcome) = outcome else { break };
        worker.stop.store(true, Ordering::Release);
        for interrupter in worker.interrupters.lock().expect("interrupter lock").iter().flatten() {
            interrupter.interrupt();
        }
        if let (Err(e), Ok(())) = (outcome, &result) {
            result = Err(e);
        }
    }
    result
}

/// What every worker needs: each runs its own instance of the one compiled
/// component on its own thread and event loop.
#[derive(Clone)]
struct Worker {
    component: Arc<WsboxComponent>,
    component_name: String,
    options: EchoOptions,
    policy: ListenPolicy,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: SandboxLimits,
    transport: TransportLimits,
    stop: Arc<AtomicBool>,
    interrupters: Arc<Mutex<Vec<Option<Interrupter>>>>,
    deflate: bool,
    handshake_timeout_ms: i32,
    max_guest_memory_mib: u64,
}

impl Worker {
    /// Runs worker `index` on a thread of its own with its own event loop;
    /// `bound` receives its URLs once it listens.
    fn spawn_thread(
        &self,
        index: usize,
        bound: std::sync::mpsc::Sender<(usize, String)>,
    ) -> Result<std::thread::JoinHandle<Result<()>>> {
        let worker = self.clone();
        Ok(std::thread::Builder::new().name(format!("wsbox-worker-{index}")).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let serving = worker.supervise(index, |url| {
                // Nobody listens after start-up (a restart listens again).
                let _ = bound.send((index, url.to_string()));
            });
            runtime.block_on(serving.instrument(tracing::info_span!("worker", index)))
        })?)
    }

    /// Serves, and when the guest traps or is stopped, starts a fresh
    /// instance (after [`restart_pause`]).
    async fn supervise(&self, index: usize, mut bound: impl FnMut(&str)) -> Result<()> {
        let mut restarts: Vec<Instant> = Vec::new();
        // With several workers sharing a port, a restarted instance listens
        // on the ports the first one got (for port 0).
        let mut options = self.options.clone();
        // The previous instance's listening sockets: the next one takes them
        // over, so the port stays open and its backlog waits.
        let mut listeners = None;
        let mut first_instance = true;
        loop {
            let mut instance = self
                .component
                .instantiate_with(self.policy.clone(), self.tls.clone(), self.limits, self.transport)
                .await?;
            if let Some(listeners) = listeners.take() {
                instance.store.data_mut().net.inherit_listeners(listeners);
            }
            self.interrupters.lock().expect("interrupter lock")[index] = Some(instance.store.data().net.interrupter());
            let mut listened = false;
            let mut urls = Vec::new();
            let result = wsbox::apps::echo::run(&mut instance, &options, &self.stop, |url| {
                listened = true;
                urls.push(url.to_string());
                tracing::info!(
                    %url,
                    component = self.component_name,
                    binding = ?self.component.binding(),
                    deflate = self.deflate,
                    handshake_timeout_ms = self.handshake_timeout_ms,
                    max_guest_memory_mib = self.max_guest_memory_mib,
                    "listening"
                );
                bound(url);
            })
            .await;
            for url in urls.iter().filter(|_| self.transport.reuse_port) {
                let port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                match (url.starts_with("wss://"), port) {
                    (false, Some(port)) => options.listen.set_port(port),
                    (true, Some(port)) => {
                        if let Some(tls) = options.tls_listen.as_mut() {
                            tls.set_port(port);
                        }
                    }
                    _ => {}
                }
            }
            let open = instance.store.data().net.connection_count();
            let first = std::mem::replace(&mut first_instance, false);
            let error = match result {
                Ok(Ending::Stopped) => return Ok(()),
                Ok(Ending::Recycle) => {
                    listeners = Some(instance.store.data_mut().net.take_listeners());
                    continue;
                }
                // The first instance failing before it listens is a setup
                // error (a busy port): no restart.
                Err(e) if (!listened && first) || self.stop.load(Ordering::Acquire) => return Err(e),
                Err(e) => e,
            };
            // The failed instance's sockets outlive it: each WebSocket gets a
            // 1012 Service Restart close frame, every connection a proper end.
            let spare = NetHost::with_limits(ListenPolicy::new([]), None, TransportLimits::default());
            let mut sockets = std::mem::replace(&mut instance.store.data_mut().net, spare);
            drop(instance);
            listeners = Some(sockets.take_listeners());
            let farewell = sockets.farewell(&service_restart_frame(), FAREWELL_GRACE);
            tokio::spawn(
                async move {
                    let told = farewell.await;
                    tracing::info!(closed_with_1012 = told, "the failed instance's connections are closed");
                }
                .in_current_span(),
            );
            restarts.retain(|t| t.elapsed() < RESTART_WINDOW);
            restarts.push(Instant::now());
            // Never give up (peers may be what made it fail): back off.
            let pause = restart_pause(restarts.len());
            tracing::error!(
                restarts_within_a_minute = restarts.len(),
                connections = open,
                pause_ms = pause.as_millis() as u64,
                "the guest stopped ({error:#}); its WebSockets get 1012 Service Restart; starting a fresh instance"
            );
            tokio::time::sleep(pause).await;
        }
    }
}

/// Restarts within this window count towards the back-off.
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long a failed instance's connections get to take their close frame.
const FAREWELL_GRACE: Duration = Duration::from_secs(5);
/// The close frame a failed instance's WebSockets get: 1012 Service Restart.
fn service_restart_frame() -> Vec<u8> {
    let reason = b"instance restarted";
    let mut frame = vec![0x88, 2 + reason.len() as u8];
    frame.extend_from_slice(&1012u16.to_be_bytes());
    frame.extend_from_slice(reason);
    frame
}

/// The pause before the `n`th restart within [`RESTART_WINDOW`]: none for
/// the first few (a fault costs a restart, not an outage), then doubling from
/// 100 ms up to 30 s, so a guest that fails at once does not spin. The server
/// never gives up: whatever made the guest fail may be the peers' doing.
fn restart_pause(n: usize) -> Duration {
    const FREE: usize = 5;
    if n <= FREE {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(n - FREE - 1).unwrap_or(u32::MAX).min(9);
    Duration::from_millis(100 << doublings).min(Duration::from_secs(30))
}

/// Waits until the workers numbered in `which` have reported `count`
/// distinct (worker, URL) pairs, or until a worker thread ended; returns
/// the pairs in the order they came. (Distinct: a worker that restarted
/// reports again.)
fn await_listening(
    reports: &std::sync::mpsc::Receiver<(usize, String)>,
    threads: &[std::thread::JoinHandle<Result<()>>],
    which: std::ops::Range<usize>,
    count: usize,
) -> Vec<(usize, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        match reports.recv_timeout(Duration::from_millis(100)) {
            Ok(report) if which.contains(&report.0) && !seen.contains(&report) => seen.push(report),
            Ok(_) => {}
            Err(_) if threads.iter().any(|t| t.is_finished()) => break,
            Err(_) => {}
        }
    }
    seen
}

/// The line on stdout that says where the echo app listens (one per URL).
fn announce(url: &str) {
    println!("wsbox {}: echo app listening on {url}", env!("CARGO_PKG_VERSION"));
    let _ = std::io::stdout().flush();
}

/// Ctrl-C (SIGINT) and SIGTERM, each registered once at start.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
