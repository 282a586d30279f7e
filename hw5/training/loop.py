"""One skeleton for every training loop: what the DCGAN, RBM, VAE and classifier loops share.

:func:`fit` owns the bookkeeping, in this order, for every run:

1. check the budget and the data (a run that would take no step is an error, not a no-op);
2. resume the last committed epoch from ``run_dir`` (a checkpoint of another config is refused; a budget
   smaller than what the folder already holds is refused rather than silently answered with more);
3. for each remaining epoch, unless a hook stops training first (:meth:`Hook.stop_before`): reseed every
   generator from (seed, epoch) (:func:`hw5.utils.epoch_seed`), so a resumed run replays an uninterrupted
   one; put the modules in train mode; draw one shuffled order of the device-resident data
   (:func:`hw5.data.minibatches`); call the family's ``step`` on each batch and every hook's ``after_step``,
   keeping the logged values in a device tensor (no host synchronisation inside a step); check them for
   NaN/inf every ``check_every`` steps and at the end of the epoch; time the epoch; call every hook's
   ``epoch_end`` (summaries, validation, averaging, best-keeping), in the order given; commit a checkpoint;
4. return the history.

A family supplies only its step (the maths of one update, the pattern of pytorch-generative's
``Trainer.train_one_batch``), returning its logged values by name, and its hooks (minGPT's trainer callbacks;
the shared policies, moving average, keep-the-best and early stopping, are in :mod:`hw5.training.policies`)::

    def step(batch, info):            # batch: one slice of each data tensor; info: epoch, index, generator
        loss = ...; optimizer.zero_grad(); loss.backward(); optimizer.step()
        return {"loss": loss.detach()}                 # one 0-d tensor per name in Run.logged

    history = fit(run, epochs, step, history={}, run_dir=folder, hooks=[Callback(epoch_end=summarise)])

``tests/test_loop.py`` trains a toy family through it: the example a new family copies.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm import tqdm

from ..checkpoint import CheckpointError, has_checkpoint, load_checkpoint, read_sidecar, save_checkpoint
from ..data import minibatches, num_batches
from .. import checks
from ..utils import epoch_seed, float32_math, seed_everything


class TrainingDiverged(RuntimeError):
    """A logged value became NaN or infinite; the message names which, where, and what was kept."""


@dataclass
class Run:
    """A training run as the runner sees it.

    ``modules`` and ``optimizers`` are what a checkpoint holds (by name); ``config`` identifies the run (a
    checkpoint of another config is refused); ``data`` are device-resident tensors sharing their first axis,
    cut into batches of ``batch_size`` (the last, partial batch kept unless ``drop_last``); ``logged`` names
    the values each step returns; ``name`` labels the progress bar and error messages; ``precision`` is the
    arithmetic the steps use, resolved for the device (:func:`hw5.training.optim.resolve_precision`): the
    runner sets TF32 by it and records it with the device type, and refuses to resume on another.
    """

    name: str
    modules: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    config: Any
    seed: int
    data: tuple[torch.Tensor, ...]
    batch_size: int
    logged: tuple[str, ...]
    drop_last: bool = False
    precision: str = "fp32"
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = num_batches(self.data[0].shape[0], self.batch_size, self.drop_last)

    def environment(self) -> dict[str, str]:
        """What a run folder records besides the config: the device type and the resolved precision. A GPU
        draws other random numbers than a CPU and another precision rounds otherwise, so a run continued
        under either would silently become another run."""
        return {"device": self.data[0].device.type, "precision": self.precision}

    def check_steps(self) -> None:
        """A run that would take no step is a mistake: say which and how to fix it."""
        if self.steps == 0:
            n = self.data[0].shape[0]
            raise ValueError(f"{self.name}: batch_size {self.batch_size} is larger than the {n} training images, "
                             "and the last partial batch is dropped, so no step would run; use batch_size "
                             f"<= {n} or more images")


@dataclass(frozen=True)
class StepInfo:
    """Where a step is: its epoch (from 1), its index in the epoch (from 0), the epoch's number of steps, and
    the epoch's CPU generator (which drew the batch order; augmentations may draw from it too)."""

    epoch: int
    index: int
    steps: int
    generator: torch.Generator


Step = Callable[[tuple[torch.Tensor, ...], StepInfo], Mapping[str, torch.Tensor]]
EpochEnd = Callable[[int, torch.Tensor, dict[str, Any]], Mapping[str, str] | None]


