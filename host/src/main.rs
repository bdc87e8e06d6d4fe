//! `wsbox`: serves the echo app through the sandboxed component.

use anyhow::{Context, Result};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use wsbox::cli::{BindingArg, Command, LogFormat, RunArgs, ServeArgs};
use wsbox::health::{HealthCheck, Readiness};
use wsbox::metrics::Metrics;
use wsbox::net::{AdmissionLimits, TransportLimits, TrustedProxies};
use wsbox::page::Page;
use wsbox::runner::{Binding, WsboxComponent};
use wsbox::sandbox::{ListenPolicy, SandboxLimits};
use wsbox::serve::{App, Reload, ServeConfig, Shutdown};
use wsbox::tls::{ServerTls, TlsFiles};
use wsbox::topics::TopicBus;
use wsbox::topics::nats::NatsOptions;

/// mimalloc instead of glibc's malloc: the flat per-turn batches are up to
/// 1 MiB, allocated on one thread and freed on another; glibc returned those
/// pages to the kernel and faulted them in again every turn (measured: ~15%
/// of server CPU in page faults at 64 KiB messages).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long a reload waits for every worker to hand its listeners to the
/// new app before it answers (an instance hands over at its next turn,
/// and the new one starts in milliseconds once compiled).
const HAND_OVER_WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = wsbox::cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Components(args)) => return write_components(&args.out),
        Some(Command::Run(args)) => return run_app(&args),
        Some(Command::Completions(args)) => {
            wsbox::cli::write_completions(args.shell, &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Man(args)) => {
            return match wsbox::cli::write_man_pages(&args.out) {
                Ok(pages) => {
                    pages.iter().for_each(|page| println!("{}", page.display()));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("cannot write the man pages to {}: {e}", args.out.display())),
            };
        }
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
    // Read once: compiled, and its digest kept (a reload compares it).
    let component_bytes = args.component.as_deref().map(read_component).transpose()?;
    let component = match (args.component.as_deref().zip(component_bytes.as_deref()), args.binding) {
        (Some((path, bytes)), _) => compile_component(path, bytes, &config)?,
        (None, BindingArg::HostFed) => WsboxComponent::embedded_with_config(&config)?,
        (None, BindingArg::Wasi) => WsboxComponent::embedded_binding(Binding::WasiSockets, &config)?,
    };
    if component.binding() == Binding::WasiSockets && args.workers > 1 {
        anyhow::bail!(
            "--workers needs the host-fed binding (the WASI component binds its own sockets, without SO_REUSEPORT)"
        );
    }
    let page_asked = args.page || args.page_file.is_some();
    if component.binding() == Binding::WasiSockets && page_asked {
        anyhow::bail!("--page needs the host-fed binding (the WASI component answers its requests alone)");
    }
    if page_asked && args.health_check_path == wsbox::page::PATH {
        anyhow::bail!(
            "--page serves {} and --health-check-path asks the same path: move the health check (--health-check-path /healthz)",
            wsbox::page::PATH
        );
    }
    if component.binding() == Binding::WasiSockets && args.nats.is_some() {
        anyhow::bail!("--nats needs the host-fed binding (the WASI component's topics stay inside its instance)");
    }
    if component.binding() == Binding::WasiSockets && args.tls_cert.is_some() {
        anyhow::bail!(
            "wss:// needs the host-fed binding (the host terminates TLS); drop --binding wasi or the --tls-* flags"
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::load(&TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
            http2: !args.no_http2,
        })?),
        _ => None,
    };
    // Installed before anything listens (SIGHUP's default action would end
    // the process); served once the app exists.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let tls_listen = tls.as_ref().map(|_| args.tls_listen);
    let policy = ListenPolicy::new(std::iter::once(args.listen).chain(tls_listen));
    let limits = SandboxLimits {
        max_memory: usize::try_from(args.max_guest_memory_mib).unwrap_or(usize::MAX).saturating_mul(1024 * 1024),
        // 0 turns the watchdog off (the engine has no epoch checks then).
        max_run: if args.max_guest_run_ms > 0 { Duration::from_millis(args.max_guest_run_ms) } else { Duration::MAX },
    };
    let readiness = Arc::new(Readiness::default());
    let transport = TransportLimits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        write_timeout: Duration::from_millis(args.write_timeout_ms),
        gather_input: Duration::from_micros(args.gather_input_us),
        // -1 (no deadline) is the only negative value the flag takes.
        handshake_timeout: u64::try_from(args.handshake_timeout_ms).ok().map(Duration::from_millis),
        http2_idle_timeout: Duration::from_millis(args.http2_idle_timeout_ms),
        admission: AdmissionLimits {
            max_per_address: args.max_connections_per_address,
            handshakes_per_address_per_second: args.max_handshakes_per_address_per_second,
            limit_loopback: args.address_limits_on_loopback,
            ..AdmissionLimits::default()
        },
        proxy: TrustedProxies::trusting(args.trusted_proxies.iter().copied(), args.proxy_protocol),
        health_check: (!args.health_check_path.is_empty())
            .then(|| HealthCheck { path: args.health_check_path.clone(), readiness: Arc::clone(&readiness) }),
        page: page_asked.then(|| Page::load(args.page_file.as_deref())).transpose()?,
        ..TransportLimits::default()
    };
    let options = args.echo_options(tls.is_some());
    let shutdown = Shutdown::default();
    // Registered here, before anything listens: a signal that comes as soon
    // as the listening line is out must find the handler, not the default
    // action (which would reset every connection without a close).
    let mut signals = ShutdownSignals::register()?;
    let requested = shutdown.clone();
    let draining = Arc::clone(&readiness);
    let drain_delay = Duration::from_millis(args.drain_delay_ms);
    tokio::spawn(async move {
        let signal = signals.next().await;
        // Health checks say 503 first, so that a load balancer stops
        // sending new clients before connections are closed.
        draining.draining();
        // systemd (Type=notify): the service is stopping.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        if !drain_delay.is_zero() {
            tracing::info!(
                signal,
                delay_ms = drain_delay.as_millis() as u64,
                "draining: /healthz answers 503, still serving until the delay is over"
            );
            tokio::select! {
                () = tokio::time::sleep(drain_delay) => {}
                signal = signals.next() => second_signal(signal),
            }
        }
        tracing::info!(signal, "shutdown requested (a second Ctrl-C or SIGTERM exits at once)");
        requested.request();
        second_signal(signals.next().await);
    });
    // Reloads asked for over HTTP (--reload-endpoint), served with SIGHUP's.
    let (reload_requests, reloads_asked) = tokio::sync::mpsc::unbounded_channel();
    let reload_requests = args.reload_endpoint.then_some(reload_requests);
    let metrics = match args.metrics_listen {
        Some(addr) => {
            let metrics = Arc::new(Metrics::new(limits.max_memory as u64));
            let endpoint =
                wsbox::metrics::endpoint::spawn(addr, Arc::clone(&metrics), Arc::clone(&readiness), reload_requests);
            let local = endpoint.with_context(|| format!("cannot serve metrics on {addr}"))?;
            tracing::info!(
                url = %format!("http://{local}{}", wsbox::metrics::endpoint::PATH),
                health = %format!("http://{local}{}", wsbox::metrics::endpoint::HEALTH_PATH),
                "metrics endpoint"
            );
            Some(metrics)
        }
        None => None,
    };
    // Topics across processes: the workers' bus gets a NATS bridge.
    let topics = match &args.nats {
        Some(url) => {
            let bus = TopicBus::new();
            let options = NatsOptions { url: url.clone(), subject_prefix: args.nats_subject_prefix.clone() };
            wsbox::topics::nats::start(&bus, options, metrics.as_ref().map(|m| m.broker()))?;
            Some(bus)
        }
        None => None,
    };
    let app = App { component: Arc::new(component), component_name: component_name(&args), options };
    let reload = Reload::default();
    let reloader = Reloader {
        tls: tls.clone(),
        engine: config,
        args: args.clone(),
        component_digest: component_bytes.as_deref().map(digest_of),
        limits,
        app: app.clone(),
        reload: reload.clone(),
    };
    tokio::spawn(reloader.serve(hangups, reloads_asked));
    let config = ServeConfig {
        app,
        reload,
        policy,
        tls: tls.as_ref().map(ServerTls::config),
        limits,
        transport,
        metrics,
        topics,
    };
    // Ready once every URL is out (ws://, and wss:// with TLS).
    let urls = 1 + usize::from(config.tls.is_some());
    let announced = std::sync::atomic::AtomicUsize::new(0);
    let announce = |url: &str| {
        // Before the line is out: whoever reads it finds the server ready.
        if announced.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == urls {
            readiness.listening();
        }
        announce(url);
    };
    wsbox::serve::serve(config, usize::from(args.workers), &shutdown, announce).await
}

