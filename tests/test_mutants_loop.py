"""Boundary cases of the runner and its policies (fast: run by ``scripts/mutation.sh`` against
``hw5/training/loop.py`` and ``hw5/training/policies.py``)."""

from __future__ import annotations

import io
import math
import time

import pytest
import torch
from torch import nn
from hw5.checkpoint import CheckpointError, read_sidecar, save_checkpoint
from hw5.training.loop import Callback, Run, TrainingDiverged, commit, ensure_finite, fit, progress, resume
from hw5.utils import epoch_seed
from hw5.training.policies import EarlyStopping, KeepBest


def test_a_record_that_kept_no_epoch_counts_its_patience_from_epoch_0():
    """e - 1 - best_epoch >= patience with best_epoch = 0 when nothing was kept: with patience 2, epochs 1 and 2
    run, epoch 3 does not."""
    stopping = EarlyStopping(2)
    assert not stopping.ran_out(2, {}) and stopping.ran_out(3, {})
    assert not stopping.stop_before(2, {}) and stopping.stop_before(3, {})
    assert not stopping.ran_out(3, {"best_epoch": 1}) and stopping.ran_out(4, {"best_epoch": 1})


def test_keep_best_shows_the_kept_score_and_epoch_on_the_progress_bar():
    """The progress-bar value is '<kept score to 2 decimals>@<kept epoch>', 'nan' for a missing score."""
    hook = KeepBest(nn.Linear(1, 1), nn.Linear(1, 1), lambda record: record["score"], label="kept")
    history: dict = {"score": [None]}
    assert hook.epoch_end(1, None, history) == {"kept": "nan@1"}
    history["score"].append(2.5)
    assert hook.epoch_end(2, None, history) == {"kept": "2.50@2"}
    history["score"].append(3.0)  # worse: epoch 2 stays
    assert hook.epoch_end(3, None, history) == {"kept": "2.50@2"}
    history["score"].append(math.nan)
    assert hook.epoch_end(4, None, history) == {"kept": "2.50@2"}


# ---- the run folder's record of where a run ran, and the NaN guard's message -----------------------------------
def _run(images: int = 4, batch_size: int = 2, *, seed: int = 0, precision: str = "fp32", drop_last: bool = False,
         data: torch.Tensor | None = None) -> Run:
    """A toy run: one linear module, ``images`` zero rows (or ``data``), logging "loss"."""
    data = torch.zeros(images, 1) if data is None else data
    return Run("toy", {"m": nn.Linear(1, 1)}, {}, {"width": 1}, seed, (data,), batch_size, ("loss",),
               drop_last=drop_last, precision=precision)


def test_a_checkpoint_records_the_device_type_and_precision_it_was_trained_with(tmp_path):
    commit(_run(precision="bf16"), tmp_path, 1, {"loss": [0.5]})
    assert read_sidecar(tmp_path)["environment"] == {"device": "cpu", "precision": "bf16"}


def test_resume_continues_where_the_run_ran_and_refuses_another_environment(tmp_path):
    commit(_run(), tmp_path, 2, {"loss": [0.5, 0.4]})
    assert resume(_run(), tmp_path, 2) == (2, {"loss": [0.5, 0.4]})  # a finished run is read back, not refused
    with pytest.raises(CheckpointError, match=r"trained with \{'device': 'cpu', 'precision': 'fp32'\} but this "
                                              r"call would continue it with \{'device': 'cpu', 'precision': 'bf16'\}"):
        resume(_run(precision="bf16"), tmp_path, 2)
    with pytest.raises(ValueError, match="already holds 2 epochs of this toy run, more than the 1 asked for"):
        resume(_run(), tmp_path, 1)


def test_a_checkpoint_without_a_recorded_environment_or_history_resumes_with_an_empty_history(tmp_path):
    run = _run(precision="bf16")
    save_checkpoint(tmp_path, run.modules, run.config, {"epoch": 1})  # a folder written before either was recorded
    assert resume(run, tmp_path, 3) == (1, {})


