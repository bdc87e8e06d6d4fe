//! Serving the echo app: a pool of workers, each with its own instance of
//! the one compiled component on its own thread and event loop, each
//! supervised (a failed instance is replaced, see [`crate::sandbox::supervisor`]).
//! `wsbox serve` is this plus the command line; an embedder can call
//! [`serve`] with its own [`ServeConfig`] and [`Shutdown`].

mod pool;
mod reload;
mod worker;

pub use pool::serve;
pub use reload::Reload;

use crate::apps::echo::EchoOptions;
use crate::metrics::Metrics;
use crate::net::{Interrupter, TransportLimits};
use crate::runner::WsboxComponent;
use crate::sandbox::{ListenPolicy, SandboxLimits};
use crate::topics::TopicBus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What a reload replaces: the component and the app's options.
#[derive(Clone)]
pub struct App {
    /// Compiled once, instantiated by every worker (and again at each restart).
    pub component: Arc<WsboxComponent>,
    /// How the logs name the component ("embedded", or its path).
    pub component_name: String,
    /// The echo app's options (where it listens, the Qt server settings).
    pub options: EchoOptions,
}

/// What every worker runs: the app and the sandbox's and transport's limits.
#[derive(Clone)]
pub struct ServeConfig {
    /// The app, until a [`Reload`] replaces it.
    pub app: App,
    /// Replaces the app while serving (see [`Reload`]).
    pub reload: Reload,
    /// Where the guest may listen.
    pub policy: ListenPolicy,
    /// The TLS identity for `wss://` listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Memory cap and watchdog.
    pub limits: SandboxLimits,
    /// The host's transport limits (`reuse_port` is set by [`serve`]).
    pub transport: TransportLimits,
    /// Where the workers count what they do, when metrics are on.
    pub metrics: Option<Arc<Metrics>>,
    /// Where the workers exchange publications; [`serve`] makes one for
    /// several workers when this is `None`.
    pub topics: Option<TopicBus>,
}

/// Asks every worker to stop: each stops listening, sends its connections
/// 1001 Going Away and returns once they closed or the grace passed. Clones
/// share one request.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<ShutdownState>);

#[derive(Default)]
struct ShutdownState {
    requested: AtomicBool,
    /// Each worker's running instance's interrupter (a new one after each restart).
    interrupters: Mutex<Vec<(usize, Interrupter)>>,
}

impl Shutdown {
    /// Requests the shutdown and wakes every instance's event loop.
    pub fn request(&self) {
        self.0.requested.store(true, Ordering::Release);
        for (_, interrupter) in self.0.interrupters.lock().expect("interrupter lock").iter() {
            interrupter.interrupt();
        }
    }

    /// Whether a shutdown was requested.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::Acquire)
    }

    /// The flag the app's run loop watches.
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.0.requested
    }

    /// Worker `index` runs a new instance, woken by `interrupter`.
    pub(crate) fn register(&self, index: usize, interrupter: Interrupter) {
        let mut all = self.0.interrupters.lock().expect("interrupter lock");
        all.retain(|(i, _)| *i != index);
        all.push((index, interrupter));
        // A request that came before this instance existed still reaches it.
        if self.is_requested() {
            all.iter().for_each(|(_, i)| i.interrupt());
        }
    }
}
