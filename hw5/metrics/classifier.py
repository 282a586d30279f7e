"""Reading a trained classifier: its logits on a set of images, and its accuracy."""

from __future__ import annotations

import torch

from ..data import to_unit
from ..utils import eval_mode, model_device
from .common import accuracy


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, classes) of ``images`` (uint8, or floats in [0, 1]; any device), in eval mode, on the
    model's device."""
    x = to_unit(images, model_device(model))
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def classifier_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``images`` and ``labels`` (any devices)."""
    return accuracy(predict_logits(model, images), labels)
