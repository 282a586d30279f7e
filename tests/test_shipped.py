"""The shipped weights do what their sidecars say: the README's recipe reproduces the recorded numbers."""

from __future__ import annotations

import torch

import hw5
from hw5 import data
from hw5.metrics.common import accuracy
from hw5.metrics.features import shift_averaged
from hw5.training.probe import ProbeReport
from hw5.training.probe_grid import ProbeConfig


def test_shipped_probe_reproduces_its_recorded_test_accuracy():
    """Problem 1.2 exactly as the README shows it: D's features averaged over the recorded radius, one
    linear layer, all 10,000 MNIST test images. At most one image may flip (float summation order)."""
    gan, probe = hw5.pretrained("dcgan", "cpu"), hw5.pretrained("dcgan_probe", "cpu")
    info = hw5.pretrained_info("dcgan_probe")
    recorded = info["probe"]
    report = ProbeReport.from_dict(recorded)  # the sidecar speaks the probe's vocabulary, and is consistent:
    assert ProbeConfig(**info["config"]).grid.best(report.cv_scores) == report.point  # the point CV chose
    assert isinstance(probe, torch.nn.Linear) and probe.weight.shape == (10, 8192)
    images, labels = data.load("MNIST", "test", "cpu")
    assert labels.numel() == 10_000
    phi = shift_averaged(lambda x: gan.discriminator.features(x * 2 - 1), recorded["radius"])
    features = phi(data.to_unit(images))
    with torch.no_grad():
        acc = accuracy(probe(features), labels)
    assert abs(acc - recorded["test_acc"]) <= 1e-4 + 1e-9
    # the README calls the loaded probe directly, outside no_grad, on these features
    assert torch.equal(probe(features[:12]).argmax(1), probe(features).argmax(1)[:12])
