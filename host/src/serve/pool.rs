//! The worker pool: one worker serves on the caller's runtime; several
//! each get a thread and share the ports through SO_REUSEPORT.

use super::{ServeConfig, Shutdown};
use crate::net::TransportLimits;
use crate::sandbox::ListenPolicy;
use crate::topics::TopicBus;
use anyhow::Result;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Serves `config` with `workers` workers until `shutdown` is requested or
/// a worker fails to start; `announce` gets each URL once every worker
/// listens on it (a client that connects then may be handed to any). Call
/// it inside a tokio runtime.
pub async fn serve(config: ServeConfig, workers: usize, shutdown: &Shutdown, announce: impl Fn(&str)) -> Result<()> {
    let workers = workers.max(1);
    // Instances exchange publications through a bus: the workers', and
    // with topics on, a reload's two (the previous instance keeps its
    // subscribers while it drains).
    let topics = match config.topics {
        None if workers > 1 || config.app.options.topic_path.is_some() => Some(TopicBus::new()),
        topics => topics,
    };
    let config =
        ServeConfig { transport: TransportLimits { reuse_port: workers > 1, ..config.transport }, topics, ..config };
    if workers == 1 {
        // One worker logs without a worker field, as before workers existed.
        return config.supervise(0, shutdown, announce).await;
    }
    // Worker 0 binds first, so that a port 0 becomes the port all share
    // (the kernel spreads connections across the workers).
    let (bound_tx, bound_rx) = channel::<(usize, String)>();
    let mut threads = vec![config.spawn_worker(0, shutdown, bound_tx.clone())?];
    let per_worker = 1 + usize::from(config.app.options.tls_listen.is_some());
    let urls: Vec<String> =
        await_listening(&bound_rx, &threads, 0..1, per_worker).into_iter().map(|(_, url)| url).collect();
    let mut rest = config.clone();
    rest.app.options.adopt_ports(&urls);
    rest.policy = ListenPolicy::new(std::iter::once(rest.app.options.listen).chain(rest.app.options.tls_listen));
    if !threads[0].is_finished() {
        for index in 1..workers {
            threads.push(rest.spawn_worker(index, shutdown, bound_tx.clone())?);
        }
        let all = (workers - 1) * per_worker;
        if await_listening(&bound_rx, &threads, 1..workers, all).len() == all {
            urls.iter().for_each(|url| announce(url));
        }
    }
    drop(bound_tx);
    join_all(threads, shutdown).await
}

/// Waits for every worker thread; the first to end (an error, or the
/// shutdown) ends them all. Returns the first error.
async fn join_all(threads: Vec<JoinHandle<Result<()>>>, shutdown: &Shutdown) -> Result<()> {
    let (done_tx, done_rx) = channel::<Result<()>>();
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
            let done_rx = Arc::clone(&done_rx);
            move || done_rx.lock().expect("done lock").recv()
        })
        .await?;
        let Ok(outcome) = outcome else { break };
        shutdown.request();
        if let (Err(e), Ok(())) = (outcome, &result) {
            result = Err(e);
        }
    }
    result
}

/// Waits until the workers numbered in `which` have reported `count`
/// distinct (worker, URL) pairs, or until a worker thread ended; returns
/// the pairs in the order they came. (Distinct: a worker that restarted
/// reports again.)
fn await_listening(
    reports: &Receiver<(usize, String)>,
    threads: &[JoinHandle<Result<()>>],
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
