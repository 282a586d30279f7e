"""Problem 1.2's linear probe: ONE linear layer trained on frozen features.

The probe is multinomial logistic regression on standardised features u = (phi(x) - m) / s:

    p(y | x) = softmax(W u + b),   minimise  -1/N sum_n log p(y_n | x_n) + (lambda / 2) ||W||_F^2

with full-batch L-BFGS. The problem is convex, so the solution depends on lambda alone, not on an
optimiser's learning rate or a number of epochs (``max_iter`` only bounds the work). The standardisation is
then folded into the layer (W' = W / s, b' = b - W' m): the result is one linear layer
(:class:`hw5.models.classifier.LinearProbe`, an ``nn.Linear(d, 10)``) applied to the raw features phi(x).

The training images may be augmented: ``c`` randomly shifted (or rotated/scaled/shifted) copies of every
training image are added (:func:`hw5.data.random_shift`, :func:`hw5.data.random_affine`), so the probe sees
``1 + c`` feature vectors per image. This is still a linear layer trained on features of the same 10% of the
training set; it teaches the layer the small invariances that a 10-way linear read-out of a 4x4 feature map
cannot learn from 600 images per digit.

At evaluation the layer may read the features averaged over the (2r + 1)^2 integer translations of the
image by at most r pixels (test-time augmentation, r = 0: none):

    phi_r(x) = (2r + 1)^-2 sum_{|dy|, |dx| <= r} phi(x shifted by (dy, dx)),   logits W phi_r(x) + b,

which, the layer being linear, equals the mean of its logits over the shifted images. A layer trained on
shifted copies has learnt weights that are nearly invariant to small shifts; averaging over them cancels the
part of phi that is not. phi_r is still a feature map of the discriminator trunk alone (:func:`shift_averaged`).

The three choices the homework leaves open, lambda, the number of copies c and the radius r, are chosen
together by stratified k-fold cross-validation on the *training* images: each (c, lambda, r) is scored by the
accuracy on every training image (read through phi_r) of a probe fitted without that image's fold (its copies
stay out too), so all 6,000 images vote and not a small slice. The copies are nested (the c-copy set is the
first c copies of the largest one), and r changes only how held-out images are read, so one feature extraction
and one fit per (fold, c, lambda) serve the whole grid. The test set is used once, for the reported accuracy;
the probe is refitted on all training images with the chosen (c, lambda) and reads phi_r.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data import random_affine, random_shift, stratified_folds, translate
from ..models.classifier import LinearProbe


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's grids (penalty lambda, augmented copies c, test-time shift radius r), augmentation,
    folds and solver budget.

    ``augment_copies`` and ``tta_radii`` may be given as one int (no choice: a one-point grid). The grids
    are stored sorted in the order cross-validation walks them (copies ascending, lambdas descending, radii
    ascending), so ties go to fewer copies, the larger lambda and the smaller radius.
    """

    weight_decays: tuple[float, ...] = (1e-2, 1e-3)
    augment_copies: tuple[int, ...] = (0, 8, 16)
    tta_radii: tuple[int, ...] = (0, 1, 2)  # r: read phi averaged over the (2r + 1)^2 shifts by <= r pixels
    augmentation: str = "shift"  # "shift": integer translations; "affine": also rotation and scale
    max_shift: int = 2
    max_degrees: float = 10.0
    max_scale: float = 0.1
    folds: int = 5
    max_iter: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        copies = (self.augment_copies,) if isinstance(self.augment_copies, int) else tuple(self.augment_copies)
        radii = (self.tta_radii,) if isinstance(self.tta_radii, int) else tuple(self.tta_radii)
        object.__setattr__(self, "augment_copies", tuple(sorted(set(copies))))  # frozen: set once, here
        object.__setattr__(self, "tta_radii", tuple(sorted(set(radii))))
        object.__setattr__(self, "weight_decays", tuple(sorted(set(self.weight_decays), reverse=True)))
        if self.max_iter < 1 or not copies or min(copies) < 0 or self.folds < 2:
            raise ValueError(f"need max_iter >= 1, augment_copies >= 0 (an int or a non-empty tuple) and "
                             f"folds >= 2; got {self.max_iter}, {copies} and {self.folds}")
        if not radii or min(radii) < 0 or max(radii) > 13:
            raise ValueError(f"tta_radii must be an int or a non-empty tuple of shifts in [0, 13] pixels, "
                             f"got {self.tta_radii!r}")
        if self.augmentation not in ("shift", "affine"):
            raise ValueError(f"augmentation must be 'shift' or 'affine', got {self.augmentation!r}")
        if not self.weight_decays or min(self.weight_decays) < 0:
            raise ValueError(f"weight_decays must be a non-empty tuple of values >= 0, got {self.weight_decays}")


