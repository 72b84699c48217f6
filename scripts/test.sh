#!/usr/bin/env bash
# Second command of the README (and CI): set up .venv/ with dev tools, lint, type-check and run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/system-packages.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"
