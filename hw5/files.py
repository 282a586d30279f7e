"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every result hw5 writes (dataset cache, checkpoints, weights, ``metrics.json``, figures) goes through
:func:`atomic_write`: the content is written to a temporary file in the destination's folder, flushed
to disk, and renamed over the destination with ``os.replace`` (atomic on POSIX and Windows). A crash
or an exception mid-write leaves the previous file intact and no temporary file behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fh)`` on a temporary binary file, then rename it to ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically replace ``path`` by ``data``."""
    return atomic_write(path, lambda fh: fh.write(data))


def _jsonable(value: Any) -> Any:
    """Numbers from torch/NumPy become Python floats/ints; NaN/inf become null (JSON has neither)."""
    if hasattr(value, "tolist"):  # torch.Tensor, np.ndarray, NumPy scalars
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (tensors and NumPy values converted)."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n"
    return atomic_write_bytes(path, text.encode())


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file."""
    return json.loads(Path(path).read_text())


def update_json(path: str | os.PathLike, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the JSON object at ``path`` (created if missing), atomically.

    Used for ``figures/problemN/metrics.json``, which a notebook fills section by section.
    """
    path = Path(path)
    current = read_json(path) if path.exists() else {}
    current.update(_jsonable(updates))
    write_json(path, current)
    return current
