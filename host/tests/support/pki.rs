//! A throwaway CA and the certificate files servers and clients need, made
//! per test with rcgen (no key files are committed).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A CA and the PEM files a server or client needs.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wsbox-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("wsbox test CA {name}"));
        let ca = params.self_signed(&key).unwrap();
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        Pki { dir, ca_pem, issuer: Issuer::new(params, key) }
    }

    /// A leaf certificate for `names`, with a key of `alg`; returns (cert, key) paths.
    pub fn leaf(&self, file: &str, names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate_for(alg).unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), self.ca_pem)).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
    };
    Arc::new(config)
}

/// The base64 SHA-256 of the public key in the PEM key file `key` (its
/// SubjectPublicKeyInfo): what Chromium's `--ignore-certificate-errors-spki-list`
/// trusts as if a CA had signed it.
pub fn spki_sha256(key: &Path) -> String {
    use base64::Engine;
    use sha2::Digest;
    let key = KeyPair::from_pem(&std::fs::read_to_string(key).unwrap()).unwrap();
    let spki = rustls::pki_types::SubjectPublicKeyInfoDer::from_pem_slice(key.public_key_pem().as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki.as_ref()))
}
