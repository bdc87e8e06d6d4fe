#!/usr/bin/env bash
# Makes sure `wac` (the WebAssembly composition tool, pinned) is installed
# under .cache/ and prints its path. From crates.io (`cargo install wac-cli`
# with its published lock file, without the registry feature); the first run
# builds it, ~3 minutes on 2 cores. Idempotent. WSBOX_WAC=/path/to/wac uses
# that binary instead.
set -euo pipefail
VERSION=0.12.0
if [ -n "${WSBOX_WAC:-}" ]; then
  [ -x "$WSBOX_WAC" ] || { echo "error: WSBOX_WAC=$WSBOX_WAC is not an executable" >&2; exit 2; }
  echo "$WSBOX_WAC"
  exit 0
fi
root="$(cd "$(dirname "$0")/../../.." && pwd)/.cache/wac-cli-$VERSION"
bin="$root/bin/wac"
exec 9>"/tmp/.wsbox-wac-cli-$VERSION.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "installing wac-cli $VERSION from crates.io into $root (once, ~3 minutes)" >&2
  if ! cargo install wac-cli --version "=$VERSION" --locked --root "$root" --no-default-features --features wit \
      --target-dir "$root/build" >&2; then
    echo "error: could not install wac-cli $VERSION with cargo (is crates.io reachable?); or set WSBOX_WAC to a wac binary" >&2
    exit 2
  fi
  rm -rf "$root/build"
fi
echo "$bin"
