#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed (for the echoclient.html test)
# and prints its path (WSBOX_CHROMIUM overrides). Debian's package, not a
# test tool's own browser download.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/debian-package.sh" chromium /usr/bin/chromium WSBOX_CHROMIUM
