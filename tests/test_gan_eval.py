"""Problem 1's evaluation: the linear probe, classifier IS, FD-classifier, class fractions, neighbours."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.linalg
import torch

from hw5.metrics.gan import (class_fractions, frechet_distance, inception_score, judge, nearest_neighbours,
                             sample_report)
from hw5.models.classifier import Classifier
from hw5.data import random_affine, random_shift, stratified_folds, translate
from hw5.models.classifier import LinearProbe
from hw5.metrics.classifier import classifier_accuracy
from hw5.training.classifier import ClassifierConfig, train_classifier
from hw5.training.probe import (ProbeConfig, augmented_features, cross_validate, grid_label, probe_accuracy,
                                run_probe, shift_averaged, shift_averaged_features, train_probe, unit_images)


def _blobs(n_per_class: int, dim: int, seed: int, spread: float = 0.3):
    """Ten well-separated Gaussian blobs: linearly separable features with labels."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, dim, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.arange(10).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(labels.numel(), dim, generator=gen), labels


def test_probe_reaches_100_percent_on_separable_features():
    x, y = _blobs(30, 64, seed=0)
    xt, yt = _blobs(20, 64, seed=1)
    probe = train_probe(x * 50 + 7, y, 1e-3)
    assert probe_accuracy(probe, x * 50 + 7, y) == 1.0 and probe_accuracy(probe, xt * 50 + 7, yt) == 1.0
    assert isinstance(probe, LinearProbe) and probe.weight.shape == (10, 64)


def test_folded_standardisation_is_exact():
    """The returned layer on raw features equals the layer trained on standardised ones."""
    x, y = _blobs(20, 16, seed=2, spread=3.0)
    x = x * torch.linspace(0.1, 100, 16) + 5
    probe = train_probe(x, y, 1e-2, max_iter=20)
    u = (x - x.mean(0)) / x.std(0)
    w_std, b = probe.weight * x.std(0), probe.bias + probe.weight @ x.mean(0)
    assert torch.allclose(probe(x), u @ w_std.T + b, atol=1e-3)


def _stationarity(x, y, probe, wd):
    """Gradient of the penalised cross-entropy in standardised coordinates at the probe's solution."""
    u = (x - x.mean(0)) / x.std(0)
    w = (probe.weight * x.std(0)).detach().requires_grad_(True)
    b = (probe.bias + probe.weight @ x.mean(0)).detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(u @ w.T + b, y) + 0.5 * wd * w.pow(2).sum()
    return torch.autograd.grad(loss, (w, b))


def test_probe_optimum_satisfies_first_order_conditions_with_or_without_warm_start():
    """The problem is convex: at the L-BFGS solution the gradient vanishes, and a warm start from another
    lambda's solution reaches the same optimum."""
    x, y = _blobs(20, 8, seed=3, spread=2.5)
    cold = train_probe(x, y, 0.05, max_iter=500)
    warm = train_probe(x, y, 0.05, max_iter=500, init=train_probe(x, y, 1.0, max_iter=500))
    for probe in (cold, warm):
        gw, gb = _stationarity(x, y, probe, 0.05)
        assert gw.abs().max() < 1e-4 and gb.abs().max() < 1e-4
    assert torch.allclose(cold.weight, warm.weight, atol=1e-3)
    with pytest.raises(ValueError, match="need weight_decay >= 0"):
        train_probe(x, y, -1.0)


