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


def test_classifier_resume_replays_the_uninterrupted_run(tmp_path):
    """The learning-rate schedule and the random shifts drawn per epoch resume exactly (a small CNN, 3 epochs)."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (96, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (96,), generator=gen)
    config = ClassifierTraining(ClassifierConfig(width=2, feature_dim=8), batch_size=32)
    straight, h_straight = train_classifier(images, labels, config, 3, run_dir=tmp_path / "a", device="cpu",
                                            show_progress=False)
    train_classifier(images, labels, config, 1, run_dir=tmp_path / "b", device="cpu", show_progress=False)
    resumed, h_resumed = train_classifier(images, labels, config, 3, run_dir=tmp_path / "b", device="cpu",
                                          show_progress=False)
    assert h_resumed["loss"] == h_straight["loss"] and h_resumed["train_acc"] == h_straight["train_acc"]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):  # BN buffers too
        assert torch.equal(a, b), name
