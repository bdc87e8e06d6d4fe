//! TLS for `wss://`, terminated by the host on the sockets it owns: the
//! certificate and private key are read here and never enter the sandbox;
//! the component sees plaintext and per-connection TLS outcomes.
//!
//! rustls (with the `ring` provider) is driven as a codec inside each
//! connection's task rather than through `tokio-rustls`: raw bytes read from
//! the socket go into rustls and the plaintext goes straight into the shared
//! batch, and what the guest writes is encrypted into the same pending-output
//! path plain connections use, so TLS keeps the batch design (one exchange
//! per turn, fair shares, backpressure).

mod config;
mod session;

pub use config::{ALPN, ALPN_H2, ServerTls, TlsFiles, load_server_config};
pub use session::{TlsFailure, TlsSession, TlsState};
