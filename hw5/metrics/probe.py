"""The accuracy of a fitted linear probe: how well one linear layer reads a frozen feature map.

A probe (:class:`hw5.models.classifier.LinearProbe`, fitted by :mod:`hw5.training.probe`) maps features
phi(x) in R^d to class scores W phi(x) + b. Reading the images through phi_r, the features averaged over the
(2r + 1)^2 shifts by at most r pixels (:mod:`hw5.metrics.features`), its test accuracy on images x_n with
labels y_n is

    acc = (1 / N) sum_n [argmax_c (W phi_r(x_n) + b)_c = y_n]      (:func:`hw5.metrics.common.accuracy`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import to_unit
from ..utils import model_device
from .common import accuracy
from .features import DeviceLike, Extractor, extractor_device, shift_averaged_features_on


@torch.no_grad()
def probe_logits(probe: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The probe's logits W phi + b of ``features`` (N, d), computed on the probe's device (the features are
    moved there), without gradients."""
    return probe(features.to(model_device(probe)))


def evaluate_probe(probe: nn.Module, extractor: Extractor, images: torch.Tensor, labels: torch.Tensor,
                   radius: int, device: DeviceLike = None) -> float:
    """Test accuracy of a fitted ``probe`` reading ``images`` through phi_r, r = ``radius`` (e.g. the shipped
    ``dcgan_probe`` with its recorded radius); images and labels on any device. Computed on
    :func:`hw5.metrics.features.extractor_device` (``device``, else the extractor's module, else the images'
    device), resolved here once; the probe is moved there."""
    device = extractor_device(extractor, images, device)
    features = shift_averaged_features_on(extractor, to_unit(images, device), {radius}, device)[radius]
    return accuracy(probe_logits(probe.to(device), features), labels)


@torch.no_grad()
def probe_correct(probe: nn.Module, extractor: Extractor, images: torch.Tensor, labels: torch.Tensor,
                  radius: int, device: DeviceLike = None) -> torch.Tensor:
    """Per-image correctness (N,) bool, on the CPU, of a fitted ``probe`` reading ``images`` through phi_r,
    r = ``radius``: [argmax_c (W phi_r(x_n) + b)_c = y_n]. Its mean is :func:`evaluate_probe`; two probes'
    vectors on the same images feed :func:`hw5.metrics.paired.mcnemar_exact`."""
    device = extractor_device(extractor, images, device)
    features = shift_averaged_features_on(extractor, to_unit(images, device), {radius}, device)[radius]
    return (probe_logits(probe.to(device), features).argmax(1).cpu() == labels.cpu())


def probe_gradient(probe: nn.Module, features: torch.Tensor, labels: torch.Tensor, penalty: float) -> dict[str, float]:
    """How close a fitted probe is to the optimum of its convex training objective: the gradient of

        J(W, b) = CE(W u + b, y) + (lambda / 2) ||W||_F^2,   u = (phi - m) / s,

    (m, s: the training features' mean and standard deviation, s >= 1e-6, as :func:`hw5.training.probe.
    train_probe` standardises) at the probe, unfolded back into standardised coordinates (W = W' s,
    b = b' + W' m). Returns ``objective`` J, ``grad_max`` max |dJ/dtheta| (the quantity L-BFGS's
    ``tolerance_grad`` stops on) and ``grad_norm`` ||dJ/dtheta||_2; at the exact optimum both are 0."""
    features = features.detach().float()
    device = features.device
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    u = (features - mean) / std
    weight = (probe.weight.detach().to(device) * std).requires_grad_(True)
    bias = (probe.bias.detach().to(device) + probe.weight.detach().to(device) @ mean).requires_grad_(True)
    with torch.enable_grad():
        objective = (torch.nn.functional.cross_entropy(u @ weight.T + bias, labels.to(device))
                     + 0.5 * penalty * weight.pow(2).sum())
        grads = torch.autograd.grad(objective, (weight, bias))
    flat = torch.cat([g.flatten() for g in grads])
    return {"objective": objective.item(), "grad_max": flat.abs().max().item(), "grad_norm": flat.norm().item()}
