#!/usr/bin/env bash
# Debian packages the tests and printed maps use: a CJK font so notice-board maps print Chinese labels.
# Best effort: without root or apt, maps fall back to English labels (with a warning) and tests still pass.
set -uo pipefail
if fc-list 2>/dev/null | grep -qi -E "wenquanyi|noto sans cjk|source han"; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends fonts-wqy-microhei fontconfig >/dev/null 2>&1 \
    || echo "note: could not install fonts-wqy-microhei; printed maps will use English labels" >&2
else
  echo "note: run as root on Debian to install fonts-wqy-microhei for Chinese map labels" >&2
fi
