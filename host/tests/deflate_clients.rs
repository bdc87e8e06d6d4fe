//! permessage-deflate against an independent client: Python `websockets`
//! (it offers deflate by default), installed into a cached venv by
//! `tests/clients/bootstrap-python-websockets.sh`.

mod support;

use std::path::Path;
use std::process::Command;
use support::Server;

fn python_with_websockets() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/bootstrap-python-websockets.sh");
    let out = Command::new("bash").arg(&script).output().expect("run the bootstrap script");
    assert!(
        out.status.success(),
        "could not install Python websockets with {}:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string()
}

#[test]
fn python_websockets_negotiates_deflate_and_echoes() {
    let python = python_with_websockets();
    let server = Server::start(&[]);
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/deflate_echo.py");
    let out = Command::new(&python).arg(&client).arg(&server.url).output().expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "Python client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok: 5 echoes with permessage-deflate"), "{stdout}");
}

#[test]
fn no_deflate_declines_the_python_offer() {
    let python = python_with_websockets();
    let server = Server::start(&["--no-deflate"]);
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/deflate_echo.py");
    let out = Command::new(&python).arg(&client).arg(&server.url).output().expect("run the Python client");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deflate not negotiated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
