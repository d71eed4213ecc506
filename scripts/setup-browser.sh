#!/usr/bin/env bash
# Installs what the browser tests (tests/platform/web) need: Debian's chromium and the chromedriver
# built from the same source (so the two versions always match), and the Selenium client.
# Idempotent; no browser is downloaded from anywhere but Debian's archive.
# The Python used is the project's venv when it exists, else BROKERAGE_PYTHON or python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_ensure chromium chromium-driver fonts-dejavu-core

python="${BROKERAGE_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$PY" ]; then python="$PY"; else python="$(command -v python3)"; fi
fi
if ! "$python" -c 'import selenium' 2>/dev/null; then
  say "installing the Selenium client into $python"
  "$python" -m pip install -q "selenium>=4.20"
fi

# Both binaries run (the tests start them headless through the driver).
/usr/bin/chromium --version >/dev/null 2>&1
/usr/bin/chromedriver --version >/dev/null
say "browser ready: $(/usr/bin/chromium --version 2>/dev/null)"
