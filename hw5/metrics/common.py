"""What every problem's evaluation shares."""

from __future__ import annotations

import torch


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]: ``scores`` are logits or probabilities (N, C) or predicted classes (N,);
    ``labels`` (N,) may be on another device (they are moved to the scores')."""
    predicted = scores.argmax(1) if scores.ndim == 2 else scores
    labels = labels.to(predicted.device)
    if predicted.shape != labels.shape:
        raise ValueError(f"{predicted.shape[0]} predictions but labels of shape {tuple(labels.shape)}")
    return (predicted == labels).float().mean().item()
