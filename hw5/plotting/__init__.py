"""Figures with matplotlib and NumPy only (no torchvision): image grids and curves.

Common helpers live here; each problem's own figures are in `hw5.plotting.<family>`. Plots read models' outputs and
training histories; they never train, load or write anything themselves (:mod:`hw5.output` writes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure



def tile(images: torch.Tensor | np.ndarray, ncol: int, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile N grey images (N, 28, 28) or (N, 1, 28, 28) in [0, 1] into one (rows*30-2, ncol*30-2) array."""
    arr = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim == 4:
        arr = arr[:, 0]  # (N, 1, H, W) -> (N, H, W)
    if arr.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1, H, W), got {arr.shape}")
    n, h, w = arr.shape
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    out = np.full((nrow * (h + pad) - pad, ncol * (w + pad) - pad), pad_value, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = arr[i]
    return out


def show_grid(images: torch.Tensor | np.ndarray, ncol: int, ax: Axes | None = None,
              title: str | None = None) -> Axes:
    """Draw an image grid (values in [0, 1], white = 1) on ``ax`` (a new figure if None)."""
    if ax is None:
        n = len(images)
        ncol_eff = max(1, min(ncol, n))
        _, ax = plt.subplots(figsize=(0.6 * ncol_eff + 0.4, 0.6 * -(-n // ncol_eff) + 0.6))
    ax.imshow(tile(images, ncol), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def compare_grid(rows: Mapping[str, torch.Tensor | np.ndarray], ncol: int,
                 title: str | None = None) -> Figure:
    """One labelled grid per entry of ``rows`` stacked vertically (e.g. originals above reconstructions)."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.6 * ncol + 0.4, 0.62 * len(rows) * -(-len(
        next(iter(rows.values()))) // ncol) + 0.5 * len(rows) + 0.3), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        show_grid(images, ncol, ax=ax, title=label)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (shorter at the start), for noisy per-step curves."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_curves(ax: Axes, curves: Mapping[str, Sequence[float]], x: Sequence[float] | None = None,
                smooth: int = 1, xlabel: str = "epoch", ylabel: str = "", title: str | None = None,
                raw_alpha: float = 0.2) -> Axes:
    """Plot named curves on ``ax``; with ``smooth > 1`` the raw curve is drawn faintly under its mean."""
    for label, values in curves.items():
        xs = np.arange(1, len(values) + 1) if x is None else np.asarray(x)
        if smooth > 1:
            (line,) = ax.plot(xs, moving_average(values, smooth), label=label, lw=1.5)
            ax.plot(xs, values, color=line.get_color(), alpha=raw_alpha, lw=0.5)
        else:
            ax.plot(xs, values, label=label, lw=1.5, marker="o" if len(values) <= 30 else None, ms=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
