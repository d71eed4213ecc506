#!/usr/bin/env bash
# The test command: installs and starts everything the tests need, then runs them all.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/platform -x).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_ensure git curl redis-server
venv_ensure
bash "$REPO_ROOT/scripts/setup-sandbox.sh"
bash "$REPO_ROOT/scripts/setup-browser.sh"
BROKERAGE_TEST_DATABASE_URL="$(postgres_ensure)"
REDIS_URL="$(redis_ensure)"
export BROKERAGE_TEST_DATABASE_URL REDIS_URL PATH="$VENV/bin:$PATH"

cd "$REPO_ROOT"
say "checking the layers (import-linter, pyproject.toml)"
"$VENV/bin/lint-imports" --no-cache

say "running the tests"
exec "$PY" -m pytest "$@"
