#!/usr/bin/env bash
# Makes sure the stock wasmtime CLI (pinned) is installed under .cache/ and
# prints its path: wasmtime-cli from crates.io with only what `wasmtime run`
# of a component needs; the first run builds it, ~13 minutes on 2 cores.
# WSBOX_WASMTIME_CLI=/path/to/wasmtime uses that binary instead.
set -euo pipefail
if [ -n "${WSBOX_WASMTIME_CLI:-}" ]; then
  [ -x "$WSBOX_WASMTIME_CLI" ] || { echo "error: WSBOX_WASMTIME_CLI=$WSBOX_WASMTIME_CLI is not an executable" >&2; exit 2; }
  echo "$WSBOX_WASMTIME_CLI"
  exit 0
fi
bin=$(bash "$(dirname "$0")/cargo-install-pinned.sh" wasmtime-cli 48.0.8 wasmtime \
  run,component-model,cranelift,parallel-compilation 13) \
  || { echo "error: or set WSBOX_WASMTIME_CLI to a wasmtime 48.0.8 binary" >&2; exit 2; }
"$bin" --version >&2
echo "$bin"
