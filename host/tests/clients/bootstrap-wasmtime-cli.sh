#!/usr/bin/env bash
# Makes sure the stock wasmtime CLI (pinned) is installed under .cache/ and
# prints its path: wasmtime-cli from crates.io with only what `wasmtime run`
# of a component needs; the first run builds it, ~4 minutes on 2 cores.
# Unoptimised but for the compiler's pipeline (cranelift, regalloc2,
# wasmparser at opt-level 1): the test compiles one small component, which
# takes under a second either way, and the build takes ~40% less CPU than
# at opt-level 1 throughout (measured: ~400 against 640 CPU-seconds).
# WSBOX_WASMTIME_CLI=/path/to/wasmtime uses that binary instead.
set -euo pipefail
if [ -n "${WSBOX_WASMTIME_CLI:-}" ]; then
  [ -x "$WSBOX_WASMTIME_CLI" ] || { echo "error: WSBOX_WASMTIME_CLI=$WSBOX_WASMTIME_CLI is not an executable" >&2; exit 2; }
  echo "$WSBOX_WASMTIME_CLI"
  exit 0
fi
optimised=(cranelift-codegen cranelift-assembler-x64 cranelift-frontend regalloc2 wasmtime-internal-cranelift wasmparser)
args=(--config profile.release.opt-level=0)
for crate in "${optimised[@]}"; do
  args+=(--config "profile.release.package.$crate.opt-level=1")
done
bin=$(bash "$(dirname "$0")/cargo-install-pinned.sh" wasmtime-cli 48.0.8 wasmtime \
  run,component-model,cranelift,parallel-compilation 4 "${args[@]}") \
  || { echo "error: or set WSBOX_WASMTIME_CLI to a wasmtime 48.0.8 binary" >&2; exit 2; }
"$bin" --version >&2
echo "$bin"
