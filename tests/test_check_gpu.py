"""scripts/check_gpu.sh run on this CPU (HW5_CHECK_GPU_ALLOW_CPU=1, a tiny selection of tests and notebooks): its
summary line, its one message naming everything missing before anything runs, and its preflight's view of the
project's dependencies and data; and the unit tests searching HW5_DATA first for the datasets."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hw5 import data

REPO = Path(__file__).resolve().parent.parent
CHECK_GPU = REPO / "scripts" / "check_gpu.sh"
PREFLIGHT = REPO / "scripts" / "check_gpu_preflight.py"
SUMMARY = re.compile(r"^gpu check: tests (\d+)/(\d+), notebooks (\d+)/(\d+) cells, device (.+)$")
FAST_TEST = "tests/test_utils.py::test_device_choice"  # a sub-second unit test


def _load_preflight():
    spec = importlib.util.spec_from_file_location("check_gpu_preflight", PREFLIGHT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preflight = _load_preflight()


def _write_notebook(path: Path, *cells: str) -> Path:
    """An nbformat-4 notebook of code cells without outputs (JSON written here: no nbformat needed)."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": src} for i, src in enumerate(cells)]}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def _data_root() -> Path:
    """A folder holding all three datasets' raw files (HW5_DATA or the checkout's defaults), else skip."""
    roots, _ = preflight.data_roots(dict(os.environ))
    found, missing = preflight.find_datasets(roots)
    if missing:
        pytest.skip(f"the raw files of {', '.join(missing)} are not on this machine")
    if len(set(found.values())) != 1:
        pytest.skip("the three datasets are not in one folder, which HW5_DATA must be here")
    return next(iter(found.values()))


