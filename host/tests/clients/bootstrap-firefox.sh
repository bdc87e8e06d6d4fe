#!/usr/bin/env bash
# Makes sure Debian's Firefox ESR is installed (for the echoclient.html test
# in Firefox, driven over WebDriver BiDi, which Firefox serves itself) and
# prints its path (WSBOX_FIREFOX overrides). Debian's package, not a test
# tool's own browser download.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/debian-package.sh" firefox-esr /usr/bin/firefox-esr WSBOX_FIREFOX
