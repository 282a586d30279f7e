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
from pathlib import Path
from typing import Any

import torch

from .. import checks
from ..configs import TrainingConfig
from ..data import to_unit
from ..metrics.vae import elbo_terms
from ..models.vae import VAE, VAEConfig, vae_loss
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


def _labels(labels: torch.Tensor, images: torch.Tensor, name: str, device: torch.device) -> torch.Tensor:
    """Integer class labels in [0, 10), one per image, on ``device``; a clear error otherwise."""
    if labels.shape != (images.shape[0],) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class labels of shape ({images.shape[0]},), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    labels = labels.to(device)
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < 10):
        raise ValueError(f"{name} must lie in 0..9 (the ten classes), got {int(labels.min())}..{int(labels.max())}")
    return labels.long()


def _check_patience(patience: int | None) -> None:
    if patience is not None and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
        raise ValueError(f"patience must be a positive number of epochs or None, got {patience!r}")


def _fresh_history() -> dict[str, Any]:
    return {**{f"train_{k}": [] for k in LOGGED}, **{f"val_{k}": [] for k in LOGGED[1:]}, "kl_weight": [],
            "best_epoch": 0, "best_val_loss": float("inf"), "stopped_early": False}


def _record(history: dict[str, Any], train: torch.Tensor, val: torch.Tensor, weight: float) -> None:
    """Append an epoch's mean train terms (loss, neg_elbo, recon, kl), validation terms and KL weight."""
    for k, v in zip(LOGGED, train.tolist()):
        history[f"train_{k}"].append(v)
    for k, v in zip(LOGGED[1:], val.tolist()):
        history[f"val_{k}"].append(v)
    history["kl_weight"].append(weight)


def _models(config: VAETraining, device: torch.device) -> dict[str, VAE]:
    """The trained model, the best-validation copy and (with averaging) the moving average, all equal."""
    seed_everything(config.seed)
    modules = {"model": config.model.build().to(device), "best": config.model.build().to(device)}
    if config.ema_decay:
        modules["ema"] = config.model.build().to(device)
    for name in ("best", "ema"):
        if name in modules:
            modules[name].load_state_dict(modules["model"].state_dict())
    return modules


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
    x = to_unit(train_images, device, name="train_images")  # (N, 1, 28, 28) in [0, 1]
    xv = to_unit(val_images, device, name="val_images")
    c, cv = _labels(train_labels, x, "train_labels", device), _labels(val_labels, xv, "val_labels", device)
    modules = _models(config, device)
    model, best = modules["model"], modules["best"]
    averaged = modules.get("ema", model)  # the weights that are validated and kept
    optimizer = adam(model.parameters(), device, lr=config.lr, betas=(config.beta1, config.beta2),
                     eps=config.adam_eps)
    run = Run(desc or ("C-VAE" if config.model.conditional else "VAE"), modules, {"adam": optimizer}, config,
              config.seed, (x, c), config.batch_size, LOGGED)

    def step(batch: tuple[torch.Tensor, ...], info: StepInfo) -> torch.Tensor:
        xb, cb = batch
        logits, mu, logvar = model(xb, cb)
        out = vae_loss(logits, xb, mu, logvar, beta=kl_weight(config, info.epoch, info.index, info.steps))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        if config.ema_decay:
            update_average(averaged, model, config.ema_decay)
        return torch.stack([out[k].detach() for k in LOGGED]) * xb.shape[0]

    def validate(epoch: int, log: torch.Tensor, history: dict[str, Any]) -> dict[str, str]:
        val = elbo_terms(averaged, xv, cv, seed=config.seed, batch_size=VALIDATION_BATCH)
        _record(history, log.sum(0) / x.shape[0], val, kl_weight(config, epoch, run.steps - 1, run.steps))
        if history["val_neg_elbo"][-1] < history["best_val_loss"]:
            history["best_val_loss"], history["best_epoch"] = history["val_neg_elbo"][-1], epoch
            best.load_state_dict(averaged.state_dict())
        return {"val": f"{history['val_neg_elbo'][-1]:.2f}",
                "best": f"{history['best_val_loss']:.2f}@{history['best_epoch']}"}

    def patience_ran_out(epoch: int, history: dict[str, Any]) -> bool:
        return patience is not None and epoch - 1 - history["best_epoch"] >= patience

    history = fit(run, epochs, step, history=_fresh_history(), run_dir=run_dir, on_epoch_end=validate,
                  stop_before=patience_ran_out, show_progress=show_progress)
    history["stopped_early"] = patience_ran_out(len(history["val_neg_elbo"]) + 1, history)
    return best.eval(), history


def train_plain_and_averaged(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
                             val_labels: torch.Tensor, config: VAETraining, ema_decay: float, epochs: int,
                             patience: int | None, runs: str | Path, name: str,
                             device: str | torch.device | None = None
                             ) -> tuple[VAETraining, tuple[VAE, dict[str, Any]], dict[str, list[float]]]:
    """:func:`train_vae` twice, with plain iterates (``ema_decay`` 0) and with averaged ones (``ema_decay``), each
    checkpointed in ``<runs>/<name>-plain`` / ``<runs>/<name>-averaged``; the variant with the lower best
    validation -ELBO is kept. Returns (the kept variant's config, its (model, history), the validation -ELBO
    curves of both variants by name)."""
    decays = {"plain": 0.0, "averaged": ema_decay}
    done = {variant: train_vae(train_images, train_labels, val_images, val_labels,
                               dataclasses.replace(config, ema_decay=decay), epochs, patience,
                               Path(runs) / f"{name}-{variant}", device, show_progress=False)
            for variant, decay in decays.items()}
    kept = min(done, key=lambda variant: done[variant][1]["best_val_loss"])
    curves = {variant: history["val_neg_elbo"] for variant, (_, history) in done.items()}
    return dataclasses.replace(config, ema_decay=decays[kept]), done[kept], curves
