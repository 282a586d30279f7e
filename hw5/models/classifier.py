"""Classifiers: a small CNN for 28x28 grey images (the judge of generated samples), and a linear probe.

Problem 1 uses one trained on MNIST for the classifier-based Inception Score and the Frechet distance
in its penultimate feature space (FD-classifier); Problem 3 uses one trained on Fashion-MNIST to check
whether the C-VAE's class-c samples are recognised as class c.

    1x28x28 -conv 3x3-> 32x28x28 -conv 3x3-> 32x28x28 -maxpool-> 32x14x14
            -conv 3x3-> 64x14x14 -conv 3x3-> 64x14x14 -maxpool-> 64x7x7
            -flatten-> 3136 -Linear-> 128 (features) -Linear-> 10 logits
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .. import checks
from .base import Model


@dataclass(frozen=True)
class ClassifierConfig:
    """The CNN's sizes: ``num_classes`` outputs, ``width`` channels in the first block (2 ``width`` in the
    second), a ``feature_dim``-d penultimate layer, and the ``dropout`` probability before the last layer."""

    num_classes: int = 10
    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.3

    def __post_init__(self) -> None:
        for name in ("num_classes", "width", "feature_dim"):
            checks.integer(self, name, 1)
        checks.real(self, "dropout", 0.0, 1.0, high_open=True)

    def build(self) -> Classifier:
        """A fresh (untrained) classifier of this config."""
        return Classifier(self)


@dataclass(frozen=True)
class LinearProbeConfig:
    """One linear layer from ``in_features`` frozen features to ``num_classes`` logits."""

    in_features: int
    num_classes: int = 10

    def __post_init__(self) -> None:
        checks.integer(self, "in_features", 1)
        checks.integer(self, "num_classes", 1)

    def build(self) -> LinearProbe:
        """A fresh (untrained) linear layer of this config."""
        return LinearProbe(self)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 same-padding convolutions with batch norm and ReLU, then 2x2 max-pooling (H, W halve)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Classifier(Model):
    """p(y | x) = softmax(W2 relu(W1 phi_conv(x) + b1) + b2) for x in [0, 1]^{1x28x28}."""

    config_class: ClassVar[type] = ClassifierConfig  # what :func:`hw5.pretrained.pretrained` builds it from

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        config = self._use_config(config)
        num_classes, width, feature_dim = config.num_classes, config.width, config.feature_dim
        self.convs = nn.Sequential(
            _block(1, width),  # 1x28x28 -> width x14x14
            _block(width, 2 * width),  # width x14x14 -> 2width x7x7
        )
        self.to_features = nn.Sequential(
            nn.Flatten(),  # (B, 2width, 7, 7) -> (B, 2width*49)
            nn.Linear(2 * width * 49, feature_dim), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation (B, feature_dim) used by the FD-classifier metric."""
        return self.to_features(self.convs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.head(self.features(x))


class LinearProbe(nn.Linear, Model):
    """One linear layer on frozen features: class logits W phi(x) + b, (B, in_features) -> (B, num_classes).

    Problem 1.2's probe on the discriminator's 8192-d features (fitted by :mod:`hw5.training.probe`).
    """

    config_class: ClassVar[type] = LinearProbeConfig  # what :func:`hw5.pretrained.pretrained` builds it from

    def __init__(self, config: LinearProbeConfig) -> None:
        checks.argument("LinearProbe", "config", config, LinearProbeConfig)  # no defaults: the width is the data's
        super().__init__(config.in_features, config.num_classes)
        self._use_config(config)
