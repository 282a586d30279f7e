"""Mini-batches and seeded index splits of device-resident data.

The training loops never use a ``DataLoader``: a whole split lives on the device as one tensor and
:func:`minibatches` slices it with a shuffled index, one ``randperm`` per epoch. The splits
(:func:`stratified_subset`, :func:`stratified_folds`, :func:`train_val_split`) are index tensors drawn from
their own seeded CPU generator, so the same seed picks the same items on every device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many mini-batches :func:`minibatches` yields for ``n`` items."""
    return n // batch_size if drop_last else -(-n // batch_size)


def minibatches(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True,
                generator: torch.Generator | None = None, drop_last: bool = False,
                ) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of mini-batches of device-resident tensors that share their first dimension.

    The order is one ``torch.randperm`` drawn on the CPU from ``generator`` (so the same seed gives the
    same batches on every device), moved to the data's device once; each batch is an index-select.
    Yields tuples, one slice per tensor.
    """
    if not tensors:
        raise ValueError("minibatches needs at least one tensor")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
    device = tensors[0].device
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield tuple(t.index_select(0, idx) for t in tensors)


def _shuffled_classes(labels: torch.Tensor, minimum: int, name: str, seed: int) -> Iterator[torch.Tensor]:
    """The indices of each class's items in a seeded random order, class by class (CPU tensors); a class
    with fewer than ``minimum`` items raises, naming the argument ``name`` that asked for them."""
    gen = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if members.numel() < minimum:
            raise ValueError(f"class {c} has {members.numel()} items, fewer than {name}={minimum}")
        yield members[torch.randperm(members.numel(), generator=gen)]


def stratified_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``per_class`` items of every class, drawn without replacement (seeded).

    Problem 1.2's "10% of the training set" is ``stratified_subset(train_labels, 600, seed)``.
    """
    picked = [members[:per_class] for members in _shuffled_classes(labels, per_class, "per_class", seed)]
    return torch.cat(picked).sort().values


def stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """Fold index in [0, folds) of every item, balanced per class (seeded): item i is validated in fold
    ``fold[i]`` and fitted in the others, so k-fold cross-validation scores every item exactly once."""
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    fold = torch.empty(labels.numel(), dtype=torch.long)
    for members in _shuffled_classes(labels, folds, "folds", seed):
        fold[members] = torch.arange(members.numel()) % folds
    return fold


def train_val_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint sorted index sets (train, validation) covering ``range(n)``; round(n * f) for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[n_val:].sort().values, perm[:n_val].sort().values
