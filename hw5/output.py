"""Everything a notebook writes: figures, ``metrics.json`` sections and the t-SNE cache, atomically.

Plots draw, metrics compute; only this module (and :mod:`hw5.checkpoint` for weights) puts files on disk.
Every function takes the folder it writes into (from :class:`hw5.settings.Settings`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .files import atomic_write, atomic_write_bytes, update_json


def save_figure(fig: Figure, folder: str | Path, name: str, dpi: int = 130) -> Path:
    """Write ``fig`` as ``<folder>/<name>.png`` (atomic); returns the path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(Path(folder) / f"{name}.png", buffer.getvalue())


def write_metrics(folder: str | Path, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into ``<folder>/metrics.json`` (atomic); returns the whole file's dict."""
    return update_json(Path(folder) / "metrics.json", dict(updates))


def cached_array(folder: str | Path | None, key: str, compute: Callable[[], tuple[np.ndarray, float]]
                 ) -> tuple[np.ndarray, float, bool]:
    """``compute()`` -> (array, seconds), stored as ``<folder>/<key>.npz`` and read back by a later call with
    the same key. Returns (array, seconds of the computation that made it, whether it came from the cache).
    ``folder=None`` computes without caching."""
    path = Path(folder) / f"{key}.npz" if folder is not None else None
    if path is not None and path.is_file():
        with np.load(path) as cached:
            return cached["array"], float(cached["seconds"]), True
    array, seconds = compute()
    if path is not None:
        atomic_write(path, lambda fh: np.savez(fh, array=array, seconds=seconds))
    return array, seconds, False
