"""Problem 1.2's linear probe: ONE linear layer trained on frozen features, as an evaluation of them.

The probe is multinomial logistic regression on standardised features u = (phi(x) - m) / s:

    p(y | x) = softmax(W u + b),   minimise  -1/N sum_n log p(y_n | x_n) + (lambda / 2) ||W||_F^2

with full-batch L-BFGS. The problem is convex, so the solution depends on the penalty lambda alone, not on
an optimiser's learning rate or a number of epochs (``max_iter`` only bounds the work). The standardisation
is then folded into the layer (W' = W / s, b' = b - W' m): the result is one linear layer
(:class:`hw5.models.classifier.LinearProbe`, an ``nn.Linear(d, 10)``) applied to the raw features phi(x).

The training images may be augmented: ``c`` randomly shifted (or rotated/scaled/shifted) copies of every
training image are added (:func:`hw5.data.random_shift`, :func:`hw5.data.random_affine`), so the probe sees
``1 + c`` feature vectors per image. This is still a linear layer trained on features of the same 10% of the
training set; it teaches the layer the small invariances that a 10-way linear read-out of a 4x4 feature map
cannot learn from 600 images per digit.

At evaluation the layer may read phi_r (:mod:`hw5.metrics.features`), the features averaged over the
(2r + 1)^2 integer translations of the image by at most r pixels (radius r = 0: none); its logits
W phi_r(x) + b are, the layer being linear, the mean of its logits over the shifted images. A layer trained on
shifted copies has learnt weights that are nearly invariant to small shifts; averaging over them cancels the
part of phi that is not. phi_r is still a feature map of the discriminator trunk alone.

The three choices the homework leaves open, the penalty lambda, the number of copies c and the radius r,
are chosen together by stratified k-fold cross-validation on the *training* images: each grid point
(c, lambda, r) is scored by the accuracy on every training image (read through phi_r) of a probe fitted
without that image's fold (its copies stay out too), so all 6,000 images vote and not a small slice. The
copies are nested (the c-copy set is the first c copies of the largest one, :func:`random_copies`), and r
changes only how held-out images are read, so one feature extraction (:class:`FeatureBank`) and one fit
per (fold, c, lambda) serve the whole grid (:class:`hw5.training.probe_grid.ProbeGrid`: its order, tie-break
and warm-start path). The test set is used once, for the reported accuracy (:class:`ProbeReport`); the probe
is refitted on all training images with the chosen (c, lambda) and reads phi_r.

Devices: each public entry point (:func:`run_probe`, :meth:`FeatureBank.extract`) resolves once where the
features are computed (:func:`hw5.metrics.features.extractor_device`: an explicit ``device``, else the
extractor's module, else where the images are), moves the images and labels there and passes that
``torch.device`` down; its results are on that device. Random copies are drawn from a CPU generator, so the
same seed gives the same copies on every device.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .. import checks
from ..data import random_affine, random_shift, stratified_folds, to_unit
from ..metrics.common import accuracy, correct
from ..metrics.features import (DeviceLike, Extractor, extract_features_on, extractor_device,
                                shift_averaged_features_on)
from ..metrics.probe import probe_logits
from ..models.classifier import LinearProbe, LinearProbeConfig
from ..utils import float32_math, no_autocast
from .probe_grid import ProbeConfig, ProbeGrid, ProbePoint


# ----------------------------------------------------------------------------------------------------------
# Features of the training images
# ----------------------------------------------------------------------------------------------------------

def random_copies(images: torch.Tensor, config: ProbeConfig, count: int) -> Iterator[torch.Tensor]:
    """``count`` randomly augmented copies of ``images`` (float (N, 1, 28, 28) in [0, 1]), one after another.

    Nested copies: every copy is drawn, in turn, from ONE generator seeded with ``config.seed`` and nothing
    else draws from it, so copy k is the same whatever ``count`` is, and the c-copy training set of any grid
    point is the first c copies of the largest draw. The generator is a CPU generator (the same seed gives
    the same copies on every device); :func:`hw5.data.random_shift` / :func:`hw5.data.random_affine` move
    its draws to the images' device, where the copies are.
    """
    gen = torch.Generator().manual_seed(config.seed)
    for _ in range(count):
        if config.augmentation == "shift":  # exact integer translations: no resampling blur
            yield random_shift(images, config.max_shift, gen)
        else:
            yield random_affine(images, config.max_degrees, config.max_scale, config.max_shift, gen)


@dataclass(frozen=True, eq=False)
class FeatureBank:
    """The features of the training images that cross-validation and the final fit read, all on one device.

    * ``views`` (1 + C, N, d): ``views[0]`` phi of the images themselves, ``views[k]`` phi of their k-th
      random copy (:func:`random_copies`: nested, so grid point c trains on ``views[:1 + c]``);
    * ``averaged``: radius r -> (N, d), phi_r of the images themselves (how they are read at radius r);
    * ``labels`` (N,).
    """

    views: torch.Tensor
    averaged: dict[int, torch.Tensor]
    labels: torch.Tensor

    def __post_init__(self) -> None:
        n, d = self.views.shape[1:] if self.views.ndim == 3 else (-1, -1)
        shapes = {r: tuple(a.shape) for r, a in self.averaged.items()}
        if n < 1 or tuple(self.labels.shape) != (n,) or any(s != (n, d) for s in shapes.values()):
            raise ValueError(f"a FeatureBank needs views (1 + copies, N, d), labels (N,) and averaged views "
                             f"(N, d); got views {tuple(self.views.shape)}, labels {tuple(self.labels.shape)}, "
                             f"averaged {shapes}")
        devices = {t.device for t in (self.views, self.labels, *self.averaged.values())}
        if len(devices) != 1:
            raise ValueError(f"a FeatureBank's tensors must be on one device, got {sorted(map(str, devices))}")

    @classmethod
    def extract(cls, extractor: Extractor, images: torch.Tensor, labels: torch.Tensor, config: ProbeConfig,
                device: DeviceLike = None, *, name: str = "images") -> FeatureBank:
        """The bank of ``images`` (uint8 (N, 28, 28) or floats in [0, 1], via :func:`hw5.data.to_unit`) for
        ``config``'s grid: max(copies) copies and phi_r for every radius. ``extractor`` receives float images
        in [0, 1], (B, 1, 28, 28). Computed on :func:`hw5.metrics.features.extractor_device`; the bank lives
        there (labels too). ``name`` names the images in error messages.
        """
        return cls.extract_on(extractor, images, labels, config, extractor_device(extractor, images, device),
                              name=name)

    @classmethod
    def extract_on(cls, extractor: Extractor, images: torch.Tensor, labels: torch.Tensor, config: ProbeConfig,
                   device: torch.device, *, name: str = "images") -> FeatureBank:
        """:meth:`extract` on the resolved ``device``."""
        unit = to_unit(images, device, name=name)
        if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (unit.shape[0],):
            raise ValueError(f"the labels of {name} must be a tensor (N,) with N = {unit.shape[0]}, got "
                             f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
        views = itertools.chain([unit], random_copies(unit, config, max(config.copies)))  # drawn one by one
        stacked = torch.stack([extract_features_on(extractor, v, device) for v in views])
        averaged = shift_averaged_features_on(extractor, unit, config.radii, device)
        return cls(stacked, averaged, labels.to(device))

    @property
    def copies(self) -> int:
        """How many copies of every image the bank holds."""
        return self.views.shape[0] - 1

    @property
    def device(self) -> torch.device:
        return self.views.device

    @property
    def n_images(self) -> int:
        return self.views.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.views.shape[2]

    def training_set(self, copies: int, index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The features ((1 + c) n, d) and labels ((1 + c) n,) of images ``index`` (all if None) and of their
        first ``copies`` copies, view by view (view 0 first)."""
        if not 0 <= copies <= self.copies:
            raise ValueError(f"the bank holds {self.copies} copies of every image, not {copies}")
        views = self.views[:1 + copies] if index is None else self.views[:1 + copies, index]
        labels = self.labels if index is None else self.labels[index]
        return views.flatten(0, 1), labels.repeat(views.shape[0])

    def check_covers(self, grid: ProbeGrid) -> None:
        """Raise ValueError unless the bank holds the copies and radii that ``grid`` needs."""
        if self.copies < max(grid.copies):
            raise ValueError(f"the bank holds {self.copies} copies, the grid needs {max(grid.copies)}: build "
                             "it with FeatureBank.extract(..., config)")
        missing = [r for r in grid.radii if r not in self.averaged]
        if missing:
            raise ValueError(f"the bank has no shift-averaged features for radii {missing} (it has "
                             f"{sorted(self.averaged)}): build it with FeatureBank.extract(..., config)")


