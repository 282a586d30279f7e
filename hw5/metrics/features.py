"""Features read from a frozen feature map, and their shift averages: what Problem 1.2's linear probe reads.

A feature map (an *extractor*) phi takes images as it reads them, for the probe float (B, 1, 28, 28) in
[0, 1], to features (B, ...), flattened here to (B, d): e.g. ``lambda x: D.features(2 * x - 1)``, the DCGAN
discriminator's trunk (which reads [-1, 1]). Reading a frozen map is evaluation: nothing here trains.

phi_r, the features averaged over the (2r + 1)^2 integer translations of the image by at most r pixels
(test-time augmentation; radius r = 0 gives phi itself):

    phi_r(x) = (2r + 1)^-2 sum_{|dy|, |dx| <= r} phi(x shifted by (dy, dx)).

phi_r is still a feature map of the extractor alone; a linear layer reading it, W phi_r(x) + b, equals the
mean of the layer's logits over the shifted images (the layer is linear).

Devices: each public function resolves ONCE where features are computed (:func:`extractor_device`: an
explicit ``device``; else the device of the extractor when it is an ``nn.Module`` or a bound method of one,
such as ``D.features``; else where the images are), moves the images there and returns its results there.
The ``*_on`` functions take that resolved ``torch.device`` and resolve nothing: code that has already
resolved it (the probe's fitting, :mod:`hw5.training.probe`) passes it down to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .. import checks
from ..data import translate
from ..utils import float32_math, get_device, model_device

Extractor = Callable[[torch.Tensor], torch.Tensor]
DeviceLike = str | torch.device | None

MAX_RADIUS = 13  # a shift by at most 13 pixels leaves part of a 28x28 image


def extractor_device(extractor: Extractor, images: torch.Tensor, device: DeviceLike = None) -> torch.device:
    """Where features are computed: ``device`` if given; else the device of ``extractor`` when it is an
    ``nn.Module`` or a bound method of one (``D.features``); else where ``images`` are (a plain function
    such as ``lambda x: D.features(2 * x - 1)`` cannot be inspected: pass ``device`` for it)."""
    if device is not None:
        return get_device(device)
    module = extractor if isinstance(extractor, nn.Module) else getattr(extractor, "__self__", None)
    return model_device(module) if isinstance(module, nn.Module) else images.device


@torch.no_grad()  # not inference_mode: its tensors could not enter a module that records gradients
def extract_features_on(extractor: Extractor, images: torch.Tensor, device: torch.device,
                        batch_size: int = 500) -> torch.Tensor:
    """phi(images) on the resolved ``device``: ``extractor`` applied to chunks of ``batch_size`` images
    (moved to ``device``), each output flattened to (B, d) float32, concatenated to (N, d) on ``device``."""
    checks.count("batch_size", batch_size, 1)
    images = images.to(device)
    with float32_math():  # exact fp32, as every evaluation: cuDNN's default TF32 convolutions off on a GPU
        feats = [extractor(images[i:i + batch_size]).flatten(1).float() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(feats)


def extract_features(extractor: Extractor, images: torch.Tensor, batch_size: int = 500,
                     device: DeviceLike = None) -> torch.Tensor:
    """``extractor`` applied batch-wise to ``images`` (as the extractor reads them, e.g. float
    (N, 1, 28, 28) in [0, 1]), flattened to (N, d) float32: ordinary tensors that any module can read, e.g. a
    freshly loaded probe whose weights require gradients.

    ``images`` are moved to :func:`extractor_device` (``device``, else the extractor's module, else where
    they are); the features are on that device.
    """
    return extract_features_on(extractor, images, extractor_device(extractor, images, device), batch_size)


def _check_radii(radii: Iterable[int]) -> list[int]:
    """The radii in ascending order; ValueError unless they are distinct ints in [0, MAX_RADIUS], at least one."""
    values = list(radii)
    if not values or len(set(values)) != len(values) or not all(
            checks.is_int(r) and 0 <= r <= MAX_RADIUS for r in values):
        raise ValueError(f"radii must be distinct ints in [0, {MAX_RADIUS}], at least one, got {values!r}")
    return sorted(int(r) for r in values)


@torch.no_grad()
def shift_averaged_features_on(extractor: Extractor, images: torch.Tensor, radii: Iterable[int],
                               device: torch.device, batch_size: int = 500) -> dict[int, torch.Tensor]:
    """phi_r(images) for every r in ``radii`` on the resolved ``device``: a dict radius -> (N, d), in
    ascending radius (see :func:`shift_averaged_features`)."""
    wanted = _check_radii(radii)
    images = images.to(device)
    total, averaged = None, {}
    for r in range(wanted[-1] + 1):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if max(abs(dy), abs(dx)) == r:  # ring r: the shifts not in the square of radius r - 1
                    f = extract_features_on(extractor, translate(images, dy, dx), device, batch_size)
                    total = f if total is None else total.add_(f)
        if r in wanted:
            averaged[r] = total / (2 * r + 1) ** 2
    return averaged


def shift_averaged_features(extractor: Extractor, images: torch.Tensor, radii: Iterable[int],
                            batch_size: int = 500, device: DeviceLike = None) -> dict[int, torch.Tensor]:
    """phi_r(images) for every r in ``radii``: a dict radius -> (N, d), in ascending radius.

    phi_r(x) = (2r + 1)^-2 sum_{|dy|, |dx| <= r} phi(translate(x, dy, dx)) with phi = ``extractor`` and
    ``images`` as the extractor reads them, (N, C, H, W) (float (N, 1, 28, 28) in [0, 1] for the probe's
    extractors). The squares are nested, so one pass adds ring r = 0, 1, ... to a running sum and copies it
    out at each requested radius. Computed on :func:`extractor_device` (images moved there); the features
    are on that device.
    """
    return shift_averaged_features_on(extractor, images, radii, extractor_device(extractor, images, device),
                                      batch_size)


def shift_averaged(extractor: Extractor, radius: int, device: DeviceLike = None) -> Extractor:
    """The extractor phi_r: ``extractor`` averaged over the (2r + 1)^2 shifts by at most r pixels.

    Reads the shipped probe: ``probe(shift_averaged(phi, r)(to_unit(images)))`` with r its recorded
    ``radius``. The features are on :func:`extractor_device`: ``device`` (resolved here, once), else the
    extractor's module, else the images' device (both looked up at each call: the images come then).
    """
    _check_radii([radius])
    fixed = None if device is None else get_device(device)

    def phi_r(images: torch.Tensor) -> torch.Tensor:
        where = fixed if fixed is not None else extractor_device(extractor, images)
        return shift_averaged_features_on(extractor, images, (radius,), where)[radius]

    return phi_r
