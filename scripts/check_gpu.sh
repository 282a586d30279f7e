#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, run the unit tests, then every problem notebook
# (notebooks/problem*_*.ipynb, so a new problem's is included unedited) in quick mode on the GPU (HW5_QUICK=1,
# HW5_DEVICE=cuda), and end with exactly one line, whatever failed (also after a missing dependency):
#
#   gpu check: tests <passed>/<total>, notebooks <passed>/<total> cells, device <name>
#
#   bash scripts/check_gpu.sh              installs nothing: uses ${PYTHON:-python3} with the CUDA torch and the
#                                          dependencies already installed there (managed GPU machines, Colab)
#   bash scripts/check_gpu.sh --install    first installs into .venv (scripts/install.sh; needs the internet)
#                                          and uses .venv/bin/python
#   bash scripts/check_gpu.sh -- --deselect tests/test_x.py::test_y     arguments after -- go to the unit tests' pytest
#
# Before running anything, scripts/check_gpu_preflight.py checks every dependency of pyproject.toml, pytest and
# scipy, the three datasets' raw files (in HW5_DATA, else the checkout's data/ or ../shared/data) and the GPU, and
# prints ONE message naming everything missing with its fix (exit 2). No Jupyter is needed: the notebooks run under
# strict nbval with the quick sanitizer (notebooks/nbval_quick.cfg, as scripts/test.sh runs them) when nbval and
# ipykernel are importable, else with scripts/run_notebooks.py (in-process; stops a notebook at its first failing
# cell). The checked-out hw5 is put first on PYTHONPATH. HW5_DEVICE=cuda:1 picks another GPU (any other value is
# replaced by cuda). --no-venv / HW5_NO_VENV=1 (the old way to ask for the default) are accepted and do nothing.
#
# Narrowing it (a shorter check; its own tests in tests/test_check_gpu.py use these):
#   HW5_CHECK_GPU_TESTS="tests/test_x.py ..."   the unit tests to run (pytest paths or node ids; default: tests)
#   HW5_CHECK_GPU_NOTEBOOKS="1 3"               problem numbers or .ipynb paths; "none" skips the notebooks
#   HW5_CHECK_GPU_RUNNER=run_notebooks          (or nbval) insists on one notebook runner (default: nbval if importable)
#   HW5_CHECK_GPU_ALLOW_CPU=1                   run on the CPU when torch sees no GPU (for the check's own test;
#                                               the summary then names the CPU, and it is not a GPU check)
#
# Tests <total> counts the tests that ran; skipped ones are counted on the line above the last. Exit status:
# 0 when every test and cell passed, 1 when one failed, 2 when something is missing (no CUDA GPU visible to torch,
# a dependency, the data) or an argument is unknown.
set -euo pipefail
cd "$(dirname "$0")/.."

tests_passed=0 tests_ran=0 nb_passed=0 nb_total=0 device_name=none
tmp=$(mktemp -d)
finish() {  # the one summary line, whatever happened before; keeps the exit status
    local rc=$?
    echo "gpu check: tests $tests_passed/$tests_ran, notebooks $nb_passed/$nb_total cells, device $device_name"
    rm -rf "$tmp"
    exit "$rc"
}
trap finish EXIT

die() {  # $1: exit status; the rest: what is wrong and how to fix it
    local rc=$1
    shift
    echo "check_gpu.sh: $*" >&2
    exit "$rc"
}

install=0
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --install) install=1 ;;
        --no-venv) ;;  # the default now
        --) shift; pytest_args=("$@"); break ;;
        *) die 2 "unknown argument: $1 (see the comment at the top of $0)" ;;
    esac
    shift
done

