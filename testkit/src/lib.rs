//! What wsbox's tests share, said once: client frames and server-frame
//! decoding ([`frames`]), upgrade requests ([`upgrade`]), a scripted client
//! for the sans-io core ([`driver`]), the fuzz targets' bodies
//! ([`fuzzing`]), a server process under test ([`process`]), a WebSocket
//! client over HTTP/2 (`h2`, feature `h2-client`), and building the guest
//! with features ([`guest`]). Used by
//! the core's and the runtime's tests, the host's tests, `fuzz/`, the
//! conformance harness and the bench.

pub mod driver;
pub mod frames;
pub mod fuzzing;
#[cfg(feature = "h2-client")]
pub mod h2;
pub mod process;
pub mod upgrade;

/// Building the guest component with features (the host's build script's way).
pub use wsbox_guest_build as guest;
