#!/usr/bin/env bash
# Install everything, then run the main job: synthesise a speech-like corpus, train the tiny
# preset for a few minutes, vocode held-out audio with 6 and 50 steps, compare with Griffin-Lim.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
wavediff demo --out demo_out "$@"
