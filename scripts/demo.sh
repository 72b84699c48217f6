#!/usr/bin/env bash
# First command of the README: set up .venv/ and run the whole loop on the built-in demo district:
#   1. generate it and grid it (plan, HTML map, roster);
#   2. patrol two grids: mission file, simulated flight, detection, flags scored against the simulator's truth;
#   3. start the service with the demo seeded (district, published plan, a patrol mission flown on the
#      simulator with its flags arriving live) and the planner, operator and inspector pages on localhost;
#      it prints the page addresses and the demo users. Ctrl+C stops it.
# SKYGRID_DEMO_NO_SERVE=1 stops after step 2; SKYGRID_PORT picks the port (default 8000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-packages.sh
out=demo-output
rm -rf "$out/patrol" "$out/service"
.venv/bin/skygrid demo -o "$out" "$@"
.venv/bin/skygrid demo-patrol "$out"
if [ "${SKYGRID_DEMO_NO_SERVE:-0}" != "1" ]; then
  exec .venv/bin/skygrid serve --demo --data-dir "$out/service" --port "${SKYGRID_PORT:-8000}"
fi
