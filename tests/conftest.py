"""Shared test set-up: a headless matplotlib, no network, small real-data fixtures."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

# Tests never depend on how the suite was launched (the test command sets HW5_QUICK for the notebooks).
for var in ("HW5_QUICK", "HW5_DEVICE", "HW5_OUT", "HW5_USE_SHIPPED"):
    os.environ.pop(var, None)

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture()
def out_dir(tmp_path, monkeypatch):
    """Redirect figures, runs and quick-mode weights into a temporary folder."""
    monkeypatch.setenv("HW5_OUT", str(tmp_path))
    return tmp_path
