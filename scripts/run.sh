#!/usr/bin/env bash
# `make run`: everything the console needs, on embedded defaults, in the foreground.
# Ctrl-C stops the console's processes; database processes keep running and are adopted again.
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything this script starts (and the database processes the node worker starts) creates
# files for this user only: var/ holds session keys, passwords and the data.
umask 077

bash scripts/bootstrap.sh run
PY=${CONSOLE_PYTHON:-.venv/bin/python}

export CONSOLE_VAR_DIR=${CONSOLE_VAR_DIR:-$PWD/var}
export CONSOLE_HTTP_PORT=${CONSOLE_HTTP_PORT:-8080}
export CONSOLE_REDIS_PORT=${CONSOLE_REDIS_PORT:-6380}
export CONSOLE_NODE_NAME=${CONSOLE_NODE_NAME:-$(hostname)}
mkdir -p "$CONSOLE_VAR_DIR/control-redis" "$CONSOLE_VAR_DIR/log"
pids=()
# What earlier versions left readable by others (0644 files, 0755 directories).
chmod -R go-rwx "$CONSOLE_VAR_DIR"

stop_all() {
  trap - INT TERM EXIT
  echo; echo "stopping the console (database processes keep running)…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit 0
}
trap stop_all INT TERM EXIT

if [ -z "${REDIS_URL:-}" ]; then
  # Loopback only, with the generated password (in the config file, not on the command line).
  conf=$($PY manage.py control_redis_config)
  redis-server "$conf" &
  pids+=($!)
  control_ping() { REDISCLI_AUTH=$(cat "$CONSOLE_VAR_DIR/control-redis.password") redis-cli -p "$CONSOLE_REDIS_PORT" ping; }
  for _ in $(seq 100); do
    control_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  control_ping >/dev/null || { echo "control Redis did not start; see $CONSOLE_VAR_DIR/log/control-redis.log"; exit 1; }
fi

$PY manage.py migrate --noinput -v 0
$PY manage.py bootstrap

log="$CONSOLE_VAR_DIR/log"
$PY -m celery -A config worker -n "node@$CONSOLE_NODE_NAME" -Q "node.$CONSOLE_NODE_NAME,control" \
  --concurrency 2 --loglevel INFO >>"$log/worker-node.log" 2>&1 &
pids+=($!)
$PY -m celery -A config worker -n "sync@$CONSOLE_NODE_NAME" -Q sync --pool threads \
  --concurrency "${CONSOLE_SYNC_SLOTS:-32}" --loglevel INFO >>"$log/worker-sync.log" 2>&1 &
pids+=($!)
$PY -m celery -A config beat --loglevel INFO \
  --schedule "$CONSOLE_VAR_DIR/celerybeat-schedule" >>"$log/beat.log" 2>&1 &
pids+=($!)
$PY manage.py sync_gateway >>"$log/gateway.log" 2>&1 &
pids+=($!)
$PY -m daphne -b "${CONSOLE_HTTP_HOST:-127.0.0.1}" -p "$CONSOLE_HTTP_PORT" config.asgi:application \
  >>"$log/http.log" 2>&1 &
pids+=($!)

echo "Replica Of Console: http://${CONSOLE_HTTP_HOST:-127.0.0.1}:$CONSOLE_HTTP_PORT/  (logs in $log, Ctrl-C to stop)"
wait -n "${pids[@]}" || true
echo "a console process exited unexpectedly; see $log"
exit 1