# ----------------------------------------------------------------------------------------------------------
# Fitting and cross-validation
# ----------------------------------------------------------------------------------------------------------

def _lbfgs(u: torch.Tensor, labels: torch.Tensor, penalty: float, max_iter: int, weight: torch.Tensor,
           bias: torch.Tensor) -> None:
    """Minimise CE(u W^T + b, labels) + (lambda / 2) ||W||_F^2 over ``weight`` and ``bias`` in place."""
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(u @ weight.T + bias, labels) + 0.5 * penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad(), float32_math(), no_autocast(u.device):  # exact fp32: no TF32 matmuls on a GPU
        optimizer.step(closure)


def train_probe(features: torch.Tensor, labels: torch.Tensor, penalty: float, max_iter: int = 200,
                init: LinearProbe | None = None) -> LinearProbe:
    """Fit the penalised softmax regression of the module docstring on ``features`` (N, d); returns the probe
    on raw features, on the features' device (``labels`` are moved there).

    Standardise u = (phi - m) / s (m, s: per-feature mean and standard deviation, s >= 1e-6), minimise
    CE(W u + b) + (lambda / 2) ||W||_F^2 with L-BFGS (at most ``max_iter`` iterations), then fold the
    standardisation in: W u + b = (W / s) phi + (b - (W / s) m). ``init`` (a probe fitted on the same
    features, e.g. with a larger penalty) warm-starts L-BFGS, unfolded back into standardised coordinates.
    """
    checks.number("penalty", penalty, 0.0)  # checked, not converted: the caller's number is used as given
    checks.count("max_iter", max_iter, 1)
    features = features.detach().float()
    labels = labels.to(features.device)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    u = features.sub(mean).div_(std)  # (N, d); in place: one copy of the features, not two
    n_classes = int(labels.max()) + 1
    weight = torch.zeros(n_classes, u.shape[1], device=u.device)
    bias = torch.zeros(n_classes, device=u.device)
    if init is not None:  # unfold the warm start back into standardised coordinates
        weight.copy_(init.weight.to(u.device) * std)
        bias.copy_(init.bias.to(u.device) + init.weight.to(u.device) @ mean)
    _lbfgs(u, labels, penalty, max_iter, weight, bias)
    probe = LinearProbe(LinearProbeConfig(u.shape[1], n_classes)).to(u.device)
    with torch.no_grad():  # fold the standardisation in: W u + b = (W / s) phi + (b - (W / s) m)
        probe.weight.copy_(weight / std)
        probe.bias.copy_(bias - probe.weight @ mean)
    return probe.requires_grad_(False)


