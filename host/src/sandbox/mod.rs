//! The sandbox: what the host lets the component do, how much it may take,
//! and what happens when it fails.
//!
//! - [`policy`]: where it may listen, and the narrow WASI it gets.
//! - [`limits`]: its linear memory cap.
//! - [`watchdog`]: wasm that runs too long without returning or waiting is
//!   stopped.
//! - [`supervisor`]: a failed instance's WebSockets get 1012 and a fresh
//!   instance takes its listeners, with back-off when failures come often.

pub mod limits;
pub mod policy;
pub mod supervisor;
pub mod watchdog;

pub use limits::{RECYCLE_GROWTH, SandboxLimits};
pub use policy::{ListenPolicy, wasi_ctx, wasi_ctx_for_app, wasi_ctx_with_sockets};
