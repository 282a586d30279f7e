"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every result hw5 writes (dataset cache, checkpoints, weights, ``metrics.json``, figures) goes through
:func:`atomic_write`: the content is written to a temporary file in the destination's folder, flushed
to disk, and renamed over the destination with ``os.replace`` (atomic on POSIX and Windows). A crash
or an exception mid-write leaves the previous file intact and no temporary file behind. Only a process
killed mid-write (SIGKILL, power cut) can leave its ``.<name>.XXXXXXXX.tmp`` behind;
:func:`remove_stale_temporaries` deletes such leftovers; :mod:`hw5.checkpoint` calls it whenever a
checkpoint folder is saved to or resumed from.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


# The names tempfile.mkstemp gives in atomic_write: "." + target name + "." + 8 random characters from
# tempfile's alphabet (lower-case letters, digits, "_") + ".tmp". Anything else is not ours to delete.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


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


def is_atomic_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path``'s name is one :func:`atomic_write` gives its temporary files."""
    return bool(_TEMPORARY.match(Path(path).name))


def remove_stale_temporaries(directory: str | os.PathLike, older_than: float = 0.0) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in ``directory``; returns them.

    Only regular files directly in ``directory`` whose names match :func:`atomic_write`'s pattern, and
    whose last change is at least ``older_than`` seconds ago, are removed. A positive ``older_than``
    lets a reader clean up without racing a writer in another process, whose temporary file exists
    only for the second or so its write takes. A file that cannot be removed (gone meanwhile, or a
    read-only folder) is skipped: leftovers waste space but are never read.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    now = time.time()
    removed = []
    for path in directory.iterdir():
        if not is_atomic_temporary(path):
            continue
        try:
            if not path.is_file() or path.is_symlink() or now - path.stat().st_mtime < older_than:
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


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


class JSONFileError(ValueError):
    """A JSON file cannot be parsed; the message names the file, where it breaks, and what to do."""


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; :class:`JSONFileError` naming the file when it is not valid UTF-8 JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JSONFileError(
            f"{path} is not valid JSON ({exc}); the file is damaged or was cut short. Restore the "
            "original file, or regenerate it by rerunning what wrote it."
        ) from exc


def update_json(path: str | os.PathLike, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the JSON object at ``path`` (created if missing), atomically.

    Used for ``figures/problemN/metrics.json``, which a notebook fills section by section.
    """
    path = Path(path)
    current = read_json(path) if path.exists() else {}
    current.update(_jsonable(updates))
    write_json(path, current)
    return current
