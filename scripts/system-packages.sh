#!/usr/bin/env bash
# Debian packages the tests and printed maps use:
#   - a CJK font, so notice-board maps and page screenshots show Chinese labels;
#   - chromium, which Playwright drives in the web page tests (never a browser downloaded by a test tool).
# Best effort: without root or apt, maps fall back to English labels (with a warning) and the browser tests
# skip with a reason that names this script.
set -uo pipefail
need=()
fc-list 2>/dev/null | grep -qi -E "wenquanyi|noto sans cjk|source han" || need+=(fonts-wqy-microhei fontconfig)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || echo "note: could not install ${need[*]}; Chinese map labels or browser tests may be missing" >&2
else
  echo "note: run as root on Debian to install ${need[*]} (Chinese map labels, browser tests)" >&2
fi
