"""Problem 1.2's linear probe: its fitting (hw5.training.probe, hw5.training.probe_grid), its accuracy
(hw5.metrics.probe), its shipped-or-fitted call (hw5.pretrained.fit_or_load_probe) and the shared accuracy
(hw5.metrics.common). Its features: test_features.py; its tables: test_reports.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import hw5.metrics.features as features_module
from hw5.data import stratified_folds, to_unit
from hw5.metrics.common import accuracy, correct, predicted_classes
from hw5.metrics.features import shift_averaged
from hw5.metrics.probe import evaluate_probe
from hw5.models.classifier import LinearProbe
from hw5.pretrained import fit_or_load_probe
from hw5.training.probe import FeatureBank, ProbeReport, cross_validate, random_copies, run_probe, train_probe
from hw5.training.probe_grid import ProbeConfig, ProbeGrid, ProbePoint

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _blobs(n_per_class: int, dim: int, seed: int, spread: float = 0.3):
    """Ten well-separated Gaussian blobs: linearly separable features with labels."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, dim, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.arange(10).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(labels.numel(), dim, generator=gen), labels


def _bar_images(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy 'digits': class c is a bright bar in rows 2c..2c+3, on noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(n_per_class)
    images = torch.randint(0, 40, (labels.numel(), 28, 28), dtype=torch.uint8, generator=gen)
    for i, c in enumerate(labels.tolist()):
        images[i, 2 * c + 2: 2 * c + 6, 4:24] = 220
    return images, labels


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """The raw-pixel extractor."""
    return images.flatten(1)


# ---------------------------------------------------------------------------------------------------- accuracy

def test_accuracy_of_logits_and_of_class_indices():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 5.0, 0.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([0, 2, 0, 0])  # the last row ties: argmax takes the first class
    assert torch.equal(predicted_classes(logits), torch.tensor([0, 2, 1, 0]))
    assert accuracy(logits, labels) == 0.75 and correct(logits, labels) == 3
    assert accuracy(logits.softmax(1), labels) == 0.75  # probabilities: the same argmax
    assert accuracy(torch.tensor([0, 2, 1, 0]), labels) == 0.75  # predicted classes
    assert accuracy(torch.zeros(3, 10), torch.zeros(3, dtype=torch.long)) == 1.0
    assert isinstance(accuracy(logits, labels), float) and isinstance(correct(logits, labels), int)
    hits_435 = torch.cat([torch.zeros(435, dtype=torch.long), torch.ones(65, dtype=torch.long)])
    assert accuracy(torch.zeros(500, dtype=torch.long), hits_435) == 0.8700000047683716  # float32(435 / 500)
    with pytest.raises(ValueError, match="scores hold 4 items and labels 3"):
        accuracy(logits, labels[:3])
    with pytest.raises(ValueError, match=r"scores must be class scores \(N, C\) or integer classes"):
        accuracy(torch.rand(4), labels)  # one float per item: a logit, not a class
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        accuracy(logits, labels.float())


def test_accuracy_moves_the_labels_to_the_scores_device():
    """The labels may be on another device than the scores; on a CPU-only machine ``meta`` stands in: a
    comparison that did not move them would raise."""
    logits, labels = torch.eye(3), torch.tensor([0, 1, 1])

    class Spy(torch.Tensor):
        moved_to: list = []

        def to(self, *args, **kwargs):  # noqa: D102
            Spy.moved_to.append(args[0] if args else kwargs.get("device"))
            return super().to(*args, **kwargs)

    assert accuracy(logits, labels.as_subclass(Spy)) == pytest.approx(2 / 3)
    assert Spy.moved_to and torch.device(Spy.moved_to[0]) == logits.device
    for device in DEVICES:
        assert accuracy(logits.to(device), labels) == pytest.approx(2 / 3)
        assert accuracy(logits, labels.to(device)) == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------------- config

@pytest.mark.parametrize("kwargs, message", [
    ({"max_shift": -2}, r"ProbeConfig\.max_shift must be an integer in \[0, 13\].*got -2$"),
    ({"max_shift": 30}, r"ProbeConfig\.max_shift must be an integer in \[0, 13\].*28x28.*got 30$"),
    ({"max_shift": 2.0}, r"ProbeConfig\.max_shift must be an integer.*got 2\.0$"),
    ({"max_shift": True}, r"ProbeConfig\.max_shift must be an integer.*got True$"),
    ({"folds": 2.5}, r"ProbeConfig\.folds must be an integer >= 2, got 2\.5$"),
    ({"folds": 1}, r"ProbeConfig\.folds must be an integer >= 2, got 1$"),
    ({"folds": True}, r"ProbeConfig\.folds must be an integer >= 2, got True$"),
    ({"max_iter": 0}, r"ProbeConfig\.max_iter must be an integer >= 1, got 0$"),
    ({"max_iter": 10.0}, r"ProbeConfig\.max_iter must be an integer >= 1, got 10\.0$"),
    ({"max_iter": "200"}, r"ProbeConfig\.max_iter must be an integer >= 1, got '200'$"),
    ({"seed": -1}, r"ProbeConfig\.seed must be an integer >= 0"),
    ({"copies": (8, -1)}, r"ProbeConfig\.copies\[1\] must be an integer >= 0.*got -1$"),
    ({"copies": (0, 1.5)}, r"ProbeConfig\.copies\[1\] must be an integer >= 0.*got 1\.5$"),
    ({"copies": 2.0}, r"ProbeConfig\.copies must be an integer >= 0.*got 2\.0$"),
    ({"copies": (True,)}, r"ProbeConfig\.copies\[0\] must be an integer >= 0.*got True$"),
    ({"copies": ()}, r"ProbeConfig\.copies must be one value or a non-empty tuple"),
    ({"copies": "8"}, r"ProbeConfig\.copies must be one value or a non-empty tuple.*got '8'$"),
    ({"radii": (1, -1)}, r"ProbeConfig\.radii\[1\] must be an integer in \[0, 13\].*got -1$"),
    ({"radii": 14}, r"ProbeConfig\.radii must be an integer in \[0, 13\].*got 14$"),
    ({"radii": (0, 0.5)}, r"ProbeConfig\.radii\[1\] must be an integer in \[0, 13\].*got 0\.5$"),
    ({"penalties": (-1.0,)}, r"ProbeConfig\.penalties\[0\] must be a finite number in \[0, inf\), got -1\.0$"),
    ({"penalties": (1e-3, math.nan)}, r"ProbeConfig\.penalties\[1\] must be a finite number in \[0, inf\), got nan"),
    ({"penalties": math.inf}, r"ProbeConfig\.penalties must be a finite number in \[0, inf\), got inf$"),
    ({"penalties": (False,)}, r"ProbeConfig\.penalties\[0\] must be a finite number.*got False$"),
    ({"penalties": ("0.1",)}, r"ProbeConfig\.penalties\[0\] must be a finite number.*got '0\.1'$"),
    ({"penalties": ()}, r"ProbeConfig\.penalties must be one value or a non-empty tuple"),
    ({"augmentation": "rotate"}, r"ProbeConfig\.augmentation must be one of \('shift', 'affine'\), got 'rotate'$"),
    ({"augmentation": None}, r"ProbeConfig\.augmentation must be one of .*got None$"),
    ({"augmentation": ["shift"]}, r"ProbeConfig\.augmentation must be one of .*got \['shift'\]$"),
    ({"max_degrees": -1.0}, r"ProbeConfig\.max_degrees must be a finite number in \[0, 180\], got -1\.0$"),
    ({"max_scale": 1.5}, r"ProbeConfig\.max_scale must be a finite number in \[0, 0\.99\], got 1\.5$"),
])
def test_config_rejects_wrong_types_and_ranges_naming_the_field(kwargs, message):
    """A bad value, of the wrong type or out of range, is one kind of mistake: a ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        ProbeConfig(**kwargs)
    with pytest.raises(ValueError, match=message):  # replace() checks again
        dataclasses.replace(ProbeConfig(), **kwargs)


def test_config_stores_each_grid_axis_as_a_sorted_set():
    config = ProbeConfig(penalties=1e-3, copies=(5, 0, 3, 5), radii=1, max_shift=13, folds=2, max_iter=1)
    assert (config.penalties, config.copies, config.radii) == ((1e-3,), (0, 3, 5), (1,))
    assert ProbeConfig(penalties=(1e-3, 1e-2)) == ProbeConfig(penalties=[1e-2, 1e-3, 1e-2])
    assert ProbeConfig(copies=range(3)).copies == (0, 1, 2) and ProbeConfig(penalties=0).penalties == (0.0,)
    assert type(ProbeConfig(penalties=1).penalties[0]) is float
    default = ProbeConfig()
    assert (default.penalties, default.copies, default.radii) == ((1e-3, 1e-2), (0, 8, 16), (0, 1, 2))


# ---------------------------------------------------------------------------------------------------- grid

def test_grid_order_tie_break_and_warm_start_path_are_explicit():
    grid = ProbeGrid.from_values(copies=(8, 0, 8), penalties=(1e-3, 1.0, 1e-2), radii=(1, 0))
    assert grid == ProbeGrid(copies=(0, 8), penalties=(1.0, 1e-2, 1e-3), radii=(0, 1))
    assert grid == ProbeConfig(copies=(8, 0), penalties=(1e-2, 1.0, 1e-3), radii=(0, 1)).grid
    assert grid.penalties == (1.0, 1e-2, 1e-3)  # the warm-start path: the largest penalty first
    assert grid.points[:4] == ((0, 1.0, 0), (0, 1.0, 1), (0, 1e-2, 0), (0, 1e-2, 1))
    assert list(grid.points) == sorted(grid.points, key=lambda p: (p.copies, -p.penalty, p.radius))
    assert len(grid.points) == 12 and all(isinstance(p, ProbePoint) for p in grid.points)
    scores = dict.fromkeys(grid.points, 0.5)
    assert grid.best(scores) == ProbePoint(0, 1.0, 0)  # all equal: fewest copies, largest penalty, radius 0
    for tied in [((8, 1e-2, 1), (0, 1e-3, 0)), ((8, 1e-3, 0), (8, 1e-2, 1)), ((0, 1e-3, 1), (0, 1e-3, 0))]:
        best = {**scores, **dict.fromkeys(map(lambda t: ProbePoint(*t), tied), 0.9)}
        first = min(tied, key=lambda p: (p[0], -p[1], p[2]))
        assert grid.best(best) == first
    assert grid.best({**scores, ProbePoint(8, 1e-3, 1): 0.6}) == (8, 1e-3, 1)
    with pytest.raises(ValueError, match="scores lack grid points"):
        grid.best({ProbePoint(0, 1.0, 0): 1.0})
    with pytest.raises(ValueError, match=r"ProbeGrid\.penalties must be non-empty, distinct and descending"):
        ProbeGrid(copies=(0,), penalties=(1e-3, 1e-2), radii=(0,))
    with pytest.raises(ValueError, match=r"ProbeGrid\.copies must be non-empty, distinct and ascending"):
        ProbeGrid(copies=(0, 0), penalties=(1.0,), radii=(0,))


def test_grid_keys_and_report_round_trip_through_json():
    point = ProbePoint(16, 1e-3, 1)
    assert point.key == "copies=16,penalty=0.001,radius=1" and ProbePoint.from_key(point.key) == point
    for p in (ProbePoint(0, 0.0, 0), ProbePoint(3, 1.2345678912e-7, 13), ProbePoint(1, 1.0, 2)):
        assert ProbePoint.from_key(p.key) == p
    for bad in ("copies=1,lambda=0.1,tta=0", "copies=1,penalty=0.1", "copies=x,penalty=0.1,radius=0"):
        with pytest.raises(ValueError, match="is not a probe grid key"):
            ProbePoint.from_key(bad)
    grid = ProbeGrid.from_values((0, 16), (1e-2, 1e-3), (0, 1))
    report = ProbeReport(point=point, cv_acc=0.9, cv_scores=dict.fromkeys(grid.points, 0.9), folds=5,
                         train_acc=1.0, test_acc=0.99, test_acc_single_view=0.98, feature_dim=8192,
                         n_train_images=6000)
    record = report.to_dict()
    assert list(record) == ["copies", "penalty", "radius", "cv_acc", "cv_scores", "folds", "train_acc", "test_acc",
                            "test_acc_single_view", "feature_dim", "n_train_images"]
    assert record["radius"] == 1 and "copies=16,penalty=0.001,radius=1" in record["cv_scores"]
    import json
    assert ProbeReport.from_dict({**json.loads(json.dumps(record)), "seconds": 3.0}) == report
    with pytest.raises(KeyError, match=r"a probe report needs keys \['cv_acc'\]"):
        ProbeReport.from_dict({k: v for k, v in record.items() if k != "cv_acc"})


# ---------------------------------------------------------------------------------------------------- fitting

def test_probe_reaches_100_percent_on_separable_features():
    x, y = _blobs(30, 64, seed=0)
    xt, yt = _blobs(20, 64, seed=1)
    probe = train_probe(x * 50 + 7, y, 1e-3)
    assert accuracy(probe(x * 50 + 7), y) == 1.0 and accuracy(probe(xt * 50 + 7), yt) == 1.0
    assert isinstance(probe, LinearProbe) and probe.weight.shape == (10, 64)


def test_folded_standardisation_is_exact():
    """The returned layer on raw features equals the layer trained on standardised ones."""
    x, y = _blobs(20, 16, seed=2, spread=3.0)
    x = x * torch.linspace(0.1, 100, 16) + 5
    probe = train_probe(x, y, 1e-2, max_iter=20)
    u = (x - x.mean(0)) / x.std(0)
    w_std, b = probe.weight * x.std(0), probe.bias + probe.weight @ x.mean(0)
    assert torch.allclose(probe(x), u @ w_std.T + b, atol=1e-3)


def _stationarity(x, y, probe, penalty):
    """Gradient of the penalised cross-entropy in standardised coordinates at the probe's solution."""
    u = (x - x.mean(0)) / x.std(0)
    w = (probe.weight * x.std(0)).detach().requires_grad_(True)
    b = (probe.bias + probe.weight @ x.mean(0)).detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(u @ w.T + b, y) + 0.5 * penalty * w.pow(2).sum()
    return torch.autograd.grad(loss, (w, b))


def test_probe_optimum_satisfies_first_order_conditions_with_or_without_warm_start():
    """The problem is convex: at the L-BFGS solution the gradient vanishes, and a warm start from another
    penalty's solution reaches the same optimum."""
    x, y = _blobs(20, 8, seed=3, spread=2.5)
    cold = train_probe(x, y, 0.05, max_iter=500)
    warm = train_probe(x, y, 0.05, max_iter=500, init=train_probe(x, y, 1.0, max_iter=500))
    for probe in (cold, warm):
        gw, gb = _stationarity(x, y, probe, 0.05)
        assert gw.abs().max() < 1e-4 and gb.abs().max() < 1e-4
    assert torch.allclose(cold.weight, warm.weight, atol=1e-3)
    with pytest.raises(ValueError, match=r"penalty must be a finite number in \[0, inf\), got -1.0"):
        train_probe(x, y, -1.0)
    with pytest.raises(ValueError, match=r"penalty must be a finite number in \[0, inf\), got nan"):
        train_probe(x, y, math.nan)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1, got 0"):
        train_probe(x, y, 1.0, max_iter=0)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1, got 10.0"):
        train_probe(x, y, 1.0, max_iter=10.0)


# ---------------------------------------------------------------------------------------------------- features

def test_feature_bank_layout_nested_copies_and_views_keyed_by_radius():
    x, y = _bar_images(2, seed=0)
    config = ProbeConfig(copies=3, radii=(2, 0))
    bank = FeatureBank.extract(_pixels, x, y, config)
    assert bank.views.shape == (4, 20, 784) and bank.copies == 3 and bank.n_images == 20 and bank.feature_dim == 784
    assert torch.allclose(bank.views[0], x.float().div(255).flatten(1))
    assert torch.equal(bank.views[0], to_unit(x).flatten(1)) and torch.equal(bank.labels, y)
    assert not torch.allclose(bank.views[1], bank.views[0]) and not torch.allclose(bank.views[1], bank.views[2])
    assert list(bank.averaged) == [0, 2]  # keyed by radius: nothing lines up by position
    assert torch.equal(bank.averaged[0], bank.views[0])
    assert torch.equal(bank.averaged[2], shift_averaged(_pixels, 2)(to_unit(x)))
    grid = ProbeConfig(copies=(5, 0, 3, 5))  # a grid: extract the largest, copies are nested
    nested = FeatureBank.extract(_pixels, x, y, grid)
    assert nested.views.shape == (6, 20, 784) and torch.equal(nested.views[:4], bank.views)
    copies = list(random_copies(to_unit(x), config, 3))  # the first 3 of 5 are the copies of a 3-copy draw
    assert all(torch.equal(c.flatten(1), v) for c, v in zip(copies, nested.views[1:4]))
    features, labels = bank.training_set(2, torch.arange(20) < 5)
    assert torch.equal(features, bank.views[:3, :5].flatten(0, 1)) and torch.equal(labels, y[:5].repeat(3))
    with pytest.raises(ValueError, match="the bank holds 3 copies of every image, not 4"):
        bank.training_set(4)
    with pytest.raises(ValueError, match=r"no shift-averaged features for radii \[1\] \(it has \[0, 2\]\)"):
        bank.check_covers(ProbeGrid((0,), (1.0,), (0, 1)))
    with pytest.raises(ValueError, match="a FeatureBank needs views"):
        FeatureBank(bank.views, {1: bank.views[0, :3]}, y)
    with pytest.raises(ValueError, match=r"the labels of images must be a tensor \(N,\) with N = 20"):
        FeatureBank.extract(_pixels, x, y[:3], config)
    with pytest.raises(TypeError, match="images has dtype torch.int64"):
        FeatureBank.extract(_pixels, x.long(), y, config)


# ---------------------------------------------------------------------------------------------------- CV

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
    config = ProbeConfig(penalties=(1e-2, 1.0), copies=(0, 1), radii=(0, 2), folds=4, max_iter=50, seed=0)
    # how held-out images are read for each radius: view 0 itself (r = 0) and some other features (r = 2)
    bank = FeatureBank(feats, {2: torch.randn(24, 12, generator=gen), 0: feats[0]}, labels)
    scores = cross_validate(bank, config)
    expected = {}
    for copies in (0, 1):
        for penalty in (1.0, 1e-2):  # independently: one probe per fold, fitted from scratch
            hits = {0: 0, 2: 0}
            for k in range(4):
                fit, val = fold != k, fold == k
                probe = train_probe(feats[:1 + copies, fit].flatten(0, 1), labels[fit].repeat(1 + copies),
                                    penalty, 50)
                for r in (0, 2):
                    hits[r] += int((probe(bank.averaged[r][val]).argmax(1) == labels[val]).sum())
            for r in (0, 2):
                expected[ProbePoint(copies, penalty, r)] = hits[r] / 24
    assert list(scores) == list(expected) == list(config.grid.points) and scores[1, 1e-2, 0] < 0.75
    for key in scores:  # warm starts change the path, not the (convex) optimum
        assert scores[key] == pytest.approx(expected[key], abs=1 / 24 + 1e-9)
    radius_0 = dataclasses.replace(config, radii=0)  # the bank may hold more radii than the grid reads
    assert cross_validate(bank, radius_0) == {k: v for k, v in scores.items() if k.radius == 0}
    with pytest.raises(ValueError, match="the bank holds 1 copies, the grid needs 2"):
        cross_validate(bank, ProbeConfig(copies=2, radii=0, folds=4))
    with pytest.raises(ValueError, match=r"no shift-averaged features for radii \[1\]"):
        cross_validate(bank, dataclasses.replace(config, radii=(0, 1)))
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        stratified_folds(labels, 1, seed=0)


def test_run_probe_protocol_never_looks_at_test_labels():
    x, y = _bar_images(20, seed=0)
    xt, yt = _bar_images(10, seed=1)
    config = ProbeConfig(penalties=(1e-4, 1e-1), copies=1, radii=(0, 1), folds=4, max_iter=100)
    probe, report = run_probe(_pixels, x, y, xt, yt, config)
    assert isinstance(report, ProbeReport) and isinstance(probe, LinearProbe)
    assert report.test_acc == 1.0 and report.train_acc == 1.0 and report.test_acc_single_view == 1.0
    assert report.point.penalty in (1e-4, 1e-1) and report.cv_acc == 1.0
    assert set(report.to_dict()["cv_scores"]) == {f"copies=1,penalty={p},radius={r}"
                                                  for p in ("0.0001", "0.1") for r in (0, 1)}
    assert report.point.copies == 1 and report.point.radius == 0  # all perfect: the smallest radius
    assert report.point == (1, 1e-1, 0)  # ... and the largest penalty
    assert report.folds == 4 and report.n_train_images == 200 and report.feature_dim == 784
    scrambled = yt[torch.randperm(yt.numel(), generator=torch.Generator().manual_seed(0))]
    other_probe, other = run_probe(_pixels, x, y, xt, scrambled, config)
    assert other.cv_scores == report.cv_scores and other.point == report.point
    assert torch.equal(other_probe.weight, probe.weight) and other.train_acc == report.train_acc
    assert other.test_acc < 0.5, "only the reported test accuracy depends on the test labels"


def test_run_probe_chooses_copies_penalty_and_radius_by_cross_validation():
    """On pure-noise images the report's (copies, penalty, radius) is the best cross-validated triple, ties
    going to fewer copies, the larger penalty and the smaller radius; the returned probe is that (copies,
    penalty) refitted on all training images, and its accuracies read the images through phi_r."""
    x = torch.randint(0, 255, (40, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(4).repeat_interleave(10)
    xt = torch.randint(0, 255, (30, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    yt = torch.arange(3).repeat_interleave(10)
    config = ProbeConfig(penalties=(1e-3, 1.0), copies=(0, 2), radii=(0, 1), folds=2, max_iter=40)
    probe, report = run_probe(_pixels, x, y, xt, yt, config)
    bank = FeatureBank.extract(_pixels, x, y, config)
    scores = cross_validate(bank, config)
    assert report.cv_scores == scores and len(scores) == 8
    assert "copies=2,penalty=0.001,radius=1" in report.to_dict()["cv_scores"]
    best = max(scores.values())
    first = min((c, -p, r) for (c, p, r), v in scores.items() if v == best)
    assert report.point == (first[0], -first[1], first[2]) == config.grid.best(scores)
    assert report.cv_acc == best
    refit = train_probe(*bank.training_set(first[0]), -first[1], 40)
    assert torch.equal(refit.weight, probe.weight) and torch.equal(refit.bias, probe.bias)
    read = shift_averaged(_pixels, first[2])
    assert report.train_acc == accuracy(probe(read(to_unit(x))), y)
    assert report.test_acc == accuracy(probe(read(to_unit(xt))), yt)
    assert report.test_acc_single_view == accuracy(probe(_pixels(to_unit(xt))), yt)


# ---------------------------------------------------------------------------------------------------- devices

@pytest.mark.parametrize("device", DEVICES)
def test_random_copies_are_the_same_on_every_device(device):
    config = ProbeConfig(copies=2, radii=0)
    unit = to_unit(_bar_images(1, seed=0)[0])
    for a, b in zip(random_copies(unit.to(device), config, 2), random_copies(unit, config, 2)):
        assert a.device.type == device and torch.equal(a, b.to(device))  # CPU generator: same copies anywhere


def test_run_probe_and_evaluate_probe_resolve_the_device_once(monkeypatch):
    """The device is resolved at the public entry point and handed down as a torch.device: one resolution of
    an explicit name per call, however many features, folds and shifts the call computes."""
    calls = []
    real = features_module.get_device
    monkeypatch.setattr(features_module, "get_device", lambda device: calls.append(device) or real(device))
    x, y = _bar_images(2, seed=0)
    xt, yt = _bar_images(1, seed=1)
    config = ProbeConfig(penalties=(1e-2, 1e-1), copies=(0, 1), radii=(0, 1), folds=2, max_iter=5)
    probe, report = run_probe(_pixels, x, y, xt, yt, config, device="cpu")
    assert calls == ["cpu"]
    assert evaluate_probe(probe, _pixels, xt, yt, report.point.radius, device="cpu") == report.test_acc
    assert calls == ["cpu", "cpu"]
    FeatureBank.extract(_pixels, x, y, config, "cpu")
    assert calls == ["cpu"] * 3


@pytest.mark.parametrize("device", DEVICES)
def test_run_probe_runs_where_the_extractor_is_with_images_and_labels_on_the_cpu(device, tiny_extractor):
    x, y = _bar_images(4, seed=0)
    xt, yt = _bar_images(2, seed=1)
    config = ProbeConfig(penalties=(1e-2, 1e-1), copies=(0, 1), radii=(0, 1), folds=2, max_iter=10)
    module = tiny_extractor().to(device)
    probe, report = run_probe(module, x, y, xt, yt, config)
    assert probe.weight.device.type == device and report.feature_dim == 12 and report.n_train_images == 40
    assert 0.0 <= report.test_acc <= 1.0 and len(report.cv_scores) == 8
    explicit_probe, explicit = run_probe(lambda im: module(im), x, y, xt, yt, config, device=device)
    assert explicit_probe.weight.device.type == device and explicit.cv_scores.keys() == report.cv_scores.keys()
    if device == "cpu":  # the same computation: the same numbers
        assert explicit == report and torch.equal(explicit_probe.weight, probe.weight)
    bank = FeatureBank.extract(module, x, y, config)
    assert {bank.device.type, bank.labels.device.type, bank.averaged[1].device.type} == {device}


def test_fit_or_load_and_evaluate_probe(tmp_path, monkeypatch):
    """The notebook's probe calls: a fitted probe is exported with its report; in shipped mode the same probe
    and report come back and the test accuracy is measured again (equal to the fitted one)."""
    from hw5 import locations
    from hw5.settings import Settings

    images, labels = _bar_images(8, seed=0)
    test_images, test_labels = _bar_images(4, seed=1)
    config = ProbeConfig(penalties=(1e-2, 1e-3), copies=(0, 1), radii=(0, 1), folds=2, max_iter=20)
    settings = Settings(out=tmp_path, device="cpu")
    probe, report = fit_or_load_probe("p", settings, _pixels, images, labels, test_images, test_labels, config)
    assert evaluate_probe(probe, _pixels, test_images, test_labels, report.point.radius) == report.test_acc
    assert evaluate_probe(probe, _pixels, test_images, test_labels, 0) == report.test_acc_single_view
    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", tmp_path / "weights")
    again, shipped = fit_or_load_probe("p", settings.replace(use_shipped=True), _pixels, images, labels, test_images,
                                       test_labels, config)
    assert torch.equal(again.weight, probe.weight) and shipped == report
