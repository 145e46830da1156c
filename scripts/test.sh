#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run runs exactly this).
# Installs what the suite needs into .venv, makes sure PostgreSQL runs, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
ensure_venv "[dev]"
ensure_postgres
ensure_chromium
exec_pytest "$@"
