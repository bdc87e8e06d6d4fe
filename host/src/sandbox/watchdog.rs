//! The watchdog: wasm that runs longer than [`SandboxLimits::max_run`]
//! without returning or waiting is stopped with a trap.
//!
//! The engine's epoch advances every [`EPOCH_TICK`] (a thread per compiled
//! component); running wasm reaches the store's epoch callback at each tick,
//! where [`Watchdog::check`] decides.
//!
//! [`SandboxLimits::max_run`]: super::SandboxLimits::max_run

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the engine's epoch advances: the watchdog's resolution.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The thread that advances an engine's epoch; it stops when dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &wasmtime::Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ticking, stopped) = (engine.clone(), Arc::clone(&stop));
        std::thread::Builder::new().name("wsbox-epoch".into()).spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                ticking.increment_epoch();
            }
        })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One instance's watchdog state.
pub(crate) struct Watchdog {
    /// The guest started running again since the watchdog last looked: it
    /// entered an export, or got control back from `net.exchange` (where it
    /// waits). Calls to WASI in between are short and do not count as
    /// waiting. A flag rather than a time: it is set on every entry into
    /// wasm (the canonical ABI's `realloc` calls too), where reading the
    /// clock cost 3% of the server's CPU; the watchdog stamps the time at
    /// its next look, at most one tick later.
    restarted: bool,
    /// When the guest last started running, as the watchdog saw it.
    running_since: Instant,
    /// When the watchdog last looked (it looks every tick while wasm runs).
    last_check: Instant,
    max_run: Duration,
}

impl Watchdog {
    pub(crate) fn new(max_run: Duration) -> Self {
        let now = Instant::now();
        Self { restarted: true, running_since: now, last_check: now, max_run }
    }

    /// The guest runs again from here (an export was entered, or a host
    /// call where it waited returned).
    pub(crate) fn guest_resumed(&mut self) {
        self.restarted = true;
    }

    /// Called at every epoch tick while wasm runs (`now` is the time of
    /// the tick): an error stops the guest.
    pub(crate) fn check(&mut self, now: Instant) -> wasmtime::Result<()> {
        // A gap longer than a few ticks means the guest was waiting in a
        // host call (wasi:io/poll, say): it starts running again now.
        if self.restarted || now.duration_since(self.last_check) > 5 * EPOCH_TICK {
            self.restarted = false;
            self.running_since = now;
        }
        self.last_check = now;
        if now.duration_since(self.running_since) > self.max_run {
            return Err(wasmtime::format_err!(
                "the guest ran for more than {} ms without returning or waiting (stopped by the watchdog)",
                self.max_run.as_millis()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_that_keeps_running_past_max_run_is_stopped() {
        let start = Instant::now();
        let mut dog = Watchdog::new(Duration::from_millis(30));
        // Ticks while the guest keeps running: within 30 ms, then past it.
        for tick in 0..=3 {
            assert!(dog.check(start + tick * EPOCH_TICK).is_ok(), "tick {tick}");
        }
        let error = dog.check(start + 4 * EPOCH_TICK).expect_err("40 ms of running past a 30 ms limit");
        assert!(error.to_string().contains("more than 30 ms"), "{error}");
    }

    #[test]
    fn the_clock_starts_again_when_the_guest_resumes_or_was_waiting() {
        let start = Instant::now();
        let mut dog = Watchdog::new(Duration::from_millis(30));
        for tick in 0..=3 {
            dog.check(start + tick * EPOCH_TICK).unwrap();
        }
        // Back from `net.exchange`: a fresh stretch.
        dog.guest_resumed();
        for tick in 4..=7 {
            assert!(dog.check(start + tick * EPOCH_TICK).is_ok(), "tick {tick}");
        }
        // No tick for 100 ms: it was waiting in a WASI call, a fresh stretch too.
        for tick in 18..=21 {
            assert!(dog.check(start + tick * EPOCH_TICK).is_ok(), "tick {tick}");
        }
        assert!(dog.check(start + 22 * EPOCH_TICK).is_err());
    }
}