@torch.no_grad()  # not inference_mode: its tensors could not enter a module that records gradients
def extract_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                     batch_size: int = 500) -> torch.Tensor:
    """``extractor`` applied batch-wise to ``images``, flattened to (N, d) float32: ordinary tensors that
    any module can read, e.g. a freshly loaded probe whose weights require gradients."""
    feats = [extractor(images[i:i + batch_size]).flatten(1).float() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(feats)


def unit_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1], what every extractor here receives."""
    return images.unsqueeze(1).float().div(255.0)


@torch.no_grad()
def shift_averaged_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                            radii: Sequence[int], batch_size: int = 500) -> torch.Tensor:
    """phi_r(images) for every r in ``radii`` (ascending): (len(radii), N, d).

    phi_r(x) = (2r + 1)^-2 sum_{|dy|, |dx| <= r} phi(translate(x, dy, dx)) with phi = ``extractor`` and
    ``images`` float (N, 1, 28, 28). The squares are nested, so one pass adds ring r = 0, 1, ... to a
    running sum and copies it out at each requested radius.
    """
    if list(radii) != sorted(set(radii)) or not radii or radii[0] < 0:
        raise ValueError(f"radii must be distinct integers >= 0 in ascending order, got {radii!r}")
    total, averaged = None, []
    for r in range(radii[-1] + 1):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if max(abs(dy), abs(dx)) == r:  # ring r: the shifts not in the square of radius r - 1
                    f = extract_features(extractor, translate(images, dy, dx), batch_size)
                    total = f if total is None else total.add_(f)
        if r in radii:
            averaged.append(total / (2 * r + 1) ** 2)
    return torch.stack(averaged)


def shift_averaged(extractor: Callable[[torch.Tensor], torch.Tensor],
                   radius: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The extractor phi_r: ``extractor`` averaged over the (2r + 1)^2 shifts by at most r pixels.

    Reads the shipped probe: ``probe(shift_averaged(phi, r)(images))`` with r its recorded ``tta_radius``.
    """
    return lambda images: shift_averaged_features(extractor, images, (radius,))[0]


def augmented_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                       config: ProbeConfig) -> torch.Tensor:
    """Features of ``images`` (uint8 (N, 28, 28)) and of c = max(``config.augment_copies``) random copies.

    Returns (1 + c, N, d): index 0 holds the original images' features; copies are drawn one after another
    from one seeded generator, so the first k of them do not depend on c. ``extractor`` receives float images
    in [0, 1], (B, 1, 28, 28).
    """
    unit = unit_images(images)
    gen = torch.Generator().manual_seed(config.seed)

    def copy() -> torch.Tensor:
        if config.augmentation == "shift":  # exact integer translations: no resampling blur
            return random_shift(unit, config.max_shift, gen)
        return random_affine(unit, config.max_degrees, config.max_scale, config.max_shift, gen)

    views = [unit] + [copy() for _ in range(max(config.augment_copies))]
    return torch.stack([extract_features(extractor, v) for v in views])


def train_probe(features: torch.Tensor, labels: torch.Tensor, weight_decay: float, max_iter: int = 200,
                init: LinearProbe | None = None) -> LinearProbe:
    """Fit the penalised softmax regression above on ``features`` (N, d); returns the probe on raw features.

    ``init`` (a probe fitted on the same features, e.g. with a larger lambda) warm-starts L-BFGS.
    """
    if weight_decay < 0 or max_iter < 1:
        raise ValueError(f"need weight_decay >= 0 and max_iter >= 1, got {weight_decay} and {max_iter}")
    features = features.detach().float()
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    u = features.sub(mean).div_(std)  # (N, d); in place: one copy of the features, not two
    n_classes = int(labels.max()) + 1
    weight = torch.zeros(n_classes, u.shape[1], device=u.device)
    bias = torch.zeros(n_classes, device=u.device)
    if init is not None:  # unfold the warm start back into standardised coordinates
        weight.copy_(init.weight * std)
        bias.copy_(init.bias + init.weight @ mean)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(u @ weight.T + bias, labels) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    probe = LinearProbe(u.shape[1], n_classes).to(u.device)
    with torch.no_grad():  # fold the standardisation in: W u + b = (W / s) phi + (b - (W / s) m)
        probe.weight.copy_(weight / std)
        probe.bias.copy_(bias - probe.weight @ mean)
    return probe.requires_grad_(False)


