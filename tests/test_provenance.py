"""Provenance of the committed notebooks: each is one top-to-bottom execution by scripts/execute_notebook.py,
stamped (every code cell's source hash; the notebook's mode, device, torch and commit), and no code cell was
edited after that execution. Also: the check catches an edited, an unstamped or a reordered cell on notebooks
made here, and the runner executes and stamps a small notebook in a real kernel (slow: a kernel and a torch
import)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_execute_notebook

REPO = Path(__file__).resolve().parent.parent
COMMITTED = sorted((REPO / "notebooks").glob("problem*_*.ipynb"))


runner = load_execute_notebook()

PROVENANCE = {"mode": "shipped", "device": "cpu (test)", "torch": "2.13.0+cpu", "commit": "0" * 40}


def _code(source, count=None, outputs=()):
    return {"cell_type": "code", "execution_count": count, "id": f"c{count}", "metadata": {},
            "outputs": list(outputs), "source": source}


def _notebook():
    """A markdown cell, then three executed code cells (counts 1..3), sources as JSON stores them (lists of
    lines) and as nbformat gives them (one string)."""
    cells = [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# Problem 2\n"]},
             _code(["import math\n", "x = math.pi"], 1),
             _code("print(x)", 2, [{"output_type": "stream", "name": "stdout", "text": ["3.14159\n"]}]),
             _code("# NBVAL_IGNORE_OUTPUT\ny = 2 * x", 3)]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _stamped():
    nb = _notebook()
    runner.stamp_notebook(nb, PROVENANCE)
    return nb


# --- (a) the committed notebooks --------------------------------------------------------------------------------

def test_there_are_committed_notebooks():
    assert COMMITTED, "no notebooks/problem*_*.ipynb found"


@pytest.mark.parametrize("notebook", COMMITTED, ids=lambda p: p.name)
def test_committed_notebooks_are_stamped_executions(notebook):
    """Every committed problem notebook was written by scripts/execute_notebook.py in full or shipped mode and
    not edited since. On failure the messages name the notebook, the cell and the command that re-executes it."""
    problems = runner.check_files([notebook], runner.COMMITTED_MODES)
    assert not problems, "\n" + "\n".join(problems)


# --- (b) the check, on notebooks made here ------------------------------------------------------------------------

def test_stamps_are_sha256_of_the_cell_source_and_the_stamped_notebook_passes():
    nb = _stamped()
    hashes = [c["metadata"]["hw5"]["source_sha256"] for c in nb["cells"][1:]]
    assert hashes == [hashlib.sha256(b"import math\nx = math.pi").hexdigest(),
                      hashlib.sha256(b"print(x)").hexdigest(),
                      hashlib.sha256(b"# NBVAL_IGNORE_OUTPUT\ny = 2 * x").hexdigest()]
    assert "hw5" not in nb["cells"][0]["metadata"], "markdown cells are not stamped"
    assert nb["metadata"]["hw5"] == PROVENANCE
    assert runner.check_notebook(nb, "problem2_rbm.ipynb") == []


def test_a_code_cell_edited_after_execution_fails_naming_that_cell_and_the_fix():
    nb = _stamped()
    nb["cells"][3]["source"] = "# NBVAL_IGNORE_OUTPUT\ny = 3 * x"
    problems = runner.check_notebook(nb, "notebooks/problem2_rbm.ipynb")
    assert len(problems) == 1, problems
    assert problems[0].startswith("notebooks/problem2_rbm.ipynb: cell 4/4 (code cell 3/3, 'y = 3 * x')")
    assert "edited after the execution" in problems[0]
    assert "`bash scripts/reproduce.sh --shipped 2`" in problems[0]  # the stamp's mode: shipped
    # Restoring the source restores the match: the hash covers the text, not the object.
    nb["cells"][3]["source"] = ["# NBVAL_IGNORE_OUTPUT\n", "y = 2 * x"]
    assert runner.check_notebook(nb, "notebooks/problem2_rbm.ipynb") == []


def test_a_full_mode_notebook_names_the_full_command():
    nb = _stamped()
    nb["metadata"]["hw5"]["mode"] = "full"
    nb["cells"][1]["source"] = "x = 3"
    (problem,) = runner.check_notebook(nb, "problem13_x.ipynb")
    assert "cell 2/4 (code cell 1/3, 'x = 3')" in problem and "`bash scripts/reproduce.sh 13`" in problem


def test_an_unstamped_code_cell_fails():
    nb = _stamped()
    nb["cells"].append(_code("z = y + 1", 4))  # added after the execution, with a plausible count
    problems = runner.check_notebook(nb, "problem2_rbm.ipynb")
    assert len(problems) == 1 and "cell 5/5 (code cell 4/4, 'z = y + 1') has no source stamp" in problems[0]
    nb = _notebook()  # executed by something else: no stamp at all
    problems = runner.check_notebook(nb, "problem2_rbm.ipynb")
    assert len(problems) == 2, problems
    assert "has no metadata['hw5'] stamp" in problems[0] and "none of its 3 code cells" in problems[1]
    assert "`bash scripts/reproduce.sh --shipped 2` (evaluating the shipped weights) or" in problems[1]


@pytest.mark.parametrize("counts, wrong", [([2, 1, 3], [1, 2]), ([1, 2, 2], [3]), ([None, 2, 3], [1]),
                                           ([4, 5, 6], [1, 2, 3])])
def test_execution_counts_must_be_1_to_n_in_order(counts, wrong):
    nb = _stamped()
    for cell, count in zip(nb["cells"][1:], counts):
        cell["execution_count"] = count
    problems = runner.check_notebook(nb, "problem2_rbm.ipynb")
    assert len(problems) == len(wrong), problems
    for problem, k in zip(problems, wrong):
        assert f"(code cell {k}/3" in problem and f"expected {k}" in problem


def test_an_incomplete_notebook_stamp_or_a_quick_execution_is_refused_for_committed_notebooks():
    nb = _stamped()
    del nb["metadata"]["hw5"]["torch"]
    nb["metadata"]["hw5"]["device"] = ""
    problems = runner.check_notebook(nb, "problem2_rbm.ipynb")
    assert [p.split(";")[0] for p in problems] == ["problem2_rbm.ipynb: metadata['hw5'] has no 'device'",
                                                   "problem2_rbm.ipynb: metadata['hw5'] has no 'torch'"]
    nb = _stamped()
    nb["metadata"]["hw5"]["mode"] = "quick"
    assert runner.check_notebook(nb, "problem2_rbm.ipynb") == []  # a quick copy is a valid execution...
    (problem,) = runner.check_notebook(nb, "problem2_rbm.ipynb", runner.COMMITTED_MODES)
    assert "mode'] is 'quick', expected one of ['full', 'shipped']" in problem  # ...but never committed


def test_an_empty_code_cell_fails():
    nb = _stamped()
    nb["cells"].insert(2, _code("\n", None))
    problems = runner.check_notebook(nb, "problem2_rbm.ipynb")
    assert "cell 3/5 (code cell 2/4, '') is an empty code cell; delete it" in problems[0]


@pytest.mark.parametrize("text", ["saved to /home/alice/hw5/figures/a.png\n", "C:\\Users\\bob\\hw5\n",
                                  "cache: /tmp/pytest-1/x\n", "/work/main/hw5/__init__.py\n"])
def test_an_output_with_a_machine_path_fails(text):
    nb = _stamped()
    nb["cells"][2]["outputs"].append({"output_type": "stream", "name": "stderr", "text": text})
    (problem,) = runner.check_notebook(nb, "problem2_rbm.ipynb")
    assert "cell 3/4 (code cell 2/3, 'print(x)'): an output shows a machine path" in problem


def test_relative_paths_and_urls_in_outputs_pass():
    nb = _stamped()
    nb["cells"][2]["outputs"].append({"output_type": "execute_result", "execution_count": 2, "metadata": {},
                                      "data": {"text/plain": "figures/problem2/a.png https://x.org/home/y "
                                                             "~/home/z hw5/tmp/a"}})
    assert runner.check_notebook(nb, "problem2_rbm.ipynb") == []


@pytest.mark.parametrize("text", ["30 epochs, 174.8 min of training\n", "IWAE bounds: VAE 453 s, C-VAE 560 s\n",
                                  "a chain: 5.40 ms\n", "mode full, device cpu (2 threads)\n",
                                  "done\ntook 3 hours\n", "12s per epoch\n", "1,162 seconds\n"])
def test_an_output_with_a_time_or_a_thread_count_that_says_not_whose_fails(text):
    nb = _stamped()
    nb["cells"][2]["outputs"].append({"output_type": "stream", "name": "stdout", "text": text})
    (problem,) = runner.check_notebook(nb, "problem2_rbm.ipynb")
    line = text.strip().splitlines()[-1]
    assert (f"cell 3/4 (code cell 2/3, 'print(x)'): an output shows a wall-clock time or a thread count without "
            f"saying whose ({line!r}); mark it as this machine's") in problem


@pytest.mark.parametrize("text", ["IWAE bounds: VAE 453 s, C-VAE 560 s (this machine)\n",
                                  "mode full, device cpu (2 threads) | device and threads: the machine this notebook "
                                  "ran on\n", "97 min of training (the shipped weights' training run)\n",
                                  "plain 5.40 ms (this machine's cpu)\n",
                                  "25 epochs, 6 samples, 10 steps, mu = W21 h + b21, sigma 0.5, 10,000 images\n"])
def test_times_and_thread_counts_that_say_whose_and_lines_without_any_pass(text):
    nb = _stamped()
    nb["cells"][2]["outputs"].append({"output_type": "stream", "name": "stdout", "text": text})
    assert runner.check_notebook(nb, "problem2_rbm.ipynb") == []


def test_stamp_refuses_an_incomplete_or_unknown_provenance():
    with pytest.raises(ValueError, match="non-empty strings for exactly"):
        runner.stamp_notebook(_notebook(), {**PROVENANCE, "commit": ""})
    with pytest.raises(ValueError, match="non-empty strings for exactly"):
        runner.stamp_notebook(_notebook(), {**PROVENANCE, "threads": "2"})
    with pytest.raises(ValueError, match="mode 'fast' is not one of"):
        runner.stamp_notebook(_notebook(), {**PROVENANCE, "mode": "fast"})


def test_stamping_drops_nbclient_timestamps():
    nb = _notebook()
    nb["cells"][1]["metadata"]["execution"] = {"iopub.status.busy": "2026-12-05T20:00:00.000Z"}
    runner.stamp_notebook(nb, PROVENANCE)
    assert "execution" not in nb["cells"][1]["metadata"]


def test_check_command_line_on_files(tmp_path, capsys):
    good, bad = tmp_path / "problem2_a.ipynb", tmp_path / "problem3_b.ipynb"
    good.write_text(json.dumps(_stamped(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    edited = _stamped()
    edited["cells"][2]["source"] = "print(x + 1)"
    bad.write_text(json.dumps(edited, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert runner.main(["--check", str(good)]) == 0
    assert runner.main(["--check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "problem3_b.ipynb: cell 3/4 (code cell 2/3, 'print(x + 1)')" in out and "--shipped 3" in out
    assert "problem2_a" not in out.split("notebook(s): every stamp matches")[-1]
    assert runner.main(["--check", str(tmp_path / "missing.ipynb")]) == 2


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


def test_commit_is_head_and_dirty_only_for_changed_tracked_inputs(tmp_path):
    for path in ("hw5/a.py", "notebooks/problem1_a.ipynb", "figures/problem1/m.json", "README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "x")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert len(head) == 40 and runner.checkout_commit(tmp_path) == head
    (tmp_path / "untracked.py").write_text("2\n")  # untracked files are not the checkout's code
    (tmp_path / "notebooks" / "problem1_a.ipynb").write_text("2\n")  # what the runner writes
    (tmp_path / "figures" / "problem1" / "m.json").write_text("2\n")  # what the notebooks write
    assert runner.checkout_commit(tmp_path) == head
    (tmp_path / "README.md").write_text("2\n")
    assert runner.checkout_commit(tmp_path, outputs=[tmp_path / "README.md"]) == head
    assert runner.checkout_commit(tmp_path) == head + "+dirty"
    _git(tmp_path, "checkout", "README.md")
    _git(tmp_path, "mv", "hw5/a.py", "hw5/b.py")  # a staged rename changes the code
    assert runner.checkout_commit(tmp_path) == head + "+dirty"
    assert runner.checkout_commit(tmp_path / "nowhere-in-git") == "unknown (not a git checkout)"


# --- the runner, end to end, in a real kernel ------------------------------------------------------------------

def _write(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_runner_executes_a_notebook_in_a_kernel_and_stamps_it(tmp_path):
    pytest.importorskip("nbclient")
    import torch

    nb = _notebook()
    nb["cells"][1]["source"] = "import sys\nfor i in range(3):\n    print(f'step {i}', file=sys.stderr)\nx = 6"
    nb["cells"][2]["source"] = "import time\ntime.sleep(2.5)  # silent for a while\nprint('x is', x)"
    nb["cells"][3]["source"] = "x * 7"
    for cell in nb["cells"][1:]:  # an older execution's leftovers, which must not survive
        cell["execution_count"], cell["outputs"] = 9, [{"output_type": "stream", "name": "stdout", "text": "old"}]
        cell["metadata"]["execution"] = {"iopub.status.busy": "2020-01-01T00:00:00Z"}
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = _write(tmp_path / "problem7_tiny.ipynb", nb)
    terminal = io.StringIO()
    env = {**os.environ, "HW5_QUICK": "1", "HW5_DEVICE": "cpu"}
    stamp = runner.execute_notebook(source, tmp_path / "out" / source.name, stream=terminal, env=env,
                                    commit="abc+dirty", heartbeat_s=1.0)
    assert stamp == {"mode": "quick", "device": stamp["device"], "torch": torch.__version__, "commit": "abc+dirty"}
    assert stamp["device"].startswith("cpu")
    assert json.loads(source.read_text())["cells"][1]["execution_count"] == 9, "the source notebook is only read"
    text = (tmp_path / "out" / source.name).read_text(encoding="utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    out = json.loads(text)
    assert out["metadata"]["hw5"] == stamp
    code = out["cells"][1:]
    assert [c["execution_count"] for c in code] == [1, 2, 3]
    assert code[0]["outputs"] == [{"name": "stderr", "output_type": "stream",
                                   "text": ["step 0\n", "step 1\n", "step 2\n"]}]
    assert code[1]["outputs"] == [{"name": "stdout", "output_type": "stream", "text": ["x is 6\n"]}]
    assert code[2]["outputs"][0]["data"] == {"text/plain": ["42"]}
    assert all("execution" not in c["metadata"] for c in out["cells"]), "no execution timestamps are stored"
    assert runner.check_notebook(out, "problem7_tiny.ipynb") == []
    shown = terminal.getvalue()
    assert "[problem7_tiny.ipynb] cell 2/4 (code 1/3) running: import sys" in shown
    assert "step 0\nstep 1\nstep 2\n" in shown  # the cell's stream, forwarded as it ran
    assert "[problem7_tiny.ipynb] cell 3/4 (code 2/3) still running: " in shown
    assert "[problem7_tiny.ipynb] cell 4/4 (code 3/3) done in" in shown
    assert " s (notebook so far:" in shown and "executed in" in shown


@pytest.mark.slow
def test_runner_writes_nothing_when_a_cell_fails(tmp_path):
    pytest.importorskip("nbclient")
    from nbclient.exceptions import CellExecutionError

    nb = _stamped()
    nb["cells"][2]["source"] = "raise ValueError('cell two fails')"
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = _write(tmp_path / "problem7_tiny.ipynb", nb)
    before = path.read_bytes()
    terminal = io.StringIO()
    with pytest.raises(CellExecutionError, match="cell two fails"):
        runner.execute_notebook(path, stream=terminal, env={**os.environ, "HW5_DEVICE": "cpu"},
                                commit="abc")
    assert path.read_bytes() == before, "an in-place notebook keeps its last good execution"
    assert list(tmp_path.iterdir()) == [path], "no temporary file is left behind"
    assert "cell 3/4 (code 2/3) FAILED in" in terminal.getvalue()


@pytest.mark.slow
def test_a_bad_hw5_setting_fails_before_any_cell_runs(tmp_path):
    pytest.importorskip("nbclient")
    env = {**os.environ, "HW5_QUICK": "maybe"}
    with pytest.raises(RuntimeError, match=r"failed before any cell ran:(.|\n)*HW5_QUICK='maybe' is not a switch"):
        runner.kernel_provenance(sys.executable, tmp_path, env)
    # the suite itself runs under HW5_QUICK=1 (scripts/test.sh): the shipped stamp needs quick mode off
    stamp = runner.kernel_provenance(sys.executable, tmp_path, {**os.environ, "HW5_QUICK": "0",
                                                                "HW5_USE_SHIPPED": "1", "HW5_DEVICE": "cpu"})
    assert stamp["mode"] == "shipped" and stamp["device"].startswith("cpu")
