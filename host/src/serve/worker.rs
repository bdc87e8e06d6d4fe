//! One worker: an instance of the component serving the echo app,
//! replaced when it fails, when it is recycled, or at a reload (then the
//! previous one drains beside it).

use super::{App, ServeConfig, Shutdown};
use crate::apps::HandOver;
use crate::apps::echo::{EchoOptions, Ending, Signals};
use crate::metrics::RestartCause;
use crate::net::{Listeners, NetHost, TransportLimits};
use crate::runner::Instance;
use crate::sandbox::ListenPolicy;
use crate::sandbox::supervisor::{FAREWELL_GRACE, Restarts, service_restart_frame};
use anyhow::Result;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

impl ServeConfig {
    /// Runs worker `index` on a thread of its own with its own event loop;
    /// `bound` receives its URLs once it listens.
    pub(super) fn spawn_worker(
        &self,
        index: usize,
        shutdown: &Shutdown,
        bound: std::sync::mpsc::Sender<(usize, String)>,
    ) -> Result<std::thread::JoinHandle<Result<()>>> {
        let (config, shutdown) = (self.clone(), shutdown.clone());
        Ok(std::thread::Builder::new().name(format!("wsbox-worker-{index}")).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let serving = config.supervise(index, &shutdown, |url| {
                // Nobody listens after start-up (a restart listens again).
                let _ = bound.send((index, url.to_string()));
            });
            runtime.block_on(serving.instrument(tracing::info_span!("worker", index)))
        })?)
    }

    /// Serves as worker `index` until `shutdown`; when the guest traps or is
    /// stopped, its connections get 1012 and a fresh instance takes over.
    /// At a [`Reload`](super::Reload), an instance of the new app takes the
    /// listeners over while the previous one serves its connections to
    /// their end. The first instance failing before it listens is a setup
    /// error (a busy port, say), returned without a restart.
    pub(super) async fn supervise(&self, index: usize, shutdown: &Shutdown, bound: impl FnMut(&str)) -> Result<()> {
        // Instances that handed over: every way out waits for them to end
        // (at a shutdown they close their connections with 1001).
        let mut draining = Draining::default();
        let result = self.serve_instances(index, shutdown, bound, &mut draining).await;
        draining.finish().await;
        result
    }

    async fn serve_instances<'a>(
        &'a self,
        index: usize,
        shutdown: &'a Shutdown,
        mut bound: impl FnMut(&str),
        draining: &mut Draining<'a>,
    ) -> Result<()> {
        let mut restarts = Restarts::default();
        // A reload requested before this worker started counts already.
        let (mut generation, requested) = self.reload.current();
        let mut app = requested.unwrap_or_else(|| self.app.clone());
        // With several workers sharing a port, a restarted instance listens
        // on the ports the first one got (for port 0).
        let mut options = self.worker_options(&app.options, index, &self.app.options);
        // The app before the last reload, until the new one listens: a new
        // app that cannot start gives way to it again.
        let mut fallback: Option<App> = None;
        // The previous instance's listening sockets: the next one takes them
        // over, so the port stays open and its backlog waits.
        let mut listeners = None;
        let mut first_instance = true;
        loop {
            let instantiating = app.component.instantiate_with(
                self.policy.clone(),
                self.tls.clone(),
                self.limits,
                self.transport.clone(),
            );
            let mut instance = match draining.alongside(instantiating).await {
                Ok(instance) => instance,
                Err(error) => match fallback.take() {
                    Some(previous) => {
                        tracing::error!("the new app does not start ({error:#}); serving the previous one again");
                        options = self.worker_options(&previous.options, index, &options);
                        app = previous;
                        continue;
                    }
                    None => return Err(error),
                },
            };
            if let Some(listeners) = listeners.take() {
                instance.store.data_mut().net.inherit_listeners(listeners);
            }
            if let Some(bus) = &self.topics {
                instance.store.data_mut().net.join_topics(bus);
            }
            let interrupter = instance.store.data().net.interrupter();
            shutdown.register(index, interrupter.clone());
            let hand_over = Arc::new(HandOver::default());
            self.reload.register(index, generation, Arc::clone(&hand_over), interrupter);
            let (url_tx, mut url_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let mut running = Box::pin({
                let (options, hand_over) = (options.clone(), Arc::clone(&hand_over));
                // The component outlives its instance's run: its epoch ticker
                // is the instance's watchdog, draining or not.
                let component = Arc::clone(&app.component);
                async move {
                    let signals = Signals { stop: shutdown.flag(), hand_over: Some(&hand_over) };
                    let result = crate::apps::echo::run(&mut instance, &options, signals, |url| {
                        let _ = url_tx.send(url.to_string());
                    })
                    .await;
                    drop(component);
                    (instance, result)
                }
            });
            let mut urls = Vec::new();
            let next = draining
                .alongside(async {
                    loop {
                        tokio::select! {
                            biased;
                            Some(url) = url_rx.recv() => {
                                tracing::info!(
                                    %url,
                                    component = app.component_name,
                                    binding = ?app.component.binding(),
                                    deflate = options.compression.enabled,
                                    handshake_timeout_ms = options.handshake_timeout_ms,
                                    max_guest_memory_mib = self.limits.max_memory >> 20,
                                    "listening"
                                );
                                bound(&url);
                                urls.push(url);
                            }
                            ended = &mut running => break Next::Ended(Box::new(ended)),
                            given = hand_over.taken() => break Next::HandedOver(given),
                        }
                    }
                })
                .await;
            if !urls.is_empty() {
                fallback = None;
            }
            if self.transport.reuse_port {
                options.adopt_ports(&urls);
            }
            let next = match next {
                // It handed over holding no connection, and so was done at once.
                Next::Ended(ended) if matches!(ended.1, Ok(Ending::Drained)) => {
                    Next::HandedOver(hand_over.taken().await)
                }
                Next::HandedOver(given) => {
                    draining.push(running);
                    Next::HandedOver(given)
                }
                ended => ended,
            };
            let (mut instance, result) = match next {
                Next::HandedOver(given) => {
                    listeners = Some(given);
                    first_instance = false;
                    if shutdown.is_requested() {
                        return Ok(());
                    }
                    let (now, requested) = self.reload.current();
                    generation = now;
                    if let Some(requested) = requested {
                        options = self.worker_options(&requested.options, index, &options);
                        fallback = Some(std::mem::replace(&mut app, requested));
                    }
                    if let Some(m) = &self.metrics {
                        m.restart(RestartCause::Reload);
                    }
                    tracing::info!(
                        component = app.component_name,
                        "reload: a new instance takes the listeners; the previous one serves its connections to their end"
                    );
                    continue;
                }
                Next::Ended(ended) => *ended,
            };
            let open = instance.store.data().net.connection_count();
            let first = std::mem::replace(&mut first_instance, false);
            let error = match result {
                // (An instance that drained handed over: it is handled above.)
                Ok(Ending::Stopped | Ending::Drained) => return Ok(()),
                Ok(Ending::Recycle) => {
                    if let Some(m) = &self.metrics {
                        m.restart(RestartCause::Recycle);
                    }
                    listeners = Some(instance.store.data_mut().net.take_listeners());
                    continue;
                }
                Err(e) if (urls.is_empty() && first) || shutdown.is_requested() => return Err(e),
                Err(e) => e,
            };
            if let Some(m) = &self.metrics {
                let watchdog = format!("{error:#}").contains("stopped by the watchdog");
                m.restart(if watchdog { RestartCause::Watchdog } else { RestartCause::Trap });
            }
            // Listeners it gave away just before it failed are not lost.
            let retired = retire(instance);
            listeners = Some(hand_over.try_take().unwrap_or(retired));
            if let Some(previous) = fallback.take() {
                tracing::error!("the new app failed before it listened ({error:#}); serving the previous one again");
                options = self.worker_options(&previous.options, index, &options);
                app = previous;
            }
            let (within_a_minute, pause) = restarts.record(Instant::now());
            tracing::error!(
                restarts_within_a_minute = within_a_minute,
                connections = open,
                pause_ms = pause.as_millis() as u64,
                "the guest stopped ({error:#}); its WebSockets get 1012 Service Restart; starting a fresh instance"
            );
            draining.alongside(tokio::time::sleep(pause)).await;
        }
    }

    /// `app`'s options as worker `index` runs them: its metrics and worker
    /// label, and the addresses `listening` has (the worker's listeners
    /// keep theirs whatever a reloaded app says).
    fn worker_options(&self, app: &EchoOptions, index: usize, listening: &EchoOptions) -> EchoOptions {
        let mut options = app.clone();
        options.metrics = self.metrics.clone();
        options.worker = index as u32;
        (options.listen, options.tls_listen) = (listening.listen, listening.tls_listen);
        options
    }
}

