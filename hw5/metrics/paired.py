"""Paired comparison of two classifiers on ONE test set: McNemar's exact test.

Two classifiers A and B scored on the same N test items are not independent samples, so comparing their two
accuracies by the standard error of one accuracy is the wrong test. Only the items on which they disagree
about correctness carry information about which is better:

    n_AB = #{items A gets right and B wrong},   n_BA = #{items B gets right and A wrong},   n = n_AB + n_BA.

Under the null hypothesis that both have the same error rate, each discordant item is equally likely to be of
either kind, so n_AB ~ Binomial(n, 1/2). The exact two-sided p-value is

    p = min(1, 2 * P[Binomial(n, 1/2) <= min(n_AB, n_BA)])

(the binomial being symmetric, this is the two-sided binomial test's p-value; p = 1 when n = 0).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch


def _binomial_half_cdf(k: int, n: int) -> float:
    """P[Binomial(n, 1/2) <= k], summed exactly as integers and divided once as a fraction (no overflow or
    premature underflow for large n)."""
    return float(Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n))


def mcnemar_exact(correct_a: torch.Tensor, correct_b: torch.Tensor) -> dict[str, Any]:
    """McNemar's exact test of the module docstring on per-item correctness (N,) bool tensors of two
    classifiers on the same items. Returns ``a_only`` (n_AB), ``b_only`` (n_BA), ``n`` (discordant items)
    and the two-sided ``p_value``."""
    for name, value in (("correct_a", correct_a), ("correct_b", correct_b)):
        if not isinstance(value, torch.Tensor) or value.ndim != 1 or value.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor (N,) of per-item correctness, got "
                             f"{value.dtype if isinstance(value, torch.Tensor) else type(value).__name__}"
                             f"{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}; "
                             "pass predictions == labels")
    if correct_a.shape != correct_b.shape or correct_a.numel() == 0:
        raise ValueError(f"the two classifiers must be scored on the same non-empty items, got "
                         f"{correct_a.numel()} and {correct_b.numel()} items")
    correct_b = correct_b.to(correct_a.device)
    a_only, b_only = int((correct_a & ~correct_b).sum()), int((correct_b & ~correct_a).sum())
    n = a_only + b_only
    p_value = 1.0 if n == 0 else min(1.0, 2.0 * _binomial_half_cdf(min(a_only, b_only), n))
    return {"a_only": a_only, "b_only": b_only, "n": n, "p_value": p_value}
