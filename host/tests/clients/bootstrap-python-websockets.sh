#!/usr/bin/env bash
# Installs the Python `websockets` client (an independent implementation that
# offers permessage-deflate by default) into a cached venv and prints the
# venv's python. Idempotent. Cache: $WSBOX_CACHE_DIR (default <repo>/.cache).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cache="${WSBOX_CACHE_DIR:-$root/.cache}"
venv="$cache/py-websockets"
mkdir -p "$cache"
# Tests may run this concurrently: one installs, the others wait.
exec 9>"$cache/.py-websockets.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 is needed for the Python websockets client test (apt install python3 python3-venv)" >&2
  exit 2
fi
mkdir -p "$cache"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check websockets==15.0.1 >&2
echo "$venv/bin/python"