def cross_validate(bank: FeatureBank, config: ProbeConfig) -> dict[ProbePoint, float]:
    """k-fold cross-validated accuracy of every point of ``config.grid``, in the grid's order.

    Folds: ``stratified_folds(bank.labels, config.folds, config.seed + 1)``. For each fold and c the probes
    are fitted on the other folds' images and their first c copies, along the grid's warm-start path (the
    penalties from the largest down, each starting from the previous solution), and each is scored on the
    fold's images read through phi_r (``bank.averaged[r]``) for every radius r. The score of a point is the
    fraction of all N images classified correctly by the probe that did not see their fold.
    """
    grid = config.grid
    bank.check_covers(grid)
    fold = stratified_folds(bank.labels, config.folds, config.seed + 1).to(bank.device)
    hits = dict.fromkeys(grid.points, 0)
    for k in range(config.folds):
        fit, val = fold != k, fold == k
        for copies in grid.copies:
            features, labels = bank.training_set(copies, fit)  # ((1 + c) N_fit, d)
            probe = None
            for penalty in grid.penalties:  # the warm-start path: descending
                probe = train_probe(features, labels, penalty, config.max_iter, init=probe)
                for radius in grid.radii:
                    scores = probe_logits(probe, bank.averaged[radius][val])
                    hits[ProbePoint(copies, penalty, radius)] += correct(scores, bank.labels[val])
            del features, labels  # free this copy before the next c allocates its own
    return {point: h / bank.n_images for point, h in hits.items()}


