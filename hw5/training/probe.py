"""Problem 1.2's linear probe: ONE linear layer trained on frozen features.

The probe is multinomial logistic regression on standardised features u = (phi(x) - m) / s:

    p(y | x) = softmax(W u + b),   minimise  -1/N sum_n log p(y_n | x_n) + (lambda / 2) ||W||_F^2

by mini-batch Adam. After training, the standardisation is folded into the layer (W' = W / s,
b' = b - W' m): the result is one linear layer (:class:`hw5.models.classifier.LinearProbe`, an
``nn.Linear(d, 10)``) applied to the raw features phi(x).

What the homework leaves open (the penalty lambda and the number of epochs) is chosen on a stratified
validation slice of the *training* images only (the test set is used once, for the reported accuracy),
then the probe is refitted on all training images with the chosen values. Optionally the training images
are augmented: ``augment_copies`` randomly rotated/scaled/shifted copies of every training image are added
(:func:`hw5.data.random_affine`), so the probe sees ``1 + augment_copies`` feature vectors per image. This is
still a linear layer trained on features of the same 10% of the training set; it teaches the layer the
small invariances that a 10-way linear read-out of a 4x4 feature map cannot learn from 600 images per digit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data import random_affine, stratified_subset
from ..models.classifier import LinearProbe


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's search space, augmentation and optimiser."""

    weight_decays: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    max_epochs: int = 30
    augment_copies: int = 8
    max_degrees: float = 10.0
    max_scale: float = 0.1
    max_shift: float = 2.0
    val_per_class: int = 100
    lr: float = 1e-3
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.augment_copies < 0 or self.val_per_class < 1:
            raise ValueError(f"need max_epochs >= 1, augment_copies >= 0 and val_per_class >= 1; got "
                             f"{self.max_epochs}, {self.augment_copies} and {self.val_per_class}")
        if not self.weight_decays or min(self.weight_decays) < 0:
            raise ValueError(f"weight_decays must be a non-empty tuple of values >= 0, got {self.weight_decays}")


@torch.inference_mode()
def extract_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                     batch_size: int = 500) -> torch.Tensor:
    """``extractor`` applied batch-wise to ``images``, flattened to (N, d) float32."""
    feats = [extractor(images[i:i + batch_size]).flatten(1).float() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(feats)


def augmented_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                       config: ProbeConfig) -> torch.Tensor:
    """Features of ``images`` (uint8 (N, 28, 28)) and of ``config.augment_copies`` random affine copies.

    Returns (1 + copies, N, d): index 0 holds the original images' features. ``extractor`` receives
    float images in [0, 1], (B, 1, 28, 28).
    """
    unit = images.unsqueeze(1).float().div(255.0)  # (N, 28, 28) -> (N, 1, 28, 28) in [0, 1]
    gen = torch.Generator().manual_seed(config.seed)
    views = [unit] + [random_affine(unit, config.max_degrees, config.max_scale, config.max_shift, gen)
                      for _ in range(config.augment_copies)]
    return torch.stack([extract_features(extractor, v) for v in views])


def train_probe(features: torch.Tensor, labels: torch.Tensor, weight_decay: float, epochs: int,
                config: ProbeConfig, val_features: torch.Tensor | None = None,
                val_labels: torch.Tensor | None = None) -> tuple[LinearProbe, list[float]]:
    """Fit the penalised softmax regression above on ``features`` (N, d) for ``epochs`` epochs.

    Returns the probe on raw features and, with validation data, the validation accuracy after each epoch.
    """
    if weight_decay < 0 or epochs < 1:
        raise ValueError(f"need weight_decay >= 0 and epochs >= 1, got {weight_decay} and {epochs}")
    features = features.detach().float()
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    u = (features - mean) / std
    weight = torch.zeros(int(labels.max()) + 1, u.shape[1], device=u.device, requires_grad=True)
    bias = torch.zeros(weight.shape[0], device=u.device, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    val_curve = []
    for _ in range(epochs):
        order = torch.randperm(u.shape[0], generator=gen).to(u.device)
        for start in range(0, u.shape[0], config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = F.cross_entropy(u[idx] @ weight.T + bias, labels[idx]) + 0.5 * weight_decay * weight.pow(2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if val_features is not None:
            with torch.no_grad():
                logits = ((val_features - mean) / std) @ weight.T + bias
                val_curve.append((logits.argmax(1) == val_labels).float().mean().item())
    probe = LinearProbe(u.shape[1], weight.shape[0]).to(u.device)
    with torch.no_grad():  # fold the standardisation in: W u + b = (W / s) phi + (b - (W / s) m)
        probe.weight.copy_(weight / std)
        probe.bias.copy_(bias - probe.weight @ mean)
    return probe.requires_grad_(False), val_curve


@torch.inference_mode()
def probe_accuracy(probe: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``probe`` on ``features``."""
    return (probe(features).argmax(1) == labels).float().mean().item()


def run_probe(extractor: Callable[[torch.Tensor], torch.Tensor], train_images: torch.Tensor,
              train_labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
              config: ProbeConfig) -> tuple[LinearProbe, dict]:
    """The whole protocol: choose (lambda, epochs) on a validation slice of the training images, refit on
    all of them, report train (original images) and test accuracy.

    ``extractor`` maps float images in [0, 1] (B, 1, 28, 28) to features.
    """
    feats = augmented_features(extractor, train_images, config)  # (1 + copies, N, d)
    val = stratified_subset(train_labels, config.val_per_class, config.seed + 1)
    fit = torch.ones(train_labels.numel(), dtype=torch.bool, device=train_labels.device)
    fit[val.to(fit.device)] = False
    n_views = feats.shape[0]
    curves = {}
    for wd in config.weight_decays:  # validation images and all their augmented copies stay out
        _, curves[wd] = train_probe(feats[:, fit].flatten(0, 1), train_labels[fit].repeat(n_views), wd,
                                    config.max_epochs, config, feats[0, val], train_labels[val])
    # best validation accuracy; ties go to the larger lambda, then the fewer epochs (the simpler model)
    wd, epochs = max(((w, e + 1) for w in curves for e in range(config.max_epochs)),
                     key=lambda we: (curves[we[0]][we[1] - 1], we[0], -we[1]))
    probe, _ = train_probe(feats.flatten(0, 1), train_labels.repeat(n_views), wd, epochs, config)
    test_feats = extract_features(extractor, test_images.unsqueeze(1).float().div(255.0))
    return probe, {
        "weight_decay": wd,
        "epochs": epochs,
        "val_acc": curves[wd][epochs - 1],
        "val_curves": {str(w): c for w, c in curves.items()},
        "train_acc": probe_accuracy(probe, feats[0], train_labels),
        "test_acc": probe_accuracy(probe, test_feats, test_labels),
        "feature_dim": int(feats.shape[-1]),
        "n_train_images": int(train_labels.numel()),
        "augment_copies": config.augment_copies,
    }
