#!/usr/bin/env bash
# Create .venv (if missing) and install wavediff with its test and evaluation extras.
# torch is installed first at a pinned version (a local CPU wheel on the project's machines);
# set WAVEDIFF_TORCH to install another build, e.g. WAVEDIFF_TORCH="torch==2.13.0+cu128".
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13') else 1)" 2>/dev/null; then
  python -m pip install -q "${WAVEDIFF_TORCH:-torch==2.13.0}"
fi
python -m pip install -q -e ".[dev,eval]"
