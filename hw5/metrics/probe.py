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

At evaluation the layer may read the features averaged over the (2r + 1)^2 integer translations of the
image by at most r pixels (test-time augmentation, radius r = 0: none):

    phi_r(x) = (2r + 1)^-2 sum_{|dy|, |dx| <= r} phi(x shifted by (dy, dx)),   logits W phi_r(x) + b,

which, the layer being linear, equals the mean of its logits over the shifted images. A layer trained on
shifted copies has learnt weights that are nearly invariant to small shifts; averaging over them cancels the
part of phi that is not. phi_r is still a feature map of the discriminator trunk alone (:func:`shift_averaged`).

The three choices the homework leaves open, the penalty lambda, the number of copies c and the radius r,
are chosen together by stratified k-fold cross-validation on the *training* images: each grid point
(c, lambda, r) is scored by the accuracy on every training image (read through phi_r) of a probe fitted
without that image's fold (its copies stay out too), so all 6,000 images vote and not a small slice. The
copies are nested (the c-copy set is the first c copies of the largest one, :func:`random_copies`), and r
changes only how held-out images are read, so one feature extraction (:class:`FeatureBank`) and one fit
per (fold, c, lambda) serve the whole grid (:class:`ProbeGrid`: its order, tie-break and warm-start path).
The test set is used once, for the reported accuracy (:class:`ProbeReport`); the probe is refitted on all
training images with the chosen (c, lambda) and reads phi_r.

