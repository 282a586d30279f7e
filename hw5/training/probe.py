"""Problem 1.2's linear probe: ONE linear layer trained on frozen features.

The probe is multinomial logistic regression on standardised features u = (phi(x) - m) / s:

    p(y | x) = softmax(W u + b),   minimise  -1/N sum_n log p(y_n | x_n) + (lambda / 2) ||W||_F^2

with full-batch L-BFGS (the problem is convex, so the optimum does not depend on epochs or a learning rate;
``max_iter`` only bounds the work). The penalty lambda is the one hyper-parameter: it is chosen by
stratified k-fold cross-validation on the training features only, never on the test set. The
standardisation is then folded into the layer (W' = W / s, b' = b - W' m), so the returned probe is a plain
``nn.Linear(d, 10)`` applied to raw features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's search space and solver budget."""

    weight_decays: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    folds: int = 5
    max_iter: int = 500
    seed: int = 0


@torch.inference_mode()
def extract_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                     batch_size: int = 500) -> torch.Tensor:
    """``extractor`` applied batch-wise to ``images``, flattened to (N, d) float32."""
    feats = [extractor(images[i:i + batch_size]).flatten(1).float() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(feats)


def fit_probe(features: torch.Tensor, labels: torch.Tensor, weight_decay: float, max_iter: int = 500,
              num_classes: int = 10) -> nn.Linear:
    """Fit the L2-regularised softmax regression above; returns ``nn.Linear(d, num_classes)`` on raw features."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    features = features.detach().float()
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    u = (features - mean) / std
    layer = nn.Linear(u.shape[1], num_classes).to(u.device)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    optimizer = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(layer(u), labels) + 0.5 * weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():  # fold the standardisation into the layer: W u + b = (W / s) phi + (b - (W / s) m)
        layer.weight.div_(std)
        layer.bias.sub_(layer.weight @ mean)
    return layer.requires_grad_(False)


@torch.inference_mode()
def probe_accuracy(probe: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``probe`` on ``features``."""
    return (probe(features).argmax(1) == labels).float().mean().item()


def _folds(labels: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """k disjoint, class-stratified index sets covering ``labels``."""
    gen = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in range(k)]
    for c in labels.unique().tolist():
        members = torch.nonzero(labels.cpu() == c).flatten()
        members = members[torch.randperm(members.numel(), generator=gen)]
        for i, chunk in enumerate(members.chunk(k)):
            parts[i].append(chunk)
    return [torch.cat(p).to(labels.device) for p in parts]


def select_weight_decay(features: torch.Tensor, labels: torch.Tensor, config: ProbeConfig
                        ) -> tuple[float, dict[float, float]]:
    """Cross-validated accuracy of every candidate lambda; returns (best lambda, {lambda: cv accuracy}).

    Ties go to the larger lambda (the simpler model).
    """
    folds = _folds(labels, config.folds, config.seed)
    scores = {}
    for wd in config.weight_decays:
        accs = []
        for i, held in enumerate(folds):
            train = torch.cat([f for j, f in enumerate(folds) if j != i])
            probe = fit_probe(features[train], labels[train], wd, config.max_iter)
            accs.append(probe_accuracy(probe, features[held], labels[held]))
        scores[wd] = sum(accs) / len(accs)
    best = max(sorted(scores, reverse=True), key=lambda wd: scores[wd])
    return best, scores


def run_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
              test_labels: torch.Tensor, config: ProbeConfig) -> tuple[nn.Linear, dict]:
    """Choose lambda by cross-validation on the training features, refit on all of them, report accuracies."""
    wd, scores = select_weight_decay(train_features, train_labels, config)
    probe = fit_probe(train_features, train_labels, wd, config.max_iter)
    return probe, {
        "weight_decay": wd,
        "cv_acc": scores[wd],
        "cv_scores": {str(k): v for k, v in scores.items()},
        "train_acc": probe_accuracy(probe, train_features, train_labels),
        "test_acc": probe_accuracy(probe, test_features, test_labels),
        "feature_dim": int(train_features.shape[1]),
        "n_train": int(train_features.shape[0]),
    }
