//! A throwaway CA and server identity for the TLS cells, written to a
//! temporary directory (no key files live in the repository).

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Identity {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA certificate (PEM) clients trust.
    pub ca: PathBuf,
}

impl Identity {
    /// A CA and a leaf for `localhost` (ECDSA P-256), in a fresh directory.
    pub fn generate() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("wsbox-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate()?;
        let leaf = CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &issuer)?;
        let (cert_path, key_path, ca_path) = (dir.join("server.pem"), dir.join("server.key"), dir.join("ca.pem"));
        std::fs::write(&cert_path, format!("{}{}", leaf.pem(), ca.pem()))?;
        std::fs::write(&key_path, key.serialize_pem())?;
        std::fs::write(&ca_path, ca.pem())?;
        Ok(Self { dir, cert: cert_path, key: key_path, ca: ca_path })
    }
}

/// A client configuration that trusts only the CA in the PEM file `ca`.
pub fn client_config(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Drop for Identity {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server configuration from PEM files (for the native TLS baseline).
pub fn server_config(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
