#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (Playwright drives it; no browser download).
# Installs it with apt-get when missing and we are root; otherwise says so and leaves the tests to decide
# (they skip locally and fail in CI).
set -euo pipefail
chromium="${CHILDINDEX_TEST_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium from Debian's packages for the browser tests..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "Chromium is not installed at $chromium and cannot be installed here (needs root and apt-get)." >&2
exit 0
