"""The VAE / C-VAE training loop: Adam on the negative ELBO, early stopping on a validation split.

One step on a batch x (pixels in [0, 1]) with classes c: encode, draw one z = mu + sigma * eps, decode,
and take an Adam step on  recon + beta * KL  (batch means, nats per image; beta = 1 is the negative
ELBO, beta < 1 only during an optional linear KL warm-up). What the course template fixes is fixed here
too: Adam, lr 1e-3, batch 128 (and the model's 784-400-20 sizes). What it leaves open, and what the
notebook chooses on the validation split only, is in :class:`VAETraining` and the ``epochs``/``patience``
budget arguments.

After every epoch the validation negative ELBO is measured (:func:`hw5.metrics.vae.elbo_terms`, with the
same noise eps every epoch, so that epochs are compared on the same draw) on the current weights, or on
their moving average when ``ema_decay`` > 0; the best-so-far weights are kept in a second copy of the
model, and all copies plus Adam's state are checkpointed by the shared runner
(:func:`hw5.training.loop.fit`): an interrupted run resumes exactly where it stopped, and the loop returns
the best-validation weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import torch

from .. import checks
from ..configs import TrainingConfig
from ..data import to_labels, to_unit
from ..metrics.vae import elbo_terms
from ..models.vae import N_CLASSES, VAE, VAEConfig, vae_loss
from ..utils import get_device, seed_everything
from .loop import Callback, Hook, Run, StepInfo, fit
from .optim import adam
from .policies import EarlyStopping, KeepBest, MovingAverage, Record, whole_history

TEMPLATE = {"lr": 1e-3, "batch_size": 128}  # the course template's optimiser settings (with Adam)
LOGGED = ("loss", "neg_elbo", "recon", "kl")
VALIDATION_BATCH = 2000


@dataclass(frozen=True)
class VAETraining(TrainingConfig):
    """What defines a VAE or C-VAE run besides its budget (the epochs and the patience are arguments of
    :func:`train_vae`): the model's config ``model`` (VAE or C-VAE, activation) and its optimisation.

    ``lr`` and ``batch_size`` default to the template's values; the rest is what the template leaves
    open: Adam's betas and eps, the length of a linear KL warm-up (0 = none), and ``ema_decay``: with
    d > 0 the loop also keeps the exponential moving average of the iterates (Polyak averaging),
    theta_ema <- d theta_ema + (1 - d) theta after every Adam step, and validates and returns those averaged
    weights. Adam and its step size are untouched; averaging only removes the jitter that a constant learning
    rate leaves in the last iterates.
    """

    model: VAEConfig = field(default_factory=VAEConfig)
    lr: float = TEMPLATE["lr"]
    batch_size: int = TEMPLATE["batch_size"]
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    kl_warmup_epochs: int = 0
    ema_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks.instance(self, "model", VAEConfig)
        checks.real(self, "lr", 0.0, low_open=True)
        checks.integer(self, "batch_size", 1)
        checks.real(self, "beta1", 0.0, 1.0, high_open=True)
        checks.real(self, "beta2", 0.0, 1.0, high_open=True)
        checks.real(self, "adam_eps", 0.0, low_open=True)
        checks.integer(self, "kl_warmup_epochs", 0)
        checks.real(self, "ema_decay", 0.0, 1.0, high_open=True)
        checks.integer(self, "seed", 0)


def kl_weight(config: VAETraining, epoch: int, step: int, steps: int) -> float:
    """beta of step ``step`` (0-based) of epoch ``epoch`` (1-based): rises linearly from ~0 to 1 over
    ``kl_warmup_epochs`` epochs, then stays 1."""
    if config.kl_warmup_epochs == 0:
        return 1.0
    return min(1.0, ((epoch - 1) * steps + step + 1) / (config.kl_warmup_epochs * steps))


def _fresh_record() -> dict[str, Any]:
    """What is validated of one copy of the weights: its curves, its best epoch and loss, whether it stopped."""
    return {**{f"val_{k}": [] for k in LOGGED[1:]}, "best_epoch": 0, "best_val_loss": float("inf"),
            "stopped_early": False}


def _fresh_shared() -> dict[str, Any]:
    """What every validated copy shares: the trajectory's per-epoch train means and KL weights."""
    return {**{f"train_{k}": [] for k in LOGGED}, "kl_weight": []}


def _fresh_history() -> dict[str, Any]:
    return {**_fresh_shared(), **_fresh_record()}


