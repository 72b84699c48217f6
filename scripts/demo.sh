#!/usr/bin/env bash
# First command of the README: set up .venv/ and run the main job on the built-in demo district.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-packages.sh
exec .venv/bin/skygrid demo "$@"
