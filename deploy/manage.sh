#!/usr/bin/env bash
# `manage.py` with the environment the services get: the lines of the environment file taken
# literally, as systemd's EnvironmentFile= takes them (no shell: `$` or `&` in a password stay).
#   sudo -u replicaof /opt/replicaof/deploy/manage.sh check --deploy
# CONSOLE_ENV_FILE: another file (default /etc/replicaof/console.env);
# CONSOLE_PYTHON: another interpreter (default the checkout's .venv/bin/python).
set -euo pipefail
env_file=${CONSOLE_ENV_FILE:-/etc/replicaof/console.env}
python=${CONSOLE_PYTHON:-.venv/bin/python}
cd "$(dirname "$0")/.."
vars=()
while IFS= read -r line || [ -n "$line" ]; do
  line=${line#"${line%%[![:space:]]*}"}
  case "$line" in '' | '#'* | ';'*) continue ;; esac
  vars+=("$line")
done <"$env_file"
exec env "${vars[@]}" "$python" manage.py "$@"