def _models(config: VAETraining, device: torch.device, copies: tuple[str, ...]) -> dict[str, VAE]:
    """The trained model (built first after seeding, so its initial weights depend on the seed alone) and
    ``copies`` of it (best-validation copies, moving averages), all equal to it."""
    seed_everything(config.seed)
    modules = {"model": config.model.build().to(device)}
    for name in copies:
        modules[name] = config.model.build().to(device)
        modules[name].load_state_dict(modules["model"].state_dict())
    return modules


class _Data(NamedTuple):
    """Checked images in [0, 1] (N, 1, 28, 28) and labels (N,), on one device: train x, c; validation xv, cv."""

    x: torch.Tensor
    c: torch.Tensor
    xv: torch.Tensor
    cv: torch.Tensor

    @classmethod
    def check(cls, train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
              val_labels: torch.Tensor, device: torch.device) -> _Data:
        x = to_unit(train_images, device, name="train_images")
        xv = to_unit(val_images, device, name="val_images")
        classes = N_CLASSES  # the C-VAE's one-hot width; a VAE ignores its labels, but they are checked all the same
        return cls(x, to_labels(train_labels, x.shape[0], classes, device, name="train_labels"),
                   xv, to_labels(val_labels, xv.shape[0], classes, device, name="val_labels"))


@dataclass(frozen=True)
class _Tracked:
    """A copy of the weights that is validated after every epoch (``weights``: the iterate itself or its moving
    average) and the best of it so far (``best``); ``record`` finds its curves in the history."""

    weights: VAE
    best: VAE
    record: Record = whole_history


def _fit(data: _Data, config: VAETraining, modules: dict[str, VAE], tracked: Sequence[_Tracked], *,
         history: dict[str, Any], epochs: int, patience: int | None, run_dir: str | Path | None,
         show_progress: bool | TextIO, desc: str, after: Sequence[Hook] = ()) -> dict[str, Any]:
    """The loop that :func:`train_vae`, :func:`train_plain_and_averaged` and :func:`train_snapshots` run: Adam
    steps on ``modules["model"]`` (and the moving average ``modules["ema"]``, if any, after each); after every
    epoch the train means and, for each of ``tracked`` whose patience has not run out, its validation -ELBO
    and best copy, then the hooks ``after``. Training stops when every tracked copy has run out of patience
    (or after ``epochs``)."""
    model = modules["model"]
    optimizer = adam(model.parameters(), data.x.device, lr=config.lr, betas=(config.beta1, config.beta2),
                     eps=config.adam_eps)
    run = Run(desc, modules, {"adam": optimizer}, config, config.seed, (data.x, data.c), config.batch_size, LOGGED)
    stopping = EarlyStopping(patience, [copy.record for copy in tracked])

    def step(batch: tuple[torch.Tensor, ...], info: StepInfo) -> dict[str, torch.Tensor]:
        xb, cb = batch
        logits, mu, logvar = model(xb, cb)
        out = vae_loss(logits, xb, mu, logvar, beta=kl_weight(config, info.epoch, info.index, info.steps))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        return {k: out[k].detach() * xb.shape[0] for k in LOGGED}  # sums over the batch: exact epoch means

    def validate(epoch: int, log: torch.Tensor, history: dict[str, Any]) -> dict[str, str]:
        for k, v in zip(LOGGED, (log.sum(0) / data.x.shape[0]).tolist()):
            history[f"train_{k}"].append(v)
        history["kl_weight"].append(kl_weight(config, epoch, run.steps - 1, run.steps))
        shown = {}
        for i, copy in enumerate(tracked, 1):
            record = copy.record(history)
            if stopping.ran_out(epoch, record):
                continue  # this copy's own run has ended: its curve and best copy stay as they were then
            val = elbo_terms(copy.weights, data.xv, data.cv, seed=config.seed, batch_size=VALIDATION_BATCH)
            for k, v in zip(LOGGED[1:], val.tolist()):
                record[f"val_{k}"].append(v)
            shown[f"val{i}"] = f"{record['val_neg_elbo'][-1]:.2f}"
        return shown

    hooks: list[Hook] = []
    if "ema" in modules:
        hooks.append(MovingAverage(model, modules["ema"], config.ema_decay))
    hooks.append(Callback(on_epoch_end=validate))
    hooks += [KeepBest(copy.weights, copy.best, lambda record: record["val_neg_elbo"], copy.record,
                       score_key="best_val_loss", label=f"best{i}") for i, copy in enumerate(tracked, 1)]
    hooks += [*after, stopping]
    history = fit(run, epochs, step, history=history, run_dir=run_dir, hooks=hooks, show_progress=show_progress)
    for copy in tracked:
        record = copy.record(history)
        record["stopped_early"] = stopping.ran_out(len(record["val_neg_elbo"]) + 1, record)
    return history


