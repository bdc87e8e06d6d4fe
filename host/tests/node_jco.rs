//! Node.js via jco: the WASI component (world `server-wasi`) transpiled by
//! jco 1.35 and run on Node with preview2-shim 0.26 (both pinned in
//! `examples/node/package-lock.json`), driven by `examples/node/echo-server.mjs`
//! as Qt's echo example drives its server. Checked with a real client: echo,
//! ping/pong, close codes, and 1 000 concurrent peers losing nothing.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::Server;

/// Writes the components, installs jco, transpiles; returns the example's directory.
fn prepare_example() -> PathBuf {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/node");
    support::write_components(&example.join("components"));
    support::bootstrap("examples/node/bootstrap.sh");
    example
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasi_component_under_node_and_jco_serves_qts_echo_example() {
    let example = prepare_example();
    let mut node = Command::new("node");
    node.current_dir(&example).args(["echo-server.mjs", "--listen", "127.0.0.1:0"]);
    let server = Server::spawn(node, false);
    support::echo_checks(&server.url).await;
    support::many_peers(&server.url, 1000, 20).await;
    support::echo_checks(&server.url).await;
}
