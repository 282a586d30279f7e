"""Problem 2's figures: Figure-2-style reconstructions, learned filters, MSE against M, learning curves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import show_grid, tile


def reconstruction_figure(panels: Mapping[str, torch.Tensor], n: int = 64, ncol: int = 8,
                          title: str | None = None, cell: float = 0.32) -> Figure:
    """The homework's Figure 2: grids of the same ``n`` images side by side, one panel per entry of
    ``panels`` (e.g. originals, then reconstructions), each (N, 1, 28, 28) in [0, 1].

    ``cell`` inches per image: 0.32 gives about 30 screen pixels per 28-pixel digit in a notebook (100 dpi)."""
    nrow = -(-min(n, len(next(iter(panels.values())))) // ncol)
    fig, axes = plt.subplots(1, len(panels), figsize=((cell * ncol + 0.25) * len(panels), cell * nrow + 0.8),
                             squeeze=False)
    for ax, (label, images) in zip(axes[0], panels.items()):
        show_grid(images[:n], ncol, ax=ax, title=label)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def figure2(shown: Mapping[str, torch.Tensor], title: str, k: int = 5, n: int = 64) -> Figure:
    """Figure 2 of the homework for one model and split, from :func:`hw5.metrics.rbm.reconstruct`'s dict:
    the originals, the CD-k chain's reconstructions and the mean-field ones (first ``n`` images)."""
    return reconstruction_figure({"original": shown["original"], f"CD-{k} chain reconstruction": shown["chain"],
                                  "mean-field reconstruction": shown["meanfield"]}, n=n, title=title)


def reconstructions_by_hidden_figure(shown: Mapping[int, Mapping[str, torch.Tensor]], kind: str, title: str,
                                     n: int = 64) -> Figure:
    """The same images reconstructed by every model: the originals (of the first M's dict), then one panel
    per M of ``shown[M][kind]`` (``kind`` = ``"chain"`` or ``"meanfield"``)."""
    ms = sorted(shown)
    panels = {"original": shown[ms[0]]["original"], **{f"M = {m}": shown[m][kind] for m in ms}}
    return reconstruction_figure(panels, n=n, title=title)


def filters_figure(weights: torch.Tensor, ncol: int = 16, title: str | None = None, cell: float = 0.7) -> Figure:
    """Rows of W (F, 784) as 28x28 images, each on its own symmetric scale: filter j is divided by
    max_i |W_ji| (red > 0, blue < 0, white 0), so the colour bar runs from -max|W_j| to +max|W_j| of each
    filter; the range of those scales is written under the bar. Filters are separated by grey gaps.
    ``cell`` inches per filter."""
    w = weights.detach().float().cpu().view(-1, 28, 28)  # (F, 784) -> (F, 28, 28)
    scale = w.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    # each filter mapped to [0, 1], 0 -> 0.5 (white); the gaps between tiles are NaN, drawn grey, so that
    # neighbouring filters do not run into each other (white would merge with their zero weights)
    grid = tile(w / scale * 0.5 + 0.5, ncol, pad_value=float("nan"))
    nrow = -(-w.shape[0] // ncol)
    fig, ax = plt.subplots(figsize=(cell * min(ncol, w.shape[0]) + 1.6, cell * nrow + 0.7), layout="constrained")
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.45")
    image = ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    bar = fig.colorbar(image, ax=ax, fraction=0.04 if nrow > 2 else 0.06, pad=0.02, ticks=[0.0, 0.5, 1.0])
    bar.ax.set_yticklabels([r"$-\max_i|W_{ji}|$", "0", r"$+\max_i|W_{ji}|$"], fontsize=8)
    smallest, largest = scale.min().item(), scale.max().item()
    bar.set_label(f"each filter on its own scale\n($\\max_i|W_{{ji}}|$ from {smallest:.2f} to {largest:.2f})", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def mse_vs_hidden_figure(results: Mapping[int, Mapping[str, float]], pca: Mapping[int, float],
                         pca_train: Mapping[int, float] | None = None) -> Figure:
    """Reconstruction MSE (per pixel, [0, 1] units) against the number of hidden units M (log scale):
    the CD-k chain's and the mean-field reconstruction, train and test, with PCA's rank-M optimum."""
    ms = sorted(results)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    styles = {"test_mse": ("CD-5 chain, test", "C0", "-"), "train_mse": ("CD-5 chain, train", "C0", ":"),
              "test_mse_meanfield": ("mean-field, test", "C1", "-"),
              "train_mse_meanfield": ("mean-field, train", "C1", ":")}
    for key, (label, color, ls) in styles.items():
        ax.plot(ms, [results[m][key] for m in ms], ls, color=color, marker="o", ms=4, label=label)
    ax.plot(sorted(pca), [pca[m] for m in sorted(pca)], "-", color="0.3", marker="s", ms=4,
            label="PCA (best rank-M linear), test")
    if pca_train is not None:
        ax.plot(sorted(pca_train), [pca_train[m] for m in sorted(pca_train)], ":", color="0.3", marker="s",
                ms=3, label="PCA, train")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.set_xlabel("hidden units M")
    ax.set_ylabel("MSE per pixel ([0, 1] units)")
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves_figure(histories: Mapping[int, Mapping[str, Any]]) -> Figure:
    """Per-epoch CD loss and reconstruction MSE of each M's run (one colour per M)."""
    fig, (ax_loss, ax_mse) = plt.subplots(1, 2, figsize=(11.0, 4.6))
    for i, (m, hist) in enumerate(sorted(histories.items())):
        color = f"C{i}"
        epochs = np.arange(1, len(hist["loss"]) + 1)
        ax_loss.plot(epochs, hist["loss"], color=color, marker="o", ms=3, label=f"M={m}")
        ax_mse.plot(epochs, hist["train_mse"], ":", color=color, label=f"M={m} train (chain, running)")
        if "eval_mse" in hist:
            ax_mse.plot(epochs, hist["eval_mse"], "-", color=color, label=f"M={m} test (chain)")
            ax_mse.plot(epochs, hist["eval_mse_meanfield"], "--", color=color, label=f"M={m} test (mean-field)")
    ax_loss.set(xlabel="epoch", ylabel="CD loss  FE(v_data) - FE(v_5)", title="CD-5 loss (epoch mean)")
    ax_mse.set(xlabel="epoch", ylabel="MSE per pixel ([0, 1] units)", title="reconstruction MSE")
    for ax in (ax_loss, ax_mse):
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    # below the axes: the nine MSE curves leave no free corner inside them
    ax_mse.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    return fig


def mse_vs_steps_figure(by_steps: Mapping[int, Mapping[int, float]], meanfield: Mapping[int, float]) -> Figure:
    """Test MSE of the chain's reconstruction E[v | h_{k-1}] against the number of Gibbs steps k, one
    curve per M, with each M's mean-field MSE as a dashed line."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for i, (m, curve) in enumerate(sorted(by_steps.items())):
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], "-", color=f"C{i}", marker="o", ms=3, label=f"M={m}, k-step chain")
        ax.axhline(meanfield[m], color=f"C{i}", ls="--", lw=1, label=f"M={m}, mean-field")
    all_ks = sorted({k for curve in by_steps.values() for k in curve})
    ax.set_xticks(all_ks, [str(k) for k in all_ks])  # integer ticks at the measured k
    ax.set_xlabel("Gibbs steps k of the reconstruction chain (training used k = 5)")
    ax.set_ylabel("test MSE per pixel ([0, 1] units)")
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