# ----------------------------------------------------------------------------------------------------------
# The protocol and its report
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeReport:
    """What :func:`run_probe` found: the chosen ``point`` (copies, penalty, radius) and its cross-validated
    accuracy ``cv_acc``, ``cv_scores`` of every grid point, the ``folds``, the accuracies of the refitted
    probe on the training images (``train_acc``, read through phi_r), the test images (``test_acc``, through
    phi_r) and the test images read through phi itself (``test_acc_single_view``, reported, used for
    nothing), the ``feature_dim`` d and ``n_train_images`` N."""

    point: ProbePoint
    cv_acc: float
    cv_scores: dict[ProbePoint, float]
    folds: int
    train_acc: float
    test_acc: float
    test_acc_single_view: float
    feature_dim: int
    n_train_images: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (metrics.json, the shipped probe's sidecar): the point's fields ``copies``,
        ``penalty``, ``radius`` at top level, ``cv_scores`` keyed by :attr:`ProbePoint.key`."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        point = fields.pop("point")
        fields["cv_scores"] = {p.key: v for p, v in self.cv_scores.items()}
        return {**point._asdict(), **fields}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ProbeReport:
        """The report of a :meth:`to_dict` record (other keys, e.g. a recorded ``seconds``, are ignored)."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "point"] + list(ProbePoint._fields)
        missing = [name for name in names if name not in record]
        if missing:
            raise KeyError(f"a probe report needs keys {missing}")
        values = {name: record[name] for name in names if name not in ProbePoint._fields}
        values["cv_scores"] = {ProbePoint.from_key(k): v for k, v in record["cv_scores"].items()}
        point = ProbePoint(*(record[name] for name in ProbePoint._fields))
        return cls(point=point, **values)


def run_probe(extractor: Extractor, train_images: torch.Tensor, train_labels: torch.Tensor,
              test_images: torch.Tensor, test_labels: torch.Tensor, config: ProbeConfig,
              device: DeviceLike = None) -> tuple[LinearProbe, ProbeReport]:
    """The whole protocol: choose (copies, penalty, radius) by k-fold cross-validation on the training
    images (:func:`cross_validate`, ties by :meth:`ProbeGrid.best`), refit on all of them, report train
    (original images) and test accuracy, both read through phi_r. ``test_acc_single_view`` is the same
    probe on phi(x) itself, reported and used for nothing. The test labels enter only the test accuracies.

    ``extractor`` maps float images in [0, 1] (B, 1, 28, 28) to features; images are uint8 (N, 28, 28) or
    floats in [0, 1] (:func:`hw5.data.to_unit`), labels (N,), on any device: they are moved to
    :func:`hw5.metrics.features.extractor_device` (``device``, else the extractor's module, else the training
    images' device), resolved here once, where the features are computed and the returned probe is.
    """
    device = extractor_device(extractor, train_images, device)
    bank = FeatureBank.extract_on(extractor, train_images, train_labels, config, device, name="train_images")
    scores = cross_validate(bank, config)
    point = config.grid.best(scores)
    probe = train_probe(*bank.training_set(point.copies), point.penalty, config.max_iter)
    test = shift_averaged_features_on(extractor, to_unit(test_images, device, name="test_images"),
                                      {0, point.radius}, device)
    test_labels = test_labels.to(device)
    return probe, ProbeReport(
        point=point, cv_acc=scores[point], cv_scores=scores, folds=config.folds,
        train_acc=accuracy(probe_logits(probe, bank.averaged[point.radius]), bank.labels),
        test_acc=accuracy(probe_logits(probe, test[point.radius]), test_labels),
        test_acc_single_view=accuracy(probe_logits(probe, test[0]), test_labels),
        feature_dim=bank.feature_dim, n_train_images=bank.n_images,
    )


def homework_protocol(quick: bool = False) -> ProbeConfig:
    """Problem 1.2 as the homework states it: one linear layer on phi(x) of the training images, no copies,
    no averaging; only the penalty is chosen, by 5-fold CV from {1e-2, 1e-3} (quick: 2 folds, 30 iterations)."""
    return ProbeConfig(penalties=(1e-2, 1e-3), copies=0, radii=0, folds=2 if quick else 5,
                       max_iter=30 if quick else 200)


def extension_protocol(quick: bool = False) -> ProbeConfig:
    """The extension: copies x penalty x radius in {0, 8, 16} x {1e-2, 1e-3} x {0, 1, 2} by 5-fold CV (quick: one
    copy, radius 0 or 1, penalty 1e-3, 2 folds, 30 iterations)."""
    if quick:
        return ProbeConfig(penalties=1e-3, copies=1, radii=(0, 1), folds=2, max_iter=30)
    return ProbeConfig()
