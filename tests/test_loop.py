"""The shared runner's contract (:func:`hw5.training.loop.fit`) and its policy hooks, on a toy family.

The toy family below is the example a new family copies: a model built from its config, a training config,
a step that returns its logged values by name, and hooks. Everything else (budget, seeding, batches, resume,
the NaN guard, checkpoints, averaging, keep-the-best, early stopping) is the runner's and the policies'.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from hw5 import checks
from hw5.checkpoint import CheckpointError
from hw5.configs import TrainingConfig
from hw5.models.base import GenerativeModel
from hw5.training.loop import Callback, Run, TrainingDiverged, fit
from hw5.training.policies import EarlyStopping, KeepBest, MovingAverage, comparable, update_average


# ---- the toy family: linear regression y = w x + b by SGD (family code: 32 lines) ---------------------------
@dataclass(frozen=True)
class ToyConfig:
    width: int = 1

    def build(self) -> Toy:
        return Toy(self)


class Toy(GenerativeModel):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(self._use_config(config).width, 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.linear(torch.randn(n, self.config.width, generator=generator, device=self.device))


@dataclass(frozen=True)
class ToyTraining(TrainingConfig):
    model: ToyConfig = field(default_factory=ToyConfig)
    lr: float = 0.1
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        checks.real(self, "lr", 0.0, low_open=True)


def train_toy(x, y, config: ToyTraining, epochs: int, *, run_dir=None, hooks=(), ema: float = 0.0):
    torch.manual_seed(config.seed)
    model = config.model.build()
    modules = {"model": model, **({"ema": copy.deepcopy(model).requires_grad_(False)} if ema else {})}
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    run = Run("toy", modules, {"sgd": optimizer}, config, config.seed, (x, y), config.batch_size, ("loss",))

    def step(batch, info):
        loss = nn.functional.mse_loss(model.linear(batch[0]), batch[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    def summarise(epoch, log, history):
        history["loss"].append(log.mean().item())

    averaging = [MovingAverage(model, modules["ema"], ema)] if ema else []
    hooks = [*averaging, Callback(on_epoch_end=summarise), *(h(modules) for h in hooks)]
    return modules, fit(run, epochs, step, history={"loss": []}, run_dir=run_dir, hooks=hooks, show_progress=False)
# ---- end of the toy family ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xy():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, generator=gen)
    return x, 3 * x - 1 + 0.1 * torch.randn(40, 1, generator=gen)


def _state(module: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for t in module.state_dict().values()]


def test_the_toy_family_trains_and_keeps_the_model_contract(xy):
    modules, history = train_toy(*xy, ToyTraining(), 8)
    assert history["loss"][-1] < history["loss"][0] / 10, history["loss"]
    assert len(history["epoch_seconds"]) == 8 and history["steps_per_epoch"] == 5  # ceil(40 / 8)
    model = modules["model"]
    assert model.config == ToyConfig() and model.device == torch.device("cpu")
    assert torch.equal(model.sample(3, torch.Generator().manual_seed(1)),
                       model.sample(3, torch.Generator().manual_seed(1)))
    with pytest.raises(TypeError, match=r"Toy\(config=...\) takes a ToyConfig"):
        Toy(3)


def test_budget_and_data_are_checked_before_anything_runs(xy):
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
            train_toy(*xy, ToyTraining(), bad)
    run = Run("toy", {}, {}, ToyTraining(), 0, xy, 64, ("loss",), drop_last=True)
    with pytest.raises(ValueError, match="batch_size 64 is larger than the 40 training images"):
        fit(run, 1, lambda batch, info: {"loss": torch.zeros(())}, history={})


@pytest.mark.parametrize("batch_size, drop_last, steps", [(8, False, 5), (8, True, 5), (7, False, 6), (7, True, 5),
                                                          (40, False, 1), (41, False, 1)])
def test_steps_per_epoch_is_ceil_or_floor_of_n_over_batch(xy, batch_size, drop_last, steps):
    seen = []
    run = Run("toy", {}, {}, ToyTraining(), 0, xy, batch_size, ("n",), drop_last=drop_last)
    history = fit(run, 1, lambda batch, info: seen.append(batch[0].shape[0]) or {"n": torch.zeros(())},
                  history={}, show_progress=False)
    assert history["steps_per_epoch"] == len(seen) == steps
    assert sum(seen) == (40 // batch_size * batch_size if drop_last else 40)


def test_resume_after_an_interruption_equals_an_uninterrupted_run(xy, tmp_path):
    straight, h_straight = train_toy(*xy, ToyTraining(), 5, run_dir=tmp_path / "a", ema=0.9)

    class Interrupt(Callback):
        def epoch_end(self, epoch, log, history):
            if epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_toy(*xy, ToyTraining(), 5, run_dir=tmp_path / "b", ema=0.9, hooks=[lambda m: Interrupt()])
    resumed, h_resumed = train_toy(*xy, ToyTraining(), 5, run_dir=tmp_path / "b", ema=0.9)
    assert h_resumed["loss"] == h_straight["loss"]
    for name in ("model", "ema"):
        assert all(torch.equal(a, b) for a, b in zip(_state(straight[name]), _state(resumed[name]))), name
    with pytest.raises(CheckpointError, match="was saved with config"):
        train_toy(*xy, ToyTraining(lr=0.2), 5, run_dir=tmp_path / "b")  # a foreign config is refused
    with pytest.raises(ValueError, match="already holds 5 epochs"):
        train_toy(*xy, ToyTraining(), 4, run_dir=tmp_path / "b", ema=0.9)


def test_the_nan_guard_stops_training_and_names_the_value(xy):
    run = Run("toy", {}, {}, ToyTraining(), 0, xy, 8, ("loss", "grad"))

    def step(batch, info):
        return {"loss": torch.zeros(()), "grad": torch.tensor(math.nan if info.index == 3 else 0.0)}

    with pytest.raises(TrainingDiverged, match="grad became NaN/inf in epoch 1 by step 4"):
        fit(run, 2, step, history={}, show_progress=False, check_every=2)


def test_a_step_must_return_its_logged_values_by_name(xy):
    run = Run("toy", {}, {}, ToyTraining(), 0, xy, 8, ("loss",))
    with pytest.raises(ValueError, match=r"a step must return a dict with one 0-d tensor for each of \['loss'\]"):
        fit(run, 1, lambda batch, info: torch.zeros(1), history={}, show_progress=False)


def test_moving_average_weights_old_and_new_by_decay_and_one_minus_decay():
    """An asymmetric decay (0.9) tells theta_avg <- d theta_avg + (1 - d) theta from its swapped form."""
    average, model = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        average.weight.fill_(1.0), average.bias.fill_(1.0)
        model.weight.fill_(11.0), model.bias.fill_(-9.0)
    update_average(average, model, 0.9)
    assert torch.allclose(average.weight, torch.full((1, 2), 0.9 * 1.0 + 0.1 * 11.0))  # 2.0; swapped: 10.0
    assert torch.allclose(average.bias, torch.tensor([0.9 * 1.0 + 0.1 * -9.0]), atol=1e-6)  # 0.0; swapped: -8.0
    hook = MovingAverage(model, average, 0.5, recompute=lambda epoch: calls.append(epoch))
    calls: list[int] = []
    hook.after_step(None)
    assert torch.allclose(average.weight, torch.full((1, 2), 6.5)) and hook.epoch_end(3, None, {}) is None
    assert calls == [3]
    with pytest.raises(ValueError, match=r"decay must be a finite number in \[0, 1\)"):
        MovingAverage(model, average, 1.0)


def test_the_average_of_a_run_is_the_average_of_its_iterates(xy):
    """The averaged copy after 2 epochs equals the recursion d avg + (1 - d) theta_t over the iterates seen."""
    iterates = []

    class Record(Callback):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def after_step(self, info):
            iterates.append(_state(self.model))

    modules, _ = train_toy(*xy, ToyTraining(), 2, ema=0.75, hooks=[lambda m: Record(m["model"])])
    torch.manual_seed(0)
    expected = _state(ToyConfig().build())
    for theta in iterates:
        expected = [0.75 * a + 0.25 * t for a, t in zip(expected, theta)]
    for a, b in zip(expected, _state(modules["ema"])):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_keep_best_keeps_the_first_lowest_score_and_ranks_nan_last():
    weights, best = nn.Linear(1, 1), nn.Linear(1, 1)
    hook = KeepBest(weights, best, lambda record: record["score"], score_key="best_score")
    history: dict = {"score": []}
    kept_at = {}
    for epoch, score in enumerate([math.nan, 5.0, 3.0, 3.0, None, 4.0, 2.5], 1):
        with torch.no_grad():
            weights.weight.fill_(epoch)
        history["score"].append(score)
        hook.epoch_end(epoch, None, history)
        kept_at[epoch] = (history["best_epoch"], best.weight.item())
    assert kept_at[1] == (1, 1.0)  # nothing kept yet: the first epoch is kept even with a NaN score
    assert kept_at[2] == (2, 2.0) and kept_at[4] == (3, 3.0)  # a tie keeps the earlier epoch
    assert kept_at[5] == (3, 3.0) and kept_at[7] == (7, 7.0) and history["best_score"] == 2.5
    assert comparable(None) == comparable(math.nan) == math.inf
    history["score"].append(1.0)
    assert hook.epoch_end(9, None, history) is None and history["best_epoch"] == 7  # epoch 9 added no score yet


def test_early_stopping_waits_patience_epochs_for_every_record(xy):
    stopping = EarlyStopping(2, [lambda h: h["a"], lambda h: h["b"]])
    history = {"a": {"best_epoch": 1}, "b": {"best_epoch": 3}}
    assert stopping.ran_out(4, history["a"]) and not stopping.ran_out(4, history["b"])
    assert not stopping.stop_before(4, history) and stopping.stop_before(6, history)
    assert not EarlyStopping(None).stop_before(100, {"best_epoch": 1})
    with pytest.raises(ValueError, match="patience must be an integer >= 1 or None"):
        EarlyStopping(0)
    # through the runner: a score that never improves after epoch 1 stops the run before epoch 1 + 2 + 1
    scores = iter([1.0, 2.0, 3.0, 4.0, 5.0])

    def keep(modules):
        return KeepBest(modules["model"], modules["model"], lambda h: h["score"])

    def score(modules):
        return Callback(on_epoch_end=lambda epoch, log, history: history.setdefault("score", []).append(next(scores)))

    _, history = train_toy(*xy, ToyTraining(), 5, hooks=[score, keep, lambda m: EarlyStopping(2)])
    assert history["best_epoch"] == 1 and len(history["loss"]) == 3
