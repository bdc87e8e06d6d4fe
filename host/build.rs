//! Builds the guest component (`guest/component`) for `wasm32-wasip2` in its
//! three variants and hands their paths to the host crate, so that `cargo
//! run --release` needs nothing else:
//!
//! - `wsbox-server.wasm` (world `server`): the host-fed component wsbox runs;
//! - `wsbox-server-wasi.wasm` (world `server-wasi`, feature `wasi-sockets`):
//!   the same API over `wasi:sockets`, for any WASI 0.2 host;
//! - `wsbox-echo.wasm` (world `echo-command`, feature `command`): the echo
//!   app behind `wasi:cli/run`, for `wasmtime run`.
//!
//! They are also copied to `target/<profile>/components/`. How the guest
//! is built is `wsbox-guest-build`'s (shared with the tests that build a
//! variant).

use std::env;
use std::path::PathBuf;
use wsbox_guest_build::{INPUTS, build, ensure_target};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ sits in the workspace root");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for path in INPUTS {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    match ensure_target() {
        Ok(true) => println!("cargo:warning=added the wasm32-wasip2 target with rustup"),
        Ok(false) => {}
        Err(e) => panic!("{e}"),
    }
    let target_dir = out_dir.join("guest-target");
    // OUT_DIR is <target>/<profile>/build/wsbox-<hash>/out.
    let components = out_dir.ancestors().nth(3).map(|profile| profile.join("components"));
    for (file, features, env_var) in [
        ("wsbox-server.wasm", None, "WSBOX_COMPONENT_PATH"),
        ("wsbox-server-wasi.wasm", Some("wasi-sockets"), "WSBOX_WASI_COMPONENT_PATH"),
        ("wsbox-echo.wasm", Some("command"), "WSBOX_COMMAND_COMPONENT_PATH"),
    ] {
        let built = build(root, &target_dir, features).unwrap_or_else(|e| panic!("{e}"));
        // Each variant is kept under its own name: the next build overwrites
        // the crate's output file.
        let wasm = out_dir.join(file);
        std::fs::copy(&built, &wasm)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), wasm.display()));
        if let Some(dir) = &components {
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::copy(&wasm, dir.join(file));
        }
        println!("cargo:rustc-env={env_var}={}", wasm.display());
    }
}
