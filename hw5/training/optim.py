"""Optimiser and precision helpers that the training loops share (kept apart from the runner)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16")


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
    """``"auto"`` -> ``"bf16"`` on CUDA and ``"fp32"`` on a CPU; ``"fp32"``/``"bf16"`` are kept.

    Why not bf16 on CPUs too: on CPUs the convolutions' bf16 kernels and the casts cost more than the faster
    matmuls save (the README's performance section has the measurement); on GPUs bf16 runs on tensor cores.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast on CPU or CUDA for ``precision="bf16"`` (or ``"auto"`` on CUDA); plain fp32 otherwise.

    Parameters and optimizer state stay fp32; matmuls and convolutions run in bf16.
    """
    if resolve_precision(precision, device) == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