def _name(config: VAETraining) -> str:
    return "C-VAE" if config.model.conditional else "VAE"


def train_vae(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
              val_labels: torch.Tensor, config: VAETraining, epochs: int, *, patience: int | None = None,
              run_dir: str | Path | None = None, device: str | torch.device | None = None,
              show_progress: bool | TextIO = True, desc: str | None = None) -> tuple[VAE, dict[str, Any]]:
    """Train (or resume) a VAE / C-VAE on images (uint8, or floats in [0, 1]; (N, 28, 28)) with int labels, for
    at most ``epochs`` epochs, stopping once the validation -ELBO has not improved for ``patience`` epochs.
    Returns the best-validation weights (eval mode, on ``device``) and the history: per epoch
    ``train_{loss,neg_elbo,recon,kl}`` (means over the images), ``val_{neg_elbo,recon,kl}``, ``kl_weight``,
    ``epoch_seconds``; and ``best_epoch``, ``best_val_loss``, ``stopped_early``. A finished run asked for
    more epochs continues (unless it had stopped early).
    ``show_progress``: the bar of :func:`hw5.training.loop.progress` (stderr, none, or a text stream)."""
    checks.optional_count("patience", patience)
    device = get_device(device)
    data = _Data.check(train_images, train_labels, val_images, val_labels, device)
    modules = _models(config, device, ("best", "ema") if config.ema_decay else ("best",))
    tracked = [_Tracked(modules.get("ema", modules["model"]), modules["best"])]  # the weights validated and kept
    history = _fit(data, config, modules, tracked, history=_fresh_history(), epochs=epochs, patience=patience,
                   run_dir=run_dir, show_progress=show_progress, desc=desc or _name(config))
    return modules["best"].eval(), history


VARIANTS = ("plain", "averaged")


@dataclass(frozen=True)
class PlainAndAveraged:
    """What :func:`train_plain_and_averaged` found: the ``kept`` variant (``"plain"`` or ``"averaged"``), its
    best-validation ``model`` (eval mode) and ``history`` as its own :func:`train_vae` run records them,
    ``training``, the config whose own :func:`train_vae` run gives exactly these weights, and the validation
    -ELBO ``curves`` of both variants by name."""

    kept: str
    model: VAE
    history: dict[str, Any]
    training: VAETraining
    curves: dict[str, list[float]]


def train_plain_and_averaged(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
                             val_labels: torch.Tensor, config: VAETraining, epochs: int, *, ema_decay: float,
                             patience: int | None = None, run_dir: str | Path | None = None,
                             device: str | torch.device | None = None,
                             show_progress: bool | TextIO = False) -> PlainAndAveraged:
    """The plain iterates theta_t and their moving average (``ema_decay``) from ONE training trajectory: both are
    validated after every epoch, each keeps its own best copy and its own patience, and training runs until both
    have run out of patience (or ``epochs``). Averaging only reads theta_t, so this gives exactly what two
    separate :func:`train_vae` runs (``ema_decay`` 0 and ``ema_decay``, same seed) give, at the cost of one
    (tested). Checkpointed in ``run_dir``; the variant with the lower best validation -ELBO is kept.
    ``show_progress``: the bar of :func:`hw5.training.loop.progress` (stderr, none, or a text stream)."""
    checks.optional_count("patience", patience)
    checks.number("ema_decay", ema_decay, 0.0, 1.0, low_open=True, high_open=True)
    device = get_device(device)
    data = _Data.check(train_images, train_labels, val_images, val_labels, device)
    averaged_config = dataclasses.replace(config, ema_decay=ema_decay)
    modules = _models(averaged_config, device, ("best_plain", "best", "ema"))
    copies = {"plain": ("model", "best_plain"), "averaged": ("ema", "best")}
    tracked = [_Tracked(modules[w], modules[b], lambda history, v=v: history["variants"][v])
               for v, (w, b) in copies.items()]
    fresh = {**_fresh_shared(), "variants": {v: _fresh_record() for v in VARIANTS}}
    history = _fit(data, averaged_config, modules, tracked, history=fresh, epochs=epochs, patience=patience,
                   run_dir=run_dir, show_progress=show_progress, desc=f"{_name(config)} plain + averaged")
    done = {v: _variant_history(history, v) for v in VARIANTS}
    kept = min(VARIANTS, key=lambda v: done[v]["best_val_loss"])
    training = dataclasses.replace(config, ema_decay=ema_decay if kept == "averaged" else 0.0)
    return PlainAndAveraged(kept, modules[copies[kept][1]].eval(), done[kept], training,
                            {v: done[v]["val_neg_elbo"] for v in VARIANTS})


