"""The in-process notebook runner (scripts/run_notebooks.py) on small notebooks made here, its command line,
and scripts/check_gpu.sh turning a machine without a visible CUDA GPU away."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "scripts" / "run_notebooks.py"
CHECK_GPU = REPO / "scripts" / "check_gpu.sh"


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_notebooks"] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook (nbformat 4, written as JSON: these tests need no Jupyter package) with a markdown cell first
    (not counted) and one code cell per source."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s}
            for s in sources]
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# title"}, *code]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_cells_share_one_namespace_run_in_the_notebook_folder_and_are_timed(tmp_path):
    nb = write_notebook(
        tmp_path / "nb" / "ok.ipynb",
        "# NBVAL_IGNORE_OUTPUT\nx = 41",
        "import time\ntime.sleep(0.2)\ny = x + 1",
        "import os\nassert y == 42 and __name__ == '__main__'\nopen('cwd.txt', 'w').write(os.getcwd())",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()\nassert plt.get_backend().lower() == 'agg'",
    )
    cwd = os.getcwd()
    result = runner.run_notebook(nb)
    assert result.error is None and result.ok
    assert (result.passed, result.total) == (4, 4)
    assert len(result.seconds) == 4 and result.seconds[1] >= 0.2 and result.seconds[0] < 0.2
    assert result.cells[0].first_line == "x = 41"  # the nbval directive is not the line that names the cell
    assert (tmp_path / "nb" / "cwd.txt").read_text() == str(tmp_path / "nb")
    assert os.getcwd() == cwd  # the runner's working directory is restored
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # figures are closed after their cell, as Jupyter's inline backend does


def test_each_notebook_gets_a_fresh_namespace(tmp_path):
    first = write_notebook(tmp_path / "a.ipynb", "leak = 1")
    second = write_notebook(tmp_path / "b.ipynb", "assert 'leak' not in globals(), 'state leaked between notebooks'\n"
                                                     "assert __name__ == '__main__'")
    assert runner.run_notebook(first).ok
    result = runner.run_notebook(second)
    assert result.ok, result.error


def test_stops_at_the_first_error_and_never_writes_the_notebook(tmp_path):
    marker = tmp_path / "later_cell_ran"
    nb = write_notebook(
        tmp_path / "bad.ipynb",
        "a = 1",
        "# NBVAL_IGNORE_OUTPUT\nb = a + 1\nraise ValueError(f'boom {b}')",
        f"open({str(marker)!r}, 'w').write('ran')",
    )
    before, mtime = nb.read_bytes(), nb.stat().st_mtime_ns
    result = runner.run_notebook(nb)
    assert not result.ok
    assert (result.passed, result.total, len(result.cells)) == (1, 3, 2)
    assert result.cells[1].status == runner.FAILED
    assert result.error.index == 1
    assert result.error.first_line == "b = a + 1"
    assert result.error.error == "ValueError: boom 2"
    assert "<bad.ipynb code cell 1>" in result.error.traceback
    assert "raise ValueError(f'boom {b}')" in result.error.traceback  # the cell's line, from its source
    assert not marker.exists()
    assert nb.read_bytes() == before and nb.stat().st_mtime_ns == mtime


def test_syntax_error_is_reported_as_the_cell_error(tmp_path):
    result = runner.run_notebook(write_notebook(tmp_path / "s.ipynb", "x = 1", "def f(:\n    pass"))
    assert result.error.index == 1 and result.error.error.startswith("SyntaxError")
    # one raised while the cell runs keeps its traceback through the cell
    result = runner.run_notebook(write_notebook(tmp_path / "t.ipynb", "exec('def g(:')"))
    assert result.error.error.startswith("SyntaxError") and "<t.ipynb code cell 0>" in result.error.traceback


def test_magic_and_shell_lines_are_skipped_with_a_note(tmp_path):
    nb = write_notebook(
        tmp_path / "magic.ipynb",
        "%matplotlib inline\nx = 1\nif x:\n    !echo hello\ny = x + 1",
        "%%bash\necho this is not python",
        "z = (10\n% 3)\nassert (y, z) == (2, 1)",  # compiles as it is: the '%' line is Python and kept
    )
    result = runner.run_notebook(nb)
    assert result.ok, result.error
    assert [c.status for c in result.cells] == [runner.PASSED, runner.SKIPPED, runner.PASSED]
    assert (result.passed, result.total) == (2, 3)
    assert len(result.cells[0].notes) == 2 and "%matplotlib inline" in result.cells[0].notes[0]
    assert result.cells[2].notes == []


def test_environment_is_set_for_the_run_and_restored(tmp_path, monkeypatch):
    monkeypatch.delenv("HW5_RUNNER_TEST", raising=False)
    nb = write_notebook(tmp_path / "env.ipynb", "import os\nassert os.environ['HW5_RUNNER_TEST'] == 'yes'")
    assert runner.run_notebook(nb, env={"HW5_RUNNER_TEST": "yes"}).ok
    assert "HW5_RUNNER_TEST" not in os.environ
    assert not runner.run_notebook(nb).ok


def test_problem_numbers_select_the_problem_notebooks(tmp_path):
    nb = write_notebook(tmp_path / "notebooks" / "problem2_x.ipynb", "pass")
    assert runner.resolve_notebooks(["2"], root=tmp_path) == [nb]
    with pytest.raises(ValueError, match="problem 3"):
        runner.resolve_notebooks(["3"], root=tmp_path)
    assert [p.name for p in runner.resolve_notebooks([], root=REPO)] == [
        "problem1_gan.ipynb", "problem2_rbm.ipynb", "problem3_vae.ipynb"]


def _problem_notebooks(folder: Path, *names: str) -> dict[str, Path]:
    return {name: write_notebook(folder / name, "pass") for name in names}


def test_a_new_problem_notebook_is_discovered_by_pattern(tmp_path):
    nbs = _problem_notebooks(tmp_path / "notebooks", "problem1_gan.ipynb", "problem2_rbm.ipynb", "problem4_x.ipynb",
                             "problem10_y.ipynb", "problem_notes.ipynb", "scratch.ipynb")
    assert runner.discover_notebooks(tmp_path / "notebooks") == {
        1: nbs["problem1_gan.ipynb"], 2: nbs["problem2_rbm.ipynb"], 4: nbs["problem4_x.ipynb"],
        10: nbs["problem10_y.ipynb"]}  # by number, not by name: 10 after 4; no digits after "problem": no problem
    assert [p.name for p in runner.resolve_notebooks([], root=tmp_path)] == [
        "problem1_gan.ipynb", "problem2_rbm.ipynb", "problem4_x.ipynb", "problem10_y.ipynb"]
    assert runner.resolve_notebooks(["4", "1"], root=tmp_path) == [nbs["problem4_x.ipynb"], nbs["problem1_gan.ipynb"]]
    with pytest.raises(ValueError, match=r"problem 3: no notebook .*problems found: 1, 2, 4, 10"):
        runner.resolve_notebooks(["3"], root=tmp_path)
    write_notebook(tmp_path / "notebooks" / "problem4_other.ipynb", "pass")
    with pytest.raises(ValueError, match="problem 4 has two notebooks, problem4_other.ipynb and problem4_x.ipynb"):
        runner.discover_notebooks(tmp_path / "notebooks")
    with pytest.raises(ValueError, match="no notebook matches"):
        runner.resolve_notebooks([], root=tmp_path / "empty")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HW5_")}
    return subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_sets_the_switches_and_exits_zero_when_every_cell_passes(tmp_path):
    nb = write_notebook(tmp_path / "ok.ipynb", "import os",
                        "assert (os.environ['HW5_QUICK'], os.environ['HW5_DEVICE'], os.environ['HW5_USE_SHIPPED']) "
                        "== ('1', 'cpu', '1')")
    out = tmp_path / "result.json"
    proc = _cli("--quick", "--device", "cpu", "--shipped", "--json", str(out), str(nb))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok.ipynb: 2/2 cells passed" in proc.stdout
    (result,) = json.loads(out.read_text())
    assert (result["passed"], result["total"], result["error"]) == (2, 2, None)
    assert len(result["cells"]) == 2 and all(c["seconds"] >= 0 for c in result["cells"])


def test_cli_exits_non_zero_when_a_cell_fails(tmp_path):
    good = write_notebook(tmp_path / "good.ipynb", "pass")
    bad = write_notebook(tmp_path / "bad.ipynb", "1 / 0", "pass")
    proc = _cli(str(bad), str(good))  # without switches the HW5 variables stay unset
    assert proc.returncode == 1
    assert "FAILED at code cell 0 (1 / 0)" in proc.stderr and "ZeroDivisionError" in proc.stderr
    assert "good.ipynb: 1/1 cells passed" in proc.stdout  # the next notebook still ran
    assert "notebooks: 1/3 cells passed" in proc.stdout
    assert _cli(str(tmp_path / "missing.ipynb")).returncode == 2


def _check_gpu(python: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    # CUDA_VISIBLE_DEVICES="" hides any GPU from torch, so this also holds (and runs nothing) on a GPU machine.
    full_env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": python, **env}
    return subprocess.run(["bash", str(CHECK_GPU), *args], capture_output=True, text=True, env=full_env,
                          timeout=120, cwd=REPO)


def test_check_gpu_without_a_visible_gpu_exits_2_at_once():
    proc = _check_gpu(sys.executable, HW5_NO_VENV="1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no CUDA GPU is visible to torch" in proc.stderr and "bash scripts/test.sh" in proc.stderr
    assert "=== unit tests" not in proc.stdout  # turned away before running anything


def test_check_gpu_names_a_missing_python_or_torch(tmp_path):
    proc = _check_gpu(str(tmp_path / "no-python"), "--no-venv")
    assert proc.returncode == 2 and "python not found" in proc.stderr
    shim = tmp_path / "python-without-site-packages"  # -S: no site-packages, so no torch
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    shim.chmod(0o755)
    proc = _check_gpu(str(shim), "--no-venv")
    assert proc.returncode == 2 and f"torch is not importable in {shim}" in proc.stderr
    proc = _check_gpu(sys.executable, "--no-venv", "--bogus")
    assert proc.returncode == 2 and "unknown argument: --bogus" in proc.stderr


def test_ensure_hw5_does_nothing_where_hw5_is_importable():
    """The notebooks' first cell runs scripts/ensure_hw5.py: with hw5 installed it must not call pip."""
    import runpy
    from unittest import mock

    script = Path(__file__).resolve().parent.parent / "scripts" / "ensure_hw5.py"
    with mock.patch("subprocess.run") as run:
        runpy.run_path(str(script))
    run.assert_not_called()


