"""Metrics shared by the problems: top-1 accuracy of class scores.

For scores s (N, C) (logits or probabilities: argmax is the same) or predicted classes yhat (N,), and
labels y (N,),

    accuracy = (1 / N) sum_n [argmax_c s_nc = y_n],

the fraction of items whose predicted class is their label. The labels are moved to the scores' device, so
scores computed on a GPU can be compared with labels kept on the CPU (and the other way round).
"""

from __future__ import annotations

import torch


def predicted_classes(scores: torch.Tensor) -> torch.Tensor:
    """The predicted class of every item, (N,) int64 on the scores' device: argmax over classes of logits
    or probabilities (N, C) (the first maximal class on ties), or ``scores`` itself when it already holds
    integer classes (N,)."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.ndim == 2 and scores.shape[1] >= 1:
        return scores.argmax(1)
    if scores.ndim == 1 and not scores.is_floating_point() and not scores.is_complex():
        return scores.long()
    raise ValueError(f"scores must be class scores (N, C) or integer classes (N,), got shape "
                     f"{tuple(scores.shape)} and dtype {scores.dtype}")


def _hits(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[predicted class = label] per item, (N,) bool on the scores' device; checks the shapes."""
    predicted = predicted_classes(scores)
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor (N,), got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    if labels.numel() != predicted.numel() or labels.numel() == 0:
        raise ValueError(f"scores hold {predicted.numel()} items and labels {labels.numel()}: need the same "
                         "number, at least one")
    return predicted == labels.to(predicted.device)


def correct(scores: torch.Tensor, labels: torch.Tensor) -> int:
    """The number of items whose predicted class (see :func:`predicted_classes`) is their label, an int;
    ``labels`` (N,) are moved to the scores' device."""
    return int(_hits(scores, labels).sum())


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] of ``scores`` (logits or probabilities (N, C), or predicted classes (N,))
    against ``labels`` (N,), which are moved to the scores' device; a Python float.

    Computed as torch computes a mean of a float32 tensor: k / N rounded to float32 (e.g. 435 / 500 gives
    0.8700000047683716), the value every accuracy hw5 has recorded holds.
    """
    return _hits(scores, labels).float().mean().item()
