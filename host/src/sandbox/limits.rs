//! How much the guest may take: linear memory and run time (the run time is
//! enforced by the [watchdog](super::watchdog)), and the memory cap wasmtime applies.

use std::time::Duration;
use wasmtime::{StoreLimits, StoreLimitsBuilder};

/// Growth of the guest's linear memory past its size at start after which
/// an instance that holds no connection is replaced by a fresh one (linear
/// memory never shrinks: without this, one spike would pin its memory for
/// the life of the instance).
pub const RECYCLE_GROWTH: usize = 16 * 1024 * 1024;

/// How much the guest may take before the host stops it. A guest that
/// passes a limit traps; the host logs why and starts a fresh instance.
#[derive(Clone, Copy, Debug)]
pub struct SandboxLimits {
    /// Largest linear memory the guest may grow to, in bytes. Default 1 GiB:
    /// room for several maximal (64 MiB) messages in flight, far from what a
    /// host should lose to one tenant.
    pub max_memory: usize,
    /// Longest the guest may run without returning or waiting (one call,
    /// one stretch between host calls). Default 2 s: a turn of a full 1 MiB
    /// batch takes milliseconds, so only a guest stuck in a loop gets there.
    pub max_run: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self { max_memory: 1 << 30, max_run: Duration::from_secs(2) }
    }
}

/// wasmtime's [`StoreLimits`] at [`SandboxLimits::max_memory`], recording
/// how large the guest's memories grew.
pub(crate) struct MemoryCap {
    limits: StoreLimits,
    memory_bytes: usize,
}

impl MemoryCap {
    pub(crate) fn new(limits: &SandboxLimits) -> Self {
        Self { limits: StoreLimitsBuilder::new().memory_size(limits.max_memory).build(), memory_bytes: 0 }
    }

    /// Bytes of linear memory the guest holds (wasm memories only grow: this
    /// is also its high-water mark).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired - current;
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
