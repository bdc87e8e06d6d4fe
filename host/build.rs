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
//! They are also copied to `target/<profile>/components/`. The nested cargo
//! has its own target directory under `OUT_DIR` (no lock contention with the
//! outer build) and none of the outer build's flags (they are for the
//! host's target, not wasm).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ sits in the workspace root");
    let guest = root.join("guest/component");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for path in [
        "guest/component/src",
        "guest/component/Cargo.toml",
        "guest/component/Cargo.lock",
        "guest/component/.cargo/config.toml",
        "guest/core/src",
        "guest/core/Cargo.toml",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    ensure_target();
    let target_dir = out_dir.join("guest-target");
    // OUT_DIR is <target>/<profile>/build/wsbox-<hash>/out.
    let components = out_dir.ancestors().nth(3).map(|profile| profile.join("components"));
    for (file, features, env_var) in [
        ("wsbox-server.wasm", None, "WSBOX_COMPONENT_PATH"),
        ("wsbox-server-wasi.wasm", Some("wasi-sockets"), "WSBOX_WASI_COMPONENT_PATH"),
        ("wsbox-echo.wasm", Some("command"), "WSBOX_COMMAND_COMPONENT_PATH"),
    ] {
        let built = build_guest(&guest, &target_dir, features);
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

/// Builds the component crate with `features`; returns the `.wasm` it wrote.
fn build_guest(guest: &Path, target_dir: &Path, features: Option<&str>) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(guest).args(["build", "--release", "--locked", "--target", TARGET, "--target-dir"]).arg(target_dir);
    if let Some(features) = features {
        cmd.args(["--features", features]);
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("could not run cargo to build the guest component: {e}"));
    if !status.success() {
        panic!("building the guest component in {} failed (see the errors above)", guest.display());
    }
    let wasm = target_dir.join(TARGET).join("release").join("wsbox_component.wasm");
    assert!(wasm.exists(), "the guest build did not produce {}", wasm.display());
    wasm
}

/// Adds the wasm target when the toolchain lacks it: rustup installs the
/// targets of `rust-toolchain.toml` only when it installs the toolchain.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(TARGET).exists();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    println!("cargo:warning=adding the {TARGET} target with rustup");
    let added = Command::new("rustup").args(["target", "add", TARGET]).status().is_ok_and(|s| s.success());
    if !added {
        panic!(
            "the {TARGET} target is not installed and `rustup target add {TARGET}` failed; \
             run `rustup target add {TARGET}` (the toolchain in rust-toolchain.toml) and build again"
        );
    }
}
