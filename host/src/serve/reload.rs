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
use std::time::Duration;
use tokio::sync::Notify;

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
    /// Each worker's running instance: how to ask it to hand over, how to
    /// wake it, and the generation it was started at.
    instances: Mutex<Vec<Running>>,
    /// A worker registered an instance.
    registered: Notify,
}

struct Running {
    worker: usize,
    hand_over: Arc<HandOver>,
    interrupter: Interrupter,
    generation: u64,
}

impl Reload {
    /// Makes `app` the one every worker serves: each running instance is
    /// asked to hand over to an instance of it. Returns once every worker
    /// has (`true`): from then on no instance of the previous app accepts,
    /// and new connections wait in the backlog for the new one. `false`
    /// if some worker had not within `wait` (it still will).
    pub async fn request(&self, app: App, wait: Duration) -> bool {
        *self.0.app.lock().expect("reload lock") = Some(app);
        let generation = self.0.generation.fetch_add(1, Ordering::AcqRel) + 1;
        for running in self.0.instances.lock().expect("reload lock").iter() {
            running.hand_over.request();
            running.interrupter.interrupt();
        }
        tokio::time::timeout(wait, self.all_started_at(generation)).await.is_ok()
    }

    /// Until every worker runs an instance started at `generation` or later
    /// (its previous instance gave the listeners away first).
    async fn all_started_at(&self, generation: u64) {
        loop {
            let registered = self.0.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            if self.0.instances.lock().expect("reload lock").iter().all(|r| r.generation >= generation) {
                return;
            }
            registered.await;
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
        all.retain(|r| r.worker != index);
        if self.0.generation.load(Ordering::Acquire) != generation {
            hand_over.request();
        }
        all.push(Running { worker: index, hand_over, interrupter, generation });
        drop(all);
        self.0.registered.notify_waiters();
    }
}
