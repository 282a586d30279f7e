"""Seeds, devices, run modes and output folders shared by every problem.

Nothing here runs at import time; every function reads the environment when called, so a notebook's
settings cell (or a test's ``monkeypatch.setenv``) decides.

Environment switches:

* ``HW5_QUICK=1``   quick mode: tiny budgets so CI can execute every notebook (default: full mode,
  the homework's hyper-parameters).
* ``HW5_DEVICE``    ``cpu``, ``cuda``, ``cuda:1``...; default ``cuda`` when available, else ``cpu``.
* ``HW5_USE_SHIPPED=1`` full mode only: skip training and evaluate the shipped weights
  (``hw5/weights``), e.g. to regenerate every figure in minutes on a CPU.
* ``HW5_OUT``       folder for figures and checkpoints (default: the repository; quick mode writes to
  ``figures/quick`` and ``runs/quick`` so it never overwrites a full run's results).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to 1/true/yes/on (case-insensitive)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def quick_mode() -> bool:
    """Whether ``HW5_QUICK`` asks for quick mode (small budgets for CI)."""
    return env_flag("HW5_QUICK")


def use_shipped() -> bool:
    """Whether the notebooks should load the shipped weights instead of training (never in quick mode)."""
    return env_flag("HW5_USE_SHIPPED") and not quick_mode()


def mode_name() -> str:
    """``"quick"`` or ``"full"``, as written into every ``metrics.json``."""
    return "quick" if quick_mode() else "full"


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: the argument, else ``HW5_DEVICE``, else CUDA when available.

    Raises ``ValueError`` for a CUDA device on a machine without one, naming the fix.
    """
    name = device if device is not None else os.environ.get("HW5_DEVICE")
    if name is None or str(name).strip() == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(name)!r} was asked for (argument or HW5_DEVICE) but this PyTorch build sees no "
            "CUDA GPU; use HW5_DEVICE=cpu, or install a CUDA build of torch (see README)."
        )
    return dev


def device_description(device: torch.device) -> str:
    """A human-readable name of the device for reports, e.g. ``"cpu (2 threads)"``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and every CUDA device) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` of a run seeded with ``seed``.

    Training loops reseed all generators at the start of every epoch from (seed, epoch). The random
    state at an epoch boundary is then a pure function of what a checkpoint's JSON sidecar already
    holds, so a run resumed from epoch ``e`` replays exactly what an uninterrupted run does, on any
    machine that reproduces the uninterrupted run.
    """
    return (seed * 1_000_003 + epoch) % 2**63


def output_root() -> Path:
    """Root folder for figures and run checkpoints: ``HW5_OUT`` or the repository."""
    return Path(os.environ.get("HW5_OUT") or REPO_ROOT)


def figures_dir(problem: int) -> Path:
    """``figures/problemN`` (full mode) or ``figures/quick/problemN`` (quick mode), created."""
    base = output_root() / "figures"
    path = base / "quick" / f"problem{problem}" if quick_mode() else base / f"problem{problem}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir(problem: int) -> Path:
    """Folder for the resumable checkpoints of a problem's training runs (git-ignored), created."""
    base = output_root() / "runs"
    path = base / "quick" / f"problem{problem}" if quick_mode() else base / f"problem{problem}"
    path.mkdir(parents=True, exist_ok=True)
    return path


SHIPPED_WEIGHTS = REPO_ROOT / "hw5" / "weights"


def weights_dir() -> Path:
    """Where trained weights are exported: the shipped ``hw5/weights`` in full mode, ``runs/quick/weights``
    in quick mode (so a CI run never replaces the shipped full-run weights)."""
    if quick_mode():
        path = output_root() / "runs" / "quick" / "weights"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return SHIPPED_WEIGHTS


def layer_shapes(module: torch.nn.Module, *inputs: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """(name, output shape without the batch axis) of every convolution and linear layer, in call order.

    Runs one forward pass in eval mode without gradients; for checking architectures against a figure.
    """
    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)
    found: list[tuple[str, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: found.append((name, tuple(out.shape[1:]))))
             for name, m in module.named_modules() if isinstance(m, kinds)]
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()(*inputs)
    finally:
        module.train(was_training)
        for h in hooks:
            h.remove()
    return found
