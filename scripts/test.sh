#!/usr/bin/env bash
# `make test`: install what tests need, then the quality gates and the whole suite.
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
echo "== pytest"; exec .venv/bin/pytest "$@"
