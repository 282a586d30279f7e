#!/usr/bin/env bash
# Create .venv (if missing) and install hw5 with its test tools. Idempotent: a second run is quick.
#
# Needs Python >= 3.10 (PYTHON=/path/to/python3.X chooses another interpreter) with its venv module;
# on Debian/Ubuntu that is the python3-venv package.
#
# PyTorch is installed first and pinned, so that pip never resolves "torch" to a multi-GB build the
# machine cannot use: torch==2.13.0 (HW5_TORCH_VERSION overrides). On a CPU-only machine with a local
# CPU wheel this takes that wheel; on Linux with an NVIDIA GPU, PyPI's torch==2.13.0 is the CUDA build.
# For another CUDA version set HW5_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cu126).
# A torch already installed in .venv is kept.
#
# To use a CUDA torch you already have instead of downloading torch 2.13.0, either
#   * HW5_SYSTEM_SITE_PACKAGES=1 bash scripts/install.sh   (creates .venv with --system-site-packages,
#     so the torch of $PYTHON's site-packages is seen, kept, and not downloaded again; only works when
#     .venv does not exist yet: rm -rf .venv first), or
#   * create .venv yourself and install your torch into it first (.venv/bin/python -m pip install torch...).
#
# HW5_NOTEBOOK=1 also installs JupyterLab (the "notebook" extra) to open the notebooks; by default only
# the "dev" extra (pytest, nbval...) is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
NEED="hw5 needs Python 3.10 or newer"
new_enough() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; }

# A .venv whose python runs but has no pip is half made: "python3 -m venv" failed midway, typically on
# Debian/Ubuntu without the python3-venv package (no ensurepip). Say so instead of failing later.
half_made() {
    echo "install.sh: .venv exists but is incomplete ($1)." >&2
    echo "    This happens when 'python3 -m venv' ran without its ensurepip module. Fix:" >&2
    echo "      sudo apt install python3-venv    (Debian/Ubuntu; elsewhere install your Python's venv/ensurepip)" >&2
    echo "      rm -rf .venv && bash $0" >&2
    exit 1
}

if [ ! -e .venv ]; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        echo "install.sh: no '$PYTHON' on PATH; $NEED. Install one, or point PYTHON at it:" >&2
        echo "    PYTHON=/path/to/python3.12 bash $0" >&2
        exit 1
    fi
    if ! new_enough "$PYTHON"; then
        echo "install.sh: $NEED, but $PYTHON is $("$PYTHON" -V 2>&1)." >&2
        echo "    Install a newer Python and point PYTHON at it: PYTHON=python3.12 bash $0" >&2
        exit 1
    fi
    venv_args=()
    if [ "${HW5_SYSTEM_SITE_PACKAGES:-0}" = "1" ]; then
        venv_args=(--system-site-packages)
    fi
    # ${a[@]+...}: an empty array is "unbound" under set -u in bash < 4.4 (macOS's bash 3.2)
    if ! "$PYTHON" -m venv ${venv_args[@]+"${venv_args[@]}"} .venv; then
        half_made "'$PYTHON -m venv .venv' failed"
    fi
elif [ "${HW5_SYSTEM_SITE_PACKAGES:-0}" = "1" ] && ! grep -qi '^include-system-site-packages *= *true' .venv/pyvenv.cfg 2>/dev/null; then
    echo "install.sh: HW5_SYSTEM_SITE_PACKAGES=1 only applies when .venv is created; the existing .venv" \
         "does not see the system's packages. To use them: rm -rf .venv && HW5_SYSTEM_SITE_PACKAGES=1 bash $0" >&2
fi
[ -x .venv/bin/python ] || half_made ".venv/bin/python is missing"
.venv/bin/python -m pip --version >/dev/null 2>&1 || half_made "'.venv/bin/python -m pip --version' fails"
if ! new_enough .venv/bin/python; then
    echo "install.sh: .venv was made with $(.venv/bin/python -V 2>&1); $NEED." >&2
    echo "    Fix: rm -rf .venv && PYTHON=python3.12 bash $0" >&2
    exit 1
fi

PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "install.sh: installing torch==${HW5_TORCH_VERSION:-2.13.0} into .venv. To use a CUDA torch you" \
         "already have instead: rm -rf .venv && HW5_SYSTEM_SITE_PACKAGES=1 bash $0 (see the top of $0)."
    if [ -n "${HW5_TORCH_INDEX:-}" ]; then
        "${PIP[@]}" install "torch==${HW5_TORCH_VERSION:-2.13.0}" --index-url "$HW5_TORCH_INDEX"
    else
        "${PIP[@]}" install "torch==${HW5_TORCH_VERSION:-2.13.0}"
    fi
fi
extras=dev
if [ "${HW5_NOTEBOOK:-0}" = "1" ]; then
    extras=dev,notebook
fi
"${PIP[@]}" install -e ".[$extras]"
.venv/bin/python -c "import torch, hw5; print(f'hw5 {hw5.__version__} ready: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
