//! Loading the certificate chain, the key and the client CA into a rustls
//! `ServerConfig`, with errors that say which file and why.

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

/// Reads the files and builds the server configuration: TLS 1.2 and 1.3,
/// ALPN `http/1.1`, client certificates required when a client CA is given.
/// Warns when the leaf certificate is expired or not yet valid.
pub fn load_server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow!("cannot read a private key from {}: {e}", files.key.display()))?;
    warn_if_outside_validity(&certs[0], &files.cert);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
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
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!("{} and {} do not make a usable identity", files.cert.display(), files.key.display())
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