class Hook:
    """A training policy or a family's per-epoch work, called by :func:`fit` at fixed points; every method is
    optional (the defaults do nothing). State that must survive an interruption lives in the history (saved
    with every checkpoint) or in modules of the run (checkpointed)."""

    def epoch_start(self, epoch: int) -> None:
        """Before the epoch's first step (e.g. a learning-rate schedule)."""

    def after_step(self, info: StepInfo) -> None:
        """After each step's update (e.g. a moving average of the weights)."""

    def epoch_end(self, epoch: int, log: torch.Tensor, history: dict[str, Any]) -> Mapping[str, str] | None:
        """After the epoch's steps, with the (steps, len(logged)) device log; may return progress-bar values."""
        return None

    def stop_before(self, epoch: int, history: dict[str, Any]) -> bool:
        """Whether training ends before ``epoch`` (e.g. early stopping); any hook can end it."""
        return False


@dataclass
class Callback(Hook):
    """A family's own per-epoch functions as a hook: ``epoch_start(epoch)``, ``epoch_end(epoch, log, history)``."""

    on_epoch_start: Callable[[int], None] | None = None
    on_epoch_end: EpochEnd | None = None

    def epoch_start(self, epoch: int) -> None:
        if self.on_epoch_start is not None:
            self.on_epoch_start(epoch)

    def epoch_end(self, epoch: int, log: torch.Tensor, history: dict[str, Any]) -> Mapping[str, str] | None:
        return None if self.on_epoch_end is None else self.on_epoch_end(epoch, log, history)


def check_budget(epochs: int) -> None:
    """Budgets are arguments; a non-positive one is a mistake, not a no-op."""
    checks.count("epochs", epochs, 1)


def resume(run: Run, run_dir: str | Path | None, epochs: int) -> tuple[int, dict[str, Any]]:
    """Load the last committed epoch from ``run_dir``: ``(epochs_done, history)``, ``(0, {})`` if none.

    Raises :class:`hw5.checkpoint.CheckpointError` for a checkpoint of another config, or of the same config
    trained on another device type or precision (:meth:`Run.environment`; folders written before it was
    recorded resume anywhere), and ``ValueError`` when the folder already holds more epochs than ``epochs``.
    """
    if run_dir is None or not has_checkpoint(run_dir):
        return 0, {}
    saved = read_sidecar(run_dir).get("environment")
    if saved is not None and saved != run.environment():
        raise CheckpointError(
            f"{run_dir} holds a {run.name} run trained with {saved} but this call would continue it with "
            f"{run.environment()}: another device type draws other random numbers and another precision rounds "
            "otherwise, so the result would match neither run. Resume it where it ran (the device and precision "
            "recorded), or pass another run folder to train afresh here.")
    state = load_checkpoint(run_dir, run.modules, run.config, run.optimizers)
    done = int(state["epoch"])
    if done > epochs:
        raise ValueError(f"{run_dir} already holds {done} epochs of this {run.name} run, more than the {epochs} "
                         f"asked for; ask for epochs >= {done} to use it, or pass another run folder to train "
                         f"{epochs} epochs from scratch")
    return done, state.get("history", {})


def commit(run: Run, run_dir: str | Path | None, epoch: int, history: dict[str, Any]) -> None:
    """Checkpoint a finished epoch (atomically; see :mod:`hw5.checkpoint`). No-op without ``run_dir``."""
    if run_dir is not None:
        save_checkpoint(run_dir, run.modules, run.config,
                        {"epoch": epoch, "history": history, "environment": run.environment()}, run.optimizers)


