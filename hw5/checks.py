"""The one validation vocabulary of hw5: each check names the value, what was given and what is allowed, so a
bad setting fails where it is written rather than deep inside torch (or never).

Two layers over the same rules:

* value checks, for a function's arguments at its boundary: ``count("samples", n, 1)``,
  ``number("penalty", p, 0.0)``, ``one_of("kind", k, KINDS)``, ``existing_path("HW5_DATA", p)``; each
  returns the checked value;
* field checks, for configs at construction (``integer(self, "batch_size", 1)``), which name the field as
  ``Config.field``.

One error type per kind of mistake: a value of the wrong type or out of range is a ``ValueError`` (the
argument or field holds a bad value); a model built from something that is not its config is a
``TypeError`` (:func:`argument`); a path that does not exist is a ``FileNotFoundError``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from pathlib import Path
from typing import Any


def is_int(value: object) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A real number (Python or NumPy int or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    if low is None and high is None:
        return ""
    lo = "(-inf, " if low is None else f"{'(' if low_open else '['}{low:g}, "
    hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
    return f" in {lo}{hi}"


def count(name: str, value: Any, low: int | None = None, high: int | None = None, why: str = "") -> int:
    """``value`` is an integer (not a bool) in [low, high]; returns it as an ``int``. ``why`` is added to the
    message (e.g. what the bound protects)."""
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = (f" >= {low}" if high is None else f" in [{low}, {high}]") if low is not None else (
            f" <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be an integer{bounds}{why}, got {value!r}")
    return int(value)


def number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` is a finite real number (not a bool) in the given interval; returns it as a ``float``."""
    ok = is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number{_bounds(low, high, low_open, high_open)}, got {value!r}")
    return float(value)


def one_of(name: str, value: Any, allowed: Collection[Any]) -> Any:
    """``value`` is one of ``allowed``; returns it."""
    if isinstance(value, (list, dict, set)) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def optional_count(name: str, value: Any, low: int = 1) -> int | None:
    """``value`` is None or an integer >= ``low`` (e.g. a patience: None means no limit)."""
    if value is not None and (not is_int(value) or value < low):
        raise ValueError(f"{name} must be an integer >= {low} or None, got {value!r}")
    return None if value is None else int(value)


def existing_path(name: str, value: str | Path, *, directory: bool = True) -> Path:
    """``value`` names an existing folder (or file, with ``directory=False``); returns it as a ``Path``."""
    path = Path(value).expanduser()
    if directory and not path.is_dir() or not directory and not path.is_file():
        kind = "folder" if directory else "file"
        raise FileNotFoundError(f"{name} is {str(value)!r}, which is not an existing {kind}; create it, fix the "
                                f"path, or unset {name}")
    return path


def _field(obj: Any, name: str) -> str:
    return f"{type(obj).__name__}.{name}"


def integer(obj: Any, name: str, low: int | None = None, high: int | None = None) -> None:
    """``obj.name`` is an int (not a bool) in [low, high]."""
    count(_field(obj, name), getattr(obj, name), low, high)


def real(obj: Any, name: str, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False) -> None:
    """``obj.name`` is a finite real number (int or float, not a bool) in the given interval."""
    number(_field(obj, name), getattr(obj, name), low, high, low_open=low_open, high_open=high_open)


def _fail(obj: Any, name: str, allowed: str) -> None:
    raise ValueError(f"{_field(obj, name)} must be {allowed}, got {getattr(obj, name)!r}")


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
