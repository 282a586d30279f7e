"""Problem 1's figures: samples beside their nearest training images, training curves, class fractions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import plot_curves, show_grid


def samples_figure(samples: torch.Tensor, ncol: int = 6, title: str = "") -> Figure:
    """The homework's "12 new samples": one grid cell per sample, in [0, 1]."""
    n = samples.shape[0]
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.3 * ncol, 1.35 * nrow), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(samples[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def neighbours_figure(samples: torch.Tensor, neighbours: torch.Tensor, distances: torch.Tensor,
                      reference_distance: float | None = None) -> Figure:
    """Each sample (top row) above its nearest training image in L2 (bottom row), distances as labels.

    ``reference_distance``: the median distance from a real test image to its nearest training image,
    the scale against which "close" is judged.
    """
    n = samples.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.7), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(samples[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(neighbours[i].cpu(), cmap="gray", vmin=0, vmax=1)
        axes[1, i].set_title(f"{float(distances[i]):.2f}", fontsize=8)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("sample", fontsize=9)
    axes[1, 0].set_ylabel("nearest\ntrain", fontsize=9)
    note = f" (test images to their nearest train image: median {reference_distance:.2f})" \
        if reference_distance is not None else ""
    fig.suptitle(f"Generated samples and their nearest training images, L2 distance in [0, 1] units{note}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def training_curves(history: Mapping[str, Any], smooth: int = 50) -> Figure:
    """Per-step losses (left) and mean discriminator outputs (right) against epochs, smoothed."""
    steps = len(history["d_loss"])
    x = np.arange(1, steps + 1) / history["steps_per_epoch"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    plot_curves(left, {"discriminator loss $L_D$": history["d_loss"],
                       "generator loss $L_G$ (non-saturating)": history["g_loss"]},
                x=x, smooth=smooth, ylabel="loss (nats)", title="Losses per step", raw_alpha=0.08)
    plot_curves(right, {"mean $D(x)$, real": history["d_real"], "mean $D(G(z))$, fake": history["d_fake"]},
                x=x, smooth=smooth, ylabel="probability 'real'", title="Discriminator outputs per step",
                raw_alpha=0.08)
    right.axhline(0.5, color="grey", lw=0.8, ls="--")
    right.set_ylim(0, 1)
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)  # off the 0.5 line
    fig.tight_layout()
    return fig


def class_fractions_figure(fractions: Sequence[float], reference: Sequence[float] | None = None,
                           reference_label: str = "MNIST test images, as the classifier reads them",
                           title: str = "Share of the samples the MNIST classifier reads as each digit") -> Figure:
    """Bar chart of the fraction of samples the classifier assigns to each digit, beside ``reference`` (e.g.
    the same classifier's predictions on the test set, labelled ``reference_label``)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    digits = np.arange(len(fractions))
    ax.bar(digits - 0.2, fractions, width=0.4, label="GAN samples")
    if reference is not None:
        ax.bar(digits + 0.2, reference, width=0.4, label=reference_label, alpha=0.7)
    ax.set_xticks(digits)
    ax.set_xlabel("digit predicted by the classifier")
    ax.set_ylabel("fraction")
    ax.set_title(title, fontsize=10)
    tallest = max(list(fractions) + (list(reference) if reference is not None else []))
    ax.set_ylim(0, 1.35 * tallest)  # room above the bars for the legend
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def loss_comparison_figure(histories: Mapping[str, Mapping[str, Any]], samples: Mapping[str, torch.Tensor],
                           smooth: int = 10, ncol: int = 6) -> Figure:
    """The generator losses side by side: mean D(G(z)) over each batch of fakes, per step (left, smoothed over
    ``smooth`` steps), and the samples of each run after training (right, ``ncol`` per row), one panel per
    entry of ``histories``/``samples``; their keys are the legend's and panels' labels."""
    rows = max(-(-len(images) // ncol) for images in samples.values())
    fig = plt.figure(figsize=(12, 0.9 + (1.0 * rows + 0.4) * len(samples)))
    grid = fig.add_gridspec(len(samples), 2, width_ratios=(1.4, 1))
    curves = fig.add_subplot(grid[:, 0])
    plot_curves(curves, {name: h["d_fake"] for name, h in histories.items()}, smooth=smooth, xlabel="training step",
                ylabel="mean $D(G(z))$ over the batch",
                title="Mean discriminator output on the generated images, per step", raw_alpha=0.15)
    curves.set_ylim(0, 1)
    for row, (name, images) in enumerate(samples.items()):
        ax = fig.add_subplot(grid[row, 1])
        show_grid(images, ncol=ncol, ax=ax, title=f"samples after training: {name}")
    fig.tight_layout()
    return fig
