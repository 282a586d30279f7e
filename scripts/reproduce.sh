#!/usr/bin/env bash
# Run the whole homework: execute the three notebooks top to bottom.
#
#   bash scripts/reproduce.sh                  full mode (the homework's hyper-parameters), in place
#   bash scripts/reproduce.sh --quick          quick mode; executed copies go to figures/quick/notebooks
#   bash scripts/reproduce.sh --device cuda    choose the device (default: cuda when available)
#   bash scripts/reproduce.sh --shipped        full mode, evaluating the shipped weights (no training)
#   bash scripts/reproduce.sh 2 3              only problems 2 and 3
set -euo pipefail
cd "$(dirname "$0")/.."

problems=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) export HW5_QUICK=1 ;;
        --shipped) export HW5_USE_SHIPPED=1 ;;
        --device) export HW5_DEVICE="$2"; shift ;;
        --device=*) export HW5_DEVICE="${1#--device=}" ;;
        [123]) problems+=("$1") ;;
        *) echo "unknown argument: $1 (see the comment at the top of $0)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#problems[@]} -gt 0 ] || problems=(1 2 3)

bash scripts/install.sh
out=()
if [ "${HW5_QUICK:-0}" = "1" ]; then
    mkdir -p figures/quick/notebooks
    out=(--output-dir figures/quick/notebooks)
else
    out=(--inplace)
fi
for p in "${problems[@]}"; do
    nb=$(ls notebooks/problem"$p"_*.ipynb)
    start=$(date +%s)
    .venv/bin/jupyter nbconvert --to notebook --execute "${out[@]}" --ExecutePreprocessor.timeout=-1 "$nb"
    echo "$nb: $(( $(date +%s) - start )) s"
done
