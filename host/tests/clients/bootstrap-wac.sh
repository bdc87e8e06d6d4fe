#!/usr/bin/env bash
# Makes sure `wac` (the WebAssembly composition tool, pinned) is installed
# under .cache/ and prints its path: wac-cli from crates.io without the
# registry feature; the first run builds it, ~1 minute on 2 cores.
# Unoptimised: composing the test's few small components takes the same
# time either way, and the build half the CPU (measured: 95 against 202
# CPU-seconds at opt-level 1).
# WSBOX_WAC=/path/to/wac uses that binary instead.
set -euo pipefail
if [ -n "${WSBOX_WAC:-}" ]; then
  [ -x "$WSBOX_WAC" ] || { echo "error: WSBOX_WAC=$WSBOX_WAC is not an executable" >&2; exit 2; }
  echo "$WSBOX_WAC"
  exit 0
fi
bash "$(dirname "$0")/cargo-install-pinned.sh" wac-cli 0.12.0 wac wit 1 --config profile.release.opt-level=0 \
  || { echo "error: or set WSBOX_WAC to a wac 0.12 binary" >&2; exit 2; }
