#!/usr/bin/env bash
# Makes sure Debian's nats-server is installed (for the topics-over-NATS
# test, which starts and stops its own on a loopback port) and prints its
# path (WSBOX_NATS_SERVER overrides).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/debian-package.sh" nats-server /usr/sbin/nats-server WSBOX_NATS_SERVER