/// How an instance's run ended for its worker.
enum Next {
    /// It returned (stopped, recycled, failed), with its instance.
    Ended(Box<(Instance, Result<Ending>)>),
    /// It gave its listeners away (a reload) and goes on draining.
    HandedOver(Listeners),
}

/// The instances of a worker that handed over and serve their connections
/// to their end.
#[derive(Default)]
struct Draining<'a>(FuturesUnordered<Pin<Box<dyn Future<Output = ()> + 'a>>>);

impl<'a> Draining<'a> {
    fn push(&mut self, running: impl Future<Output = (Instance, Result<Ending>)> + 'a) {
        self.0.push(Box::pin(drain(running)));
    }

    /// Awaits `future` while the draining instances go on serving.
    async fn alongside<T>(&mut self, future: impl Future<Output = T>) -> T {
        tokio::pin!(future);
        loop {
            tokio::select! {
                biased;
                out = &mut future => return out,
                Some(()) = self.0.next(), if !self.0.is_empty() => {}
            }
        }
    }

    /// Waits until every draining instance is done.
    async fn finish(&mut self) {
        while self.0.next().await.is_some() {}
    }
}

/// Serves a handed-over instance's connections to their end (or to the
/// drain time's); if it fails meanwhile, they get the failed instance's
/// farewell.
async fn drain(running: impl Future<Output = (Instance, Result<Ending>)>) {
    let (instance, result) = running.await;
    match result {
        Ok(_) => tracing::info!("the previous instance is done: its connections ended"),
        Err(error) => {
            let open = instance.store.data().net.connection_count();
            tracing::error!(
                connections = open,
                "the previous instance stopped while draining ({error:#}); its WebSockets get 1012"
            );
            retire(instance);
        }
    }
}

/// Retires a failed instance: takes its sockets out of it, drops it, sends
/// each WebSocket [`service_restart_frame`] in a background task (up to
/// [`FAREWELL_GRACE`]), and returns its listeners for the next instance.
fn retire(mut instance: Instance) -> Listeners {
    let spare = NetHost::with_limits(ListenPolicy::new([]), None, TransportLimits::default());
    let mut sockets = std::mem::replace(&mut instance.store.data_mut().net, spare);
    drop(instance);
    let listeners = sockets.take_listeners();
    let farewell = sockets.farewell(&service_restart_frame(), FAREWELL_GRACE);
    tokio::spawn(
        async move {
            let told = farewell.await;
            tracing::info!(closed_with_1012 = told, "the failed instance's connections are closed");
        }
        .in_current_span(),
    );
    listeners
}
