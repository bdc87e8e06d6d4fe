#!/usr/bin/env bash
# Prepares the Node example: installs jco and preview2-shim as pinned in
# package-lock.json (npm ci, from the npm registry; once, then only when the
# lock changes), and transpiles components/wsbox-server-wasi.wasm into gen/.
# Write the component first: `wsbox components --out examples/node/components`
# (or `cargo run --release -- components --out examples/node/components`).
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "error: Node.js (20 or newer) is not installed: apt-get install nodejs, or see https://nodejs.org" >&2; exit 2; }
[ -f components/wsbox-server-wasi.wasm ] || { echo "error: components/wsbox-server-wasi.wasm is missing: run 'cargo run --release -- components --out examples/node/components' first" >&2; exit 2; }
exec 9>/tmp/.wsbox-node-example.lock
flock 9
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing jco and preview2-shim from package-lock.json (once)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2 || { echo "error: npm ci failed (is the npm registry reachable?)" >&2; exit 2; }
fi
npx --no-install jco transpile components/wsbox-server-wasi.wasm --out-dir gen --name wsbox --quiet >&2
