#!/usr/bin/env bash
# Second command of the README (and CI): set up .venv/ with dev tools, lint, type-check and run all tests.
# The storage and API tests run on SQLite and, where scripts/postgres.sh can start one, on PostGIS too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/system-packages.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if pg_env=$(bash scripts/postgres.sh); then
  eval "$pg_env"
  trap 'bash scripts/postgres.sh stop' EXIT
else
  echo "test.sh: no PostgreSQL/PostGIS here; the PostGIS half of the api tests will be skipped" >&2
fi
.venv/bin/pytest -q "$@"
