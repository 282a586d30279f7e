"""Problem 1's evaluation: classifier IS, FD-classifier, class fractions, neighbours (the probe: test_probe.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from hw5.metrics.gan import (class_fractions, frechet_distance, inception_score, judge, nearest_neighbours,
                             sample_report)
from hw5.models.classifier import Classifier, ClassifierConfig


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


def test_frechet_distance_matches_scipy_sqrtm_and_vanishes_on_itself():
    gen = torch.Generator().manual_seed(0)
    fa = torch.randn(400, 12, generator=gen) @ torch.randn(12, 12, generator=gen)
    fb = torch.randn(300, 12, generator=gen).pow(2) + 0.5
    a, b = fa.double().numpy(), fb.double().numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(fa, fb) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(fb, fa) == pytest.approx(expected, rel=1e-6)
    assert abs(frechet_distance(fa, fa)) < 1e-6 * expected


def test_judge_is_one_pass_of_features_and_softmax():
    clf = Classifier(ClassifierConfig(width=4, feature_dim=8)).eval()
    images = torch.randint(0, 256, (30, 28, 28), dtype=torch.uint8)
    feats, probs = judge(clf, images, batch_size=7)
    x = images.float().div(255).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(feats, clf.features(x), atol=1e-5)
        assert torch.allclose(probs, clf(x).softmax(1), atol=1e-5)


def test_class_fractions_and_sample_report():
    probs = torch.eye(10)[[0, 0, 1, 9]]
    assert class_fractions(probs) == [0.5, 0.25] + [0.0] * 7 + [0.25]
    clf = Classifier(ClassifierConfig(width=4, feature_dim=8)).eval()
    real_features, _ = judge(clf, torch.rand(40, 1, 28, 28))
    report = sample_report(clf, torch.rand(40, 1, 28, 28), real_features, splits=2)
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
    assert idx[2] == 123 and dist[2] < 1e-5


def _history(steps_per_epoch: int, epochs: int) -> dict:
    n = steps_per_epoch * epochs
    return {"steps_per_epoch": steps_per_epoch, **{k: [float(i + j) for i in range(n)]
                                                   for j, k in enumerate(("d_loss", "g_loss", "d_real", "d_fake"))}}


def test_curve_and_fooling_means_average_the_right_steps():
    """The numbers of the curve and fooling tables (their text: test_reports.py)."""
    from hw5.metrics.gan import curve_means, fooling_means

    h = _history(4, 3)  # step i of d_loss holds i
    assert curve_means(h, (2, 3))["d_loss"] == pytest.approx(sum(range(4, 12)) / 8)
    assert curve_means(h, (1, 1))["d_fake"] == pytest.approx(sum(range(3, 7)) / 4)
    with pytest.raises(ValueError, match="not within the 3 recorded"):
        curve_means(h, (2, 4))
    assert fooling_means(h, 2) == {"d_fake_first": 3.5, "d_fake_last": 13.5, "d_loss_last": 10.5}
    assert fooling_means(h, 100) == {"d_fake_first": sum(range(3, 15)) / 12, "d_fake_last": sum(range(3, 15)) / 12,
                                     "d_loss_last": sum(range(12)) / 12}  # a shorter history: averaged whole
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=rf"window must be an integer >= 1, got {bad!r}"):
            fooling_means(h, bad)


def test_sample_quality_and_readings_use_the_classifier_once_per_set():
    from hw5.metrics.gan import readings, sample_quality
    from hw5.models.dcgan import DCGAN

    torch.manual_seed(0)
    classifier, gan = Classifier().eval(), DCGAN().eval()
    images = torch.randint(0, 256, (1500, 28, 28), dtype=torch.uint8)
    q = sample_quality(classifier, gan, images, images[-1000:], 1000, seed=3)
    fakes = gan.sample(1000, generator=torch.Generator().manual_seed(4))  # chunk 0 is seeded with seed + 1
    _, probs = judge(classifier, fakes)
    assert q["classifier_is"] == pytest.approx(inspection := inception_score(probs)[0]) and inspection >= 1.0
    assert q["real_train_vs_test_fd_classifier"] == pytest.approx(0.0, abs=1e-3)  # the last 1000 = the "test" set
    assert sum(q["test_class_fractions"]) == pytest.approx(1.0)
    assert set(q) == {"classifier_is", "classifier_is_std", "fd_classifier", "class_fractions", "n_samples",
                      "real_test_is", "real_train_vs_test_fd_classifier", "test_class_fractions"}  # quality_table's
    read = readings(classifier, fakes[:3])
    assert [d for d, _ in read] == probs[:3].argmax(1).tolist()
    assert [p for _, p in read] == pytest.approx(probs[:3].max(1).values.tolist())
    with pytest.raises(ValueError, match="multiple of 1000"):
        sample_quality(classifier, gan, images, images, 1500)


def test_loss_comparison_figure_draws_both_runs():
    import matplotlib.pyplot as plt

    from hw5.plotting.gan import loss_comparison_figure

    h = _history(5, 1)
    fig = loss_comparison_figure({"a": h, "b": h}, {"a": torch.rand(12, 1, 28, 28), "b": torch.rand(12, 1, 28, 28)})
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) >= 2
    plt.close(fig)