def ensure_finite(values: torch.Tensor, names: tuple[str, ...], epoch: int, step: int,
                  run_dir: str | Path | None) -> None:
    """Raise :class:`TrainingDiverged` if any logged value is NaN/inf (one device sync per call)."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        which = sorted({names[i] for i in torch.nonzero(bad)[:, -1].tolist()})
        kept = (f"the last good checkpoint (end of epoch {epoch - 1}) is kept in {run_dir}"
                if run_dir is not None and epoch > 1 else "no checkpoint was written for this epoch")
        raise TrainingDiverged(
            f"{', '.join(which)} became NaN/inf in epoch {epoch} by step {step}; training stopped and "
            f"{kept}. Lower the learning rate or change the seed, then resume or restart."
        )


def progress(total: int, initial: int, desc: str, enabled: bool | TextIO) -> tqdm:
    """A text progress bar over optimisation steps (``tqdm``: steps done, rate, elapsed and estimated time
    left), or a silent one. ``enabled``: ``True`` draws it on stderr (redrawn at most every 5 s), ``False``
    draws nothing, a text stream draws it there (redrawn at most every second; each state starts with a
    carriage return, so the stream's last line piece is the current state). The stream is the side channel
    of ``HW5_PROGRESS`` (:attr:`hw5.settings.Settings.progress`): a notebook's stderr is stored in the
    notebook, the stream is not."""
    if isinstance(enabled, bool):
        return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, file=sys.stderr,
                    mininterval=5.0, dynamic_ncols=False, ncols=100)
    if not callable(getattr(enabled, "write", None)):
        raise TypeError(f"show_progress must be True, False or a text stream (e.g. Settings.progress), got "
                        f"{type(enabled).__name__}")
    return tqdm(total=total, initial=initial, desc=desc, file=enabled, mininterval=1.0, dynamic_ncols=False,
                ncols=100)


def _stacked(values: Mapping[str, torch.Tensor], names: tuple[str, ...], run: Run) -> torch.Tensor:
    """The step's named values as one (len(names),) tensor in the order of ``names``."""
    if not isinstance(values, Mapping) or set(values) != set(names):
        got = sorted(values) if isinstance(values, Mapping) else type(values).__name__
        raise ValueError(f"{run.name}: a step must return a dict with one 0-d tensor for each of {list(names)} "
                         f"(Run.logged), got {got}")
    return torch.stack([values[name] for name in names])


def _run_epoch(run: Run, epoch: int, step: Step, hooks: Sequence[Hook], run_dir: str | Path | None, bar: tqdm,
               check_every: int) -> torch.Tensor:
    """One epoch of steps in a freshly seeded order; returns the (steps, len(logged)) log on the device."""
    seed_everything(epoch_seed(run.seed, epoch))
    # a CPU generator on every device: the same seed gives the same batch order on a CPU and on a GPU
    generator = torch.Generator().manual_seed(epoch_seed(run.seed, epoch))
    for module in run.modules.values():
        module.train()
    log = torch.zeros(run.steps, len(run.logged), device=run.data[0].device)
    batches = minibatches(*run.data, batch_size=run.batch_size, generator=generator, drop_last=run.drop_last)
    for index, batch in enumerate(batches):
        info = StepInfo(epoch, index, run.steps, generator)
        log[index] = _stacked(step(batch, info), run.logged, run)
        for hook in hooks:
            hook.after_step(info)
        if (index + 1) % check_every == 0 or index + 1 == run.steps:
            ensure_finite(log[: index + 1], run.logged, epoch, index + 1, run_dir)
            bar.set_postfix(epoch=epoch, **{k: f"{v:.3f}" for k, v in zip(run.logged, log[index].tolist())},
                            refresh=False)
        bar.update(1)
    return log


def fit(run: Run, epochs: int, step: Step, *, history: dict[str, Any], run_dir: str | Path | None = None,
        hooks: Sequence[Hook] = (), show_progress: bool | TextIO = True,
        check_every: int = 50) -> dict[str, Any]:
    """Train ``run`` for ``epochs`` epochs in total (resuming from ``run_dir``); returns the history.

    ``history`` is a fresh run's history (a resumed run continues its saved one); the runner records
    ``steps_per_epoch`` and appends ``epoch_seconds`` (wall clock of the steps) and ``epoch_cpu_seconds`` (CPU
    time of the process, all threads: the cost regardless of other jobs on a shared machine). ``hooks`` are
    called in their order at each point of the epoch (see :class:`Hook`); training ends before an epoch for
    which any hook's ``stop_before`` is true. ``show_progress``: the bar of :func:`progress` on stderr
    (``True``), none (``False``) or on a text stream (a notebook passes ``Settings.progress``).
    """
    check_budget(epochs)
    run.check_steps()
    checks.count("check_every", check_every, 1)
    done, saved = resume(run, run_dir, epochs)
    history = saved or {**history, "steps_per_epoch": run.steps}
    bar = progress(epochs * run.steps, done * run.steps, run.name, show_progress)
    # TF32 only when asked for by name; cuDNN deterministic, so that a resumed run replays an uninterrupted one
    with float32_math(tf32=run.precision == "tf32", deterministic=True):
        return _epochs(run, epochs, done, step, hooks, run_dir, bar, check_every, history)


def _epochs(run: Run, epochs: int, done: int, step: Step, hooks: Sequence[Hook], run_dir: str | Path | None,
            bar: tqdm, check_every: int, history: dict[str, Any]) -> dict[str, Any]:
    """:func:`fit`'s epochs ``done + 1 .. epochs``."""
    try:
        for epoch in range(done + 1, epochs + 1):
            if any(hook.stop_before(epoch, history) for hook in hooks):
                break
            start, start_cpu = time.perf_counter(), time.process_time()
            for hook in hooks:
                hook.epoch_start(epoch)
            log = _run_epoch(run, epoch, step, hooks, run_dir, bar, check_every)
            history.setdefault("epoch_seconds", []).append(time.perf_counter() - start)
            history.setdefault("epoch_cpu_seconds", []).append(time.process_time() - start_cpu)
            shown: dict[str, str] = {}
            for hook in hooks:
                shown.update(hook.epoch_end(epoch, log, history) or {})
            if shown:
                bar.set_postfix(epoch=epoch, **shown, refresh=False)
            commit(run, run_dir, epoch, history)
    finally:
        bar.close()
    return history
