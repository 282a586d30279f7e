#!/usr/bin/env bash
# Create .venv (if missing) and install hw5 with its test tools. Idempotent: a second run is quick.
#
# PyTorch is installed first and pinned, so that pip never resolves "torch" to a multi-GB build the
# machine cannot use: torch==2.13.0 (HW5_TORCH_VERSION overrides). On a CPU-only machine with a local
# CPU wheel this takes that wheel; on Linux with an NVIDIA GPU, PyPI's torch==2.13.0 is the CUDA build.
# For another CUDA version set HW5_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cu126).
# A torch already installed in .venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if [ -n "${HW5_TORCH_INDEX:-}" ]; then
        "${PIP[@]}" install "torch==${HW5_TORCH_VERSION:-2.13.0}" --index-url "$HW5_TORCH_INDEX"
    else
        "${PIP[@]}" install "torch==${HW5_TORCH_VERSION:-2.13.0}"
    fi
fi
"${PIP[@]}" install -e ".[dev]"
.venv/bin/python -c "import torch, hw5; print(f'hw5 {hw5.__version__} ready: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
