#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run every check: lint, format, types, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check seqcirc tests scripts
.venv/bin/ruff format --check seqcirc tests scripts
.venv/bin/mypy
# Two pytest workers on two cores: one torch thread each (more threads oversubscribe the
# cores and made model tests ~10x slower here).
export OMP_NUM_THREADS=1
# The suite never reaches for the model hub (hub sections of hypotheses/ skip).
export HF_HUB_OFFLINE=1
# pytest exits 5 when it collects no test; set -e makes that a failure too.
# loadfile: the claims of one .circ file share one evaluation, so a file stays on one
# worker (loadgroup's xdist_group marks are lost when pytest rebuilds node ids: each
# worker then evaluated the file again). --durations shows where the time goes.
.venv/bin/python -m pytest -n 2 --dist loadfile -q --durations=15 "$@"
