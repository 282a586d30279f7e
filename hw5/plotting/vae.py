"""Problem 3's figures: learning curves, reconstructions, samples, the class grid, interpolations, the
decoding of one z under every class, the plain against the averaged iterates, and the two t-SNE maps
side by side (coloured by class, or by a per-image quantity). Plots only draw what they are
given (histories, images, embeddings); they compute nothing about the models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import plot_curves, show_grid, tile


def plot_vae_histories(histories: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Three panels per run family: negative ELBO (train and validation, best epoch marked), and its two
    parts, the reconstruction term and the KL term, on the validation split."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for label, h in histories.items():
        epochs = np.arange(1, len(h["val_neg_elbo"]) + 1)
        (line,) = axes[0].plot(epochs, h["val_neg_elbo"], label=f"{label} validation", lw=1.5)
        axes[0].plot(epochs, h["train_neg_elbo"], color=line.get_color(), ls="--", lw=1, label=f"{label} train")
        axes[0].axvline(h["best_epoch"], color=line.get_color(), ls=":", lw=1)
        axes[1].plot(epochs, h["val_recon"], color=line.get_color(), label=label)
        axes[2].plot(epochs, h["val_kl"], color=line.get_color(), label=label)
    lo = min(min(h["val_neg_elbo"] + h["train_neg_elbo"]) for h in histories.values())
    axes[0].set_ylim(lo - 2, lo + 25)
    for ax, title in zip(axes, ("negative ELBO (nats / image); dotted: best validation epoch",
                                "validation reconstruction -log p(x|z)", "validation KL(q(z|x) || p(z))")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    lo = min(min(h["val_recon"]) for h in histories.values())
    axes[1].set_ylim(lo - 1, lo + 12)
    fig.tight_layout()
    return fig


def plot_sweep(results: Mapping[str, Sequence[float]], title: str) -> Figure:
    """Validation negative ELBO per epoch of several candidate settings, on one axis."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    plot_curves(ax, results, ylabel="validation neg. ELBO (nats)", title=title)
    lo = min(min(v) for v in results.values())
    ax.set_ylim(lo - 1, lo + 12)
    fig.tight_layout()
    return fig


def image_rows(rows: Mapping[str, torch.Tensor], row_height: float = 0.62, title: str | None = None) -> Figure:
    """One labelled row of images per entry (each (n, 1, 28, 28) in [0, 1]), the label on the left."""
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.6 * n + 1.6, row_height * len(rows) + 0.4), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        ax.imshow(tile(images, n), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(h_pad=0.2)
    return fig


def sample_grid(images: torch.Tensor, ncol: int, title: str) -> Figure:
    """A plain grid of samples."""
    fig, ax = plt.subplots(figsize=(0.6 * ncol + 0.4, 0.6 * -(-len(images) // ncol) + 0.6))
    show_grid(images, ncol, ax=ax, title=title)
    fig.tight_layout()
    return fig


# Fashion-MNIST's classes: the four upper-body garments that overlap most (T-shirt/top, Pullover, Coat,
# Shirt) get the four most distinct hues (blue, green, red, orange); the others get hues kept away from those.
CLASS_COLOURS = ("#1f77b4", "#8c564b", "#2ca02c", "#9467bd", "#d62728",
                 "#bcbd22", "#ff7f0e", "#17becf", "#7f7f7f", "#e377c2")


def tsne_side_by_side(embeddings: Mapping[str, np.ndarray], labels: np.ndarray, class_names: Sequence[str],
                      subtitles: Mapping[str, str] | None = None) -> Figure:
    """The 2-D t-SNE maps of several models next to each other, points coloured by class (the palette
    :data:`CLASS_COLOURS`, which tells the four kinds of tops apart), one legend."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(6.2 * len(embeddings), 6.6), squeeze=False)
    colours = [CLASS_COLOURS[c % len(CLASS_COLOURS)] for c in range(len(class_names))]
    for ax, (name, emb) in zip(axes[0], embeddings.items()):
        for c in np.random.default_rng(0).permutation(len(class_names)):  # no class always drawn on top
            pts = emb[labels == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=2.5, color=colours[c], alpha=0.7, linewidths=0, rasterized=True)
        ax.set_title(name + ("\n" + subtitles[name] if subtitles and name in subtitles else ""), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", ms=7, color=colours[c], label=n)
               for c, n in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=(len(class_names) + 1) // 2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def averaging_figure(curves: Mapping[str, Mapping[str, Sequence[float]]], span: float = 6.0) -> Figure:
    """Validation negative ELBO per epoch of the plain and the averaged iterates, one panel per model:
    ``curves`` maps a model's label ("VAE", "C-VAE") to {variant: curve}; each panel shows the ``span``
    nats above its lowest point."""
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 3.6), squeeze=False)
    for ax, (model, variants) in zip(axes[0], curves.items()):
        plot_curves(ax, {f"{model}, {v} iterates": c for v, c in variants.items()},
                    ylabel="validation neg. ELBO (nats)", title=f"{model}: plain vs averaged Adam iterates")
        lo = min(min(c) for c in variants.values())
        ax.set_ylim(lo - 0.5, lo + span)
    fig.tight_layout()
    return fig


def class_by_class(images: torch.Tensor, class_names: Sequence[str], title: str,
                   column_labels: Sequence[str] | None = None) -> Figure:
    """A grid (rows, cols, 1, 28, 28) with one labelled row per entry of ``class_names``."""
    rows, cols = images.shape[:2]
    fig, ax = plt.subplots(figsize=(0.6 * cols + 1.6, 0.6 * rows + 0.8))
    ax.imshow(tile(images.reshape(rows * cols, 1, 28, 28), cols), cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")  # (rows, cols, 1, 28, 28) -> (rows*cols, 1, 28, 28)
    ax.set_yticks(np.arange(rows) * 30 + 14, class_names, fontsize=8)
    if column_labels is not None:
        ax.set_xticks(np.arange(cols) * 30 + 14, column_labels, fontsize=8, rotation=45, ha="left")
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Row-normalised confusion matrix (rows: class asked for, columns: class the classifier sees)."""
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    rates = confusion / confusion.sum(1, keepdims=True)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            if confusion[i, j]:
                ax.text(j, i, f"{rates[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("classifier's prediction")
    ax.set_ylabel("class given to the C-VAE")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def tsne_by_value(embeddings: Mapping[str, np.ndarray], values: np.ndarray, label: str,
                  subtitles: Mapping[str, str] | None = None, centred: bool = False,
                  title: str | None = None) -> Figure:
    """The same 2-D maps coloured by a continuous per-image quantity (e.g. mean brightness); ``centred``
    uses a diverging colour map symmetric about 0 (for deviations from a class mean). ``title`` goes above
    the panels, ``label`` beside the colour bar, ``subtitles[name]`` under each panel's name."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(5.4 * len(embeddings) + 0.8, 5.6), squeeze=False)
    fig.subplots_adjust(top=0.84 if title else 0.9)
    lo, hi = np.percentile(values, [1, 99])
    if centred:
        lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    for ax, (name, emb) in zip(axes[0], embeddings.items()):
        points = ax.scatter(emb[:, 0], emb[:, 1], c=values, s=2, cmap="coolwarm" if centred else "viridis",
                            vmin=lo, vmax=hi, rasterized=True)
        ax.set_title(name + ("\n" + subtitles[name] if subtitles and name in subtitles else ""), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(points, ax=axes[0].tolist(), label=label, fraction=0.03)
    if title:
        fig.suptitle(title, fontsize=11, y=0.98)
    return fig
