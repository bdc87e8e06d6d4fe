//! Whether this server takes new connections, as health checks see it: on
//! the metrics endpoint (`--metrics-listen`) and on the WebSocket listeners
//! themselves (`--health-check-path`), where load balancers usually ask.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where health checks ask unless told otherwise.
pub const DEFAULT_PATH: &str = "/healthz";

/// Ready once it listens, and never again once it drains (readiness turns
/// false before the shutdown begins, so a load balancer stops sending new
/// clients first).
#[derive(Debug, Default)]
pub struct Readiness {
    listening: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    pub fn listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    pub fn draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.listening.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }
}

/// The health check on the WebSocket listeners: a plain `GET` (or `HEAD`)
/// of `path` gets `200` while `readiness` says so, `503` otherwise.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    pub path: String,
    pub readiness: Arc<Readiness>,
}
