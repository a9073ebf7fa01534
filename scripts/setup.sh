#!/usr/bin/env bash
# Create .venv (if missing) and install seqcirc with its dev tools into it.
# torch==2.13.0 goes in first: a bare torch requirement with no torch installed would
# pull a multi-GB CUDA build; 2.13.0 satisfies seqcirc's torch bound, so pip keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
