"""Make ``import hw5`` work in a notebook of a fresh clone (e.g. on Colab): the notebooks' first cell runs this.

If hw5 is importable, nothing happens. Otherwise hw5 is installed from this checkout in editable mode with pip,
in the running interpreter; pip keeps a torch that is already installed (e.g. Colab's CUDA build), since hw5 asks
only for ``torch>=2.4``. The notebooks are then importable without restarting the kernel.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

if importlib.util.find_spec("hw5") is None:
    checkout = Path(__file__).resolve().parent.parent
    print(f"hw5 is not installed: installing it from {checkout} (pip install -e, keeping the installed torch)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(checkout)], check=True)
    importlib.invalidate_caches()
    sys.path.insert(0, str(checkout))  # an editable install's finder is only read at start-up
