//! The WASI binding (world `server-wasi`: the component listens through
//! `wasi:sockets` itself) served by wsbox (`--binding wasi`): the same echo
//! as the host-fed component, and 1 000 concurrent connections without
//! stalling. Past ~128 sockets per poll, tokio's cooperative budget used to
//! make wasmtime-wasi 48 answer every `check-write` with 0 (wasmtime issue
//! #14174); the host runs WASI-binding calls unconstrained.

mod support;

use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasi_binding_echoes_text_binary_ping_and_close() {
    let server = Server::start(&["--binding", "wasi"]);
    support::echo_checks(&server.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasi_binding_holds_1000_connections_without_stalling() {
    let server = Server::start(&["--binding", "wasi"]);
    support::many_peers(&server.url, 1000, 20).await;
    support::echo_checks(&server.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasi_binding_refuses_tls_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("wsbox-wasi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsbox"))
        .args(["--binding", "wasi", "--listen", "127.0.0.1:0", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("wss:// needs the host-fed binding"), "{stderr}");
}
