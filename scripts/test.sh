#!/usr/bin/env bash
# Install everything, then run the test suite (slow benchmarks excluded; add "-m slow" for those).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q "$@"
