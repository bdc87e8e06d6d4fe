#!/usr/bin/env bash
# Makes sure Bun (pinned) is installed under .cache/ and prints the path of
# its binary (WSBOX_BUN overrides). From the npm registry: the package of
# Bun's Linux x64 build, which carries the binary itself. Idempotent.
set -euo pipefail
VERSION=1.4.4
if [ -n "${WSBOX_BUN:-}" ]; then
  [ -x "$WSBOX_BUN" ] || { echo "error: WSBOX_BUN=$WSBOX_BUN is not an executable" >&2; exit 2; }
  echo "$WSBOX_BUN"
  exit 0
fi
case "$(uname -sm)" in
  "Linux x86_64") package="@oven/bun-linux-x64" ;;
  "Linux aarch64") package="@oven/bun-linux-aarch64" ;;
  *) echo "error: no pinned Bun package for $(uname -sm); set WSBOX_BUN to a Bun $VERSION binary" >&2; exit 2 ;;
esac
command -v npm >/dev/null || { echo "error: npm is not installed (Node.js's package manager; Debian: apt-get install npm), or set WSBOX_BUN" >&2; exit 2; }
dir="$(cd "$(dirname "$0")/.." && pwd)/.cache/bun-$VERSION"
bun="$dir/node_modules/$package/bin/bun"
exec 9>"/tmp/.wsbox-bun-$VERSION.lock"
flock 9
if [ ! -x "$bun" ] || [ "$("$bun" --version 2>/dev/null)" != "$VERSION" ]; then
  echo "installing $package@$VERSION from the npm registry into $dir (once)" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  if ! npm install --no-save --ignore-scripts --no-audit --no-fund --prefix "$dir" "$package@$VERSION" >&2; then
    echo "error: npm could not install $package@$VERSION (is the npm registry reachable?)" >&2
    exit 2
  fi
fi
echo "$bun"
