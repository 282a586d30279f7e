"""Where hw5 lives and where it keeps files (temporary stand-in; replaced by the installed-package version)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_WEIGHTS = PACKAGE_DIR / "weights"
SOURCE_ROOT: Path | None = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None


def default_output_root() -> Path:
    """The repository of a source checkout, else the current directory."""
    return SOURCE_ROOT if SOURCE_ROOT is not None else Path.cwd()