def _bar_images(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy 'digits': class c is a bright bar in rows 2c..2c+3, on noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(n_per_class)
    images = torch.randint(0, 40, (labels.numel(), 28, 28), dtype=torch.uint8, generator=gen)
    for i, c in enumerate(labels.tolist()):
        images[i, 2 * c + 2: 2 * c + 6, 4:24] = 220
    return images, labels


def test_run_probe_protocol_never_looks_at_test_labels():
    x, y = _bar_images(20, seed=0)
    xt, yt = _bar_images(10, seed=1)
    extractor = lambda im: im.flatten(1)  # noqa: E731  raw pixels
    config = ProbeConfig(weight_decays=(1e-4, 1e-1), augment_copies=1, tta_radii=(0, 1), folds=4, max_iter=100)
    probe, report = run_probe(extractor, x, y, xt, yt, config)
    assert report["test_acc"] == 1.0 and report["train_acc"] == 1.0 and report["test_acc_single_view"] == 1.0
    assert report["weight_decay"] in (1e-4, 1e-1) and report["cv_acc"] == 1.0
    assert set(report["cv_scores"]) == {f"copies=1,lambda={wd},tta={r}" for wd in ("0.0001", "0.1") for r in (0, 1)}
    assert report["augment_copies"] == 1 and report["tta_radius"] == 0  # all perfect: the smallest radius
    assert report["folds"] == 4
    scrambled = yt[torch.randperm(yt.numel(), generator=torch.Generator().manual_seed(0))]
    _, other = run_probe(extractor, x, y, xt, scrambled, config)
    assert other["cv_scores"] == report["cv_scores"] and other["weight_decay"] == report["weight_decay"]
    assert other["test_acc"] < 0.5, "only the reported test accuracy depends on the test labels"


def test_run_probe_chooses_copies_and_lambda_by_cross_validation():
    """On pure-noise images the report's (copies, lambda, radius) is the best cross-validated triple, ties
    going to fewer copies, the larger lambda and the smaller radius; the returned probe is that (copies,
    lambda) refitted on all training images, and its accuracies read the images through phi_r."""
    x = torch.randint(0, 255, (40, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(4).repeat_interleave(10)
    xt = torch.randint(0, 255, (30, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    yt = torch.arange(3).repeat_interleave(10)
    config = ProbeConfig(weight_decays=(1e-3, 1.0), augment_copies=(0, 2), tta_radii=(0, 1), folds=2, max_iter=40)
    extractor = lambda im: im.flatten(1)  # noqa: E731
    probe, report = run_probe(extractor, x, y, xt, yt, config)
    averaged = shift_averaged_features(extractor, unit_images(x), (0, 1))
    scores = cross_validate(augmented_features(extractor, x, config), y, config, averaged)
    assert report["cv_scores"] == {grid_label(*key): v for key, v in scores.items()}
    assert "copies=2,lambda=0.001,tta=1" in report["cv_scores"] and len(scores) == 8
    best = max(scores.values())
    first = min((c, -wd, r) for (c, wd, r), v in scores.items() if v == best)
    chosen = (report["augment_copies"], report["weight_decay"], report["tta_radius"])
    assert chosen == (first[0], -first[1], first[2]) and report["cv_acc"] == best
    feats = augmented_features(extractor, x, config)[:1 + first[0]]
    refit = train_probe(feats.flatten(0, 1), y.repeat(feats.shape[0]), -first[1], 40)
    assert torch.equal(refit.weight, probe.weight)
    read = shift_averaged(extractor, first[2])
    assert report["train_acc"] == probe_accuracy(probe, read(unit_images(x)), y)
    assert report["test_acc"] == probe_accuracy(probe, read(unit_images(xt)), yt)
    assert report["test_acc_single_view"] == probe_accuracy(probe, extractor(unit_images(xt)), yt)


def test_cross_validation_scores_every_image_once_with_its_copies_held_out():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(8)  # 3 classes x 8 items
    # pure-noise features, and a "copy" of every image equal to it: fitting on a held-out image's copy would
    # memorise it (cross-validated accuracy near 1) instead of scoring near chance
    feats = torch.randn(1, 24, 12, generator=gen).repeat(2, 1, 1)
    fold = stratified_folds(labels, 4, seed=1)
    assert sorted(fold.tolist()) == sorted([0, 1, 2, 3] * 6)
    assert all(torch.bincount(fold[labels == c], minlength=4).tolist() == [2, 2, 2, 2] for c in range(3))
    assert torch.equal(fold, stratified_folds(labels, 4, seed=1))
    config = ProbeConfig(weight_decays=(1e-2, 1.0), augment_copies=(0, 1), tta_radii=(0, 2), folds=4, max_iter=50,
                         seed=0)
    # how held-out images are read for each radius: view 0 itself (r = 0) and some other features (r = 2)
    averaged = torch.stack([feats[0], torch.randn(24, 12, generator=gen)])
    scores = cross_validate(feats, labels, config, averaged)
    expected = {}
    for copies in (0, 1):
        for wd in (1.0, 1e-2):  # independently: one probe per fold, fitted from scratch
            hits = [0, 0]
            for k in range(4):
                fit, val = fold != k, fold == k
                probe = train_probe(feats[:1 + copies, fit].flatten(0, 1), labels[fit].repeat(1 + copies), wd, 50)
                for i in (0, 1):
                    hits[i] += int((probe(averaged[i, val]).argmax(1) == labels[val]).sum())
            expected[copies, wd, 0], expected[copies, wd, 2] = hits[0] / 24, hits[1] / 24
    assert list(scores) == list(expected) and scores[1, 1e-2, 0] < 0.75
    for key in scores:  # warm starts change the path, not the (convex) optimum
        assert scores[key] == pytest.approx(expected[key], abs=1 / 24 + 1e-9)
    radius_0 = dataclasses.replace(config, tta_radii=0)
    assert cross_validate(feats, labels, radius_0) == {k: v for k, v in scores.items() if k[2] == 0}
    with pytest.raises(ValueError, match="features hold 1 copies, the grid needs 2"):
        cross_validate(feats, labels, ProbeConfig(augment_copies=2, folds=4))
    with pytest.raises(ValueError, match=r"pass averaged=shift_averaged_features"):
        cross_validate(feats, labels, config)
    with pytest.raises(ValueError, match="averaged holds 1 radii, the grid has 2"):
        cross_validate(feats, labels, config, averaged[:1])
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        stratified_folds(labels, 1, seed=0)
    with pytest.raises(ValueError, match="need max_iter >= 1, augment_copies >= 0"):
        ProbeConfig(folds=1)
    with pytest.raises(ValueError, match="augment_copies >= 0"):
        ProbeConfig(augment_copies=(8, -1))
    with pytest.raises(ValueError, match="augment_copies >= 0"):
        ProbeConfig(augment_copies=())
    with pytest.raises(ValueError, match="tta_radii must be an int or a non-empty tuple"):
        ProbeConfig(tta_radii=(1, -1))


def test_augmented_features_layout():
    x, _ = _bar_images(2, seed=0)
    config = ProbeConfig(augment_copies=3)
    feats = augmented_features(lambda im: im.flatten(1), x, config)
    assert feats.shape == (4, 20, 784)
    assert torch.allclose(feats[0], x.float().div(255).flatten(1))
    assert not torch.allclose(feats[1], feats[0]) and not torch.allclose(feats[1], feats[2])
    grid = ProbeConfig(augment_copies=(5, 0, 3, 5))  # a grid: extract the largest, copies are nested
    assert grid.augment_copies == (0, 3, 5)
    nested = augmented_features(lambda im: im.flatten(1), x, grid)
    assert nested.shape == (6, 20, 784) and torch.equal(nested[:4], feats)
    with pytest.raises(ValueError, match="need max_iter >= 1"):
        ProbeConfig(max_iter=0)
    with pytest.raises(ValueError, match="weight_decays must be a non-empty tuple"):
        ProbeConfig(weight_decays=(-1.0,))


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
    clf = Classifier(width=4, feature_dim=8).eval()
    images = torch.randint(0, 256, (30, 28, 28), dtype=torch.uint8)
    feats, probs = judge(clf, images, batch_size=7)
    x = images.float().div(255).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(feats, clf.features(x), atol=1e-5)
        assert torch.allclose(probs, clf(x).softmax(1), atol=1e-5)


def test_class_fractions_and_sample_report():
    probs = torch.eye(10)[[0, 0, 1, 9]]
    assert class_fractions(probs) == [0.5, 0.25] + [0.0] * 7 + [0.25]
    clf = Classifier(width=4, feature_dim=8).eval()
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


def test_translate_matches_pixel_by_pixel_indexing():
    x = torch.rand(3, 2, 9, 7, generator=torch.Generator().manual_seed(0))
    for dy, dx in [(0, 0), (1, 0), (-2, 3), (4, -1), (-8, -6)]:
        expected = torch.zeros_like(x)
        for i in range(9):
            for j in range(7):
                if 0 <= i - dy < 9 and 0 <= j - dx < 7:  # output pixel (i, j) shows input pixel (i - dy, j - dx)
                    expected[..., i, j] = x[..., i - dy, j - dx]
        assert torch.equal(translate(x, dy, dx), expected)
    with pytest.raises(ValueError, match=r"a translation by \(9, 0\) leaves nothing of a 9x7 image"):
        translate(x, 9, 0)


def test_shift_averaged_features_are_the_mean_over_every_shift():
    """phi_r against an independent sum over the (2r + 1)^2 translations, for nested radii in one pass and
    through the one-radius extractor wrapper; phi_0 is phi itself."""
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    proj = torch.randn(784, 6, generator=torch.Generator().manual_seed(2))
    extractor = lambda im: im.flatten(1).square() @ proj  # noqa: E731  a non-linear feature map
    averaged = shift_averaged_features(extractor, images, (0, 1, 2), batch_size=2)
    assert averaged.shape == (3, 5, 6)
    for i, r in enumerate((0, 1, 2)):
        shifts = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        expected = sum(extractor(translate(images, dy, dx)) for dy, dx in shifts) / len(shifts)
        assert torch.allclose(averaged[i], expected, atol=1e-5)
        assert torch.allclose(shift_averaged(extractor, r)(images), expected, atol=1e-5)
    with pytest.raises(ValueError, match="radii must be distinct integers >= 0 in ascending order"):
        shift_averaged_features(extractor, images, (2, 1))


def test_random_shift_moves_content_without_changing_it():
    x = torch.zeros(4, 1, 28, 28)
    x[:, 0, 10:14, 12:16] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert not torch.equal(shifted, x)
    assert torch.equal(random_shift(x, 0), x)


def test_random_affine_is_identity_at_zero_and_moves_mass_only_slightly():
    x = torch.zeros(8, 1, 28, 28)
    x[:, 0, 9:19, 11:17] = 1.0
    same = random_affine(x, 0.0, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-5)
    moved = random_affine(x, 10.0, 0.1, 2.0, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and not torch.allclose(moved[0], moved[1])
    ratio = moved.sum((1, 2, 3)) / x.sum((1, 2, 3))  # area scales by 1 / s^2 with s in [0.9, 1.1]
    assert ((ratio > 0.8) & (ratio < 1.25)).all()


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
    assert classifier_accuracy(model, images, labels) > 0.95
