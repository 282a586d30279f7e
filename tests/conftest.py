"""Shared test set-up: a headless matplotlib, at most two threads, and the datasets searched in ``HW5_DATA`` first.

The library reads no environment variable (only ``hw5.settings``, whose tests pass their environment explicitly),
so a test behaves the same however the suite was launched, with one exception made here: ``HW5_DATA``. A machine
without the checkout's default data places (``data/``, ``../shared/data``; e.g. a GPU machine offline, whose
datasets are carried into a folder of its own) points ``HW5_DATA`` at the folder holding ``<Name>/raw/*.gz``, and the
tests that load a dataset with the library's default roots look there first, as the notebooks do, instead of trying
to download it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from hw5 import locations  # noqa: E402
from hw5.checks import existing_path  # noqa: E402
from hw5.data import datasets  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def roots_with_hw5_data(environ: Mapping[str, str]) -> list[Path]:
    """The roots the tests search for raw dataset files: ``HW5_DATA`` (an existing folder, else
    ``FileNotFoundError`` naming it and the fix) first when it is set, then the library's default roots."""
    value = environ.get("HW5_DATA")
    defaults = locations.default_data_roots()
    return [existing_path("HW5_DATA", value), *defaults] if value else defaults


def pytest_configure(config: pytest.Config) -> None:
    """Check ``HW5_DATA`` once, before any test, and make the library's default search (what ``data.load(name)``
    without ``roots`` uses) start there. Read at every search, so a test may set ``HW5_DATA`` with monkeypatch.
    ``hw5.data.default_roots`` (the public name) is left alone: its own tests compare it with hw5.locations."""
    try:
        roots_with_hw5_data(os.environ)
    except FileNotFoundError as exc:
        raise pytest.UsageError(f"{exc} (the tests search HW5_DATA for the datasets)") from None
    datasets.default_roots = lambda: roots_with_hw5_data(os.environ)


class TinyExtractor(torch.nn.Module):
    """A small seeded non-linear feature map of [0, 1] images: (B, 1, 28, 28) -> (B, 12)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 5, stride=3), torch.nn.Tanh(),
                                       torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture
def tiny_extractor() -> type[TinyExtractor]:
    """Builds :class:`TinyExtractor`s: the same seeded weights every time."""
    return TinyExtractor


def load_execute_notebook():
    """scripts/execute_notebook.py as a module (it is a script, not part of the hw5 package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "execute_notebook", Path(__file__).resolve().parents[1] / "scripts" / "execute_notebook.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["execute_notebook"] = module
    spec.loader.exec_module(module)
    return module