def _first_epochs(history: dict[str, Any], epochs: int) -> dict[str, Any]:
    """``history`` as it stood after ``epochs`` epochs: every per-epoch list cut to its first ``epochs`` values."""
    return {k: (v[:epochs] if isinstance(v, list) else v) for k, v in history.items()}


def _variant_history(history: dict[str, Any], variant: str) -> dict[str, Any]:
    """One variant's history as its own :func:`train_vae` run would have recorded it: the shared per-epoch
    values up to the epoch its patience ran out, and its validation record."""
    record = history["variants"][variant]
    shared = {k: v for k, v in history.items() if k != "variants"}
    return {**_first_epochs(shared, len(record["val_neg_elbo"])), **record}


def _check_budgets(budgets: Sequence[int]) -> tuple[int, ...]:
    budgets = tuple(budgets) if isinstance(budgets, (list, tuple)) else (budgets,)
    if not budgets or not all(checks.is_int(b) and b >= 1 for b in budgets) \
            or any(a >= b for a, b in zip(budgets, budgets[1:])):
        raise ValueError(f"budgets must be increasing positive numbers of epochs, e.g. (5, 25, 75), got {budgets!r}")
    return budgets


@dataclass(frozen=True)
class Snapshot:
    """What a separate :func:`train_vae` run of ``epochs`` epochs returns: its best-validation ``model`` (eval
    mode) and its ``history``."""

    epochs: int
    model: VAE
    history: dict[str, Any]


class _KeepAt(Hook):
    """At the end of each epoch b in ``budgets``, copies the best-so-far weights into ``modules[f"best_at_{b}"]``."""

    def __init__(self, modules: dict[str, VAE], budgets: Sequence[int]) -> None:
        self.modules, self.budgets = modules, budgets

    def epoch_end(self, epoch: int, log: torch.Tensor, history: dict[str, Any]) -> None:
        if epoch in self.budgets:
            self.modules[f"best_at_{epoch}"].load_state_dict(self.modules["best"].state_dict())


def train_snapshots(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
                    val_labels: torch.Tensor, config: VAETraining, budgets: Sequence[int], *,
                    run_dir: str | Path | None = None, device: str | torch.device | None = None,
                    show_progress: bool | TextIO = True) -> list[Snapshot]:
    """What separate :func:`train_vae` runs of ``epochs`` = b (no patience) return, for each b in ``budgets``,
    from ONE trajectory of ``max(budgets)`` epochs. Nothing in a run depends on its budget (epoch e's batch
    order and noise come from the seed and e alone), so a b-epoch run is the first b epochs of a longer one,
    and its result, the best-validation weights of epochs 1..b, is the best-so-far copy at the end of epoch b:
    that copy is kept in a module of its own, checkpointed with the run (a resumed run keeps it). Exactly the
    separate runs' weights and histories (tested), at the cost of the longest one.

    Returns one :class:`Snapshot` per budget, in the order of ``budgets``.
    ``show_progress``: the bar of :func:`hw5.training.loop.progress` (stderr, none, or a text stream)."""
    budgets = _check_budgets(budgets)
    device = get_device(device)
    data = _Data.check(train_images, train_labels, val_images, val_labels, device)
    early = budgets[:-1]  # the last budget's result is the run's own best copy
    modules = _models(config, device, ("best", *(f"best_at_{b}" for b in early),
                                       *(("ema",) if config.ema_decay else ())))
    tracked = [_Tracked(modules.get("ema", modules["model"]), modules["best"])]
    history = _fit(data, config, modules, tracked, history=_fresh_history(), epochs=budgets[-1], patience=None,
                   run_dir=run_dir, show_progress=show_progress, desc=f"{_name(config)} snapshots",
                   after=[_KeepAt(modules, early)])
    out = []
    for b in budgets:
        kept = _first_epochs(history, b)
        losses = kept["val_neg_elbo"]
        best = min(range(b), key=losses.__getitem__)  # the first minimum: the loop keeps strict improvements
        kept.update(best_epoch=best + 1, best_val_loss=losses[best], stopped_early=False)
        out.append(Snapshot(b, modules[f"best_at_{b}" if b in early else "best"].eval(), kept))
    return out
