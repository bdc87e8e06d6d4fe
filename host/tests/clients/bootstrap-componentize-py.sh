#!/usr/bin/env bash
# Makes sure componentize-py (pinned) is installed in a virtualenv under
# .cache/ and prints the path of its command. From PyPI, for Python 3.10+
# (python3 on PATH, or WSBOX_PYTHON3). Idempotent.
set -euo pipefail
VERSION=0.25.1
python="${WSBOX_PYTHON3:-python3}"
command -v "$python" >/dev/null || { echo "error: $python is not installed (Python 3.10 or newer; set WSBOX_PYTHON3)" >&2; exit 2; }
venv="$(cd "$(dirname "$0")/../../.." && pwd)/.cache/componentize-py-$VERSION"
exec 9>"/tmp/.wsbox-componentize-py-$VERSION.lock"
flock 9
if [ ! -x "$venv/bin/componentize-py" ]; then
  echo "installing componentize-py $VERSION from PyPI into $venv (once)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  if ! "$venv/bin/pip" install --quiet "componentize-py==$VERSION" >&2; then
    echo "error: pip could not install componentize-py $VERSION (is PyPI reachable?)" >&2
    exit 2
  fi
fi
echo "$venv/bin/componentize-py"
