"""Shared test set-up: a headless matplotlib, a clean environment, an output folder fixture."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """Tests never depend on how the suite was launched (the test command sets HW5_QUICK for the
    notebooks, which run in the same pytest process after the tests)."""
    for var in ("HW5_QUICK", "HW5_DEVICE", "HW5_OUT", "HW5_USE_SHIPPED"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def out_dir(tmp_path, monkeypatch):
    """Redirect figures, runs and quick-mode weights into a temporary folder."""
    monkeypatch.setenv("HW5_OUT", str(tmp_path))
    return tmp_path
