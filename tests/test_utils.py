"""Environment switches, devices, seeds, output folders, and an import without side effects."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from hw5 import utils


def test_device_choice(monkeypatch):
    monkeypatch.setenv("HW5_DEVICE", "cpu")
    assert utils.get_device() == torch.device("cpu")
    monkeypatch.delenv("HW5_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert utils.get_device().type == expected
    assert utils.get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HW5_DEVICE", "cuda")
    with pytest.raises(ValueError, match="sees no CUDA GPU; use HW5_DEVICE=cpu"):
        utils.get_device()


def test_seed_everything_makes_every_generator_repeat():
    def draw():
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), __import__("random").random()

    utils.seed_everything(7)
    first = draw()
    utils.seed_everything(7)
    assert draw() == first
    utils.seed_everything(8)
    assert draw() != first


def test_epoch_seeds_differ_by_epoch_and_seed():
    seeds = {utils.epoch_seed(s, e) for s in range(3) for e in range(1, 50)}
    assert len(seeds) == 3 * 49


def test_quick_mode_switch_and_output_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("HW5_OUT", str(tmp_path))
    monkeypatch.delenv("HW5_QUICK", raising=False)
    assert not utils.quick_mode() and utils.mode_name() == "full"
    assert utils.figures_dir(2) == tmp_path / "figures" / "problem2"
    assert utils.runs_dir(2) == tmp_path / "runs" / "problem2"
    assert utils.weights_dir() == utils.SHIPPED_WEIGHTS
    monkeypatch.setenv("HW5_QUICK", "1")
    assert utils.quick_mode() and utils.mode_name() == "quick"
    assert utils.figures_dir(2) == tmp_path / "figures" / "quick" / "problem2"
    assert utils.runs_dir(2) == tmp_path / "runs" / "quick" / "problem2"
    assert utils.weights_dir() == tmp_path / "runs" / "quick" / "weights"
    monkeypatch.setenv("HW5_USE_SHIPPED", "1")
    assert not utils.use_shipped(), "quick mode always trains"
    monkeypatch.setenv("HW5_QUICK", "0")
    assert utils.use_shipped()


def test_import_has_no_side_effects(tmp_path):
    """`import hw5` prints nothing, writes nothing, downloads nothing."""
    watched = [utils.REPO_ROOT / d for d in ("data", "figures", "runs")]

    def snapshot():
        return {p: p.stat().st_mtime_ns for d in watched if d.exists() for p in d.rglob("*")}

    before = snapshot()
    code = ("import socket, hw5, hw5.data, hw5.plotting, hw5.metrics, hw5.training.gan;"
            "import hw5.training.classifier")
    home, cwd = tmp_path / "home", tmp_path / "cwd"  # matplotlib may cache fonts under HOME: not ours
    home.mkdir()
    cwd.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HW5_DATA": str(tmp_path / "nodata")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert snapshot() == before
    assert list(cwd.iterdir()) == [] and not (tmp_path / "nodata").exists()