One vocabulary throughout, in code, configuration, JSON keys and here: ``copies`` (c), ``penalty``
(lambda; ``penalties`` for the grid's values) and ``radius`` (r; ``radii``).

Devices: every function computes where the extractor lives (an ``nn.Module``, a bound method of one such as
``D.features``, or an explicit ``device``; a plain function without ``device`` computes where the images
are) and moves the images and labels there; its results are on that device. Random copies are drawn from a
CPU generator, so the same seed gives the same copies on every device.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data import random_affine, random_shift, stratified_folds, to_unit, translate
from ..models.classifier import LinearProbe, LinearProbeConfig
from ..utils import get_device, model_device
from .common import accuracy, correct

Extractor = Callable[[torch.Tensor], torch.Tensor]
DeviceLike = str | torch.device | None

MAX_RADIUS = 13  # a shift by at most 13 pixels leaves part of a 28x28 image
AUGMENTATIONS = ("shift", "affine")


# ----------------------------------------------------------------------------------------------------------
# Configuration and grid
# ----------------------------------------------------------------------------------------------------------

def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(field: str, value: object, low: int, high: int | None = None, why: str = "") -> int:
    """``value`` as an int in [low, high]; TypeError / ValueError naming ``ProbeConfig.<field>`` otherwise."""
    allowed = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
    if not _is_int(value):
        raise TypeError(f"ProbeConfig.{field} must be {allowed}{why}, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        raise ValueError(f"ProbeConfig.{field} must be {allowed}{why}, got {value!r}")
    return int(value)


def _check_real(field: str, value: object, low: float, high: float, allowed: str) -> float:
    """``value`` as a finite float in [low, high]; TypeError / ValueError naming the field otherwise."""
    if not _is_real(value):
        raise TypeError(f"ProbeConfig.{field} must be {allowed}, got {value!r} ({type(value).__name__})")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"ProbeConfig.{field} must be {allowed}, got {value!r}")
    return float(value)


def _grid_values(field: str, value: object, check: Callable[[str, object], Any]) -> tuple:
    """One grid axis: a scalar (a one-point axis) or a non-empty sequence, each value checked by ``check``;
    returned as a sorted tuple of distinct values (the canonical form of a set)."""
    scalar = _is_real(value)
    if not scalar and (not isinstance(value, Sequence) or isinstance(value, (str, bytes))):
        raise TypeError(f"ProbeConfig.{field} must be one value or a non-empty tuple of values, got "
                        f"{value!r} ({type(value).__name__})")
    values = (value,) if scalar else tuple(value)
    if not values:
        raise ValueError(f"ProbeConfig.{field} must be one value or a non-empty tuple of values, got {value!r}")
    return tuple(sorted({check(f"{field}[{i}]" if not scalar else field, v) for i, v in enumerate(values)}))


def _check_penalty(field: str, value: object) -> float:
    return _check_real(field, value, 0.0, math.inf, "a finite number >= 0 (the penalty lambda)")


def _check_copies(field: str, value: object) -> int:
    return _check_int(field, value, 0, why=" (a number of augmented copies per image)")


def _check_radius(field: str, value: object) -> int:
    return _check_int(field, value, 0, MAX_RADIUS, " (pixels: a shift must leave part of a 28x28 image)")


class ProbePoint(NamedTuple):
    """One point of the grid: ``copies`` c, ``penalty`` lambda, test-time shift ``radius`` r."""

    copies: int
    penalty: float
    radius: int

    @property
    def key(self) -> str:
        """The point's JSON key, e.g. ``'copies=8,penalty=0.001,radius=1'`` (exact: parses back to it)."""
        return f"copies={self.copies},penalty={float(self.penalty)!r},radius={self.radius}"

    @classmethod
    def from_key(cls, key: str) -> ProbePoint:
        """The point whose :attr:`key` is ``key``."""
        try:
            fields = dict(part.split("=", 1) for part in key.split(","))
            point = cls(int(fields["copies"]), float(fields["penalty"]), int(fields["radius"]))
        except (KeyError, ValueError):
            raise ValueError(f"{key!r} is not a probe grid key like 'copies=8,penalty=0.001,radius=1'") from None
        if point.key != key or len(fields) != 3:
            raise ValueError(f"{key!r} is not a probe grid key like 'copies=8,penalty=0.001,radius=1'")
        return point


@dataclass(frozen=True)
class ProbeGrid:
    """The cross-validation grid copies x penalties x radii, in the ONE order everything relies on.

    Order (each axis strictly monotone, checked here): ``copies`` ascending, ``penalties`` DESCENDING,
    ``radii`` ascending, and :attr:`points` walks copies (outer), then penalty, then radius (inner). Two uses:

    * tie-break: :meth:`best` returns the first point of :attr:`points` with the highest score, i.e. among
      equally good points the fewest copies, then the largest penalty (the simplest layer), then the smallest
      radius (the cheapest read-out);
    * warm start: for one training set (fold, copies) the probes are fitted along :attr:`penalties`, from the
      largest penalty down, each L-BFGS run starting from the previous solution (the problem is convex, so
      only the path changes, not the optimum).

    Build it from values in any order with :meth:`from_values` (or :attr:`ProbeConfig.grid`).
    """

    copies: tuple[int, ...]
    penalties: tuple[float, ...]
    radii: tuple[int, ...]

    def __post_init__(self) -> None:
        for name, axis, sign in (("copies", self.copies, 1), ("penalties", self.penalties, -1),
                                 ("radii", self.radii, 1)):
            if not axis or any(sign * (b - a) <= 0 for a, b in zip(axis, axis[1:])):
                order = "descending" if sign < 0 else "ascending"
                raise ValueError(f"ProbeGrid.{name} must be non-empty, distinct and {order}, got {axis!r}; "
                                 "use ProbeGrid.from_values(...) to order values")

    @classmethod
    def from_values(cls, copies: Iterable[int], penalties: Iterable[float], radii: Iterable[int]) -> ProbeGrid:
        """The grid of these values (any order, repeats ignored), ordered as the class says."""
        return cls(tuple(sorted(set(copies))), tuple(sorted(set(penalties), reverse=True)),
                   tuple(sorted(set(radii))))

    @property
    def points(self) -> tuple[ProbePoint, ...]:
        """Every (copies, penalty, radius), copies outermost, radius innermost (see the class)."""
        return tuple(ProbePoint(c, p, r) for c in self.copies for p in self.penalties for r in self.radii)

    def best(self, scores: Mapping[ProbePoint, float]) -> ProbePoint:
        """The first point of :attr:`points` with the highest score (the tie-break of the class)."""
        missing = [p.key for p in self.points if p not in scores]
        if missing:
            raise ValueError(f"scores lack grid points {missing}")
        return max(self.points, key=lambda point: scores[point])  # max keeps the first of equal maxima


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's grid (``copies`` c, ``penalties`` lambda, test-time shift ``radii`` r), augmentation,
    folds and solver budget. Checked at construction (TypeError / ValueError naming the field).

    Each grid axis may be given as one value (no choice: a one-point axis) or a non-empty tuple; it is stored
    as a sorted tuple of distinct values, so equal grids give equal configs. The order in which the grid is
    walked (and ties broken) is :class:`ProbeGrid`'s, see :attr:`grid`.

    ``augmentation``: ``"shift"`` (integer translations by at most ``max_shift`` pixels in each direction) or
    ``"affine"`` (rotation by at most ``max_degrees``, scale 1 +- ``max_scale``, shift by at most
    ``max_shift``). ``folds``: k of k-fold cross-validation; ``max_iter``: the L-BFGS iterations of one fit;
    ``seed``: the copies' generator (``seed``) and the folds (``seed + 1``).
    """

    penalties: tuple[float, ...] = (1e-2, 1e-3)
    copies: tuple[int, ...] = (0, 8, 16)
    radii: tuple[int, ...] = (0, 1, 2)
    augmentation: str = "shift"
    max_shift: int = 2
    max_degrees: float = 10.0
    max_scale: float = 0.1
    folds: int = 5
    max_iter: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        checked = {
            "penalties": _grid_values("penalties", self.penalties, _check_penalty),
            "copies": _grid_values("copies", self.copies, _check_copies),
            "radii": _grid_values("radii", self.radii, _check_radius),
            "max_shift": _check_int("max_shift", self.max_shift, 0, MAX_RADIUS,
                                    " (pixels: a shift must leave part of a 28x28 image)"),
            "max_degrees": _check_real("max_degrees", self.max_degrees, 0.0, 180.0, "a number in [0, 180]"),
            "max_scale": _check_real("max_scale", self.max_scale, 0.0, 0.99, "a number in [0, 0.99]"),
            "folds": _check_int("folds", self.folds, 2),
            "max_iter": _check_int("max_iter", self.max_iter, 1),
            "seed": _check_int("seed", self.seed, 0),
        }
        if not isinstance(self.augmentation, str):
            raise TypeError(f"ProbeConfig.augmentation must be one of {AUGMENTATIONS}, got "
                            f"{self.augmentation!r} ({type(self.augmentation).__name__})")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"ProbeConfig.augmentation must be one of {AUGMENTATIONS}, got {self.augmentation!r}")
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: canonical values, set once here

    @property
    def grid(self) -> ProbeGrid:
        """The cross-validation grid of these values, in its documented order."""
        return ProbeGrid.from_values(self.copies, self.penalties, self.radii)


# ----------------------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------------------

def extractor_device(extractor: Extractor, images: torch.Tensor, device: DeviceLike = None) -> torch.device:
    """Where features are computed: ``device`` if given; else the device of ``extractor`` when it is an
    ``nn.Module`` or a bound method of one (``D.features``); else where ``images`` are (a plain function
    such as ``lambda x: D.features(2 * x - 1)`` cannot be inspected: pass ``device`` for it)."""
    if device is not None:
        return get_device(device)
    module = extractor if isinstance(extractor, nn.Module) else getattr(extractor, "__self__", None)
    return model_device(module) if isinstance(module, nn.Module) else images.device


@torch.no_grad()  # not inference_mode: its tensors could not enter a module that records gradients
def extract_features(extractor: Extractor, images: torch.Tensor, batch_size: int = 500,
                     device: DeviceLike = None) -> torch.Tensor:
    """``extractor`` applied batch-wise to ``images`` (as the extractor reads them, e.g. float
    (N, 1, 28, 28) in [0, 1]), flattened to (N, d) float32: ordinary tensors that any module can read, e.g. a
    freshly loaded probe whose weights require gradients.

    ``images`` are moved to :func:`extractor_device` (``device``, else the extractor's module, else where
    they are); the features are on that device.
    """
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    images = images.to(extractor_device(extractor, images, device))
    feats = [extractor(images[i:i + batch_size]).flatten(1).float() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(feats)


def _check_radii(radii: Iterable[int]) -> list[int]:
    values = list(radii)
    if not values or len(set(values)) != len(values) or not all(_is_int(r) and 0 <= r <= MAX_RADIUS for r in values):
        raise ValueError(f"radii must be distinct ints in [0, {MAX_RADIUS}], at least one, got {values!r}")
    return sorted(int(r) for r in values)


@torch.no_grad()
def shift_averaged_features(extractor: Extractor, images: torch.Tensor, radii: Iterable[int],
                            batch_size: int = 500, device: DeviceLike = None) -> dict[int, torch.Tensor]:
    """phi_r(images) for every r in ``radii``: a dict radius -> (N, d), in ascending radius.

    phi_r(x) = (2r + 1)^-2 sum_{|dy|, |dx| <= r} phi(translate(x, dy, dx)) with phi = ``extractor`` and
    ``images`` as the extractor reads them, (N, C, H, W) (float (N, 1, 28, 28) in [0, 1] for the probe's
    extractors). The squares are nested, so one pass adds ring r = 0, 1, ... to a running sum and copies it
    out at each requested radius. Computed on :func:`extractor_device` (images moved there); the features
    are on that device.
    """
    wanted = _check_radii(radii)
    device = extractor_device(extractor, images, device)
    images = images.to(device)
    total, averaged = None, {}
    for r in range(wanted[-1] + 1):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if max(abs(dy), abs(dx)) == r:  # ring r: the shifts not in the square of radius r - 1
                    f = extract_features(extractor, translate(images, dy, dx), batch_size, device)
                    total = f if total is None else total.add_(f)
        if r in wanted:
            averaged[r] = total / (2 * r + 1) ** 2
    return averaged


def shift_averaged(extractor: Extractor, radius: int, device: DeviceLike = None) -> Extractor:
    """The extractor phi_r: ``extractor`` averaged over the (2r + 1)^2 shifts by at most r pixels.

    Reads the shipped probe: ``probe(shift_averaged(phi, r)(to_unit(images)))`` with r its recorded
    ``radius``. The features are on :func:`extractor_device` (``device``, else the extractor's module, else
    the images' device).
    """
    _check_radii([radius])
    return lambda images: shift_averaged_features(extractor, images, (radius,), device=device)[radius]


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
        in [0, 1], (B, 1, 28, 28). Computed on :func:`extractor_device`; the bank lives there (labels too).
        ``name`` names the images in error messages.
        """
        device = extractor_device(extractor, images, device)
        unit = to_unit(images, device, name=name)
        if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (unit.shape[0],):
            raise ValueError(f"the labels of {name} must be a tensor (N,) with N = {unit.shape[0]}, got "
                             f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
        views = itertools.chain([unit], random_copies(unit, config, max(config.copies)))  # drawn one by one
        stacked = torch.stack([extract_features(extractor, v, device=device) for v in views])
        averaged = shift_averaged_features(extractor, unit, config.radii, device=device)
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

    with torch.enable_grad():
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
    if not _is_real(penalty) or not math.isfinite(penalty) or penalty < 0:
        raise ValueError(f"penalty must be a finite number >= 0, got {penalty!r}")
    if not _is_int(max_iter) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
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


@torch.no_grad()
def _logits(probe: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The probe's logits of ``features``, moved to the probe's device."""
    return probe(features.to(model_device(probe)))


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
                    scores = _logits(probe, bank.averaged[radius][val])
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
    :func:`extractor_device` (``device``, else the extractor's module, else the training images' device),
    where the features are computed and the returned probe is.
    """
    device = extractor_device(extractor, train_images, device)
    bank = FeatureBank.extract(extractor, train_images, train_labels, config, device, name="train_images")
    scores = cross_validate(bank, config)
    point = config.grid.best(scores)
    probe = train_probe(*bank.training_set(point.copies), point.penalty, config.max_iter)
    test = shift_averaged_features(extractor, to_unit(test_images, device, name="test_images"),
                                   {0, point.radius}, device=device)
    test_labels = test_labels.to(device)
    return probe, ProbeReport(
        point=point, cv_acc=scores[point], cv_scores=scores, folds=config.folds,
        train_acc=accuracy(_logits(probe, bank.averaged[point.radius]), bank.labels),
        test_acc=accuracy(_logits(probe, test[point.radius]), test_labels),
        test_acc_single_view=accuracy(_logits(probe, test[0]), test_labels),
        feature_dim=bank.feature_dim, n_train_images=bank.n_images,
    )


def evaluate_probe(probe: nn.Module, extractor: Extractor, images: torch.Tensor, labels: torch.Tensor,
                   radius: int, device: DeviceLike = None) -> float:
    """Test accuracy of a fitted ``probe`` reading ``images`` through phi_r, r = ``radius`` (e.g. the shipped
    ``dcgan_probe`` with its recorded radius); images and labels on any device."""
    device = extractor_device(extractor, images, device)
    features = shift_averaged_features(extractor, to_unit(images, device), {radius}, device=device)[radius]
    return accuracy(_logits(probe.to(device), features), labels)


def probe_table(reports: Mapping[str, ProbeReport]) -> str:
    """The probes' choices and accuracies as a fixed-width text table, one row per feature map."""
    lines = [f"{'features':<27}{'dim':>5}{'copies':>7}{'penalty':>9}{'r':>3}{'CV acc':>9}{'train acc':>11}"
             f"{'test acc':>10}{'1-view test':>13}"]
    for name, r in reports.items():
        lines.append(f"{name:<27}{r.feature_dim:>5}{r.point.copies:>7}{r.point.penalty:>9.0e}{r.point.radius:>3}"
                     f"{100 * r.cv_acc:>8.2f}%{100 * r.train_acc:>10.2f}%{100 * r.test_acc:>9.2f}%"
                     f"{100 * r.test_acc_single_view:>12.2f}%")
    return "\n".join(lines)


def cv_grid_table(report: ProbeReport, penalty: float) -> str:
    """The cross-validated accuracies of a report's grid at one ``penalty``: rows copies c, columns radius r."""
    points = [p for p in report.cv_scores if p.penalty == penalty]
    if not points:
        raise ValueError(f"the report's grid has no point with penalty {penalty:g}")
    copies, radii = sorted({p.copies for p in points}), sorted({p.radius for p in points})
    lines = [f"{report.folds}-fold CV accuracy, penalty {penalty:g}; rows: copies c, columns: radius r",
             "    c " + "".join(f"{f'r={r}':>9}" for r in radii)]
    for c in copies:
        lines.append(f"{c:>5} " + "".join(f"{100 * report.cv_scores[ProbePoint(c, penalty, r)]:>8.2f}%" for r in radii))
    return "\n".join(lines)


def fit_or_load_probe(name: str, settings: Any, extractor: Extractor, train_images: torch.Tensor,
                      train_labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                      config: ProbeConfig) -> tuple[nn.Module, ProbeReport]:
    """:func:`run_probe` and export of the probe as weights ``name`` with its report, or, with
    ``settings.use_shipped``, the shipped probe ``name`` and the report its full run recorded (its grid, choice
    and cross-validated accuracies); either way ``test_acc`` is measured here, on ``test_images``."""
    from ..pretrained import export_pretrained, pretrained, pretrained_info  # the probe is evaluation first

    if not settings.use_shipped:
        probe, report = run_probe(extractor, train_images, train_labels, test_images, test_labels, config,
                                  settings.device)
        export_pretrained(name, probe, config, {"probe": report.to_dict()}, settings.weights_dir())
        return probe, report
    probe, report = pretrained(name, settings.device), ProbeReport.from_dict(pretrained_info(name)["probe"])
    single = evaluate_probe(probe, extractor, test_images, test_labels, 0, settings.device)
    measured = evaluate_probe(probe, extractor, test_images, test_labels, report.point.radius, settings.device)
    return probe, dataclasses.replace(report, test_acc=measured, test_acc_single_view=single)


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
