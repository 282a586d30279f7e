#!/usr/bin/env bash
# Run the whole homework: execute the three notebooks top to bottom.
#
#   bash scripts/reproduce.sh                  full mode (the homework's hyper-parameters), in place
#   bash scripts/reproduce.sh --quick          quick mode; executed copies go to figures/quick/notebooks
#   bash scripts/reproduce.sh --device cuda    choose the device: cpu, cuda or cuda:N (default: cuda when available)
#   bash scripts/reproduce.sh --shipped        full mode, evaluating the shipped weights (no training)
#   bash scripts/reproduce.sh 2 3              only problems 2 and 3
set -euo pipefail
cd "$(dirname "$0")/.."

# Arguments are checked before anything is installed or run, so a typo costs nothing.
set_device() {
    case "$1" in
        cpu | cuda | cuda:[0-9] | cuda:[1-9][0-9]) export HW5_DEVICE="$1" ;;
        *) echo "reproduce.sh: --device '$1' is not a device; use cpu, cuda or cuda:N (e.g. cuda:1)" >&2
           exit 2 ;;
    esac
}

problems=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) export HW5_QUICK=1 ;;
        --shipped) export HW5_USE_SHIPPED=1 ;;
        --device)
            if [ $# -lt 2 ] || [ "${2#-}" != "$2" ]; then
                echo "reproduce.sh: --device needs a value: --device cpu, --device cuda or --device cuda:N" >&2
                exit 2
            fi
            set_device "$2"; shift ;;
        --device=*) set_device "${1#--device=}" ;;
        [123]) problems+=("$1") ;;
        *) echo "reproduce.sh: unknown argument: $1 (see the comment at the top of $0)" >&2; exit 2 ;;
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
