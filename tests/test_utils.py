"""Devices, seeds, model helpers, and an import without side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hw5 import utils


def test_device_choice():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert utils.get_device().type == expected
    assert utils.get_device(None).type == expected and utils.get_device(" ").type == expected
    assert utils.get_device("cpu") == torch.device("cpu") == utils.get_device(torch.device("cpu"))


@pytest.mark.parametrize("name, message", [
    ("gpu", "'gpu' is not a torch device name; use 'cuda'"),
    ("tpu0", "not a device name torch knows; use one of 'cpu', 'cuda'"),
    ("meta", "not supported by hw5"),
])
def test_unknown_device_names_are_clear_errors(name, message):
    with pytest.raises(ValueError, match=message):
        utils.get_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="sees no CUDA GPU; use 'cpu'"):
        utils.get_device("cuda")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without Apple's GPU")
def test_asking_for_mps_without_one_is_a_clear_error():
    with pytest.raises(ValueError, match="not available on this machine; use 'cpu'"):
        utils.get_device("mps")


def test_eval_mode_restores_each_models_mode():
    a, b = torch.nn.Dropout(), torch.nn.Dropout().eval()
    with utils.eval_mode(a, b):
        assert not a.training and not b.training
    assert a.training and not b.training
    with pytest.raises(RuntimeError), utils.eval_mode(a):
        raise RuntimeError("an evaluation that fails still gives the model back its mode")
    assert a.training


def test_model_device_is_where_the_parameters_are():
    assert utils.model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert utils.model_device(torch.nn.ReLU()) == torch.device("cpu")  # no tensors: the CPU


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


def test_import_has_no_side_effects(tmp_path):
    """`import hw5` prints nothing, writes nothing, downloads nothing."""
    watched = [Path(utils.__file__).resolve().parent.parent / d for d in ("data", "figures", "runs")]

    def snapshot():
        return {p: p.stat().st_mtime_ns for d in watched if d.exists() for p in d.rglob("*")}

    before = snapshot()
    code = ("import socket, hw5, hw5.data, hw5.plotting, hw5.metrics, hw5.training.gan, hw5.output, hw5.settings;"
            "import hw5.training.classifier")
    home, cwd = tmp_path / "home", tmp_path / "cwd"  # matplotlib may cache fonts under HOME: not ours
    home.mkdir()
    cwd.mkdir()
    # PYTHONPATH: this checkout's hw5, also where none is installed (a GPU machine's python: tests/test_check_gpu.py)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HW5_DATA": str(tmp_path / "nodata"),
           "PYTHONPATH": str(Path(utils.__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert snapshot() == before
    assert list(cwd.iterdir()) == [] and not (tmp_path / "nodata").exists()
