#!/usr/bin/env bash
# Installs Autobahn|Testsuite's `wstest` into a cached Python 2.7 virtualenv
# (it is Python 2.7 only) and prints the path of the `wstest` executable.
# Idempotent: a working install is reused. The cache is
# $WSBOX_CACHE_DIR (default: <repo>/.cache), gitignored.
#
# Recipe: a Python 3 venv holding
# virtualenv==20.21.1 creates the 2.7 venv from pyenv's 2.7.18, then pip
# installs autobahntestsuite==25.10.1 with the pins in
# wstest-constraints-py27.txt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cache="${WSBOX_CACHE_DIR:-$root/.cache}"
venv="$cache/wstest-py27"
wstest="$venv/bin/wstest"
mkdir -p "$cache"
# Concurrent callers: one installs, the others wait.
exec 9>"$cache/.wstest.lock"
flock 9

if [ -x "$wstest" ] && "$venv/bin/python" -c 'import autobahntestsuite' 2>/dev/null; then
  echo "$wstest"
  exit 0
fi

find_python27() {
  local candidates=("${WSBOX_PYTHON27:-}" "$HOME/.pyenv/versions/2.7.18/bin/python2.7")
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root 2>/dev/null)/versions/2.7.18/bin/python2.7")
  fi
  candidates+=("$(command -v python2.7 2>/dev/null || true)")
  for c in "${candidates[@]}"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if ! py27="$(find_python27)"; then
  cat >&2 <<MSG
error: Python 2.7 was not found; Autobahn|Testsuite (wstest) runs only on Python 2.7.
  Install it with pyenv:   pyenv install 2.7.18
  or point to one:         WSBOX_PYTHON27=/path/to/python2.7
MSG
  exit 2
fi

mkdir -p "$cache"
echo "bootstrapping wstest with $py27 into $venv (about 30 s)" >&2
if [ ! -x "$cache/virtualenv-py3/bin/virtualenv" ]; then
  python3 -m venv "$cache/virtualenv-py3" >&2
  "$cache/virtualenv-py3/bin/pip" install --quiet --disable-pip-version-check virtualenv==20.21.1 >&2
fi
rm -rf "$venv"
"$cache/virtualenv-py3/bin/virtualenv" --quiet -p "$py27" "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-python-version-warning \
  -c "$here/wstest-constraints-py27.txt" autobahntestsuite==25.10.1 >&2
"$venv/bin/python" -c 'import autobahntestsuite' >&2
echo "$wstest"
