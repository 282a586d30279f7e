#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, run the unit tests, then every problem notebook
# (notebooks/problem*_*.ipynb, so a new problem's is included unedited) in quick mode on the GPU (HW5_QUICK=1,
# HW5_DEVICE=cuda), and end with exactly one line
#
#   gpu check: tests <passed>/<total>, notebooks <passed>/<total> cells, device <name>
#
#   bash scripts/check_gpu.sh                    installs into .venv (scripts/install.sh) and uses .venv/bin/python
#   HW5_NO_VENV=1 bash scripts/check_gpu.sh      (or --no-venv) installs nothing: uses ${PYTHON:-python3} with the
#                                                torch already installed there (Colab, managed GPU machines)
#   bash scripts/check_gpu.sh -- --deselect tests/test_x.py::test_y     arguments after -- go to the unit tests' pytest
#
# The environment is passed through: HW5_DATA=/path/to/data chooses the data root (see the README's Data section);
# HW5_DEVICE=cuda:1 picks another GPU (any other HW5_DEVICE value is replaced by cuda). The checked-out hw5 is put
# first on PYTHONPATH. The notebooks run under strict nbval (as scripts/test.sh runs them) when nbval is importable,
# else with scripts/run_notebooks.py (in-process, no Jupyter; stops a notebook at its first failing cell).
# Tests <total> counts the tests that ran; skipped ones (e.g. the test that needs a machine without CUDA) are
# counted on the line above the last. Exit status: 0 when every test and cell passed, 1 when one failed,
# 2 when no CUDA GPU is visible to torch, a tool is missing, or an argument is unknown.
set -euo pipefail
cd "$(dirname "$0")/.."

no_venv=${HW5_NO_VENV:-0}
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-venv) no_venv=1 ;;
        --) shift; pytest_args=("$@"); break ;;
        *) echo "check_gpu.sh: unknown argument: $1 (see the comment at the top of $0)" >&2; exit 2 ;;
    esac
    shift
done

die() {  # a missing tool or machine: say what and how to fix it, exit 2
    echo "check_gpu.sh: $*" >&2
    exit 2
}

torch_sees_gpu() {  # prints torch's view of the GPU; succeeds when torch sees one
    "$1" -c "import torch; ok = torch.cuda.is_available()
print(f'torch {torch.__version__}, built for CUDA {torch.version.cuda}, CUDA available: {ok}'); raise SystemExit(not ok)"
}

no_gpu() {  # $1: the python; $2: what torch said
    die "no CUDA GPU is visible to torch ($1: $2; CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}).
This check needs an NVIDIA GPU and a CUDA build of torch. Fix: run it on a GPU machine. If this machine has one
(nvidia-smi lists it) but torch is a CPU build, install a CUDA build: rm -rf .venv and rerun with
HW5_TORCH_INDEX=https://download.pytorch.org/whl/cu126, or use a python whose torch sees the GPU:
HW5_NO_VENV=1 PYTHON=/path/to/python bash scripts/check_gpu.sh. On a CPU-only machine use bash scripts/test.sh."
}

if [ "$no_venv" = "1" ]; then
    PY=${PYTHON:-python3}
    command -v "$PY" >/dev/null || die "python not found: $PY (set PYTHON to a python with torch, or drop HW5_NO_VENV)"
    "$PY" -c "import torch" 2>/dev/null || die "torch is not importable in $PY: install a CUDA build of torch there
(pip install torch), set PYTHON to a python that has one, or drop HW5_NO_VENV to install into .venv"
    said=$(torch_sees_gpu "$PY") || no_gpu "$PY" "$said"
else
    # Ask the torch already in .venv first, so that a CPU-only machine with a venv is turned away at once,
    # not after the install; scripts/install.sh keeps that torch anyway.
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then
        said=$(torch_sees_gpu .venv/bin/python) || no_gpu .venv/bin/python "$said"
    fi
    bash scripts/install.sh
    PY=.venv/bin/python
    said=$(torch_sees_gpu "$PY") || no_gpu "$PY" "$said"
fi
echo "python: $PY; $said"

# This checkout's hw5 (also what .venv's editable install points to; without .venv, nothing else provides it).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import pytest" 2>/dev/null || die "pytest is not installed in $PY: pip install pytest"
hw5_error=$("$PY" -c "import hw5" 2>&1) || die "hw5 cannot be imported with $PY:
$(tail -n 1 <<<"$hw5_error")
Fix: $PY -m pip install -e . (installs hw5's dependencies), or drop HW5_NO_VENV to install into .venv"
if "$PY" -c "import nbval" 2>/dev/null; then
    runner=nbval
else
    runner=scripts/run_notebooks.py
    [ -f "$runner" ] || die "nbval is not installed in $PY and the notebook runner $runner is missing:
pip install nbval ipykernel, or restore $runner (git checkout -- $runner)"
fi

case "${HW5_DEVICE:-}" in
    cuda:*) device=$HW5_DEVICE ;;
    *) device=cuda ;;
esac
device_name=$("$PY" -c "import sys, torch; print(torch.cuda.get_device_name(torch.device(sys.argv[1])))" "$device")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

count_junit() {  # $1: a pytest --junitxml file; prints "<passed> <ran> <skipped>"
    "$PY" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):  # pytest stopped before writing it (e.g. a usage error)
    print(0, 0, 0)
    raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
ran = n["tests"] - n["skipped"]
print(ran - n["failures"] - n["errors"], ran, n["skipped"])
EOF
}

# Quick-mode outputs (figures/quick, runs/quick) are scratch: start clean so the notebooks really train.
rm -rf figures/quick runs/quick
start=$(date +%s)

echo "=== unit tests"
tests_rc=0
"$PY" -m pytest tests -p no:cacheprovider --junitxml="$tmp/tests.xml" ${pytest_args[@]+"${pytest_args[@]}"} \
    || tests_rc=$?
read -r tests_passed tests_ran tests_skipped < <(count_junit "$tmp/tests.xml")

echo "=== notebooks, quick mode, HW5_DEVICE=$device, with $runner"
nb_rc=0
if [ "$runner" = nbval ]; then
    # pytest exits non-zero on failures, errors and also when it collects nothing (exit code 5).
    # The glob is sorted by bash; with no match it stays as it is and pytest fails on it: no notebook, no pass.
    HW5_QUICK=1 HW5_DEVICE=$device "$PY" -m pytest notebooks/problem*_*.ipynb --nbval --nbval-current-env \
        --nbval-cell-timeout=900 -p no:cacheprovider --junitxml="$tmp/notebooks.xml" || nb_rc=$?
    read -r nb_passed nb_total _ < <(count_junit "$tmp/notebooks.xml")
else
    HW5_QUICK=1 "$PY" "$runner" --quick --device "$device" --json "$tmp/notebooks.json" || nb_rc=$?
    read -r nb_passed nb_total < <("$PY" -c "
import json, sys
try:
    results = json.load(open(sys.argv[1]))
except (OSError, ValueError):  # the runner crashed before writing its results
    results = []
print(sum(r['passed'] for r in results), sum(r['total'] for r in results))" "$tmp/notebooks.json")
fi

echo "unit tests: exit status $tests_rc, $tests_passed passed of $tests_ran run, $tests_skipped skipped;" \
    "notebooks ($runner): exit status $nb_rc; $(( $(date +%s) - start )) s"
echo "gpu check: tests $tests_passed/$tests_ran, notebooks $nb_passed/$nb_total cells, device $device_name"
[ "$tests_rc" -eq 0 ] && [ "$nb_rc" -eq 0 ] || exit 1
