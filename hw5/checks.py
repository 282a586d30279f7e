"""Validation of configs at construction: each check names the config, the field, what was given and what
is allowed, so a bad setting fails where it is written rather than deep inside torch (or never)."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any


def _fail(obj: Any, name: str, allowed: str) -> None:
    value = getattr(obj, name)
    raise ValueError(f"{type(obj).__name__}.{name} must be {allowed}, got {value!r}")


def integer(obj: Any, name: str, low: int | None = None, high: int | None = None) -> None:
    """``obj.name`` is an int (not a bool) in [low, high]."""
    value = getattr(obj, name)
    bounds = (f" >= {low}" if high is None else f" in [{low}, {high}]") if low is not None else ""
    if not isinstance(value, int) or isinstance(value, bool) or (low is not None and value < low) \
            or (high is not None and value > high):
        _fail(obj, name, f"an integer{bounds}")


def real(obj: Any, name: str, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False) -> None:
    """``obj.name`` is a finite real number (int or float, not a bool) in the given interval."""
    value = getattr(obj, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'(' if low_open else '['}{low:g}, "
        hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
        interval = f" in {lo or '(-inf, '}{hi or 'inf)'}" if low is not None or high is not None else ""
        _fail(obj, name, f"a finite number{interval}")


def choice(obj: Any, name: str, allowed: Collection[Any]) -> None:
    """``obj.name`` is one of ``allowed``."""
    if getattr(obj, name) not in allowed:
        _fail(obj, name, f"one of {tuple(allowed)}")


def boolean(obj: Any, name: str) -> None:
    """``obj.name`` is True or False."""
    if not isinstance(getattr(obj, name), bool):
        _fail(obj, name, "True or False")


def instance(obj: Any, name: str, cls: type) -> None:
    """``obj.name`` is a ``cls`` (e.g. a training config's ``model`` field holds that model's config)."""
    if not isinstance(getattr(obj, name), cls):
        _fail(obj, name, f"a {cls.__name__}")


def argument(owner: str, name: str, value: Any, cls: type) -> None:
    """A constructor's ``name`` argument is a ``cls``: e.g. a model is built from its config, not from numbers."""
    if not isinstance(value, cls):
        raise TypeError(f"{owner}({name}=...) takes a {cls.__name__}, got {value!r}; e.g. "
                        f"{owner}({cls.__name__}(...))")
