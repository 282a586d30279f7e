"""One skeleton for every training loop: what the DCGAN, RBM, VAE and classifier loops share.

:func:`fit` owns the bookkeeping, in this order, for every run:

1. check the budget and the data (a run that would take no step is an error, not a no-op);
2. resume the last committed epoch from ``run_dir`` (a checkpoint of another config is refused; a budget
   smaller than what the folder already holds is refused rather than silently answered with more);
3. for each remaining epoch: reseed every generator from (seed, epoch) (:func:`hw5.utils.epoch_seed`), so a
   resumed run replays an uninterrupted one; put the modules in train mode; draw one shuffled order of the
   device-resident data (:func:`hw5.data.minibatches`); call the family's ``step`` on each batch, keeping
   the logged values in a device tensor (no host synchronisation inside a step); check them for NaN/inf
   every ``check_every`` steps and at the end of the epoch; time the epoch; call the family's
   ``on_epoch_end`` hook (validation, evaluation, best-keeping); commit a checkpoint;
4. return the history.

A family supplies only its step (the maths of one update, the pattern of pytorch-generative's
``Trainer.train_one_batch``) and its per-epoch hooks (minGPT's trainer callbacks), e.g.::

    def step(batch, info):            # batch: one slice of each data tensor; info: epoch, index, generator
        loss = ...; optimizer.zero_grad(); loss.backward(); optimizer.step()
        return torch.stack([loss.detach()])          # one value per name in Run.logged

    history = fit(run, epochs, step, run_dir=folder, on_epoch_end=hook)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from ..data import minibatches, num_batches
from ..utils import epoch_seed, seed_everything

PRECISIONS = ("auto", "fp32", "bf16")


class TrainingDiverged(RuntimeError):
    """A logged value became NaN or infinite; the message names which, where, and what was kept."""


@dataclass
class Run:
    """A training run as the runner sees it.

    ``modules`` and ``optimizers`` are what a checkpoint holds (by name); ``config`` identifies the run (a
    checkpoint of another config is refused); ``data`` are device-resident tensors sharing their first axis,
    cut into batches of ``batch_size`` (the last, partial batch kept unless ``drop_last``); ``logged`` names
    the values each step returns; ``name`` labels the progress bar and error messages.
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
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = num_batches(self.data[0].shape[0], self.batch_size, self.drop_last)

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


Step = Callable[[tuple[torch.Tensor, ...], StepInfo], torch.Tensor]
EpochHook = Callable[[int, torch.Tensor, dict[str, Any]], Mapping[str, Any] | None]


def check_budget(epochs: int) -> None:
    """Budgets are arguments; a non-positive one is a mistake, not a no-op."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")


def resume(run: Run, run_dir: str | Path | None, epochs: int) -> tuple[int, dict[str, Any]]:
    """Load the last committed epoch from ``run_dir``: ``(epochs_done, history)``, ``(0, {})`` if none.

    Raises :class:`hw5.checkpoint.CheckpointError` for a checkpoint of another config and ``ValueError``
    when the folder already holds more epochs than ``epochs``.
    """
    if run_dir is None or not has_checkpoint(run_dir):
        return 0, {}
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
        save_checkpoint(run_dir, run.modules, run.config, {"epoch": epoch, "history": history}, run.optimizers)


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


def progress(total: int, initial: int, desc: str, enabled: bool) -> tqdm:
    """A text progress bar on stderr over optimisation steps (``tqdm``), or a silent one."""
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, file=sys.stderr,
                mininterval=5.0, dynamic_ncols=False, ncols=100)


def _run_epoch(run: Run, epoch: int, step: Step, run_dir: str | Path | None, bar: tqdm,
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
        log[index] = step(batch, StepInfo(epoch, index, run.steps, generator))
        if (index + 1) % check_every == 0 or index + 1 == run.steps:
            ensure_finite(log[: index + 1], run.logged, epoch, index + 1, run_dir)
            bar.set_postfix(epoch=epoch, **{k: f"{v:.3f}" for k, v in zip(run.logged, log[index].tolist())},
                            refresh=False)
        bar.update(1)
    return log


def fit(run: Run, epochs: int, step: Step, *, history: dict[str, Any], run_dir: str | Path | None = None,
        on_epoch_start: Callable[[int], None] | None = None, on_epoch_end: EpochHook | None = None,
        stop_before: Callable[[int, dict[str, Any]], bool] | None = None, show_progress: bool = True,
        check_every: int = 50) -> dict[str, Any]:
    """Train ``run`` for ``epochs`` epochs in total (resuming from ``run_dir``); returns the history.

    ``history`` is a fresh run's history (a resumed run continues its saved one); the runner records
    ``steps_per_epoch`` and appends ``epoch_seconds`` (wall clock of the steps) and ``epoch_cpu_seconds`` (CPU
    time of the process, all threads: the cost regardless of other jobs on a shared machine).
    ``on_epoch_start(epoch)`` runs before the epoch's
    steps; ``on_epoch_end(epoch, log, history)`` after them, with the (steps, len(logged)) device log, and may
    return progress-bar values; ``stop_before(epoch, history)`` ends training before an epoch (early stopping).
    """
    check_budget(epochs)
    run.check_steps()
    if not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be a positive integer, got {check_every!r}")
    done, saved = resume(run, run_dir, epochs)
    history = saved or {**history, "steps_per_epoch": run.steps}
    bar = progress(epochs * run.steps, done * run.steps, run.name, show_progress)
    try:
        for epoch in range(done + 1, epochs + 1):
            if stop_before is not None and stop_before(epoch, history):
                break
            start, start_cpu = time.perf_counter(), time.process_time()
            if on_epoch_start is not None:
                on_epoch_start(epoch)
            log = _run_epoch(run, epoch, step, run_dir, bar, check_every)
            history.setdefault("epoch_seconds", []).append(time.perf_counter() - start)
            history.setdefault("epoch_cpu_seconds", []).append(time.process_time() - start_cpu)
            shown = on_epoch_end(epoch, log, history) if on_epoch_end is not None else None
            if shown:
                bar.set_postfix(epoch=epoch, **shown, refresh=False)
            commit(run, run_dir, epoch, history)
    finally:
        bar.close()
    return history


@torch.no_grad()
def update_average(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """One step of the exponential moving average of ``model``'s parameters (Polyak averaging):
    theta_avg <- decay * theta_avg + (1 - decay) * theta, parameter by parameter, in place."""
    for p_avg, p in zip(average.parameters(), model.parameters()):
        p_avg.lerp_(p, 1.0 - decay)


def adam(parameters: Iterable[torch.nn.Parameter], device: torch.device, *, lr: float,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         fused: bool | None = None) -> torch.optim.Adam:
    """Adam; by default the fused kernel (one launch updates every parameter) on CPUs and CUDA GPUs, where
    torch has it, and the multi-tensor ``foreach`` kernel elsewhere."""
    if fused is None:
        fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused,
                            foreach=None if fused else True)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` on CUDA and ``"fp32"`` on a CPU; ``"fp32"``/``"bf16"`` are kept.

    Why not bf16 on CPUs too: on the 2-core development CPU (avx512_bf16) a Figure-1 DCGAN batch-200 step
    took 0.90 s in fp32 and 1.20 s under bf16 autocast (the convolutions' bf16 kernels and the casts cost
    more than the faster matmuls save); on GPUs bf16 runs on tensor cores.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast on CPU or CUDA for ``precision="bf16"`` (or ``"auto"`` on CUDA); plain fp32 otherwise.

    Parameters and optimizer state stay fp32; matmuls and convolutions run in bf16.
    """
    if resolve_precision(precision, device) == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
