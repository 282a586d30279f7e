"""The linear probe's choices: one grid point (:class:`ProbePoint`), the cross-validation grid and its order
(:class:`ProbeGrid`), and the whole configuration (:class:`ProbeConfig`), checked at construction.

The three choices the homework leaves open, the penalty lambda, the number of augmented copies c of every
training image and the test-time shift radius r (the probe reads phi_r, :mod:`hw5.metrics.features`), are
chosen together by k-fold cross-validation over the grid copies x penalties x radii
(:func:`hw5.training.probe.cross_validate`). The grid fixes the order in which points are walked, how ties
are broken and the warm-start path of the fits: see :class:`ProbeGrid`.

One vocabulary throughout, in code, configuration, JSON keys and here: ``copies`` (c), ``penalty``
(lambda; ``penalties`` for the grid's values) and ``radius`` (r; ``radii``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import checks
from ..metrics.features import MAX_RADIUS

AUGMENTATIONS = ("shift", "affine")
_PIXELS = " (pixels: a shift must leave part of a 28x28 image)"


def _grid_values(field: str, value: object, check: Callable[[str, object], Any]) -> tuple:
    """One grid axis: a scalar (a one-point axis) or a non-empty sequence, each value checked by ``check``
    (which receives the value's name, ``ProbeConfig.<field>[i]``); returned as a sorted tuple of distinct
    values (the canonical form of a set). ValueError naming the field otherwise."""
    name = f"ProbeConfig.{field}"
    scalar = checks.is_real(value)
    if not scalar and (not isinstance(value, Sequence) or isinstance(value, (str, bytes))):
        raise ValueError(f"{name} must be one value or a non-empty tuple of values, got {value!r}")
    values = (value,) if scalar else tuple(value)
    if not values:
        raise ValueError(f"{name} must be one value or a non-empty tuple of values, got {value!r}")
    return tuple(sorted({check(name if scalar else f"{name}[{i}]", v) for i, v in enumerate(values)}))


def _check_penalty(name: str, value: object) -> float:
    return checks.number(name, value, 0.0)  # the penalty lambda: finite, >= 0


def _check_copies(name: str, value: object) -> int:
    return checks.count(name, value, 0, why=" (a number of augmented copies per image)")


def _check_radius(name: str, value: object) -> int:
    return checks.count(name, value, 0, MAX_RADIUS, _PIXELS)


class ProbePoint(NamedTuple):
    """One point of the grid: ``copies`` c, ``penalty`` lambda, test-time shift ``radius`` r."""

    copies: int
    penalty: float
    radius: int

    @property
    def key(self) -> str:
        """The point's JSON key, e.g. ``'copies=8,penalty=0.001,radius=1'`` (exact: parses back to it)."""
        return f"copies={self.copies},penalty={float(self.penalty)!r},radius={self.radius}"

    @classmethod
    def from_key(cls, key: str) -> ProbePoint:
        """The point whose :attr:`key` is ``key``."""
        try:
            fields = dict(part.split("=", 1) for part in key.split(","))
            point = cls(int(fields["copies"]), float(fields["penalty"]), int(fields["radius"]))
        except (KeyError, ValueError):
            raise ValueError(f"{key!r} is not a probe grid key like 'copies=8,penalty=0.001,radius=1'") from None
        if point.key != key or len(fields) != 3:
            raise ValueError(f"{key!r} is not a probe grid key like 'copies=8,penalty=0.001,radius=1'")
        return point


@dataclass(frozen=True)
class ProbeGrid:
    """The cross-validation grid copies x penalties x radii, in the ONE order everything relies on.

    Order (each axis strictly monotone, checked here): ``copies`` ascending, ``penalties`` DESCENDING,
    ``radii`` ascending, and :attr:`points` walks copies (outer), then penalty, then radius (inner). Two uses:

    * tie-break: :meth:`best` returns the first point of :attr:`points` with the highest score, i.e. among
      equally good points the fewest copies, then the largest penalty (the simplest layer), then the smallest
      radius (the cheapest read-out);
    * warm start: for one training set (fold, copies) the probes are fitted along :attr:`penalties`, from the
      largest penalty down, each L-BFGS run starting from the previous solution (the problem is convex, so
      only the path changes, not the optimum).

    Build it from values in any order with :meth:`from_values` (or :attr:`ProbeConfig.grid`).
    """

    copies: tuple[int, ...]
    penalties: tuple[float, ...]
    radii: tuple[int, ...]

    def __post_init__(self) -> None:
        for name, axis, sign in (("copies", self.copies, 1), ("penalties", self.penalties, -1),
                                 ("radii", self.radii, 1)):
            if not axis or any(sign * (b - a) <= 0 for a, b in zip(axis, axis[1:])):
                order = "descending" if sign < 0 else "ascending"
                raise ValueError(f"ProbeGrid.{name} must be non-empty, distinct and {order}, got {axis!r}; "
                                 "use ProbeGrid.from_values(...) to order values")

    @classmethod
    def from_values(cls, copies: Iterable[int], penalties: Iterable[float], radii: Iterable[int]) -> ProbeGrid:
        """The grid of these values (any order, repeats ignored), ordered as the class says."""
        return cls(tuple(sorted(set(copies))), tuple(sorted(set(penalties), reverse=True)),
                   tuple(sorted(set(radii))))

    @property
    def points(self) -> tuple[ProbePoint, ...]:
        """Every (copies, penalty, radius), copies outermost, radius innermost (see the class)."""
        return tuple(ProbePoint(c, p, r) for c in self.copies for p in self.penalties for r in self.radii)

    def best(self, scores: Mapping[ProbePoint, float]) -> ProbePoint:
        """The first point of :attr:`points` with the highest score (the tie-break of the class)."""
        missing = [p.key for p in self.points if p not in scores]
        if missing:
            raise ValueError(f"scores lack grid points {missing}")
        return max(self.points, key=lambda point: scores[point])  # max keeps the first of equal maxima


@dataclass(frozen=True)
class ProbeConfig:
    """The probe's grid (``copies`` c, ``penalties`` lambda, test-time shift ``radii`` r), augmentation,
    folds and solver budget. Checked at construction: a bad value, of the wrong type or out of range, is a
    ValueError naming the field (``ProbeConfig.penalties[0] must be ...``) and the value.

    Each grid axis may be given as one value (no choice: a one-point axis) or a non-empty tuple; it is stored
    as a sorted tuple of distinct values, so equal grids give equal configs. The order in which the grid is
    walked (and ties broken) is :class:`ProbeGrid`'s, see :attr:`grid`.

    ``augmentation``: ``"shift"`` (integer translations by at most ``max_shift`` pixels in each direction) or
    ``"affine"`` (rotation by at most ``max_degrees``, scale 1 +- ``max_scale``, shift by at most
    ``max_shift``). ``folds``: k of k-fold cross-validation; ``max_iter``: the L-BFGS iterations of one fit;
    ``seed``: the copies' generator (``seed``) and the folds (``seed + 1``).
    """

    penalties: tuple[float, ...] = (1e-2, 1e-3)
    copies: tuple[int, ...] = (0, 8, 16)
    radii: tuple[int, ...] = (0, 1, 2)
    augmentation: str = "shift"
    max_shift: int = 2
    max_degrees: float = 10.0
    max_scale: float = 0.1
    folds: int = 5
    max_iter: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        checked = {
            "penalties": _grid_values("penalties", self.penalties, _check_penalty),
            "copies": _grid_values("copies", self.copies, _check_copies),
            "radii": _grid_values("radii", self.radii, _check_radius),
            "max_shift": checks.count("ProbeConfig.max_shift", self.max_shift, 0, MAX_RADIUS, _PIXELS),
            "max_degrees": checks.number("ProbeConfig.max_degrees", self.max_degrees, 0.0, 180.0),
            "max_scale": checks.number("ProbeConfig.max_scale", self.max_scale, 0.0, 0.99),
            "folds": checks.count("ProbeConfig.folds", self.folds, 2),
            "max_iter": checks.count("ProbeConfig.max_iter", self.max_iter, 1),
            "seed": checks.count("ProbeConfig.seed", self.seed, 0),
        }
        checks.one_of("ProbeConfig.augmentation", self.augmentation, AUGMENTATIONS)
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: canonical values, set once here

    @property
    def grid(self) -> ProbeGrid:
        """The cross-validation grid of these values, in its documented order."""
        return ProbeGrid.from_values(self.copies, self.penalties, self.radii)
