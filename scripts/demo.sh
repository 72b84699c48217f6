#!/usr/bin/env bash
# First command of the README: set up .venv/ and run the main job on the built-in demo district:
# generate it, grid it (plan, HTML map, roster), then patrol two grids: mission file, simulated flight,
# detection and flags scored against the simulator's ground truth.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-packages.sh
out=demo-output
rm -rf "$out/patrol"
.venv/bin/skygrid demo -o "$out" "$@"
.venv/bin/skygrid demo-patrol "$out"