@pytest.mark.parametrize("epoch, run_dir, kept", [
    (3, "runs/x", "the last good checkpoint (end of epoch 2) is kept in runs/x"),
    (2, "runs/x", "the last good checkpoint (end of epoch 1) is kept in runs/x"),
    (1, "runs/x", "no checkpoint was written for this epoch"),
    (3, None, "no checkpoint was written for this epoch"),
])
def test_the_nan_guard_says_which_checkpoint_was_kept(epoch, run_dir, kept):
    with pytest.raises(TrainingDiverged) as caught:
        ensure_finite(torch.tensor([1.0, math.inf, math.nan]), ("loss", "grad", "norm"), epoch, 7, run_dir)
    assert str(caught.value) == (f"grad, norm became NaN/inf in epoch {epoch} by step 7; training stopped and "
                                 f"{kept}. Lower the learning rate or change the seed, then resume or restart.")
    ensure_finite(torch.tensor([1.0, 2.0]), ("loss", "grad"), epoch, 7, run_dir)  # finite values pass


def test_keep_best_labels_its_progress_bar_value_best_by_default():
    hook = KeepBest(nn.Linear(1, 1), nn.Linear(1, 1), lambda record: record["score"])
    assert hook.epoch_end(1, None, {"score": [1.0]}) == {"best": "1.00@1"}


# ---- one epoch as a step sees it --------------------------------------------------------------------------------
def test_each_step_sees_its_epoch_index_step_count_and_the_epochs_generator_after_the_batch_order():
    """The batch order is one randperm from a CPU generator seeded with epoch_seed(seed, epoch); the same
    generator, advanced past that draw, is handed to the steps (and to the hooks after each step), apart from
    the global generator."""
    x = torch.arange(10.0).view(10, 1)
    run = _run(batch_size=4, seed=7, data=x)
    seen, after = [], []

    def step(batch, info):
        torch.rand(3)  # a draw from the global generator (as dropout makes) leaves the epoch's generator alone
        seen.append((info.epoch, info.index, info.steps, batch[0].flatten().tolist(),
                     torch.rand(1, generator=info.generator).item()))
        return {"loss": torch.zeros(())}

    class Hook(Callback):
        def after_step(self, info):
            after.append((info.epoch, info.index))

    fit(run, 2, step, history={}, hooks=[Hook()], show_progress=False)
    expected = []
    for epoch in (1, 2):
        generator = torch.Generator().manual_seed(epoch_seed(7, epoch))
        order = torch.randperm(10, generator=generator).tolist()
        for index in range(3):  # ceil(10 / 4) steps: 4, 4, 2 images
            expected.append((epoch, index, 3, [float(i) for i in order[4 * index:4 * index + 4]],
                             torch.rand(1, generator=generator).item()))
    assert seen == expected
    assert after == [(e, i) for e in (1, 2) for i in range(3)]


@pytest.mark.parametrize("bad_index, found_at", [(1, 3), (3, 5), (4, 5)])
def test_the_nan_guard_looks_every_check_every_steps_and_after_the_last(bad_index, found_at):
    """With 5 steps and check_every=3 the guard looks after steps 3 and 5 (the last)."""
    run = _run(10)

    def step(batch, info):
        return {"loss": torch.tensor(math.nan if info.index == bad_index else 0.0)}

    with pytest.raises(TrainingDiverged, match=f"loss became NaN/inf in epoch 1 by step {found_at};"):
        fit(run, 1, step, history={}, show_progress=False, check_every=3)


@pytest.mark.parametrize("returned, got", [
    (torch.zeros(1), "Tensor"),
    ({"loss": torch.zeros(()), "grad": torch.zeros(())}, "['grad', 'loss']"),
    ({"grad": torch.zeros(())}, "['grad']"),
])
def test_a_step_that_returns_other_values_is_told_what_it_returned(returned, got):
    run = _run()
    with pytest.raises(ValueError) as caught:
        fit(run, 1, lambda batch, info: returned, history={}, show_progress=False)
    assert str(caught.value) == ("toy: a step must return a dict with one 0-d tensor for each of ['loss'] "
                                 f"(Run.logged), got {got}")


