//! Building the guest component (`guest/component`) for `wasm32-wasip2`,
//! said once: the host's build script builds its three variants with it, and
//! tests build a variant with test-only features (`faults`) with it.
//!
//! The nested cargo gets its own target directory (no lock contention with
//! the outer build) and none of the outer build's flags (they are for the
//! host's target, not wasm).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's target.
pub const TARGET: &str = "wasm32-wasip2";

/// What the guest is built from, relative to the repository root (a build
/// script reruns when one of them changes).
pub const INPUTS: &[&str] = &[
    "guest/component/src",
    "guest/component/Cargo.toml",
    "guest/component/Cargo.lock",
    "guest/component/.cargo/config.toml",
    "guest/core/src",
    "guest/core/Cargo.toml",
    "guest/runtime/src",
    "guest/runtime/Cargo.toml",
    "transport/src",
    "defaults/src",
    "defaults/Cargo.toml",
    "transport/Cargo.toml",
    "wit",
];

/// Variables of the outer build that must not reach the guest's cargo.
const OUTER_BUILD_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PROFILE_RELEASE_DEBUG",
    "CARGO_PROFILE_RELEASE_LTO",
];

/// Builds `root/guest/component` with `features` (comma-separated) into
/// `target_dir`; returns the `.wasm` it wrote (the next build overwrites it:
/// copy it to keep it).
pub fn build(root: &Path, target_dir: &Path, features: Option<&str>) -> Result<PathBuf, String> {
    let guest = root.join("guest/component");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guest)
        .args(["build", "--release", "--locked", "--target", TARGET, "--target-dir"])
        .arg(target_dir);
    if let Some(features) = features {
        cmd.args(["--features", features]);
    }
    for var in OUTER_BUILD_VARS {
        cmd.env_remove(var);
    }
    let status = cmd.status().map_err(|e| format!("could not run cargo to build the guest component: {e}"))?;
    if !status.success() {
        return Err(format!("building the guest component in {} failed (see the errors above)", guest.display()));
    }
    let wasm = target_dir.join(TARGET).join("release").join("wsbox_component.wasm");
    if !wasm.exists() {
        return Err(format!("the guest build did not produce {}", wasm.display()));
    }
    Ok(wasm)
}

/// Adds the wasm target when the toolchain lacks it: rustup installs the
/// targets of `rust-toolchain.toml` only when it installs the toolchain.
/// Returns whether it had to.
pub fn ensure_target() -> Result<bool, String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(TARGET).exists();
    if sysroot.as_deref().is_some_and(installed) {
        return Ok(false);
    }
    let added = Command::new("rustup").args(["target", "add", TARGET]).status().is_ok_and(|s| s.success());
    if !added {
        return Err(format!(
            "the {TARGET} target is not installed and `rustup target add {TARGET}` failed; \
             run `rustup target add {TARGET}` (the toolchain in rust-toolchain.toml) and build again"
        ));
    }
    Ok(true)
}
