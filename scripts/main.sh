#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job: test the months hypothesis on the bundled
# model seqcirc-mini, with a terminal verdict and an HTML report in reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p reports
.venv/bin/seqcirc test hypotheses/months.circ --on seqcirc-mini \
  --html reports/months.html --json reports/months.json "$@"
