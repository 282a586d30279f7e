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
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import checks
from ..configs import TrainingConfig
from ..data import to_labels, to_unit
from ..metrics.vae import elbo_terms
from ..models.vae import N_CLASSES, VAE, VAEConfig, vae_loss
from ..utils import get_device, seed_everything
from .loop import Run, StepInfo, adam, fit, update_average

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


def _check_patience(patience: int | None) -> None:
    checks.optional_count("patience", patience)


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


@dataclass(frozen=True)
class _Tracked:
    """A copy of the weights that is validated after every epoch (``weights``: the iterate itself or its moving
    average) and the best of it so far (``best``); ``record`` finds its curves in the history."""

    weights: VAE
    best: VAE
    record: Callable[[dict[str, Any]], dict[str, Any]]


def _fit(x: torch.Tensor, c: torch.Tensor, xv: torch.Tensor, cv: torch.Tensor, config: VAETraining,
         modules: dict[str, VAE], tracked: list[_Tracked], history: dict[str, Any], epochs: int,
         patience: int | None, run_dir: str | Path | None, show_progress: bool, desc: str,
         on_validated: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The loop that :func:`train_vae`, :func:`train_plain_and_averaged` and :func:`train_snapshots` run: Adam
    steps on ``modules["model"]`` (and the moving average ``modules["ema"]``, if any, after each); after every
    epoch the train means and, for each of ``tracked`` that has not run out of patience, its validation -ELBO
    and best copy, then ``on_validated(epoch)``. Training stops when every tracked copy has run out of patience
    (or after ``epochs``)."""
    model, averaged = modules["model"], modules.get("ema")
    optimizer = adam(model.parameters(), x.device, lr=config.lr, betas=(config.beta1, config.beta2),
                     eps=config.adam_eps)
    run = Run(desc, modules, {"adam": optimizer}, config, config.seed, (x, c), config.batch_size, LOGGED)

    def step(batch: tuple[torch.Tensor, ...], info: StepInfo) -> torch.Tensor:
        xb, cb = batch
        logits, mu, logvar = model(xb, cb)
        out = vae_loss(logits, xb, mu, logvar, beta=kl_weight(config, info.epoch, info.index, info.steps))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        if averaged is not None:
            update_average(averaged, model, config.ema_decay)
        return torch.stack([out[k].detach() for k in LOGGED]) * xb.shape[0]

    def ran_out(epoch: int, record: dict[str, Any]) -> bool:
        """Whether a copy's own run would have stopped before ``epoch``: no better validation for ``patience``."""
        return patience is not None and epoch - 1 - record["best_epoch"] >= patience

    def validate(epoch: int, log: torch.Tensor, history: dict[str, Any]) -> dict[str, str]:
        for k, v in zip(LOGGED, (log.sum(0) / x.shape[0]).tolist()):
            history[f"train_{k}"].append(v)
        history["kl_weight"].append(kl_weight(config, epoch, run.steps - 1, run.steps))
        shown = {}
        for i, copy in enumerate(tracked, 1):
            record = copy.record(history)
            if ran_out(epoch, record):
                continue  # this copy's own run has ended: its curve and best copy stay as they were then
            val = elbo_terms(copy.weights, xv, cv, seed=config.seed, batch_size=VALIDATION_BATCH)
            for k, v in zip(LOGGED[1:], val.tolist()):
                record[f"val_{k}"].append(v)
            if record["val_neg_elbo"][-1] < record["best_val_loss"]:
                record["best_val_loss"], record["best_epoch"] = record["val_neg_elbo"][-1], epoch
                copy.best.load_state_dict(copy.weights.state_dict())
            shown[f"val{i}"] = f"{record['val_neg_elbo'][-1]:.2f}"
            shown[f"best{i}"] = f"{record['best_val_loss']:.2f}@{record['best_epoch']}"
        if on_validated is not None:
            on_validated(epoch)
        return shown

    def all_ran_out(epoch: int, history: dict[str, Any]) -> bool:
        return all(ran_out(epoch, copy.record(history)) for copy in tracked)

    history = fit(run, epochs, step, history=history, run_dir=run_dir, on_epoch_end=validate,
                  stop_before=all_ran_out, show_progress=show_progress)
    for copy in tracked:
        record = copy.record(history)
        record["stopped_early"] = ran_out(len(record["val_neg_elbo"]) + 1, record)
    return history


def _inputs(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
            val_labels: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Checked images in [0, 1] (N, 1, 28, 28) and labels, on ``device``: x, c, x_val, c_val."""
    x = to_unit(train_images, device, name="train_images")
    xv = to_unit(val_images, device, name="val_images")
    classes = N_CLASSES  # the C-VAE's one-hot width; a VAE ignores its labels, but they are checked all the same
    return (x, to_labels(train_labels, x.shape[0], classes, device, name="train_labels"),
            xv, to_labels(val_labels, xv.shape[0], classes, device, name="val_labels"))


def train_vae(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
              val_labels: torch.Tensor, config: VAETraining, epochs: int, patience: int | None = None,
              run_dir: str | Path | None = None, device: str | torch.device | None = None,
              show_progress: bool = True, desc: str | None = None) -> tuple[VAE, dict[str, Any]]:
    """Train (or resume) a VAE / C-VAE on images (uint8, or floats in [0, 1]; (N, 28, 28)) with int labels, for
    at most ``epochs`` epochs, stopping once the validation -ELBO has not improved for ``patience`` epochs.
    Returns the best-validation weights (eval mode, on ``device``) and the history: per epoch
    ``train_{loss,neg_elbo,recon,kl}`` (means over the images), ``val_{neg_elbo,recon,kl}``, ``kl_weight``,
    ``epoch_seconds``; and ``best_epoch``, ``best_val_loss``, ``stopped_early``. A finished run asked for
    more epochs continues (unless it had stopped early)."""
    _check_patience(patience)
    device = get_device(device)
    x, c, xv, cv = _inputs(train_images, train_labels, val_images, val_labels, device)
    modules = _models(config, device, ("best", "ema") if config.ema_decay else ("best",))
    validated = modules.get("ema", modules["model"])  # the weights that are validated and kept
    tracked = [_Tracked(validated, modules["best"], lambda history: history)]
    history = _fit(x, c, xv, cv, config, modules, tracked, _fresh_history(), epochs, patience, run_dir,
                   show_progress, desc or ("C-VAE" if config.model.conditional else "VAE"))
    return modules["best"].eval(), history


VARIANTS = ("plain", "averaged")


def train_plain_and_averaged(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
                             val_labels: torch.Tensor, config: VAETraining, ema_decay: float, epochs: int,
                             patience: int | None, runs: str | Path, name: str,
                             device: str | torch.device | None = None
                             ) -> tuple[VAETraining, tuple[VAE, dict[str, Any]], dict[str, list[float]]]:
    """The plain iterates theta_t and their moving average (``ema_decay``) from ONE training trajectory: both are
    validated after every epoch, each keeps its own best copy and its own patience, and training runs until both
    have run out of patience (or ``epochs``). Averaging only reads theta_t, so this gives exactly what two
    separate :func:`train_vae` runs (``ema_decay`` 0 and ``ema_decay``, same seed) give, at the cost of one
    (tested). Checkpointed in ``<runs>/<name>``; the variant with the lower best validation -ELBO is kept.

    Returns (the kept variant's config, its (model, history) as :func:`train_vae` returns them, the validation
    -ELBO curves of both variants by name)."""
    _check_patience(patience)
    if not isinstance(ema_decay, float) or not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be a float in (0, 1) (the averaged variant's decay), got {ema_decay!r}")
    device = get_device(device)
    x, c, xv, cv = _inputs(train_images, train_labels, val_images, val_labels, device)
    averaged_config = dataclasses.replace(config, ema_decay=ema_decay)
    modules = _models(averaged_config, device, ("best_plain", "best", "ema"))
    copies = {"plain": ("model", "best_plain"), "averaged": ("ema", "best")}
    tracked = [_Tracked(modules[w], modules[b], lambda history, v=v: history["variants"][v])
               for v, (w, b) in copies.items()]
    fresh = {**_fresh_shared(), "variants": {v: _fresh_record() for v in VARIANTS}}
    desc = f"{'C-VAE' if config.model.conditional else 'VAE'} plain + averaged"
    history = _fit(x, c, xv, cv, averaged_config, modules, tracked, fresh, epochs, patience,
                   Path(runs) / name, False, desc)
    done = {v: _variant_history(history, v) for v in VARIANTS}
    kept = min(VARIANTS, key=lambda v: done[v]["best_val_loss"])
    decay = ema_decay if kept == "averaged" else 0.0
    model = modules[copies[kept][1]].eval()
    return dataclasses.replace(config, ema_decay=decay), (model, done[kept]), {
        v: done[v]["val_neg_elbo"] for v in VARIANTS}


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
    if (not budgets or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in budgets)
            or any(a >= b for a, b in zip(budgets, budgets[1:]))):
        raise ValueError(f"budgets must be increasing positive numbers of epochs, e.g. (5, 25, 75), got {budgets!r}")
    return budgets


def train_snapshots(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
                    val_labels: torch.Tensor, config: VAETraining, budgets: Sequence[int],
                    run_dir: str | Path | None = None, device: str | torch.device | None = None,
                    show_progress: bool = True) -> list[tuple[VAE, dict[str, Any]]]:
    """What separate :func:`train_vae` runs of ``epochs`` = b (no patience) return, for each b in ``budgets``,
    from ONE trajectory of ``max(budgets)`` epochs. Nothing in a run depends on its budget (epoch e's batch
    order and noise come from the seed and e alone), so a b-epoch run is the first b epochs of a longer one,
    and its result, the best-validation weights of epochs 1..b, is the best-so-far copy at the end of epoch b:
    that copy is kept in a module of its own, checkpointed with the run (a resumed run keeps it). Exactly the
    separate runs' weights and histories (tested), at the cost of the longest one.

    Returns one (model in eval mode, history) per budget, in the order of ``budgets``."""
    budgets = _check_budgets(budgets)
    device = get_device(device)
    x, c, xv, cv = _inputs(train_images, train_labels, val_images, val_labels, device)
    kept_at = {b: f"best_at_{b}" for b in budgets[:-1]}  # the last budget's is the run's own best copy
    modules = _models(config, device, ("best", *kept_at.values(), *(("ema",) if config.ema_decay else ())))
    tracked = [_Tracked(modules.get("ema", modules["model"]), modules["best"], lambda history: history)]

    def keep(epoch: int) -> None:
        if epoch in kept_at:
            modules[kept_at[epoch]].load_state_dict(modules["best"].state_dict())

    history = _fit(x, c, xv, cv, config, modules, tracked, _fresh_history(), budgets[-1], None, run_dir,
                   show_progress, f"{'C-VAE' if config.model.conditional else 'VAE'} snapshots", keep)
    out = []
    for b in budgets:
        kept = _first_epochs(history, b)
        losses = kept["val_neg_elbo"]
        best = min(range(b), key=losses.__getitem__)  # the first minimum: the loop keeps strict improvements
        kept.update(best_epoch=best + 1, best_val_loss=losses[best], stopped_early=False)
        out.append((modules[kept_at.get(b, "best")].eval(), kept))
    return out
