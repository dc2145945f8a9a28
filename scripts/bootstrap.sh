#!/usr/bin/env bash
# Make this checkout runnable: Debian's redis-server when missing, a virtualenv with pinned
# requirements. `bootstrap.sh dev` also installs what tests need. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-run}
# CONSOLE_PYTHON: an interpreter that already has the requirements; `make run` uses it and nothing
# is installed (a console inside a network namespace has no network: tests/support/hosts.py).
if [ "$want" = run ] && [ -n "${CONSOLE_PYTHON:-}" ]; then exit 0; fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian package)…"
  apt_install redis-server
  # The console starts its own Redis processes; the distribution's service is not needed.
  (as_root systemctl disable --now redis-server >/dev/null 2>&1) || true
fi

# The two-host tests (tests/support/hosts.py) build network namespaces with ip and tc.
if [ "$want" = dev ] && ! { command -v ip && command -v tc; } >/dev/null 2>&1; then
  echo "installing iproute2 (Debian package, for the two-host tests)…"
  apt_install iproute2
fi

# The production pass of `make test` runs its own PostgreSQL cluster (initdb + pg_ctl in a
# temporary directory; Debian's binaries under /usr/lib/postgresql/<version>/bin).
if [ "$want" = dev ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql (Debian package, for the PostgreSQL test pass)…"
  apt_install postgresql
  # The tests start their own cluster; the distribution's service is not needed.
  (as_root systemctl disable --now postgresql >/dev/null 2>&1) || true
fi

# Browser tests drive Debian's Chromium headless (Playwright never downloads a browser here).
if [ "$want" = dev ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package, for the browser tests)…"
  apt_install chromium
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating virtualenv .venv…"
  "$PY" -m venv .venv
fi
req=requirements.txt
[ "$want" = dev ] && req=requirements-dev.txt
stamp=.venv/.installed-$(sha256sum requirements.txt "$req" | sha256sum | cut -c1-16)-$want
if [ ! -f "$stamp" ]; then
  echo "installing Python requirements ($req)…"
  .venv/bin/pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/pip install -q -r "$req" 2>&1 | grep -v "^WARNING: Location" || true
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "pip install failed"; exit 1; }
  touch "$stamp"
fi