# The notebooks, resolved before anything runs, so that a typo is an error at once.
notebooks=()
case "${HW5_CHECK_GPU_NOTEBOOKS:-}" in
    none) ;;
    "") for nb in notebooks/problem*_*.ipynb; do [ -f "$nb" ] && notebooks+=("$nb"); done
        [ ${#notebooks[@]} -gt 0 ] || die 2 "no notebook matches notebooks/problem*_*.ipynb" ;;
    *) for item in $HW5_CHECK_GPU_NOTEBOOKS; do
           if [[ "$item" =~ ^[0-9]+$ ]]; then
               match=(notebooks/problem"$item"_*.ipynb)
               [ -f "${match[0]}" ] || die 2 "HW5_CHECK_GPU_NOTEBOOKS: no notebook notebooks/problem${item}_*.ipynb"
               notebooks+=("${match[0]}")
           else
               [ -f "$item" ] || die 2 "HW5_CHECK_GPU_NOTEBOOKS: $item is not a notebook file"
               notebooks+=("$item")
           fi
       done ;;
esac
read -r -a test_targets <<<"${HW5_CHECK_GPU_TESTS:-tests}"
allow_cpu=()
[ "${HW5_CHECK_GPU_ALLOW_CPU:-0}" = "1" ] && allow_cpu=(--allow-cpu)
runner_choice=${HW5_CHECK_GPU_RUNNER:-auto}
# Read once, then kept from the tests and notebooks: a unit test that runs this check (tests/test_check_gpu.py)
# must get only the switches it sets, never, say, the CPU switch of an outer run (that would rerun the whole suite).
unset HW5_CHECK_GPU_TESTS HW5_CHECK_GPU_NOTEBOOKS HW5_CHECK_GPU_RUNNER HW5_CHECK_GPU_ALLOW_CPU

if [ "$install" = "1" ]; then
    bash scripts/install.sh
    PY=.venv/bin/python
else
    PY=${PYTHON:-python3}
fi
command -v "$PY" >/dev/null || die 2 "python not found: $PY (set PYTHON to a python with a CUDA torch and hw5's
dependencies, or use --install to make .venv; needs the internet)"

# This checkout's hw5 (without .venv nothing else provides it; with it, its editable install points here too).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" scripts/check_gpu_preflight.py --python "$PY" --result "$tmp/preflight" --runner "$runner_choice" \
    ${allow_cpu[@]+"${allow_cpu[@]}"} || {
    rc=$?
    device_name=$(sed -n 's/^device_name=//p' "$tmp/preflight" 2>/dev/null || true)
    device_name=${device_name:-none}
    exit "$rc"
}
device=$(sed -n 's/^device=//p' "$tmp/preflight")
device_name=$(sed -n 's/^device_name=//p' "$tmp/preflight")
runner=$(sed -n 's/^runner=//p' "$tmp/preflight")

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

echo "=== unit tests: ${test_targets[*]}"
tests_rc=0
"$PY" -m pytest "${test_targets[@]}" -p no:cacheprovider --junitxml="$tmp/tests.xml" \
    ${pytest_args[@]+"${pytest_args[@]}"} || tests_rc=$?
read -r tests_passed tests_ran tests_skipped < <(count_junit "$tmp/tests.xml")

nb_rc=0
if [ ${#notebooks[@]} -eq 0 ]; then
    echo "=== notebooks: none (HW5_CHECK_GPU_NOTEBOOKS=none)"
elif [ "$runner" = nbval ]; then
    echo "=== notebooks, quick mode, HW5_DEVICE=$device, under nbval: ${notebooks[*]}"
    # pytest exits non-zero on failures, errors and also when it collects nothing (exit code 5).
    HW5_QUICK=1 HW5_DEVICE=$device "$PY" -m pytest "${notebooks[@]}" --nbval --nbval-current-env \
        --nbval-sanitize-with notebooks/nbval_quick.cfg --nbval-cell-timeout=900 -p no:cacheprovider \
        --junitxml="$tmp/notebooks.xml" || nb_rc=$?
    read -r nb_passed nb_total _ < <(count_junit "$tmp/notebooks.xml")
else
    echo "=== notebooks, quick mode, HW5_DEVICE=$device, with $runner: ${notebooks[*]}"
    HW5_QUICK=1 "$PY" "$runner" --quick --device "$device" --json "$tmp/notebooks.json" "${notebooks[@]}" \
        || nb_rc=$?
    read -r nb_passed nb_total < <("$PY" -c "
import json, sys
try:
    results = json.load(open(sys.argv[1]))
except (OSError, ValueError):  # the runner crashed before writing its results
    results = []
print(sum(r['passed'] for r in results), sum(r['total'] for r in results))" "$tmp/notebooks.json")
fi

echo "unit tests: exit status $tests_rc, $tests_passed passed of $tests_ran run, $tests_skipped skipped;" \
    "notebooks: exit status $nb_rc; $(( $(date +%s) - start )) s"
[ "$tests_rc" -eq 0 ] && [ "$nb_rc" -eq 0 ] || exit 1
