#!/usr/bin/env bash
# Re-vendor the web pages' front-end libraries from npm into api/web/static/vendor/ (committed, so running
# SkyGrid needs neither npm nor the internet). Versions are pinned in api/web/package.json and its lock file.
set -euo pipefail
cd "$(dirname "$0")/../api/web"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work"/ 2>/dev/null || cp package.json "$work"/
(cd "$work" && npm install --no-audit --no-fund --ignore-scripts >/dev/null && cp package-lock.json "$OLDPWD"/)
vendor=static/vendor
rm -rf "$vendor" && mkdir -p "$vendor/maplibre-gl" "$vendor/pmtiles"
cp "$work/node_modules/maplibre-gl/dist/maplibre-gl.js" "$work/node_modules/maplibre-gl/dist/maplibre-gl.css" \
  "$work/node_modules/maplibre-gl/LICENSE.txt" "$vendor/maplibre-gl/"
cp "$work/node_modules/pmtiles/dist/pmtiles.js" "$vendor/pmtiles/"
cp "$work/node_modules/pmtiles/LICENSE" "$vendor/pmtiles/" 2>/dev/null || true
echo "vendored into api/web/$vendor:"
(cd "$vendor" && find . -type f | sort)
