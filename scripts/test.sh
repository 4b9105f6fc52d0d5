#!/usr/bin/env bash
# Install everything, then run the test suite (slow benchmarks excluded; add "-m slow" for those).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# The listening-page test opens the page in headless Chromium. Install Debian's package where
# it is missing and apt-get can run (as root); otherwise that test is skipped and says why.
if ! command -v chromium >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }) \
      || echo "scripts/test.sh: could not install chromium; the listening-page test will be skipped" >&2
  fi
fi
python -m pytest -q "$@"