def test_ensure_hw5_installs_from_the_checkout_where_hw5_is_missing():
    import importlib.util
    import runpy
    from unittest import mock

    script = Path(__file__).resolve().parent.parent / "scripts" / "ensure_hw5.py"
    with mock.patch("subprocess.run") as run, mock.patch.object(importlib.util, "find_spec", return_value=None):
        runpy.run_path(str(script))
    command = run.call_args.args[0]
    assert command[1:5] == ["-m", "pip", "install", "-q"] and command[-2:] == ["-e", str(script.parent.parent)]


TIME_HOMEWORK = REPO / "benchmarks" / "time_homework.py"


@pytest.mark.parametrize("name", ["HW5_OUT", "HW5_DATA", "HW5_CACHE"])
def test_time_homework_checks_the_folders_before_running_any_notebook(tmp_path, name):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HW5_")}, name: str(tmp_path / "missing")}
    proc = subprocess.run([sys.executable, str(TIME_HOMEWORK), "--device", "cpu", "2"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{name} is {str(tmp_path / 'missing')!r}, which is not an existing folder" in proc.stderr
    assert "##### problem" not in proc.stdout  # turned away before the first notebook started (without --quick:
    # were the check gone, the notebook would stop at its own Settings.from_env, with nothing deleted)


def _time_homework():
    spec = importlib.util.spec_from_file_location("time_homework", TIME_HOMEWORK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_homework_times_every_problem_notebook_it_finds(tmp_path):
    timer = _time_homework()
    _problem_notebooks(tmp_path, "problem1_a.ipynb", "problem2_b.ipynb", "problem3_c.ipynb", "problem4_x.ipynb")
    assert timer.select_problems([], tmp_path) == [1, 2, 3, 4]
    assert timer.select_problems([4, 2, 4], tmp_path) == [2, 4]
    with pytest.raises(ValueError, match=r"problem\(s\) \[5\]; the problem numbers are 1, 2, 3, 4"):
        timer.select_problems([5, 1], tmp_path)
    with pytest.raises(ValueError, match="numbers are none"):
        timer.select_problems([], tmp_path / "empty")
    assert timer.select_problems([], REPO / "notebooks") == [1, 2, 3]


def _reproduce_sandbox(tmp_path: Path) -> Path:
    """A copy of scripts/reproduce.sh beside problem notebooks 1, 2 and 4, a stand-in install.sh that only leaves
    a marker, and a stand-in .venv/bin/python that records the notebooks it was asked to execute (its .ipynb
    arguments, one a line) and its other arguments (in `options`)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "reproduce.sh", tmp_path / "scripts" / "reproduce.sh")
    (tmp_path / "scripts" / "install.sh").write_text("touch installed\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "quick=$HW5_QUICK shipped=$HW5_USE_SHIPPED" >> modes\n'
                      'for a; do case "$a" in *.ipynb) echo "$a" >> executed ;; '
                      '*) printf "%s " "$a" >> options ;; esac; done\n')
    python.chmod(0o755)
    _problem_notebooks(tmp_path / "notebooks", "problem1_a.ipynb", "problem2_b.ipynb", "problem4_x.ipynb",
                       "problem_notes.ipynb")
    return tmp_path


def _reproduce(box: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """reproduce.sh in ``box``; the stand-in python also records the mode it was given (in ``modes``)."""
    return subprocess.run(["bash", "scripts/reproduce.sh", *args], cwd=box, capture_output=True, text=True,
                          timeout=60, env=environ)


def test_reproduce_runs_every_problem_notebook_it_finds_in_problem_order(tmp_path):
    box = _reproduce_sandbox(tmp_path)
    proc = _reproduce(box, "--quick")
    assert proc.returncode == 0, proc.stderr
    assert (box / "executed").read_text().split() == [
        "notebooks/problem1_a.ipynb", "notebooks/problem2_b.ipynb", "notebooks/problem4_x.ipynb"]
    assert (box / "options").read_text().split() == [
        "scripts/execute_notebook.py", "--output-dir", "figures/quick/notebooks"]  # quick copies, not in place
    (box / "executed").unlink(), (box / "options").unlink()
    proc = _reproduce(box, "4", "1")
    assert proc.returncode == 0, proc.stderr
    assert (box / "executed").read_text().split() == ["notebooks/problem4_x.ipynb", "notebooks/problem1_a.ipynb"]
    assert (box / "options").read_text().split() == ["scripts/execute_notebook.py"]  # full mode: in place


def test_reproduce_mode_comes_from_its_arguments_not_from_the_shell(tmp_path):
    box = _reproduce_sandbox(tmp_path)
    inherited = {**os.environ, "HW5_QUICK": "1", "HW5_USE_SHIPPED": "1"}
    proc = _reproduce(box, "1", environ=inherited)
    assert proc.returncode == 0, proc.stderr
    assert (box / "modes").read_text().split() == ["quick=0", "shipped=0"]
    assert (box / "options").read_text().split() == ["scripts/execute_notebook.py"]  # full mode: in place
    (box / "modes").unlink(), (box / "options").unlink()
    proc = _reproduce(box, "--shipped", "1", environ={**os.environ, "HW5_QUICK": "0"})
    assert proc.returncode == 0, proc.stderr
    assert (box / "modes").read_text().split() == ["quick=0", "shipped=1"]
    (box / "modes").unlink()
    proc = _reproduce(box, "--quick", "1", environ={**os.environ, "HW5_QUICK": "0"})
    assert proc.returncode == 0, proc.stderr
    assert (box / "modes").read_text().split() == ["quick=1", "shipped=0"]


def test_reproduce_refuses_a_problem_without_a_notebook_before_installing(tmp_path):
    box = _reproduce_sandbox(tmp_path)
    proc = _reproduce(box, "3")
    assert proc.returncode == 2 and "problem 3 has no notebook notebooks/problem3_*.ipynb" in proc.stderr, proc.stderr
    assert "problems found: 1 2 4" in proc.stderr
    assert not (box / "installed").exists() and not (box / "executed").exists(), "refused before the install"
    assert _reproduce(box, "x3").returncode == 2 and "unknown argument: x3" in _reproduce(box, "x3").stderr


def _script_sandbox(tmp_path: Path, script: str) -> Path:
    """A folder with a copy of scripts/<script> and a stand-in install.sh that only leaves a marker."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / script, tmp_path / "scripts" / script)
    if script != "install.sh":
        (tmp_path / "scripts" / "install.sh").write_text("touch installed\nexit 1\n")
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--device"], "--device needs a value"),
    (["--device", "--quick"], "--device needs a value"),
    (["--device", "gpu"], "--device 'gpu' is not a device; use cpu, cuda or cuda:N"),
    (["--device=cuda:x"], "--device 'cuda:x' is not a device; use cpu, cuda or cuda:N"),
    (["--device="], "--device '' is not a device"),
])
def test_reproduce_rejects_a_bad_device_before_installing_anything(tmp_path, args, message):
    box = _script_sandbox(tmp_path, "reproduce.sh")
    proc = subprocess.run(["bash", "scripts/reproduce.sh", *args], cwd=box, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "unbound variable" not in proc.stderr
    assert not (box / "installed").exists()


def test_reproduce_accepts_a_good_device_and_goes_on_to_install(tmp_path):
    box = _script_sandbox(tmp_path, "reproduce.sh")
    (box / "notebooks").mkdir()
    (box / "notebooks" / "problem2_x.ipynb").write_text("{}")  # problem 2 exists: only the install is left to fail
    proc = subprocess.run(["bash", "scripts/reproduce.sh", "--device", "cuda:1", "--quick", "2"], cwd=box,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and (box / "installed").exists(), proc.stderr  # the stand-in install ran
