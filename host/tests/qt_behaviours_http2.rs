//! The Qt behaviours after the upgrade (frames and messages, closing,
//! sending: 13–31) again, each WebSocket a stream of an HTTP/2 connection
//! (RFC 8441) on a secure server: the same modules and assertions, the raw
//! client of `qt_behaviours/raw_h2.rs` in place of the TCP one. (The
//! handshake behaviours are HTTP/1.1's own: `http2.rs` tests the extended
//! CONNECT's.)

/// The component under test: the host-fed one (only the host speaks HTTP/2).
const BINDING: wsbox::runner::Binding = wsbox::runner::Binding::HostFed;

/// `wss://`: the server has a TLS identity, and the client offers only `h2`.
const SCHEME: &str = "wss";
fn server_tls() -> Option<std::sync::Arc<rustls::ServerConfig>> {
    Some(tls::server_config())
}

// (The handshake behaviours use the app's helpers this binary leaves out.)
#[path = "qt_behaviours/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "qt_behaviours/closing.rs"]
mod closing;
#[path = "qt_behaviours/frames.rs"]
mod frames;
#[path = "support/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "qt_behaviours/raw_h2.rs"]
mod raw;
#[path = "qt_behaviours/sending.rs"]
mod sending;

/// One throwaway CA and a `localhost` identity for the whole binary.
mod tls {
    use std::sync::{Arc, OnceLock};

    fn pki() -> &'static (crate::pki::Pki, std::path::PathBuf, std::path::PathBuf) {
        static PKI: OnceLock<(crate::pki::Pki, std::path::PathBuf, std::path::PathBuf)> = OnceLock::new();
        PKI.get_or_init(|| {
            let pki = crate::pki::Pki::new("qt-h2");
            let (cert, key) = pki.leaf("server", &["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
            (pki, cert, key)
        })
    }

    pub fn server_config() -> Arc<rustls::ServerConfig> {
        let (_, cert, key) = pki();
        let files = wsbox::tls::TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: None, http2: true };
        wsbox::tls::load_server_config(&files).expect("the test identity loads")
    }

    /// Trusts the CA; offers only `h2`.
    pub fn client_config() -> Arc<rustls::ClientConfig> {
        let mut config = (*crate::pki::client_config(&pki().0.ca_path(), None)).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }
}
