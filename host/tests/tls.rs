//! `wss://`: TLS terminated by the host. Certificates are generated in the
//! test with rcgen (no key files are committed); clients verify the chain
//! against the generated CA.

mod support;

use futures_util::{SinkExt, StreamExt};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::sync::Arc;
use support::Server;
use support::pki::{Pki, client_config};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

fn server_with(pki: &Pki, alg: &'static rcgen::SignatureAlgorithm, extra: &[&str]) -> Server {
    let (cert, key) = pki.leaf("server", &["localhost", "127.0.0.1"], alg);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// `wss://localhost:PORT` for the server's TLS listener.
fn wss_url(server: &Server) -> String {
    server.tls_url.as_ref().expect("a wss:// listener").replace("127.0.0.1", "localhost")
}

async fn echo_once(url: &str, config: Arc<rustls::ClientConfig>) -> Result<(), String> {
    tokio::time::timeout(std::time::Duration::from_secs(10), echo_once_inner(url, config))
        .await
        .map_err(|_| format!("timed out talking to {url}"))?
}

async fn echo_once_inner(url: &str, config: Arc<rustls::ClientConfig>) -> Result<(), String> {
    let (mut ws, _) = connect_async_tls_with_config(url, None, false, Some(Connector::Rustls(config)))
        .await
        .map_err(|e| e.to_string())?;
    for msg in [Message::text("over TLS ✓"), Message::binary(vec![7u8; 70_000])] {
        ws.send(msg.clone()).await.map_err(|e| e.to_string())?;
        let got = ws.next().await.ok_or("stream ended")?.map_err(|e| e.to_string())?;
        if got != msg {
            return Err(format!("echo mismatch: {got:?}"));
        }
    }
    ws.close(None).await.map_err(|e| e.to_string())?;
    Ok(())
}

#[tokio::test]
async fn wss_echo_with_a_verified_chain_for_ecdsa_and_ed25519_keys() {
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
        let pki = Pki::new("chain");
        let server = server_with(&pki, alg, &[]);
        echo_once(&wss_url(&server), client_config(&pki.ca_path(), None)).await.expect("wss echo");
        // The plain listener runs beside it.
        let (mut ws, _) = tokio_tungstenite::connect_async(&server.url).await.expect("ws beside wss");
        ws.send(Message::text("plain")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("plain"));
    }
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails() {
    let pki = Pki::new("untrusted");
    let other = Pki::new("other");
    let server = server_with(&pki, &rcgen::PKCS_ECDSA_P256_SHA256, &[]);
    let err = echo_once(&wss_url(&server), client_config(&other.ca_path(), None)).await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn client_certificates_are_verified_when_client_auth_is_on() {
    let pki = Pki::new("clientauth");
    let rogue = Pki::new("rogue");
    let ca = pki.ca_path().display().to_string();
    let server = server_with(&pki, &rcgen::PKCS_ECDSA_P256_SHA256, &["--tls-client-ca", &ca]);
    let url = wss_url(&server);
    let (cert, key) = pki.leaf("client", &["client.example"], &rcgen::PKCS_ECDSA_P256_SHA256);
    echo_once(&url, client_config(&pki.ca_path(), Some((&cert, &key)))).await.expect("a client the CA signed");
    let (bad_cert, bad_key) = rogue.leaf("client", &["client.example"], &rcgen::PKCS_ECDSA_P256_SHA256);
    assert!(echo_once(&url, client_config(&pki.ca_path(), Some((&bad_cert, &bad_key)))).await.is_err());
    assert!(echo_once(&url, client_config(&pki.ca_path(), None)).await.is_err(), "no certificate, no entry");
    // The refusals reached the app as TLS events (the echo app logs them).
    for _ in 0..100 {
        if server.stderr().matches("TLS handshake failed").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(server.stderr().matches("TLS handshake failed").count() >= 2, "{}", server.stderr());
}

#[tokio::test]
async fn plaintext_and_garbage_on_the_tls_port_are_dropped_while_good_clients_are_served() {
    let pki = Pki::new("garbage");
    let server = server_with(&pki, &rcgen::PKCS_ECDSA_P256_SHA256, &[]);
    let port: u16 = server.tls_url.as_ref().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    for junk in [&b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..]]
    {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        tcp.write_all(junk).unwrap();
        let mut reply = Vec::new();
        let _ = tcp.read_to_end(&mut reply);
        assert!(!reply.starts_with(b"HTTP/"), "no HTTP answer on the TLS port: {reply:?}");
        echo_once(&wss_url(&server), client_config(&pki.ca_path(), None)).await.expect("still served");
    }
    assert!(server.stderr().contains("TLS handshake failed"), "{}", server.stderr());
}

#[test]
fn an_unreadable_certificate_is_one_clear_error_before_listening() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsbox"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read certificates from /nonexistent/cert.pem"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing listened");
}

#[tokio::test]
async fn tls_1_2_works_and_the_session_facts_reach_the_app() {
    let pki = Pki::new("facts");
    let ca = pki.ca_path().display().to_string();
    let server = server_with(&pki, &rcgen::PKCS_ECDSA_P256_SHA256, &["--tls-client-ca", &ca, "--log-level", "debug"]);
    let (cert, key) = pki.leaf("client", &["client.example"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let tls12 = {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(pki.ca_path()).unwrap()).unwrap();
        let chain = CertificateDer::pem_file_iter(&cert).unwrap().map(Result::unwrap).collect();
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(&key).unwrap())
            .unwrap()
    };
    echo_once(&wss_url(&server), Arc::new(tls12)).await.expect("TLS 1.2 echo");
    echo_once(&wss_url(&server), client_config(&pki.ca_path(), Some((&cert, &key)))).await.expect("TLS 1.3 echo");
    for _ in 0..100 {
        if server.stderr().contains("TLSv1_3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The echo app reads websocket.ssl-configuration() and logs it.
    let log = server.stderr();
    assert!(log.contains("TLSv1_2 TLS_ECDHE_ECDSA"), "{log}");
    assert!(log.contains("TLSv1_3 TLS13_"), "{log}");
    assert!(log.contains("sni=localhost"), "{log}");
    assert!(log.contains("peer-certificates=2"), "the client's chain reached the app: {log}");
}

#[test]
fn the_handshake_timeout_covers_the_tls_handshake() {
    let pki = Pki::new("timeout");
    let server = server_with(&pki, &rcgen::PKCS_ECDSA_P256_SHA256, &["--handshake-timeout-ms", "300"]);
    let port: u16 = server.tls_url.as_ref().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    let started = std::time::Instant::now();
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "dropped without a byte");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(250) && waited < std::time::Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn an_rsa_identity_serves_wss() {
    // rcgen on ring cannot generate RSA keys: the system's openssl makes the
    // key, rcgen signs a leaf for it with the test CA.
    let pki = Pki::new("rsa");
    let key_path = pki.dir.join("rsa.key");
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key_path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian's openssl package) makes the RSA test key");
    assert!(status.success(), "openssl could not make an RSA key");
    let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path).unwrap()).expect("an RSA PKCS#8 key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &pki.issuer).unwrap();
    let cert_path = pki.dir.join("rsa.pem");
    std::fs::write(&cert_path, format!("{}{}", leaf.pem(), pki.ca_pem)).unwrap();
    let (c, k) = (cert_path.display().to_string(), key_path.display().to_string());
    let server = Server::start(&["--tls-cert", &c, "--tls-key", &k]);
    echo_once(&wss_url(&server), client_config(&pki.ca_path(), None)).await.expect("wss echo with an RSA key");
}

#[test]
fn an_expired_certificate_is_a_warning_at_start_up() {
    let pki = Pki::new("expired");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    let (cert_path, key_path) = (pki.dir.join("old.pem"), pki.dir.join("old.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (c, k) = (cert_path.display().to_string(), key_path.display().to_string());
    let server = Server::start(&["--tls-cert", &c, "--tls-key", &k]);
    for _ in 0..100 {
        if server.stderr().contains("the certificate has expired") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(server.stderr().contains("the certificate has expired"), "{}", server.stderr());
}

/// The guest's linear memories, made by the test so it can read them: a
/// `wasmtime::MemoryCreator` whose memories are plain heap buffers (explicit
/// bounds checks, no guard pages) and leave a copy of their bytes behind
/// when the store drops them, when no wasm can touch them any more.
mod guest_memory {
    use std::sync::{Arc, Mutex};
    use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

    #[derive(Default)]
    pub struct Recorder {
        pub dropped: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    struct Recorded {
        bytes: Vec<u8>,
        maximum: Option<usize>,
        dropped: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Recorder {
        /// A wasmtime config whose linear memories come from this recorder.
        pub fn config(self: &Arc<Self>) -> wasmtime::Config {
            let mut config = wasmtime::Config::new();
            config
                .with_host_memory(Arc::clone(self) as Arc<dyn MemoryCreator>)
                .memory_reservation(0)
                .memory_reservation_for_growth(0)
                .memory_guard_size(0)
                .memory_may_move(true)
                .memory_init_cow(false)
                .signals_based_traps(false);
            config
        }
    }

    // SAFETY: every memory is a zero-filled heap buffer of the asked size;
    // with no reservation and no guard pages requested (see `config`),
    // wasmtime bounds-checks every access itself and allows moves on growth.
    unsafe impl MemoryCreator for Recorder {
        fn new_memory(
            &self,
            _ty: MemoryType,
            minimum: usize,
            maximum: Option<usize>,
            _reserved: Option<usize>,
            guard: usize,
        ) -> Result<Box<dyn LinearMemory>, String> {
            if guard != 0 {
                return Err(format!("the recorder cannot provide {guard} guard bytes"));
            }
            Ok(Box::new(Recorded { bytes: vec![0; minimum], maximum, dropped: Arc::clone(&self.dropped) }))
        }
    }

    // SAFETY: `as_ptr` points at `byte_size` initialised bytes; growth zero-fills
    // and may move the buffer, which the config allows.
    unsafe impl LinearMemory for Recorded {
        fn byte_size(&self) -> usize {
            self.bytes.len()
        }
        fn byte_capacity(&self) -> usize {
            self.bytes.capacity()
        }
        fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
            if self.maximum.is_some_and(|max| new_size > max) {
                wasmtime::bail!("memory maximum exceeded");
            }
            self.bytes.resize(new_size, 0);
            Ok(())
        }
        fn as_ptr(&self) -> *mut u8 {
            self.bytes.as_ptr().cast_mut()
        }
    }

    impl Drop for Recorded {
        fn drop(&mut self) {
            self.dropped.lock().unwrap().push(std::mem::take(&mut self.bytes));
        }
    }
}

/// The 32-byte private scalar inside an ECDSA P-256 PKCS#8 key: the
/// `ECPrivateKey` is `SEQUENCE { INTEGER 1, OCTET STRING (32) … }`.
fn p256_private_scalar(pkcs8: &[u8]) -> Vec<u8> {
    let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at = pkcs8.windows(marker.len()).position(|w| w == marker).expect("an ECPrivateKey in the PKCS#8 key");
    pkcs8[at + marker.len()..at + marker.len() + 32].to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The design's promise, checked: the TLS key lives in the host only. The
/// echo app runs in this process on a component whose linear memory the
/// test can read; after 1 000 `wss://` handshakes and echoes, no 12-byte
/// piece of the private key (scalar, PKCS#8 or PEM text) is in it, while a
/// message the clients sent is (so the scan does see guest data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_1000_tls_handshakes_the_guest_memory_holds_no_byte_of_the_private_key() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use wsbox::runner::{EMBEDDED_COMPONENT, WsboxComponent};

    let pki = Pki::new("keyscan");
    let (cert_path, key_path) = pki.leaf("server", &["localhost"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let key_pem = std::fs::read(&key_path).unwrap();
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).unwrap().secret_der().to_vec();
    let scalar = p256_private_scalar(&key_der);
    let tls = wsbox::tls::load_server_config(&wsbox::tls::TlsFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
        client_ca: None,
        http2: true,
    })
    .expect("the server identity loads");

    let recorder = Arc::new(guest_memory::Recorder::default());
    let component = WsboxComponent::from_bytes_with_config(EMBEDDED_COMPONENT, &recorder.config()).unwrap();
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut instance = component.instantiate(wsbox::sandbox::ListenPolicy::new([any_port]), Some(tls)).await.unwrap();
    let interrupter = instance.store.data().net.interrupter();
    let mut options = wsbox::apps::echo::EchoOptions::new(any_port);
    options.tls_listen = Some(any_port);
    options.shutdown_grace = std::time::Duration::from_secs(2);
    let stop = Arc::new(AtomicBool::new(false));
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let marker: Vec<u8> = (0..1000u32).flat_map(|i| format!("keyscan-marker-{i};").into_bytes()).take(4096).collect();
    let ca = pki.ca_path();
    let stop_clients = Arc::clone(&stop);
    let message = marker.clone();
    let clients = tokio::spawn(async move {
        let url = url_rx.await.unwrap().replace("127.0.0.1", "localhost");
        let config = client_config(&ca, None);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (url, config, next) = (url.clone(), Arc::clone(&config), Arc::clone(&next));
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < 1000 {
                        let (mut ws, _) =
                            connect_async_tls_with_config(&url, None, false, Some(Connector::Rustls(config.clone())))
                                .await
                                .expect("wss handshake");
                        ws.send(Message::text("hello")).await.unwrap();
                        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
                        ws.close(None).await.unwrap();
                        while ws.next().await.is_some() {}
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("a client worker");
        }
        // The control: one more message the scan must find.
        let (mut ws, _) =
            connect_async_tls_with_config(&url, None, false, Some(Connector::Rustls(config))).await.unwrap();
        ws.send(Message::binary(message.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(message));
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        stop_clients.store(true, Ordering::Release);
        interrupter.interrupt();
    });
    let mut url_tx = Some(url_tx);
    let signals = wsbox::apps::echo::Signals { stop: &stop, hand_over: None };
    wsbox::apps::echo::run(&mut instance, &options, signals, |url| {
        if url.starts_with("wss://") {
            let _ = url_tx.take().map(|tx| tx.send(url.to_string()));
        }
    })
    .await
    .expect("the echo app runs and stops");
    clients.await.expect("1000 wss clients echoed");
    drop(instance);

    let memories = std::mem::take(&mut *recorder.dropped.lock().unwrap());
    let total: usize = memories.iter().map(Vec::len).sum();
    assert!(total > 0, "the recorder saw no guest memory");
    assert!(
        memories.iter().any(|m| contains(m, &marker[marker.len() - 64..])),
        "the control failed: a message the guest echoed is not in its memory ({total} bytes scanned)"
    );
    for (what, secret) in [("private scalar", &scalar), ("PKCS#8 DER", &key_der), ("PEM file", &key_pem)] {
        for piece in secret.windows(12) {
            for memory in &memories {
                assert!(!contains(memory, piece), "a 12-byte piece of the {what} is in the guest's memory");
            }
        }
    }
}

/// SIGHUP re-reads the certificate and key under load: handshakes all
/// along succeed, new ones get the new certificate, established connections
/// keep echoing; a file that does not load is refused, logged, and the
/// certificate before it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_the_certificate_under_load_without_a_failed_handshake() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (old, new) = (Pki::new("rotate-old"), Pki::new("rotate-new"));
    let live = Pki::new("rotate-live");
    let names = ["localhost", "127.0.0.1"];
    let (old_cert, old_key) = old.leaf("server", &names, &rcgen::PKCS_ECDSA_P256_SHA256);
    let (new_cert, new_key) = new.leaf("server", &names, &rcgen::PKCS_ED25519);
    let (cert, key) = (live.dir.join("server.pem"), live.dir.join("server.key"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let either_ca = live.dir.join("either.pem");
    std::fs::write(&either_ca, format!("{}{}", old.ca_pem, new.ca_pem)).unwrap();
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start(&["--tls-cert", &cert_arg, "--tls-key", &key_arg]);
    let url = wss_url(&server);
    let (trusts_old, trusts_new) = (client_config(&old.ca_path(), None), client_config(&new.ca_path(), None));
    assert!(echo_once(&url, trusts_new.clone()).await.is_err(), "the new certificate is not served yet");

    // Established before the rotation, echoing through it.
    let mut established = Vec::new();
    for _ in 0..4 {
        let connector = Some(Connector::Rustls(trusts_old.clone()));
        established.push(connect_async_tls_with_config(&url, None, false, connector).await.expect("connect").0);
    }
    // Handshakes all along, trusting either CA.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let load = {
        let (stop, done, failed, url) = (stop.clone(), done.clone(), failed.clone(), url.clone());
        let config = without_resumption(client_config(&either_ca, None));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match echo_once(&url, config.clone()).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failed.lock().unwrap().push(e);
                        0
                    }
                };
            }
        })
    };
    echo_each(&mut established, "before").await;
    let before_rotation = wait_for_handshakes(&done, 1).await;

    // The new files, each replaced whole (as a deploy tool does), then SIGHUP.
    for (from, to) in [(&new_cert, &cert), (&new_key, &key)] {
        let staged = to.with_extension("staged");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    server.signal("HUP");
    let mut rotated = false;
    for _ in 0..200 {
        if echo_once(&url, trusts_new.clone()).await.is_ok() {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(rotated, "new handshakes get the new certificate\n{}", server.stderr());
    // A client without a session to resume meets the new certificate only.
    let fresh_trusting_old = without_resumption(client_config(&old.ca_path(), None));
    assert!(echo_once(&url, fresh_trusting_old).await.is_err(), "the old certificate is no longer served");
    echo_each(&mut established, "after").await;
    // The load's handshakes go on through the rotation (counted after it,
    // however slowly a busy machine runs the load task).
    wait_for_handshakes(&done, before_rotation + 2).await;

    // A broken certificate file: refused and logged, the new one stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    server.signal("HUP");
    for _ in 0..200 {
        if server.stderr().contains("TLS reload failed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let log = server.stderr();
    assert!(log.contains("TLS reload failed") && log.contains("server.pem"), "{log}");
    let fresh_trusting_new = without_resumption(client_config(&new.ca_path(), None));
    echo_once(&url, fresh_trusting_new).await.expect("the last good certificate stays");
    echo_each(&mut established, "still").await;

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(failed.lock().unwrap().is_empty(), "failed handshakes during the rotation: {:?}", failed.lock().unwrap());
    for mut ws in established {
        ws.close(None).await.unwrap();
    }
}

/// Waits (up to 20 s) until the load has completed `at_least` handshakes,
/// and returns the count then.
async fn wait_for_handshakes(done: &std::sync::atomic::AtomicUsize, at_least: usize) -> usize {
    for _ in 0..800 {
        let count = done.load(std::sync::atomic::Ordering::Relaxed);
        if count >= at_least {
            return count;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the load completed fewer than {at_least} handshakes in 20 s");
}

/// Over wss:// the PROXY header comes before the TLS handshake.
#[tokio::test]
async fn a_proxy_header_before_the_tls_handshake_names_the_client() {
    let pki = Pki::new("proxy");
    let server = server_with(
        &pki,
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &["--proxy-protocol", "--trusted-proxy", "127.0.0.1", "--log-level", "debug"],
    );
    let url = wss_url(&server);
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    // The header and the ClientHello in one write, as a proxy may send
    // them: what follows the header goes to TLS.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tcp = Prefixed { prefix: b"PROXY TCP4 198.51.100.4 192.0.2.1 6000 443\r\n".to_vec(), inner: tcp };
    let connector = Some(Connector::Rustls(client_config(&pki.ca_path(), None)));
    let (mut ws, _) = tokio_tungstenite::client_async_tls_with_config(&url, tcp, None, connector)
        .await
        .expect("wss behind the proxy");
    ws.send(Message::text("behind a proxy")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("behind a proxy"));
    for _ in 0..250 {
        if server.stderr().contains("peer=198.51.100.4:6000") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the app saw the proxy's address:\n{}", server.stderr());
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends `text` on each connection and checks its echo.
async fn echo_each(connections: &mut [Wss], text: &'static str) {
    for ws in connections {
        ws.send(Message::text(text)).await.expect("send on an established connection");
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await;
        assert_eq!(got.expect("echo in time").unwrap().unwrap(), Message::text(text));
    }
}

/// The same client configuration without TLS session resumption: each
/// handshake meets the server's certificate.
fn without_resumption(config: Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut config = (*config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A stream whose first write carries `prefix` before the caller's bytes
/// (in one segment on loopback).
struct Prefixed {
    prefix: Vec<u8>,
    inner: tokio::net::TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if self.prefix.is_empty() {
            return std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let first = [self.prefix.as_slice(), buf].concat();
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, &first) {
            Poll::Ready(Ok(n)) => {
                assert_eq!(n, first.len(), "a small first write goes out whole on loopback");
                self.prefix.clear();
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
