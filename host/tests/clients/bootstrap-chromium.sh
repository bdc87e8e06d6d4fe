#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed (for the echoclient.html test)
# and prints its path. Installs the `chromium` package with apt when missing
# (as root, or through passwordless sudo). Debian's package, not a test
# tool's own browser download: the package registry is reachable where a
# browser vendor's download site may not be. Idempotent.
set -euo pipefail
for candidate in "${WSBOX_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    exit 0
  fi
done
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    echo "error: Chromium is not installed and this user cannot install it: run 'sudo apt-get install -y chromium', or set WSBOX_CHROMIUM to a Chromium binary" >&2
    exit 2
  fi
fi
exec 9>/tmp/.wsbox-chromium-install.lock
flock 9
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium package (once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq >&2
  "${sudo_cmd[@]}" apt-get install -y -qq chromium >&2
fi
[ -x /usr/bin/chromium ] || { echo "error: apt-get did not install /usr/bin/chromium" >&2; exit 2; }
echo /usr/bin/chromium
