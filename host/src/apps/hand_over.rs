//! Handing an instance's listening sockets to the next one (a reload):
//! the request the app's run loop watches, and the listeners once given.

use crate::net::Listeners;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// One instance's side of a hand-over: the request to give its listeners
/// away, and the listeners once given.
#[derive(Default)]
pub struct HandOver {
    requested: AtomicBool,
    listeners: Mutex<Option<Listeners>>,
    given: Notify,
}

impl HandOver {
    /// Asks the instance to give its listeners away (see
    /// [`Signals::hand_over`](super::echo::Signals::hand_over)).
    pub fn request(&self) {
        self.requested.store(true, Ordering::Release);
    }

    /// Whether the instance should give its listeners away.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// The instance gives its listeners away (once).
    pub fn give(&self, listeners: Listeners) {
        *self.listeners.lock().expect("hand-over lock") = Some(listeners);
        self.given.notify_one();
    }

    /// The listeners, if the instance gave them away.
    pub fn try_take(&self) -> Option<Listeners> {
        self.listeners.lock().expect("hand-over lock").take()
    }

    /// Waits until the instance gave its listeners away, and takes them.
    pub async fn taken(&self) -> Listeners {
        loop {
            if let Some(listeners) = self.try_take() {
                return listeners;
            }
            self.given.notified().await;
        }
    }
}
