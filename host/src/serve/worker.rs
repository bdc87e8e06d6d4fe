//! One worker: an instance of the component serving the echo app,
//! replaced when it fails or when it is recycled.

use super::{ServeConfig, Shutdown};
use crate::apps::echo::Ending;
use crate::metrics::RestartCause;
use crate::net::{Listeners, NetHost, TransportLimits};
use crate::runner::Instance;
use crate::sandbox::ListenPolicy;
use crate::sandbox::supervisor::{FAREWELL_GRACE, Restarts, service_restart_frame};
use anyhow::Result;
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
    /// The first instance failing before it listens is a setup error (a busy
    /// port, say), returned without a restart.
    pub(super) async fn supervise(&self, index: usize, shutdown: &Shutdown, mut bound: impl FnMut(&str)) -> Result<()> {
        let mut restarts = Restarts::default();
        // With several workers sharing a port, a restarted instance listens
        // on the ports the first one got (for port 0).
        let mut options = self.options.clone();
        options.metrics = self.metrics.clone();
        options.worker = index as u32;
        // The previous instance's listening sockets: the next one takes them
        // over, so the port stays open and its backlog waits.
        let mut listeners = None;
        let mut first_instance = true;
        loop {
            let mut instance = self
                .component
                .instantiate_with(self.policy.clone(), self.tls.clone(), self.limits, self.transport.clone())
                .await?;
            if let Some(listeners) = listeners.take() {
                instance.store.data_mut().net.inherit_listeners(listeners);
            }
            if let Some(bus) = &self.topics {
                instance.store.data_mut().net.join_topics(bus);
            }
            shutdown.register(index, instance.store.data().net.interrupter());
            let mut urls = Vec::new();
            let result = crate::apps::echo::run(&mut instance, &options, shutdown.flag(), |url| {
                urls.push(url.to_string());
                tracing::info!(
                    %url,
                    component = self.component_name,
                    binding = ?self.component.binding(),
                    deflate = self.options.compression.enabled,
                    handshake_timeout_ms = self.options.handshake_timeout_ms,
                    max_guest_memory_mib = self.limits.max_memory >> 20,
                    "listening"
                );
                bound(url);
            })
            .await;
            if self.transport.reuse_port {
                options.adopt_ports(&urls);
            }
            let open = instance.store.data().net.connection_count();
            let first = std::mem::replace(&mut first_instance, false);
            let error = match result {
                Ok(Ending::Stopped) => return Ok(()),
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
            listeners = Some(retire(instance));
            let (within_a_minute, pause) = restarts.record(Instant::now());
            tracing::error!(
                restarts_within_a_minute = within_a_minute,
                connections = open,
                pause_ms = pause.as_millis() as u64,
                "the guest stopped ({error:#}); its WebSockets get 1012 Service Restart; starting a fresh instance"
            );
            tokio::time::sleep(pause).await;
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