def test_the_progress_bar_goes_to_a_text_stream_and_anything_else_is_refused():
    stream = io.StringIO()
    bar = progress(4, 1, "toy", stream)
    bar.update(1)
    bar.close()
    assert "toy" in stream.getvalue() and "2/4" in stream.getvalue()
    with pytest.raises(TypeError, match="show_progress must be True, False or a text stream"):
        progress(4, 0, "toy", "stderr")


def test_hooks_hear_each_epoch_start_and_the_history_times_each_epoch(tmp_path):
    run = _run()
    started = []

    class Hook(Callback):
        def epoch_start(self, epoch):
            started.append(epoch)

    wall, cpu = time.perf_counter(), time.process_time()
    history = fit(run, 3, lambda batch, info: {"loss": torch.zeros(())}, history={}, hooks=[Hook()],
                  show_progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert started == [1, 2, 3]
    assert len(history["epoch_seconds"]) == len(history["epoch_cpu_seconds"]) == 3
    assert 0 <= sum(history["epoch_seconds"]) <= wall and 0 <= sum(history["epoch_cpu_seconds"]) <= cpu


def test_a_nan_in_a_later_epoch_names_the_checkpoint_of_the_epoch_before(tmp_path):
    run = _run()

    def step(batch, info):
        return {"loss": torch.tensor(math.nan if info.epoch == 2 else 0.0)}

    with pytest.raises(TrainingDiverged, match=f"the last good checkpoint \\(end of epoch 1\\) is kept in {tmp_path}"):
        fit(run, 3, step, history={}, run_dir=tmp_path, show_progress=False)


def test_fit_checks_every_50_steps_and_draws_its_bar_on_stderr_by_default(capsys):
    run = _run(60, 1)

    def step(batch, info):
        return {"loss": torch.tensor(math.nan if info.index == 0 else 0.0)}

    with pytest.raises(TrainingDiverged, match="by step 50;"):
        fit(run, 1, step, history={})
    assert "toy" in capsys.readouterr().err


def test_a_run_of_one_tensor_that_takes_no_step_says_why():
    run = _run(4, 8, drop_last=True)
    with pytest.raises(ValueError, match="toy: batch_size 8 is larger than the 4 training images"):
        run.check_steps()


def _zero_loss(batch, info):
    return {"loss": torch.zeros(())}


def test_fit_refuses_a_check_every_below_1_before_it_trains():
    with pytest.raises(ValueError, match=r"^check_every must be an integer >= 1, got 0$"):
        fit(_run(), 1, _zero_loss, history={}, show_progress=False, check_every=0)
    assert fit(_run(), 1, _zero_loss, history={}, show_progress=False, check_every=1)["steps_per_epoch"] == 2


def test_a_resumed_runs_bar_counts_the_steps_of_all_epochs_from_those_already_done(tmp_path):
    """3 steps an epoch; 1 epoch done, 4 asked: the bar starts at 3 of 12 steps and ends at 12 of 12."""
    fit(_run(6), 1, _zero_loss, history={}, run_dir=tmp_path, show_progress=False)
    stream = io.StringIO()
    fit(_run(6), 4, _zero_loss, history={}, run_dir=tmp_path, show_progress=stream)
    states = [s for s in stream.getvalue().split("\r") if s.strip()]
    assert " 3/12 " in states[0] and " 12/12 " in states[-1]


@pytest.mark.parametrize("precision, fp32", [("tf32", "tf32"), ("fp32", "ieee"), ("bf16", "ieee")])
def test_steps_run_with_deterministic_cudnn_and_tf32_only_for_a_tf32_run(precision, fp32, monkeypatch):
    """What a step sees of CUDA's global fp32 settings (fixed by fit, restored after; no number on a CPU moves)."""
    cuda, cudnn = torch.backends.cuda, torch.backends.cudnn
    monkeypatch.setattr(cudnn, "deterministic", False)
    monkeypatch.setattr(cudnn, "benchmark", True)
    seen = set()

    def step(batch, info):
        seen.add((cuda.matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.deterministic, cudnn.benchmark))
        return {"loss": torch.zeros(())}

    fit(_run(precision=precision), 1, step, history={}, show_progress=False)
    assert seen == {(fp32, fp32, True, False)}
    assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
