#!/usr/bin/env bash
# `make test`: install what tests need, then the quality gates and the whole suite (SQLite, the
# run's own password-protected control Redis), then the production pass: the control-plane,
# sync-job, deployment and one browser test again on a PostgreSQL cluster of the run's own and a
# control Redis reached as an ACL user (tests/plugin.py). Arguments: pytest's, for the first pass
# only (the production pass runs only without arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
export CONSOLE_VAR_DIR=${CONSOLE_VAR_DIR:-$PWD/var/test}
mkdir -p "$CONSOLE_VAR_DIR"
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy";   .venv/bin/mypy .
echo "== layers"; .venv/bin/lint-imports --no-cache
echo "== migrations"; .venv/bin/python manage.py makemigrations --check --dry-run
[ "${1:-}" = "--lint-only" ] && exit 0

echo "== pytest (SQLite)"
if [ $# -gt 0 ]; then exec .venv/bin/pytest "$@"; fi
.venv/bin/pytest

# A representative subset, so that the pass takes minutes: the bdb API and database creation
# (control plane), sync actions and the main sync-job paths (full sync under load, live status
# through the channel layer, stop/restart/pause/resume, partial sync after a killed worker,
# credentials), /healthz, the deployment's units, and the browser's Replica Of flow.
PRODUCTION_TESTS=(
  tests/config/test_bdb_api.py
  tests/config/test_healthz.py
  tests/console/test_database_create.py
  tests/replication/test_sync_actions.py
  tests/replication/test_sync_jobs.py::test_a_to_b_under_load_equal_in_sync_and_last_update_advances
  tests/replication/test_sync_jobs.py::test_status_reaches_the_channel_group_of_the_destination
  tests/replication/test_sync_jobs.py::test_stop_restart_pause_resume
  tests/replication/test_sync_jobs.py::test_worker_killed_during_streaming_resumes_by_partial_sync
  tests/replication/test_sync_jobs.py::test_regenerated_source_password_stops_then_update_credentials
  tests/test_deploy.py
  tests/browser/test_replica_of.py::test_replica_of_from_the_console
)
echo "== pytest (PostgreSQL, control Redis with an ACL user)"
# The cluster lives under this directory (the `postgres` user runs it when we are root); the
# trap stops and deletes whatever is left there, even if pytest was killed.
pg_dir=$(mktemp -d /tmp/console-test-pg-XXXXXX)
chmod 0755 "$pg_dir"
pg_cleanup() {
  for pidfile in "$pg_dir"/*/data/postmaster.pid; do
    [ -f "$pidfile" ] && kill -KILL "$(head -1 "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$pg_dir"
}
trap pg_cleanup EXIT
CONSOLE_TEST_DATABASE=postgres CONSOLE_TEST_CONTROL_REDIS=acl CONSOLE_TEST_PG_DIR=$pg_dir \
  CONSOLE_VAR_DIR=$CONSOLE_VAR_DIR/production .venv/bin/pytest "${PRODUCTION_TESTS[@]}"
