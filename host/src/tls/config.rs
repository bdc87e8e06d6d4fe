//! Loading the certificate chain, the key and the client CA into a rustls
//! `ServerConfig`, with errors that say which file and why, and reloading
//! the certificate and key while serving.

use anyhow::{Context, Result, anyhow, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// HTTP/2's ALPN name: a connection that chooses it speaks HTTP/2 and
/// carries its WebSockets as streams (RFC 8441; see `net/http2`).
pub const ALPN_H2: &[u8] = b"h2";

/// What a wss:// listener offers by ALPN, in preference order.
pub const ALPN: [&[u8]; 2] = [ALPN_H2, b"http/1.1"];

/// Where the operator's TLS material lives (PEM files).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (RSA, ECDSA or Ed25519 key).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; `None`: no
    /// client certificate is asked for (browsers abort on an unexpected request).
    pub client_ca: Option<PathBuf>,
    /// Offer HTTP/2 by ALPN (WebSockets as streams, RFC 8441) beside
    /// HTTP/1.1.
    pub http2: bool,
}

/// The server's TLS configuration, and the identity in it that a reload
/// replaces: new handshakes take the certificate loaded last, established
/// sessions keep theirs.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    identity: Arc<Identity>,
}

impl ServerTls {
    /// Reads the files and builds the server configuration: TLS 1.2 and 1.3,
    /// ALPN `http/1.1`, client certificates required when a client CA is
    /// given. Warns when the leaf certificate is expired or not yet valid.
    pub fn load(files: &TlsFiles) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let identity = Arc::new(Identity {
            current: RwLock::new(Arc::new(read_identity(files, &provider)?)),
            files: files.clone(),
            provider: Arc::clone(&provider),
        });
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(ca)? {
                    roots.add(cert).with_context(|| format!("adding a CA certificate from {}", ca.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .with_context(|| format!("building the client verifier from {}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&identity) as Arc<dyn ResolvesServerCert>);
        let offered = if files.http2 { &ALPN[..] } else { &ALPN[1..] };
        config.alpn_protocols = offered.iter().map(|p| p.to_vec()).collect();
        Ok(Self { config: Arc::new(config), identity })
    }

    /// The configuration new TLS sessions start from.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Reads the certificate chain and the key again (SIGHUP). When they do
    /// not make a usable identity the error says why and the current one
    /// stays. The client CA is read at start only.
    pub fn reload(&self) -> Result<()> {
        let fresh = read_identity(&self.identity.files, &self.identity.provider)?;
        *self.identity.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }
}

/// [`ServerTls::load`]'s configuration, for an embedder that does not reload.
pub fn load_server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    Ok(ServerTls::load(files)?.config())
}

/// The certificate and key every new handshake is answered with.
#[derive(Debug)]
struct Identity {
    current: RwLock<Arc<CertifiedKey>>,
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

/// The chain in `files.cert` and the key in `files.key`, checked to belong
/// together.
fn read_identity(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow!("cannot read a private key from {}: {e}", files.key.display()))?;
    warn_if_outside_validity(&certs[0], &files.cert);
    CertifiedKey::from_der(certs, key, provider)
        .with_context(|| format!("{} and {} do not make a usable identity", files.cert.display(), files.key.display()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("cannot read certificates from {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("cannot parse the certificates in {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

fn warn_if_outside_validity(cert: &CertificateDer<'_>, path: &Path) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        tracing::warn!(file = %path.display(), "the certificate could not be parsed to check its validity period");
        return;
    };
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        tracing::warn!(file = %path.display(), not_before = %validity.not_before, "the certificate is not valid yet");
    } else if now > validity.not_after {
        tracing::warn!(file = %path.display(), not_after = %validity.not_after, "the certificate has expired");
    }
}
