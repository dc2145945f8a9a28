#!/usr/bin/env bash
# Two hosts on one machine (tests/support/hosts.py, the bed the cross-host tests use):
#   scripts/wan.sh up [RATE=50mbit] [DELAY_MS=20]   network namespaces roc-east, roc-west, roc-wan
#   scripts/wan.sh status
#   scripts/wan.sh set  (RATE=…|none, DELAY_MS=…, CUT=1, RESTORE=1: change the running link)
#   scripts/wan.sh down                              stops everything in them and deletes them
# `up` prints how to start a console in each (`ip netns exec roc-east env … make run`).
# Needs root (network namespaces, tc).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh run
export CONSOLE_PYTHON=${CONSOLE_PYTHON:-$PWD/.venv/bin/python}
PY=$CONSOLE_PYTHON
cmd=${1:-status}
case "$cmd" in
  up)   exec "$PY" -m tests.support.hosts up --delay-ms "${DELAY_MS:-0}" --rate "${RATE:-}" ;;
  set)
    args=()
    [ -n "${DELAY_MS:-}" ] && args+=(--delay-ms "$DELAY_MS")
    [ -n "${RATE:-}" ] && args+=(--rate "$RATE")
    [ -n "${CUT:-}" ] && args+=(--cut)
    [ -n "${RESTORE:-}" ] && args+=(--restore)
    exec "$PY" -m tests.support.hosts set "${args[@]}" ;;
  down|status) exec "$PY" -m tests.support.hosts "$cmd" ;;
  *) echo "usage: scripts/wan.sh up|down|status|set" >&2; exit 2 ;;
esac
