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

if [ $# -gt 0 ]; then exec .venv/bin/pytest "$@"; fi

# The suite waits on real servers far more than it computes (load average under 1 on 2 cores),
# so it runs as parallel groups: each its own pytest session with its own var directory (SQLite
# file, control Redis, Celery workers) and its own port range for the databases it provisions.
# The PostgreSQL pass below joins them. Logs go to var/test/logs and are printed at the end.
log_dir=$CONSOLE_VAR_DIR/logs
rm -rf "$log_dir" && mkdir -p "$log_dir"
pids=() names=()
group() {  # group NAME FIRST_PORT [ENV=VALUE ...] -- PYTEST_ARGS...
  local name=$1 first=$2
  shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  mkdir -p "$CONSOLE_VAR_DIR/$name"
  env "${envs[@]}" CONSOLE_VAR_DIR="$CONSOLE_VAR_DIR/$name" \
    CONSOLE_DATA_DIR="$CONSOLE_VAR_DIR/$name/databases" \
    CONSOLE_DB_PORT_MIN="$first" CONSOLE_DB_PORT_MAX=$((first + 999)) \
    .venv/bin/pytest -p no:cacheprovider "$@" >"$log_dir/$name.log" 2>&1 &
  pids+=($!) names+=("$name")
}
echo "== pytest (SQLite, in parallel groups; PostgreSQL pass alongside)"
group pages 24000 -- tests/api tests/config tests/console tests/browser tests/test_*.py
group replication 25000 -- tests/replication --ignore=tests/replication/syncer
group syncer 26000 -- tests/replication/syncer tests/faults tests/wan
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
group production 27000 CONSOLE_TEST_DATABASE=postgres CONSOLE_TEST_CONTROL_REDIS=acl \
  CONSOLE_TEST_PG_DIR="$pg_dir" -- "${PRODUCTION_TESTS[@]}"

failed=()
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
done
for name in "${names[@]}"; do
  echo "== pytest group $name"
  cat "$log_dir/$name.log"
done
echo "== summary"
for name in "${names[@]}"; do
  printf '%-12s %s\n' "$name" "$(grep -E '^=+ .*(passed|failed|error).* in ' "$log_dir/$name.log" | tail -1)"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed groups: ${failed[*]}"
  exit 1
fi
