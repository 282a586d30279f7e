"""Optimiser and precision helpers that the training loops share (kept apart from the runner)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("fp32", "tf32", "bf16", "auto")


def adam(parameters: Iterable[torch.nn.Parameter], device: torch.device, *, lr: float,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         fused: bool | None = None) -> torch.optim.Adam:
    """Adam; by default the fused kernel (one launch updates every parameter) on CPUs and CUDA GPUs, where
    torch has it, and the multi-tensor ``foreach`` kernel elsewhere."""
    if fused is None:
        fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused,
                            foreach=None if fused else True)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic a run on ``device`` really uses, as recorded in its run folder:

    * ``"fp32"``: IEEE fp32 everywhere, TF32 off (the default: the committed runs' recipe on every device);
    * ``"tf32"``: fp32 with TF32 matmuls and convolutions on CUDA (faster, ~1e-3 relative rounding of their
      inputs); a CPU has no TF32, so it resolves to ``"fp32"`` there;
    * ``"bf16"``: matmuls and convolutions under bf16 autocast, on any device;
    * ``"auto"``: the old default, kept so that run folders that recorded it still resume: ``"bf16"`` on CUDA,
      ``"fp32"`` on a CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "tf32" and device.type != "cuda":
        return "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast on CPU or CUDA for ``precision="bf16"`` (or ``"auto"`` on CUDA); plain fp32 otherwise
    (TF32 or not is the runner's setting: :func:`hw5.utils.float32_math`).

    Parameters and optimizer state stay fp32; matmuls and convolutions run in bf16.
    """
    if resolve_precision(precision, device) == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
