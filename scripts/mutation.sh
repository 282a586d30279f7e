#!/usr/bin/env bash
# Mutation testing of the maths-bearing code (not part of CI; README "Mutation testing").
#   bash scripts/mutation.sh            # mutate, test, print the per-module table; exit 1 on an unlisted survivor
#   bash scripts/mutation.sh --summary  # only print the table of the last run
# Configuration: [tool.mutmut] in pyproject.toml; equivalent mutants: tests/mutation_equivalents.txt.
# Two workers (MUTATION_WORKERS, default 2) of one thread each, at low priority: on a 2-core machine a test
# process with 2 MKL/OpenMP threads slows down many times over as soon as the other core is busy (a float64
# eigh of a 784 x 784 matrix: 0.2 s on 1 thread, 1-12 s on 2 threads beside another job). Results are cached in
# mutants/ (git-ignored): a rerun tests only mutants of functions that changed (and, named on the command line,
# `mutmut run NAME...` retests those mutants, e.g. survivors after a new test); rm -rf mutants/ to start afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MUTMUT=$(dirname "$PY")/mutmut
if [[ ! -x $MUTMUT ]]; then
    echo "mutmut is not installed next to $PY; install it with: $PY -m pip install -e '.[mutation]'" >&2
    exit 2
fi
if [[ ${1:-} != --summary ]]; then
    # mutmut runs the tests from mutants/, a copy of hw5 whose source-checkout data folder is mutants/data:
    # link the datasets there (from HW5_DATA, else ../shared/data, else data/) and share data/cache
    raw=${HW5_DATA:-}
    [[ -n $raw ]] || { [[ -d ../shared/data ]] && raw=../shared/data; } || raw=data
    raw=$(cd "$raw" && pwd)
    mkdir -p mutants/data data/cache
    for d in "$raw"/*/ "$PWD/data/cache/"; do
        link=mutants/data/$(basename "$d")
        [[ -L $link ]] || rm -rf "$link"  # a folder left by a failed download attempt
        ln -sfn "$d" "$link"
    done
    start=$(date +%s)
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nice -n 10 "$MUTMUT" run --max-children "${MUTATION_WORKERS:-2}" || true
    echo "mutmut run took $(( $(date +%s) - start )) s"
fi
"$PY" scripts/mutation_summary.py
