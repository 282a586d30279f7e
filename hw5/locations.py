"""Where hw5's files live, for a source checkout and for an installed package.

hw5 runs in one of two layouts:

* **source checkout** (``git clone`` + ``pip install -e .``, or ``PYTHONPATH`` pointing at it): the
  package folder sits in the repository, whose ``pyproject.toml`` declares the project ``hw5``. Data, the
  decoded cache and outputs then go into the repository (``data/``, ``figures/``, ``runs/``), as the
  notebooks and the README describe;
* **installed** (a wheel in ``site-packages``): nothing may be written next to the package, which can
  be read-only and is shared by every user of that Python. Data and the decoded cache go into the
  user's cache folder (``~/.cache/hw5`` on Linux, via :mod:`platformdirs`, which honours
  ``XDG_CACHE_HOME``) and outputs into the current working folder.

This module only computes default paths. It reads no ``HW5_*`` environment variable: that is the job
of :mod:`hw5.settings`, which passes the paths it chooses into :mod:`hw5.data` and the training code.
Nothing is created here; callers create a folder when they first write into it.
"""

from __future__ import annotations

import re
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_WEIGHTS = PACKAGE_DIR / "weights"

_SECTION = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
_NAME_HW5 = re.compile(r"""^\s*name\s*=\s*["']hw5["']\s*(#.*)?$""")


def _declares_hw5(pyproject: Path) -> bool:
    """Whether ``pyproject`` has ``name = "hw5"`` in its ``[project]`` table.

    A line scan rather than ``tomllib``, which Python 3.10 (still supported) does not have; a stray
    ``pyproject.toml`` of another project beside an installed hw5 must not count as our checkout.
    """
    try:
        lines = pyproject.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    section = None
    for line in lines:
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
        elif section == "project" and _NAME_HW5.match(line):
            return True
    return False


def _find_source_root(package_dir: Path) -> Path | None:
    """The repository holding ``package_dir`` when it is a source checkout of hw5, else ``None``."""
    root = package_dir.parent
    return root if _declares_hw5(root / "pyproject.toml") else None


# The repository root when hw5 runs from a source checkout, ``None`` when it is installed. Functions
# below read this name at call time, so a test can monkeypatch it to ``None`` to act as installed.
SOURCE_ROOT: Path | None = _find_source_root(PACKAGE_DIR)


def user_cache_dir() -> Path:
    """The user's cache folder for hw5 (``$XDG_CACHE_HOME/hw5`` or ``~/.cache/hw5`` on Linux)."""
    return Path(platformdirs.user_cache_dir("hw5", appauthor=False))


def default_data_roots() -> list[Path]:
    """Folders searched for the raw dataset files, in order.

    Source checkout: the repository's ``data/``, then ``../shared/data`` beside the repository (a
    read-only copy some machines provide). Installed: ``<user cache>/data``, where downloads go.
    """
    if SOURCE_ROOT is not None:
        return [SOURCE_ROOT / "data", SOURCE_ROOT.parent / "shared" / "data"]
    return [user_cache_dir() / "data"]


def default_cache_dir() -> Path:
    """Folder for downloaded raw files (``<Name>/raw/``) and decoded arrays (``cache/<Name>/``).

    Source checkout: the repository's ``data/``. Installed: ``<user cache>/data``. In both layouts it
    is the first data root, so a dataset downloaded once is found there by the next search.
    """
    if SOURCE_ROOT is not None:
        return SOURCE_ROOT / "data"
    return user_cache_dir() / "data"


def default_output_root() -> Path:
    """Root folder for figures and run checkpoints: the repository, or the current working folder."""
    return SOURCE_ROOT if SOURCE_ROOT is not None else Path.cwd()