@torch.inference_mode()
def probe_accuracy(probe: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``probe`` on ``features``."""
    return (probe(features).argmax(1) == labels).float().mean().item()


def cross_validate(features: torch.Tensor, labels: torch.Tensor, config: ProbeConfig,
                   averaged: torch.Tensor | None = None) -> dict[tuple[int, float, int], float]:
    """k-fold cross-validated accuracy of every (copies c, lambda, radius r) in the config's grids.

    ``features`` is (views, N, d) with view 0 the original images (:func:`augmented_features`); ``averaged``
    is (len(config.tta_radii), N, d), phi_r of the same images for each radius
    (:func:`shift_averaged_features`; may be omitted when the only radius is 0). For each fold and c the
    probes are fitted on the other folds' images and their first c copies, from the largest lambda down
    (each warm-starting the next; the problem is convex, so only the path changes), and each is scored on the
    fold's images read through phi_r for every r.
    """
    if features.shape[0] < 1 + max(config.augment_copies):
        raise ValueError(f"features hold {features.shape[0] - 1} copies, the grid needs "
                         f"{max(config.augment_copies)}: build them with augmented_features(..., config)")
    if averaged is None:
        if config.tta_radii != (0,):
            raise ValueError(f"the grid has test-time shift radii {config.tta_radii}: pass averaged="
                             "shift_averaged_features(extractor, images, config.tta_radii)")
        averaged = features[:1]
    if averaged.shape[0] != len(config.tta_radii):
        raise ValueError(f"averaged holds {averaged.shape[0]} radii, the grid has {len(config.tta_radii)}")
    fold = stratified_folds(labels, config.folds, config.seed + 1).to(labels.device)
    correct = {(c, wd, r): 0 for c in config.augment_copies for wd in config.weight_decays for r in config.tta_radii}
    for k in range(config.folds):
        fit, val = fold != k, fold == k
        for copies in config.augment_copies:
            views = features[:1 + copies, fit]  # (1 + c, N_fit, d)
            fit_feats, fit_labels = views.flatten(0, 1), labels[fit].repeat(views.shape[0])
            probe = None
            for wd in config.weight_decays:  # descending
                probe = train_probe(fit_feats, fit_labels, wd, config.max_iter, init=probe)
                for i, r in enumerate(config.tta_radii):
                    correct[copies, wd, r] += int((probe(averaged[i, val]).argmax(1) == labels[val]).sum())
            del views, fit_feats  # free this copy before the next c allocates its own
    return {key: c / labels.numel() for key, c in correct.items()}


def grid_label(copies: int, weight_decay: float, radius: int) -> str:
    """The JSON key of one grid point, e.g. ``'copies=8,lambda=0.001,tta=1'``."""
    return f"copies={copies},lambda={weight_decay:g},tta={radius}"


def run_probe(extractor: Callable[[torch.Tensor], torch.Tensor], train_images: torch.Tensor,
              train_labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
              config: ProbeConfig) -> tuple[LinearProbe, dict]:
    """The whole protocol: choose (copies, lambda, radius) by k-fold cross-validation on the training
    images, refit on all of them, report train (original images) and test accuracy, both read through
    phi_r. ``test_acc_single_view`` is the same probe on phi(x) itself, reported and used for nothing.

    ``extractor`` maps float images in [0, 1] (B, 1, 28, 28) to features.
    """
    feats = augmented_features(extractor, train_images, config)  # (1 + max copies, N, d)
    averaged = shift_averaged_features(extractor, unit_images(train_images), config.tta_radii)  # (R, N, d)
    scores = cross_validate(feats, train_labels, config, averaged)
    copies, wd, radius = max(scores, key=lambda key: scores[key])  # ties: the first (see ProbeConfig)
    chosen = feats[:1 + copies]  # (1 + c, N, d)
    probe = train_probe(chosen.flatten(0, 1), train_labels.repeat(chosen.shape[0]), wd, config.max_iter)
    test = shift_averaged_features(extractor, unit_images(test_images), sorted({0, radius}))  # (1 or 2, N, d)
    return probe, {
        "weight_decay": wd,
        "augment_copies": copies,
        "tta_radius": radius,
        "cv_acc": scores[copies, wd, radius],
        "cv_scores": {grid_label(*key): a for key, a in scores.items()},
        "folds": config.folds,
        "train_acc": probe_accuracy(probe, averaged[config.tta_radii.index(radius)], train_labels),
        "test_acc": probe_accuracy(probe, test[-1], test_labels),
        "test_acc_single_view": probe_accuracy(probe, test[0], test_labels),
        "feature_dim": int(feats.shape[-1]),
        "n_train_images": int(train_labels.numel()),
    }
