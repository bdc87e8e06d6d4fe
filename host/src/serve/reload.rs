//! Replacing the app while serving: a [`Reload`] hands every worker a new
//! [`App`] (component and options). Each worker's running instance is
//! asked to hand over ([`HandOver`]): it gives its listening sockets to an
//! instance of the new app and goes on serving the connections it holds
//! until they end (or its drain time is over, then 1001). No connection is
//! dropped by the swap, and the port never closes: the backlog waits in the
//! listening socket while it changes hands.

use super::App;
use crate::apps::HandOver;
use crate::net::Interrupter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Asks every worker to serve a new app. Clones share one request.
#[derive(Clone, Default)]
pub struct Reload(Arc<ReloadState>);

#[derive(Default)]
struct ReloadState {
    /// How many reloads were requested; a worker compares it with the one
    /// its instance was started at.
    generation: AtomicU64,
    /// The newest app requested (none yet: the configuration's own).
    app: Mutex<Option<App>>,
    /// Each worker's running instance: how to ask it to hand over, and
    /// how to wake it.
    instances: Mutex<Vec<(usize, Arc<HandOver>, Interrupter)>>,
}

impl Reload {
    /// Makes `app` the one every worker serves: each running instance is
    /// asked to hand over to an instance of it.
    pub fn request(&self, app: App) {
        *self.0.app.lock().expect("reload lock") = Some(app);
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        for (_, hand_over, interrupter) in self.0.instances.lock().expect("reload lock").iter() {
            hand_over.request();
            interrupter.interrupt();
        }
    }

    /// The reload generation and the app it asks for (`None` before the
    /// first reload: the configuration's app).
    pub(crate) fn current(&self) -> (u64, Option<App>) {
        let app = self.0.app.lock().expect("reload lock");
        (self.0.generation.load(Ordering::Acquire), app.clone())
    }

    /// Worker `index` runs an instance started at `generation`. A reload
    /// requested since then reaches it at once.
    pub(crate) fn register(&self, index: usize, generation: u64, hand_over: Arc<HandOver>, interrupter: Interrupter) {
        let mut all = self.0.instances.lock().expect("reload lock");
        all.retain(|(i, _, _)| *i != index);
        if self.0.generation.load(Ordering::Acquire) != generation {
            hand_over.request();
        }
        all.push((index, hand_over, interrupter));
    }
}
