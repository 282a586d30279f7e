"""hw5.locations: where a source checkout and an installed package keep data, caches and outputs, and how a
source checkout is recognised."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hw5 import data, locations

REPO = Path(__file__).resolve().parent.parent


def test_locations_of_a_source_checkout():
    assert locations.SOURCE_ROOT == REPO == locations.PACKAGE_DIR.parent
    assert locations.SHIPPED_WEIGHTS == REPO / "hw5" / "weights"
    assert locations.default_data_roots() == [REPO / "data", REPO.parent / "shared" / "data"]
    assert locations.default_cache_dir() == REPO / "data"
    assert locations.default_output_root() == REPO


def test_locations_of_an_installed_package_never_point_into_it(tmp_path, monkeypatch):
    monkeypatch.setattr(locations, "SOURCE_ROOT", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    user_cache = locations.user_cache_dir()
    if sys.platform.startswith("linux"):
        assert user_cache == tmp_path / "xdg" / "hw5"
    assert locations.default_data_roots() == data.default_roots() == [user_cache / "data"]
    assert locations.default_cache_dir() == data.default_cache_dir() == user_cache / "data"
    assert locations.default_output_root() == tmp_path
    for path in [*locations.default_data_roots(), locations.default_cache_dir(), locations.default_output_root()]:
        assert not path.is_relative_to(locations.PACKAGE_DIR) and not path.is_relative_to(REPO)
    assert not (tmp_path / "xdg").exists(), "computing a location creates nothing"


@pytest.mark.parametrize("text, expected", [
    ('[project]\nname = "hw5"\nversion = "0.1.0"\n', True),
    ("[build-system]\nrequires = []\n\n[project]  # ours\nname='hw5'  # the package\n", True),
    ('[project]\nname = "hw5-extras"\n', False),
    ('[tool.other]\nname = "hw5"\n[project]\nname = "site"\n', False),
    ("not toml at all", False),
])
def test_a_source_checkout_is_a_pyproject_declaring_hw5(tmp_path, text, expected):
    (tmp_path / "hw5").mkdir()
    (tmp_path / "pyproject.toml").write_text(text)
    assert locations._find_source_root(tmp_path / "hw5") == (tmp_path if expected else None)
    assert locations._find_source_root(tmp_path / "elsewhere" / "hw5") is None
