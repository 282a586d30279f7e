"""Boundary cases of the runner's policies (fast: run by ``scripts/mutation.sh`` against
``hw5/training/policies.py``)."""

from __future__ import annotations

import math

from torch import nn
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
