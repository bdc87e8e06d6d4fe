#!/usr/bin/env bash
# Makes sure the stock wasmtime CLI (pinned) is installed under .cache/ and
# prints its path. It comes from crates.io (`cargo install wasmtime-cli`,
# its published lock file, only what `wasmtime run` of a component needs);
# the first run builds it, ~6 minutes on 2 cores. Idempotent.
# WSBOX_WASMTIME_CLI=/path/to/wasmtime uses that binary instead.
set -euo pipefail
VERSION=48.0.8
if [ -n "${WSBOX_WASMTIME_CLI:-}" ]; then
  [ -x "$WSBOX_WASMTIME_CLI" ] || { echo "error: WSBOX_WASMTIME_CLI=$WSBOX_WASMTIME_CLI is not an executable" >&2; exit 2; }
  echo "$WSBOX_WASMTIME_CLI"
  exit 0
fi
root="$(cd "$(dirname "$0")/../../.." && pwd)/.cache/wasmtime-cli-$VERSION"
bin="$root/bin/wasmtime"
exec 9>"/tmp/.wsbox-wasmtime-cli-$VERSION.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "installing wasmtime-cli $VERSION from crates.io into $root (once, ~6 minutes)" >&2
  if ! cargo install wasmtime-cli --version "=$VERSION" --locked --root "$root" \
      --no-default-features --features run,component-model,cranelift,parallel-compilation \
      --target-dir "$root/build" >&2; then
    echo "error: could not install wasmtime-cli $VERSION with cargo (is crates.io reachable?); or set WSBOX_WASMTIME_CLI to a wasmtime $VERSION binary" >&2
    exit 2
  fi
  rm -rf "$root/build"
fi
"$bin" --version >&2
echo "$bin"
