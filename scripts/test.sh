#!/usr/bin/env bash
# The whole test suite: unit tests, then the three notebooks executed in quick mode under STRICT nbval
# (every stored text output that is not marked NBVAL_IGNORE_OUTPUT must be reproduced). It ends with the 15
# slowest tests (--durations), to show what the suite's time goes to.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

# Quick-mode outputs (figures/quick, runs/quick) are scratch: start clean so the notebooks really train.
rm -rf figures/quick runs/quick
start=$(date +%s)
# pytest exits non-zero on failures, errors and also when it collects no test at all (exit code 5).
HW5_QUICK=1 .venv/bin/python -m pytest tests notebooks --nbval --nbval-current-env \
    --nbval-sanitize-with notebooks/nbval_quick.cfg --nbval-cell-timeout=900 -p no:cacheprovider --durations=15 "$@"
echo "test suite passed in $(( $(date +%s) - start )) s"
