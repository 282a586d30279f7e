"""User images and labels into model inputs: the one boundary where hw5 checks them.

Images become float32 (N, 1, 28, 28) in [0, 1] (:func:`to_unit`) or [-1, 1] (:func:`to_signed`, the GAN's
tanh range); labels become int64 class indices (:func:`to_labels`). Anything else is refused with an error
that names the argument, what is wrong and the fix.
"""

from __future__ import annotations

import torch


IMAGE_SHAPES = ("(N, 28, 28)", "(N, 1, 28, 28)", "(N, 784)")


def to_unit(images: torch.Tensor, device: str | torch.device | None = None, *, name: str = "images"
            ) -> torch.Tensor:
    """Images as float32 (N, 1, 28, 28) in [0, 1] on ``device`` (default: where they are), checked.

    Accepted: uint8 pixels 0..255 (as :func:`hw5.data.load` returns them; divided by 255) or floating-point
    pixels already in [0, 1] (kept), shaped (N, 28, 28), (N, 1, 28, 28) or (N, 784). Anything else raises a
    ``TypeError``/``ValueError`` that names ``name``, what is wrong and the fix: an empty set, another
    shape, another dtype, or floats outside [0, 1] (e.g. uint8 pixels already cast to float, or [-1, 1]
    data). This is the one place hw5 turns user images into model inputs; the range check costs one
    device synchronisation per call, at the boundary, never inside a training step.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}; "
                        "convert with torch.as_tensor(...)")
    shape = tuple(images.shape)
    if images.ndim == 2 and shape[1] == 784:
        images = images.view(-1, 1, 28, 28)  # (N, 784) -> (N, 1, 28, 28)
    elif images.ndim == 3 and shape[1:] == (28, 28):
        images = images.unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
    elif not (images.ndim == 4 and shape[1:] == (1, 28, 28)):
        raise ValueError(f"{name} has shape {shape}; hw5's models read 28x28 grey images shaped "
                         f"{', '.join(IMAGE_SHAPES)}: crop or resize them to 28x28 first")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {shape}); pass at least one image")
    if device is not None:
        images = images.to(device)
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise TypeError(f"{name} has dtype {images.dtype}; pass uint8 pixels (0..255, as hw5.data.load "
                        "returns them) or floating-point pixels in [0, 1]")
    low, high = (float(v) for v in torch.aminmax(images.detach().float()))
    if not (0.0 <= low and high <= 1.0):  # also false for NaN
        raise ValueError(f"{name} are floats in [{low:g}, {high:g}], not in [0, 1]; pass uint8 pixels "
                         "(0..255) as they are, or floats scaled to [0, 1] (divide 0..255 values by 255, "
                         "map [-1, 1] data with (x + 1) / 2)")
    return images.float()


def to_signed(images: torch.Tensor, device: str | torch.device | None = None, *, name: str = "images"
              ) -> torch.Tensor:
    """Images as float32 (N, 1, 28, 28) in [-1, 1] (the GAN's tanh range): 2 :func:`to_unit` - 1."""
    return to_unit(images, device, name=name).mul_(2.0).sub_(1.0)


def to_labels(labels: torch.Tensor, n: int, num_classes: int, device: str | torch.device | None = None, *,
              name: str = "labels") -> torch.Tensor:
    """Class labels as int64 (n,) in [0, num_classes) on ``device`` (default: where they are), checked.

    The one place hw5 turns user labels into targets: a tensor of integer classes, one per image; anything
    else (floats, bools, another length, a class out of range) raises a ``ValueError`` that names ``name``.
    """
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.dtype.is_floating_point \
            or labels.dtype.is_complex or labels.dtype == torch.bool:
        got = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be integer class labels of shape ({n},), got {got}")
    labels = labels if device is None else labels.to(device)
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1} (the {num_classes} classes), got "
                         f"{int(labels.min())}..{int(labels.max())}")
    return labels.long()
