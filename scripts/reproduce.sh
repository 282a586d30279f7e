#!/usr/bin/env bash
# Run the whole homework: execute every problem notebook, notebooks/problem<N>_*.ipynb, top to bottom, in
# problem order (N: the digits after "problem"; a new problem's notebook is picked up without editing this script),
# each in a fresh Jupyter kernel, through scripts/execute_notebook.py (progress on the terminal, stamped notebooks).
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

# The mode is what the arguments say, not what the shell happens to export: a plain run is full mode even where
# HW5_QUICK=1 or HW5_USE_SHIPPED=1 was left set (the test suite itself runs under HW5_QUICK=1).
export HW5_QUICK=0 HW5_USE_SHIPPED=0
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
        *) if [[ "$1" =~ ^[0-9]+$ ]]; then
               problems+=("$((10#$1))")  # a problem number; 10#: "08" is 8, not a bad octal number
           else
               echo "reproduce.sh: unknown argument: $1 (see the comment at the top of $0)" >&2; exit 2
           fi ;;
    esac
    shift
done

# The problem notebooks by number (an indexed array: bash 3.2, macOS's, has no associative ones, and "${!a[@]}"
# lists the numbers in increasing order); a problem asked for that has none is refused before anything is installed.
notebook=()
for nb in notebooks/problem*_*.ipynb; do
    [[ "$nb" =~ ^notebooks/problem([0-9]+)_ ]] || continue  # no digits after "problem": not a problem notebook
    n=$((10#${BASH_REMATCH[1]}))
    if [ -n "${notebook[$n]:-}" ]; then
        echo "reproduce.sh: problem $n has two notebooks, ${notebook[$n]} and $nb; rename or remove one" >&2
        exit 2
    fi
    notebook[$n]=$nb
done
if [ ${#problems[@]} -eq 0 ]; then
    [ ${#notebook[@]} -gt 0 ] || { echo "reproduce.sh: no notebook matches notebooks/problem*_*.ipynb" >&2; exit 2; }
    problems=("${!notebook[@]}")
fi
for p in "${problems[@]}"; do
    if [ -z "${notebook[$p]:-}" ]; then
        echo "reproduce.sh: problem $p has no notebook notebooks/problem${p}_*.ipynb (problems found:" \
             "${!notebook[*]}); give a problem number that exists" >&2
        exit 2
    fi
done

bash scripts/install.sh
# scripts/execute_notebook.py runs each notebook in a Jupyter kernel, shows on the terminal which cell is running,
# what it prints (the training's progress bars with their estimated time left) and each cell's time, and stamps
# the written notebook (cell source hashes; mode, device, torch, commit), which tests/test_provenance.py checks.
out=()
if [ "$HW5_QUICK" = "1" ]; then
    mkdir -p figures/quick/notebooks
    out=(--output-dir figures/quick/notebooks)
fi
selected=()
for p in "${problems[@]}"; do
    selected+=("${notebook[$p]}")
done
# ${out[@]+...}: an empty array is "unbound" to bash 3.2 (macOS) under set -u.
.venv/bin/python scripts/execute_notebook.py ${out[@]+"${out[@]}"} "${selected[@]}"
