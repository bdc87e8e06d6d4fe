#!/usr/bin/env bash
# Makes sure a program from one of Debian's packages is installed and
# prints its path: debian-package.sh PACKAGE BINARY [OVERRIDE_VARIABLE].
# A path in $OVERRIDE_VARIABLE wins; otherwise the package is installed
# with apt when BINARY is missing (as root, or through passwordless sudo).
# The package registry is reachable where a vendor's download site may not
# be. Idempotent; concurrent callers wait for one install.
set -euo pipefail
package="$1" binary="$2" override="${3:-}"
if [ -n "$override" ] && [ -n "${!override:-}" ]; then
  [ -x "${!override}" ] || { echo "error: $override=${!override} is not an executable" >&2; exit 2; }
  echo "${!override}"
  exit 0
fi
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    hint=""
    [ -n "$override" ] && hint=", or set $override to a $(basename "$binary") binary"
    echo "error: $binary is not installed and this user cannot install it: run 'sudo apt-get install -y $package'$hint" >&2
    exit 2
  fi
fi
exec 9>"/tmp/.wsbox-apt-install.lock"
flock 9
if [ ! -x "$binary" ]; then
  echo "installing Debian's $package package (once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq >&2
  "${sudo_cmd[@]}" apt-get install -y -qq "$package" >&2
fi
[ -x "$binary" ] || { echo "error: apt-get did not install $binary" >&2; exit 2; }
echo "$binary"