def _check_gpu(*args: str, script: Path = CHECK_GPU, **env: str) -> tuple[subprocess.CompletedProcess, re.Match]:
    """Run the check on the CPU (CUDA hidden, so it behaves the same on a GPU machine); returns the process and
    its summary line, which must be the last line of stdout."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("HW5_")}, "CUDA_VISIBLE_DEVICES": "",
                "PYTHON": sys.executable, "HW5_CHECK_GPU_ALLOW_CPU": "1", **env}
    proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=full_env, timeout=600)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    summary = SUMMARY.match(last)
    assert summary, f"no summary line at the end:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc, summary


def _notebooks(folder: Path) -> tuple[Path, Path]:
    """A notebook whose 2 cells pass (its first proves the runner imports this checkout's hw5, not another install,
    with the quick switch and the CPU set) and one of 3 cells whose second fails."""
    good = _write_notebook(
        folder / "good.ipynb",
        "import os, pathlib, hw5\n"
        f"assert pathlib.Path(hw5.__file__).resolve().parent == pathlib.Path({str(REPO / 'hw5')!r})\n"
        "assert os.environ['HW5_QUICK'] == '1' and os.environ['HW5_DEVICE'] == 'cpu'",
        "x = 1")
    bad = _write_notebook(folder / "bad.ipynb", "y = 2", "raise RuntimeError('a failing cell')", "z = 3")
    return good, bad


@pytest.mark.slow
def test_check_gpu_on_the_cpu_counts_the_tests_and_cells_that_passed(tmp_path):
    """One unit test and the two notebooks with scripts/run_notebooks.py (the GPU machine's runner: no Jupyter
    there), which stops a notebook at its failing cell: 1/1 tests, 2 + 1 of 2 + 3 cells, the CPU named, exit 1."""
    root = _data_root()
    good, bad = _notebooks(tmp_path)
    proc, summary = _check_gpu("--", "-q", HW5_DATA=str(root), HW5_CHECK_GPU_TESTS=FAST_TEST,
                               HW5_CHECK_GPU_NOTEBOOKS=f"{good} {bad}", HW5_CHECK_GPU_RUNNER="run_notebooks")
    assert summary.groups()[:4] == ("1", "1", "3", "5"), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary.group(5).startswith("cpu") and "HW5_CHECK_GPU_ALLOW_CPU=1" in summary.group(5)
    assert "with scripts/run_notebooks.py" in proc.stdout and "RuntimeError: a failing cell" in proc.stderr
    assert proc.returncode == 1


@pytest.mark.slow
def test_check_gpu_under_nbval_uses_the_quick_sanitizer_and_counts_every_cell(tmp_path):
    """The nbval branch (where Jupyter is installed): nbval runs the cells after a failing one, so 2 + 2 of 5 pass;
    the quick sanitizer is passed as scripts/test.sh passes it."""
    pytest.importorskip("nbval", reason="the nbval branch needs nbval")
    pytest.importorskip("ipykernel", reason="the nbval branch needs ipykernel")
    good, bad = _notebooks(tmp_path)
    proc, summary = _check_gpu(HW5_DATA=str(_data_root()), HW5_CHECK_GPU_TESTS=FAST_TEST,
                               HW5_CHECK_GPU_NOTEBOOKS=f"{good} {bad}", HW5_CHECK_GPU_RUNNER="nbval")
    assert summary.groups()[:4] == ("1", "1", "4", "5"), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "under nbval" in proc.stdout and proc.returncode == 1
    assert "--nbval-sanitize-with notebooks/nbval_quick.cfg" in CHECK_GPU.read_text()


@pytest.mark.slow
def test_check_gpu_passing_everything_exits_zero():
    proc, summary = _check_gpu(HW5_DATA=str(_data_root()), HW5_CHECK_GPU_TESTS=FAST_TEST,
                               HW5_CHECK_GPU_NOTEBOOKS="none")
    assert summary.groups()[:4] == ("1", "1", "0", "0"), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0 and "=== notebooks: none" in proc.stdout


def test_check_gpu_names_every_missing_thing_in_one_message_and_still_summarises(tmp_path):
    """A python missing scipy and sklearn (blocked from import), no data in HW5_DATA nor in the default places (a
    copy of the scripts in a folder without data/ nor ../shared/data), no GPU and no CPU switch: exit 2 before any
    test runs, one message naming all of it with the fix, then the summary line."""
    box = tmp_path / "box"
    (box / "scripts").mkdir(parents=True)
    for name in ("scripts/check_gpu.sh", "scripts/check_gpu_preflight.py", "pyproject.toml"):
        shutil.copy(REPO / name, box / name)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('scipy', 'sklearn'):\n"
        "            raise ImportError(f'{name} is blocked for this test')\n"
        "sys.meta_path.insert(0, _Blocked())\n")
    (tmp_path / "empty").mkdir()
    proc, summary = _check_gpu(script=box / "scripts" / "check_gpu.sh", PYTHONPATH=str(tmp_path / "site"),
                               HW5_CHECK_GPU_ALLOW_CPU="0", HW5_DATA=str(tmp_path / "empty"),
                               HW5_CHECK_GPU_NOTEBOOKS="none")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert summary.groups() == ("0", "0", "0", "0", "none")
    assert "=== unit tests" not in proc.stdout  # nothing ran
    message = proc.stderr
    assert message.count("check_gpu.sh: cannot start") == 1
    assert f"scipy is not importable in {sys.executable}" in message
    assert f"scikit-learn is not importable in {sys.executable}" in message
    assert "no CUDA GPU is visible to torch" in message and "bash scripts/test.sh" in message
    assert "MNIST, KMNIST, FashionMNIST are in none of" in message and str(tmp_path / "empty") in message
    assert "-m pip install 'scikit-learn>=" in message and "'scipy>=" in message and "HW5_DATA" in message
    assert "'torch>=" not in message.split("Fix:")[1], "only the missing modules are to be installed"


def test_check_gpu_refuses_an_unknown_notebook_or_argument_before_running_anything():
    proc, summary = _check_gpu(HW5_CHECK_GPU_NOTEBOOKS="99")
    assert proc.returncode == 2 and "no notebook notebooks/problem99_*.ipynb" in proc.stderr
    assert summary.groups() == ("0", "0", "0", "0", "none")
    proc, summary = _check_gpu("--bogus")
    assert proc.returncode == 2 and "unknown argument: --bogus" in proc.stderr
    assert summary.groups() == ("0", "0", "0", "0", "none")


def test_preflight_reads_the_dependencies_from_pyproject(tmp_path):
    deps = preflight.project_dependencies()
    assert {"torch", "numpy", "scikit-learn", "matplotlib", "tqdm", "safetensors", "torchmetrics"} <= set(deps)
    assert deps["torch"] == "2.4"
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\n\n[project]\nname = "x"\n'
        'dependencies = [\n    "a>=1.2",  # why\n    "b",\n]\n\n[project.optional-dependencies]\ndev = ["c>=3"]\n')
    assert preflight.project_dependencies(tmp_path / "pyproject.toml") == {"a": "1.2", "b": None}


def test_preflight_compares_versions_numerically():
    assert preflight.missing_modules({"pytest": "0.1"}) == []
    (problem,) = preflight.missing_modules({"pytest": "999.0"})
    assert "hw5 needs pytest>=999.0" in problem
    (problem,) = preflight.missing_modules({"no-such-module-hw5": None})
    assert "no-such-module-hw5 is not importable" in problem
    assert preflight._version_tuple("2.13.0+cpu") > preflight._version_tuple("2.4") > preflight._version_tuple("2.3.1")


def test_preflight_looks_for_the_files_hw5_data_reads(tmp_path):
    """The preflight's file list agrees with hw5.data's registry, and a root missing one file does not count."""
    assert set(preflight.DATASETS) == set(data.DATASETS)
    assert all(set(preflight.RAW_FILES) == set(info.md5) for info in data.DATASETS.values())
    for name in preflight.DATASETS:
        (tmp_path / name / "raw").mkdir(parents=True)
        for f in preflight.RAW_FILES:
            (tmp_path / name / "raw" / f).write_bytes(b"x")
    (tmp_path / "KMNIST" / "raw" / preflight.RAW_FILES[0]).unlink()
    found, missing = preflight.find_datasets([tmp_path])
    assert missing == ["KMNIST"] and found == {"MNIST": tmp_path, "FashionMNIST": tmp_path}
    roots, problems = preflight.data_roots({"HW5_DATA": str(tmp_path / "nowhere")})
    assert "HW5_DATA is" in problems[0] and "not an existing folder" in problems[0]
    assert roots == [REPO / "data", REPO.parent / "shared" / "data"]


def test_the_tests_search_hw5_data_first(tmp_path, monkeypatch):
    """tests/conftest.py: data.load without roots finds the copy HW5_DATA points at before any default root, and
    never downloads it; a HW5_DATA that is not a folder is an error naming it."""
    try:
        real = data.locate("MNIST", allow_download=False)
    except data.DataError:
        pytest.skip("the raw MNIST files are not on this machine")
    copy = tmp_path / "carried"
    shutil.copytree(real / "MNIST", copy / "MNIST")
    monkeypatch.setenv("HW5_DATA", str(copy))
    monkeypatch.setattr(data.datasets, "download", lambda *a, **k: pytest.fail("the tests tried to download"))
    assert data.locate("MNIST") == copy
    monkeypatch.setenv("HW5_DATA", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="HW5_DATA is .*missing.*not an existing folder"):
        data.locate("MNIST")


def test_run_notebooks_alone_imports_this_checkout(tmp_path):
    """scripts/run_notebooks.py run on its own, from another folder, without PYTHONPATH: the notebooks find this
    checkout's hw5 first (not another install; without one the notebooks' first cell would try `pip install -e`,
    which fails offline), and so does any process they start."""
    nb = _write_notebook(
        tmp_path / "where.ipynb",
        "import importlib.util, os, pathlib\n"
        "spec = importlib.util.find_spec('hw5')\n"
        "assert spec is not None, 'hw5 is not importable'\n"
        f"assert pathlib.Path(spec.origin).resolve().parent == pathlib.Path({str(REPO / 'hw5')!r}), spec\n"
        f"assert os.environ['PYTHONPATH'].split(os.pathsep)[0] == {str(REPO)!r}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HW5_") and k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "run_notebooks.py"), str(nb)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "where.ipynb: 1/1 cells passed" in proc.stdout
