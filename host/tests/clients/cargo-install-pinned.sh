#!/usr/bin/env bash
# Installs a pinned tool from crates.io into .cache/<crate>-<version>/ once
# (with the crate's published lock file) and prints the binary's path.
# Usage: cargo-install-pinned.sh CRATE VERSION BINARY "FEATURES" MINUTES [ARGS...]
# The bootstrap-*.sh scripts name what they need (ARGS go to `cargo
# install`, e.g. `--config` profile settings); idempotent.
# The tools only run tests (a component compiled once, a few messages), so
# they are built at opt-level 1 without debug info (about half the build
# time of a full release build on 2 cores, and the same code), unless ARGS
# ask for less.
set -euo pipefail
crate=$1 version=$2 binary=$3 features=$4 minutes=$5
shift 5
root="$(cd "$(dirname "$0")/../../.." && pwd)/.cache/$crate-$version"
bin="$root/bin/$binary"
exec 9>"/tmp/.wsbox-$crate-$version.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "installing $crate $version from crates.io into $root (once, ~$minutes minutes)" >&2
  if ! CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false \
      cargo install "$crate" --version "=$version" --locked --root "$root" \
      --no-default-features --features "$features" --target-dir "$root/build" "$@" >&2; then
    echo "error: could not install $crate $version with cargo (is crates.io reachable?)" >&2
    exit 2
  fi
  rm -rf "$root/build"
fi
echo "$bin"
