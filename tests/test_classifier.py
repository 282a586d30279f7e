"""The MNIST / Fashion-MNIST classifier that judges the generative models: its training loop learns."""

from __future__ import annotations

import torch

from hw5.metrics.classifier import classifier_accuracy
from hw5.models.classifier import ClassifierConfig
from hw5.training.classifier import ClassifierTraining, train_classifier


def test_classifier_training_lowers_the_loss_and_learns():
    """Two tiny epochs on a separable toy problem: bright top half = class 0, bright bottom half = 1."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 60, (256, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.arange(256) % 2
    images[labels == 0, :12] += 150
    images[labels == 1, 16:] += 150
    config = ClassifierTraining(ClassifierConfig(width=4, feature_dim=16), batch_size=32, lr=3e-3)
    model, hist = train_classifier(images, labels, config, 3, device="cpu", show_progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    assert classifier_accuracy(model, images, labels) > 0.95