/// A second SIGINT or SIGTERM: exit now, without waiting for connections.
fn second_signal(signal: &'static str) -> ! {
    tracing::warn!(signal, "second shutdown signal: exiting without waiting for connections to close");
    std::process::exit(130);
}

/// The line on stdout that says where the echo app listens (one per URL,
/// once every worker listens on it), and under systemd (`Type=notify`,
/// `NOTIFY_SOCKET` set) READY=1 at the same moment.
fn announce(url: &str) {
    println!("wsbox {}: echo app listening on {url}", env!("CARGO_PKG_VERSION"));
    let _ = std::io::stdout().flush();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// How the logs name the component: "embedded", or its path.
fn component_name(args: &ServeArgs) -> String {
    args.component.as_ref().map_or("embedded".to_string(), |p| p.display().to_string())
}

/// A component file's bytes.
fn read_component(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the component {}", path.display()))
}

/// The component file at `path`, from its bytes.
fn compile_component(path: &std::path::Path, bytes: &[u8], engine: &wasmtime::Config) -> Result<WsboxComponent> {
    WsboxComponent::from_bytes_with_config(bytes, engine)
        .with_context(|| format!("compiling the component {}", path.display()))
}

/// A digest of a component's bytes, to tell whether a reload changes it.
fn digest_of(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// What SIGHUP reloads: the TLS certificate and key (new handshakes get the
/// new ones, established connections go on), and the app: the command line
/// and `--config` file are read again, and when the component file or the
/// app's settings changed, every worker hands its listeners to an instance
/// of the new app while the previous one serves its connections to their
/// end ([`Reload`]). Whatever does not load is logged and the current one
/// stays. `POST /reload` on the metrics address (`--reload-endpoint`) asks
/// for the same and gets the outcome.
struct Reloader {
    tls: Option<ServerTls>,
    /// The engine settings components are compiled with.
    engine: wasmtime::Config,
    /// The flags, and the component file's digest, the running app came from.
    args: ServeArgs,
    component_digest: Option<u64>,
    /// The sandbox's limits, for a new component's trial instance.
    limits: SandboxLimits,
    app: App,
    reload: Reload,
}

impl Reloader {
    /// Reloads at each SIGHUP, and at each request of the reload endpoint
    /// (which gets the outcome).
    async fn serve(
        mut self,
        mut hangups: tokio::signal::unix::Signal,
        mut asked: tokio::sync::mpsc::UnboundedReceiver<wsbox::metrics::endpoint::ReloadReply>,
    ) {
        loop {
            let reply = tokio::select! {
                Some(()) = hangups.recv() => None,
                Some(reply) = asked.recv() => Some(reply),
                else => return,
            };
            let outcome = self.reload_all(if reply.is_some() { "POST /reload" } else { "SIGHUP" }).await;
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
    }

    /// The certificate and key, then the app; `Ok`: what was done, `Err`:
    /// what was refused, and why (each part is logged, prefixed with `cause`).
    async fn reload_all(&mut self, cause: &str) -> Result<String, String> {
        let (mut done, mut refused) = (Vec::new(), Vec::new());
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => done.push("reloaded the TLS certificate and key".to_string()),
                Err(e) => refused.push(("TLS reload failed; the current certificate stays", e)),
            }
        }
        match self.reload_app(cause).await {
            Ok(what) => done.push(what),
            Err(e) => refused.push(("app reload failed; the current app stays", e)),
        }
        done.iter().for_each(|what| tracing::info!("{cause}: {what}"));
        refused.iter().for_each(|(what, e)| tracing::error!(error = %format!("{e:#}"), "{cause}: {what}"));
        let refused: Vec<String> = refused.iter().map(|(what, e)| format!("{what} ({e:#})")).collect();
        match (refused.is_empty(), done.is_empty()) {
            (true, _) => Ok(done.join("; ")),
            (false, true) => Err(refused.join("; ")),
            (false, false) => Err(format!("{}; done: {}", refused.join("; "), done.join("; "))),
        }
    }

    /// Reads the flags, the config file and the component again, and
    /// swaps the app if they changed it; says what it did (`cause` names
    /// the request in the warning about flags a reload cannot apply).
    async fn reload_app(&mut self, cause: &str) -> Result<String> {
        let args = match wsbox::cli::parse_from(std::env::args_os().collect()) {
            Ok(cli) => cli.serve_args().clone(),
            Err(wsbox::cli::ParseError::Config(message)) => anyhow::bail!("{message}"),
            Err(wsbox::cli::ParseError::Clap(e)) => {
                anyhow::bail!("{}", e.to_string().lines().next().unwrap_or("the command line does not parse"))
            }
        };
        // The bytes compiled are the bytes compared.
        let bytes = args.component.as_deref().map(read_component).transpose()?;
        let digest = bytes.as_deref().map(digest_of);
        // What runs: the flags it started with, but the app's as last applied.
        let applied = args.with_app_flags_of(&self.args);
        if applied != self.args {
            tracing::warn!("{cause}: flags other than the app's changed; they take effect at the next start");
        }
        if applied == args && digest == self.component_digest {
            return Ok("the app and its settings are unchanged".to_string());
        }
        anyhow::ensure!(
            self.app.component.binding() == Binding::HostFed,
            "swapping the app needs the host-fed binding (a WASI component holds its own listeners)"
        );
        let component = if args.component == self.args.component && digest == self.component_digest {
            Arc::clone(&self.app.component)
        } else {
            // Compiling takes a while (seconds, without the compile cache).
            let (path, engine) = (args.component.clone(), self.engine.clone());
            let loaded = tokio::task::spawn_blocking(move || match path.zip(bytes) {
                Some((path, bytes)) => compile_component(&path, &bytes, &engine),
                None => WsboxComponent::embedded_with_config(&engine),
            })
            .await??;
            anyhow::ensure!(
                loaded.binding() == Binding::HostFed,
                "the new component listens through wasi:sockets; a reload needs a host-fed one"
            );
            // A trial instance, within the sandbox's limits: a component
            // that cannot be instantiated (wrong exports, a memory above
            // the cap) is refused here, not by every worker.
            loaded
                .instantiate_with(ListenPolicy::new([]), None, self.limits, TransportLimits::default())
                .await
                .context("the new component does not instantiate")?;
            Arc::new(loaded)
        };
        let tls = self.app.options.tls_listen.is_some();
        let app = App { component, component_name: component_name(&args), options: args.echo_options(tls) };
        let name = app.component_name.clone();
        let what = match self.reload.request(app.clone(), HAND_OVER_WAIT).await {
            true => format!("serving the new app ({name}); open connections stay with the previous one"),
            false => format!(
                "starting the new app ({name}): a worker had not handed over within {} s; open connections stay \
                 with the previous one",
                HAND_OVER_WAIT.as_secs()
            ),
        };
        self.args = self.args.with_app_flags_of(&args);
        (self.component_digest, self.app) = (digest, app);
        Ok(what)
    }
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
