"""The training's progress through a side channel (issue #26): ``HW5_PROGRESS`` names a file that
``hw5.Settings.progress`` opens, the training's bar (``show_progress=S.progress``) is drawn there, and
scripts/execute_notebook.py follows that file on the terminal while nothing of it reaches the notebook."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
from conftest import load_execute_notebook
import torch

from hw5.models.classifier import ClassifierConfig
from hw5.settings import Settings
from hw5.training.classifier import ClassifierTraining, train_classifier
from hw5.training.loop import progress

REPO = Path(__file__).resolve().parent.parent


runner = load_execute_notebook()

# tqdm's bar: "n/total [elapsed<remaining, rate" (times mm:ss; "?" before a rate is known)
BAR = re.compile(r"(\d+)/(\d+) \[(\d\d:\d\d)<(\d\d:\d\d|\?), +([\d.]+|\?)(it/s|s/it)")


# --- hw5.settings: HW5_PROGRESS ---------------------------------------------------------------------------------

def test_progress_is_off_unless_hw5_progress_names_a_file():
    assert Settings.from_env({}).progress is False
    assert Settings.from_env({"HW5_PROGRESS": ""}).progress is False
    assert Settings().progress is False


def test_hw5_progress_appends_line_buffered_to_the_file_it_names(tmp_path):
    path = tmp_path / "progress.txt"
    path.write_text("earlier run\n", encoding="utf-8")
    settings = Settings.from_env({"HW5_PROGRESS": str(path)})
    try:
        settings.progress.write("bar 1/2\n")  # no flush: a line end is enough
        assert path.read_text(encoding="utf-8") == "earlier run\nbar 1/2\n"
        assert str(path) not in repr(settings), "a notebook that prints its settings shows no temporary path"
        assert settings == Settings.from_env({}), "where progress goes does not make another run"
    finally:
        settings.progress.close()
    new = tmp_path / "new.txt"  # created when missing
    settings = Settings.from_env({"HW5_PROGRESS": str(new)})
    settings.progress.close()
    assert new.is_file()


@pytest.mark.parametrize("where", ["missing/progress.txt", "."])
def test_hw5_progress_outside_an_existing_folder_is_an_error_naming_the_variable(tmp_path, where):
    value = str(tmp_path / where)
    with pytest.raises(FileNotFoundError, match=rf"HW5_PROGRESS is '{re.escape(value)}', which is not a file in "
                                                r"an existing folder; create the folder, fix the path, or unset"):
        Settings.from_env({"HW5_PROGRESS": value})


def test_settings_progress_must_be_a_switch_or_a_stream():
    assert Settings(progress=True).progress is True
    with pytest.raises(TypeError, match="must be True, False or a text stream, got str"):
        Settings(progress="progress.txt")


# --- hw5.training.loop.progress and the train_* pass-through ------------------------------------------------------

def test_a_stream_gets_the_bar_with_rate_and_time_left_redrawn_at_most_every_second():
    stream = io.StringIO()
    bar = progress(2000, 500, "toy", stream)
    for _ in range(1500):  # about a millisecond: a redraw per update would write 1500 states
        bar.update(1)
    bar.close()
    states = [s for s in re.split(r"[\r\n]", stream.getvalue()) if s.strip()]
    assert 2 <= len(states) <= 3, states  # the first state, perhaps one redraw, the final state
    first, last = BAR.search(states[0]), BAR.search(states[-1])
    assert states[0].startswith("toy:") and first.group(1, 2, 4) == ("500", "2000", "?")
    assert last.group(1, 2, 4) == ("2000", "2000", "00:00") and last.group(5) != "?"
    assert stream.getvalue().endswith("\n"), "the final state stays on its own line"


def test_true_draws_on_stderr_and_false_draws_nothing(capsys):
    for enabled in (True, False):
        bar = progress(10, 0, f"on={enabled}", enabled)
        bar.update(10)
        bar.close()
    captured = capsys.readouterr()
    assert "on=True" in captured.err and [m.group(1) for m in BAR.finditer(captured.err)][-1] == "10"
    assert "on=False" not in captured.err + captured.out


def test_show_progress_must_be_a_switch_or_a_stream():
    with pytest.raises(TypeError, match="show_progress must be True, False or a text stream"):
        progress(10, 0, "toy", "yes")


def test_a_training_entry_point_draws_its_bar_on_the_stream_it_is_given(capsys):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (64,), generator=gen)
    config = ClassifierTraining(ClassifierConfig(width=2, feature_dim=8), batch_size=32)
    stream = io.StringIO()
    train_classifier(images, labels, config, 2, device="cpu", show_progress=stream)
    final = [s for s in re.split(r"[\r\n]", stream.getvalue()) if s.strip()][-1]
    assert BAR.search(final).group(1, 2) == ("4", "4")  # 2 epochs of ceil(64 / 32) steps
    assert "epoch=2" in final  # the loop's postfix: which epoch
    assert capsys.readouterr().err == "", "nothing on stderr, which a notebook would store"


# --- the runner: following the side channel ------------------------------------------------------------------------

def test_the_tail_gives_the_newest_state_once_and_survives_split_writes(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"")
    tail = runner._ProgressTail(path)
    try:
        assert tail.latest() is None
        with open(path, "ab") as f:
            f.write("\rtrain:  10%|█ | 1/10\rtrain:  20%|██ | 2/10   ".encode())
        assert tail.latest() == "train:  20%|██ | 2/10"
        assert tail.latest() is None, "nothing new, no state"
        block = "█".encode()
        with open(path, "ab") as f:  # a state cut inside a character and inside its text
            f.write(b"\rtrain:  30%|" + block[:1])
        assert tail.latest() == "train:  30%|"
        with open(path, "ab") as f:
            f.write(block[1:] + b"\xe2\x96\x88 | 3/10\n")
        assert tail.latest() == "train:  30%|██ | 3/10"
    finally:
        tail.close()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_redraws_the_status_in_place_and_a_log_gets_lines():
    log = runner._Terminal(io.StringIO())
    log.status("a 10%")
    log.status("a 20%")
    log.line("done")
    assert log.stream.getvalue() == "a 10%\na 20%\ndone\n"
    tty = runner._Terminal(_Tty())
    tty.write("partial")
    tty.status("a 10%")
    tty.status("a 9")
    tty.write("printed\n")
    tty.status("a 20%")
    tty.line("done")
    assert tty.stream.getvalue() == "partial\na 10%\ra 9  \nprinted\na 20%\ndone\n"


@pytest.mark.slow
def test_the_runner_shows_the_bar_on_the_terminal_and_stores_none_of_it(tmp_path):
    """A notebook whose training draws on ``S.progress``: the terminal shows the bar as it moves (rate-limited,
    not one line per redraw), the stored notebook only what the cells printed; the side file is removed."""
    pytest.importorskip("nbclient")
    cells = [
        "import os, time\nimport hw5\nfrom hw5.training.loop import progress\nS = hw5.Settings.from_env()\n"
        "with open('side_channel.txt', 'w') as f:  # where it is, for the test; never printed\n"
        "    f.write(os.environ['HW5_PROGRESS'])",
        "bar = progress(400, 0, 'fake training', S.progress)\nfor _ in range(400):\n    time.sleep(0.01)\n"
        "    bar.update(1)\nbar.close()\nprint('trained')",
    ]
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                     "source": source} for i, source in enumerate(cells)],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "problem7_bar.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    terminal = io.StringIO()
    runner.execute_notebook(path, stream=terminal, env={**os.environ, "HW5_QUICK": "1", "HW5_DEVICE": "cpu"},
                            commit="abc", progress_s=1.0)
    shown = terminal.getvalue()
    states = [ln for ln in shown.splitlines() if ln.startswith("[problem7_bar.ipynb cell 2] fake training:")]
    counts = [int(BAR.search(s).group(1)) for s in states]
    assert counts[-1] == 400 and any(0 < c < 400 for c in counts), shown  # it moved, and ended complete
    assert len(states) <= 12, "about one state a second over 4 s of training, not one per redraw"
    assert shown.index(states[-1]) < shown.index("[problem7_bar.ipynb] cell 2/2 (code 2/2) done in")
    stored = json.loads(path.read_text(encoding="utf-8"))
    outputs = json.dumps([cell["outputs"] for cell in stored["cells"]])
    assert "fake training" not in outputs and "it/s" not in outputs
    assert stored["cells"][1]["outputs"] == [{"name": "stdout", "output_type": "stream", "text": ["trained\n"]}]
    assert runner.check_notebook(stored, path.name) == []
    side = Path((tmp_path / "side_channel.txt").read_text())
    assert side.name.startswith("hw5-progress-") and not side.exists(), "the side file is removed"
