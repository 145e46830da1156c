# Shared set-up for scripts/test.sh and scripts/quickstart.sh (sourced, not run).
PY=${PYTHON:-python3}
VENV=${TONEMATCH_VENV:-.venv}

ensure_venv() {
  # $1: the extras to install, e.g. "[dev]" for the test suite; none for the quick start.
  local extras=${1-}
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e ".$extras"
}

ensure_postgres() {
  # The tests use a real PostgreSQL: TONEMATCH_TEST_PG_URL, default the local server (trust auth).
  export TONEMATCH_TEST_PG_URL=${TONEMATCH_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}
  if "$VENV/bin/python" - <<'PYEOF' 2>/dev/null; then return 0; fi
import os, psycopg
psycopg.connect(os.environ["TONEMATCH_TEST_PG_URL"], connect_timeout=3).close()
PYEOF
  echo "PostgreSQL not reachable at $TONEMATCH_TEST_PG_URL; starting the local cluster" >&2
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q postgresql >/dev/null && \
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  fi
  for _ in $(seq 1 30); do
    if "$VENV/bin/python" -c "import os,psycopg; psycopg.connect(os.environ['TONEMATCH_TEST_PG_URL'], connect_timeout=2).close()" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  echo "PostgreSQL is still not reachable at $TONEMATCH_TEST_PG_URL" >&2
  return 1
}

ensure_chromium() {
  # The console tests drive Debian's chromium through Playwright (no browser download).
  if [ -x /usr/bin/chromium ]; then return 0; fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q chromium >/dev/null 2>&1 || \
      (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) || \
      echo "could not install chromium; browser tests will fail" >&2
  fi
}

exec_pytest() {
  # pytest exits 5 when it collected no test: that is a failure here, never a pass.
  set +e
  "$VENV/bin/python" -m pytest "$@"
  rc=$?
  set -e
  if [ "$rc" = 5 ]; then echo "no tests ran" >&2; exit 1; fi
  exit "$rc"
}
