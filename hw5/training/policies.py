"""Training policies, written once and used by every family that needs them, as runner hooks
(:class:`hw5.training.loop.Hook`; the pattern of Lightning's ``EarlyStopping`` / ``ModelCheckpoint``
callbacks, apart from the step):

* :class:`MovingAverage`: Polyak averaging of the iterates, theta_avg <- d theta_avg + (1 - d) theta after
  every step, with the batch-norm statistics of the average recomputed at each epoch's end as an option;
* :class:`KeepBest`: a copy of the weights of the epoch with the lowest score;
* :class:`EarlyStopping`: end training once no epoch has improved on the best score for ``patience`` epochs.

Their state lives in the run's checkpointed modules (the average, the kept copy) and in the history (the kept
epoch), so an interrupted run resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .. import checks
from .loop import Hook, StepInfo

Record = Callable[[dict[str, Any]], dict[str, Any]]


def whole_history(history: dict[str, Any]) -> dict[str, Any]:
    """The record of a run with one tracked copy of the weights: the history itself."""
    return history


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """One step of the exponential moving average of ``model``'s parameters (Polyak averaging):
    theta_avg <- decay * theta_avg + (1 - decay) * theta, parameter by parameter, in place."""
    for p_avg, p in zip(average.parameters(), model.parameters()):
        p_avg.lerp_(p, 1.0 - decay)  # p_avg + (1 - decay) (p - p_avg)


class MovingAverage(Hook):
    """Keeps ``average`` = the exponential moving average of ``model``'s parameters, updated after every step
    with decay d (:func:`update_average`). The step is untouched: averaging only reads the iterates.

    ``recompute(epoch)``, if given, runs at each epoch's end: e.g. the batch-norm running statistics of the
    averaged weights, which were never run, recomputed from forward passes
    (:func:`hw5.training.gan.recompute_batch_norm`).
    """

    def __init__(self, model: nn.Module, average: nn.Module, decay: float,
                 recompute: Callable[[int], None] | None = None) -> None:
        self.model, self.average = model, average
        self.decay = checks.number("decay", decay, 0.0, 1.0, high_open=True)
        self.recompute = recompute

    def after_step(self, info: StepInfo) -> None:
        update_average(self.average, self.model, self.decay)

    def epoch_end(self, epoch: int, log: torch.Tensor, history: dict[str, Any]) -> None:
        if self.recompute is not None:
            self.recompute(epoch)


def comparable(score: float | None) -> float:
    """A score for comparison: NaN, and None (a NaN after a JSON round trip, or an epoch without a score),
    count as +inf, so they are never preferred to a number."""
    return math.inf if score is None or math.isnan(score) else float(score)


class KeepBest(Hook):
    """Copies ``weights`` into ``best`` at the end of epoch e when e's score beats every earlier one:

        keep e  iff  nothing is kept yet, or  s_e < s_kept  (strictly: of equal scores the earlier epoch stays),

    with NaN and missing scores counting as +inf (:func:`comparable`). ``scores(record)`` is the list of
    per-epoch scores (s_1, s_2, ...) in the run's record (``record(history)``: the history itself, or one
    tracked copy's part of it); an epoch that added no score keeps nothing. The kept epoch (1-based, 0 for none)
    is ``record[epoch_key]``; with ``score_key`` its score is recorded too.
    """

    def __init__(self, weights: nn.Module, best: nn.Module, scores: Callable[[dict[str, Any]], Sequence[Any]],
                 record: Record = whole_history, epoch_key: str = "best_epoch", score_key: str | None = None,
                 label: str = "best") -> None:
        self.weights, self.best, self.scores, self.record = weights, best, scores, record
        self.epoch_key, self.score_key, self.label = epoch_key, score_key, label

    def epoch_end(self, epoch: int, log: torch.Tensor, history: dict[str, Any]) -> Mapping[str, str] | None:
        record = self.record(history)
        scores = self.scores(record)
        if len(scores) != epoch:
            return None  # no score this epoch (e.g. a copy whose own run has stopped)
        kept = record.get(self.epoch_key, 0)
        if kept == 0 or comparable(scores[-1]) < comparable(scores[kept - 1]):
            self.best.load_state_dict(self.weights.state_dict())
            record[self.epoch_key] = kept = epoch
            if self.score_key is not None:
                record[self.score_key] = scores[-1]
        value = scores[kept - 1]
        return {self.label: f"{'nan' if value is None else f'{value:.2f}'}@{kept}"}


class EarlyStopping(Hook):
    """Ends training before epoch e once every watched record has gone ``patience`` epochs without a kept
    improvement: ``e - 1 - record[epoch_key] >= patience`` (``epoch_key`` as :class:`KeepBest` writes it).
    ``patience`` None never stops. Several records (e.g. the plain and the averaged weights of one trajectory)
    stop training when all of them have run out; :meth:`ran_out` tells whether one has."""

    def __init__(self, patience: int | None, records: Sequence[Record] = (whole_history,),
                 epoch_key: str = "best_epoch") -> None:
        self.patience = checks.optional_count("patience", patience)
        self.records, self.epoch_key = tuple(records), epoch_key

    def ran_out(self, epoch: int, record: dict[str, Any]) -> bool:
        """Whether ``record``'s own run would have stopped before ``epoch``."""
        return self.patience is not None and epoch - 1 - record.get(self.epoch_key, 0) >= self.patience

    def stop_before(self, epoch: int, history: dict[str, Any]) -> bool:
        return all(self.ran_out(epoch, record(history)) for record in self.records)
