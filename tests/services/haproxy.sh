#!/usr/bin/env bash
# Make sure Debian's HAProxy is installed for the two-node test (tests/ops/test_two_nodes.py starts it
# itself, on loopback, with a config of its own in a temporary folder; nothing runs as a service).
# Installs it with apt-get when missing and we are root; otherwise says so and leaves the test to
# decide (it skips locally and fails in CI).
set -euo pipefail
haproxy="${CHILDINDEX_TEST_HAPROXY:-/usr/sbin/haproxy}"
if [ -x "$haproxy" ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing HAProxy from Debian's packages for the two-node test..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null
  # The package starts a system service: the test runs its own haproxy, so stop that one.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop haproxy >/dev/null 2>&1 || true; fi
  exit 0
fi
echo "HAProxy is not installed at $haproxy and cannot be installed here (needs root and apt-get)." >&2
exit 0
