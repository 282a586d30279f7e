"""Problem 1's evaluation: the linear probe, classifier IS, FD-classifier, class fractions, neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from hw5.metrics.gan import (ClassifierFeatures, class_fractions, fd_classifier, inception_score,
                             nearest_neighbours, sample_report)
from hw5.models.classifier import Classifier
from hw5.training.classifier import ClassifierConfig, accuracy, random_shift, train_classifier
from hw5.training.probe import ProbeConfig, fit_probe, probe_accuracy, run_probe, select_weight_decay


def _blobs(n_per_class: int, dim: int, seed: int, spread: float = 0.3):
    """Ten well-separated Gaussian blobs: linearly separable features with labels."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, dim, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.arange(10).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(labels.numel(), dim, generator=gen), labels


def test_probe_reaches_100_percent_on_separable_features():
    x, y = _blobs(30, 64, seed=0)
    xt, yt = _blobs(20, 64, seed=1)
    probe, report = run_probe(x * 50 + 7, y, xt * 50 + 7, yt, ProbeConfig(weight_decays=(1e-3, 1e-1), folds=3))
    assert report["train_acc"] == 1.0 and report["test_acc"] == 1.0
    assert isinstance(probe, torch.nn.Linear) and probe.weight.shape == (10, 64)
    assert report["weight_decay"] in (1e-3, 1e-1) and set(report["cv_scores"]) == {"0.001", "0.1"}


def test_folded_standardisation_is_exact():
    """The returned layer on raw features equals softmax regression on standardised ones."""
    x, y = _blobs(20, 16, seed=2, spread=3.0)
    x = x * torch.linspace(0.1, 100, 16) + 5
    probe = fit_probe(x, y, weight_decay=1e-2, max_iter=200)
    u = (x - x.mean(0)) / x.std(0)
    w_std, b = probe.weight * x.std(0), probe.bias + probe.weight @ x.mean(0)
    assert torch.allclose(probe(x), u @ w_std.T + b, atol=1e-3)


def test_probe_optimum_satisfies_first_order_conditions():
    """At the L-BFGS solution the gradient of the penalised cross-entropy vanishes (convex problem)."""
    x, y = _blobs(20, 8, seed=3, spread=2.5)
    wd = 0.05
    probe = fit_probe(x, y, weight_decay=wd, max_iter=500)
    u = (x - x.mean(0)) / x.std(0)
    w = (probe.weight * x.std(0)).detach().requires_grad_(True)
    b = (probe.bias + probe.weight @ x.mean(0)).detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(u @ w.T + b, y) + 0.5 * wd * w.pow(2).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    assert gw.abs().max() < 1e-4 and gb.abs().max() < 1e-4


def test_weight_decay_selection_is_deterministic_and_uses_only_training_data():
    x, y = _blobs(15, 32, seed=4, spread=4.0)
    config = ProbeConfig(weight_decays=(1e-4, 1e-2, 1.0), folds=3)
    first = select_weight_decay(x, y, config)
    assert first == select_weight_decay(x, y, config)
    best, scores = first
    assert scores[best] == max(scores.values())
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        fit_probe(x, y, -1.0)


def test_inception_score_extremes_and_formula():
    one_hot = torch.eye(10).repeat(50, 1)  # every sample certain, all classes equally often
    assert inception_score(one_hot, splits=5)[0] == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.eye(10)[[3] * 100], splits=5)[0] == pytest.approx(1.0)
    assert inception_score(torch.full((100, 10), 0.1), splits=5)[0] == pytest.approx(1.0)
    probs = torch.softmax(torch.randn(200, 10, generator=torch.Generator().manual_seed(0)) * 3, 1).double()
    p = probs.numpy()
    expected = []
    for chunk in np.array_split(p, 4):
        marginal = chunk.mean(0)
        expected.append(np.exp(np.mean(np.sum(chunk * (np.log(chunk) - np.log(marginal)), axis=1))))
    mean, std = inception_score(probs, splits=4)
    assert mean == pytest.approx(np.mean(expected), rel=1e-9)
    assert std == pytest.approx(np.std(expected, ddof=1), rel=1e-9)
    with pytest.raises(ValueError, match="need class probabilities"):
        inception_score(torch.rand(3, 10), splits=10)


class LinearJudge(torch.nn.Module):
    """A stand-in classifier whose features are a fixed random projection (full-rank covariances)."""

    def __init__(self, dim: int = 12) -> None:
        super().__init__()
        self.hparams = {"feature_dim": dim}
        self.proj = torch.nn.Linear(784, dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(1))


def test_fd_classifier_matches_scipy_sqrtm_and_vanishes_on_itself():
    torch.manual_seed(0)
    clf = LinearJudge().eval()
    a = torch.rand(300, 1, 28, 28)
    b = torch.rand(300, 1, 28, 28).pow(2)
    fa = ClassifierFeatures(clf)(a).double().numpy()
    fb = ClassifierFeatures(clf)(b).double().numpy()
    mu1, mu2 = fa.mean(0), fb.mean(0)
    s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert fd_classifier(clf, b, a, batch_size=128) == pytest.approx(expected, rel=1e-4)
    assert abs(fd_classifier(clf, a, a)) < 1e-6 * max(1.0, expected)


def test_class_fractions_and_sample_report():
    probs = torch.eye(10)[[0, 0, 1, 9]]
    assert class_fractions(probs) == [0.5, 0.25] + [0.0] * 7 + [0.25]
    clf = Classifier(width=4, feature_dim=8).eval()
    report = sample_report(clf, torch.rand(40, 1, 28, 28), torch.rand(40, 1, 28, 28), splits=2)
    assert set(report) == {"classifier_is", "classifier_is_std", "fd_classifier", "class_fractions"}
    assert sum(report["class_fractions"]) == pytest.approx(1.0) and 1.0 <= report["classifier_is"] <= 10.0


def test_nearest_neighbours_match_brute_force():
    gen = torch.Generator().manual_seed(0)
    reference = torch.randint(0, 256, (257, 28, 28), dtype=torch.uint8, generator=gen)
    queries = torch.rand(6, 1, 28, 28, generator=gen)
    queries[2] = reference[123].float().div(255).unsqueeze(0)  # an exact copy is found at distance 0
    idx, dist = nearest_neighbours(queries, reference, chunk=50)
    brute = ((queries.flatten(1)[:, None, :] - reference.float().div(255).flatten(1)[None]) ** 2).sum(-1).sqrt()
    assert torch.equal(idx, brute.argmin(1)) and torch.allclose(dist, brute.min(1).values, atol=1e-5)
    assert idx[2] == 123 and dist[2] < 1e-6


def test_random_shift_moves_content_without_changing_it():
    x = torch.zeros(4, 1, 28, 28)
    x[:, 0, 10:14, 12:16] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert not torch.equal(shifted, x)
    assert torch.equal(random_shift(x, 0), x)


def test_classifier_training_lowers_the_loss_and_learns():
    """Two tiny epochs on a separable toy problem: bright top half = class 0, bright bottom half = 1."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 60, (256, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.arange(256) % 2
    images[labels == 0, :12] += 150
    images[labels == 1, 16:] += 150
    config = ClassifierConfig(width=4, feature_dim=16, batch_size=32, lr=3e-3)
    model, hist = train_classifier(images, labels, config, 3, None, "cpu", show_progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    assert accuracy(model, images, labels) > 0.95
