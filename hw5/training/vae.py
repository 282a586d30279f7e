"""The VAE / C-VAE training loop: Adam on the negative ELBO, early stopping on a validation split.

One step on a batch x (pixels in [0, 1]) with classes c: encode, draw one z = mu + sigma * eps, decode,
and take an Adam step on  recon + beta * KL  (batch means, nats per image; beta = 1 is the negative
ELBO, beta < 1 only during an optional linear KL warm-up). What the course template fixes is fixed here
too: Adam, lr 1e-3, batch 128 (and the model's 784-400-20 sizes). What it leaves open, and what the
notebook chooses on the validation split only, is in :class:`VAEConfig` and the ``epochs``/``patience``
budget arguments.

After every epoch the validation negative ELBO is measured (with the same noise eps every epoch, so
that epochs are compared on the same draw) on the current weights, or on their moving average when
``ema_decay`` > 0; the best-so-far weights are kept in a second copy of the model, and all copies plus
Adam's state are checkpointed: an interrupted run resumes exactly where it
stopped, and the loop returns the best-validation weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import minibatches, num_batches, to_unit
from ..models.vae import ACTIVATIONS, CVAE, VAE, vae_loss
from ..utils import epoch_seed, get_device, seed_everything
from .common import check_budget, commit, ensure_finite, progress, resume

TEMPLATE = {"lr": 1e-3, "batch_size": 128}  # the course template's optimiser settings (with Adam)
LOGGED = ("loss", "neg_elbo", "recon", "kl")


@dataclass(frozen=True)
class VAEConfig:
    """What defines a VAE or C-VAE run (the epoch budget and the patience are arguments of :func:`train_vae`).

    ``lr`` and ``batch_size`` default to the template's values; the rest is what the template leaves
    open: the hidden activation, Adam's betas and eps, the length of a linear KL warm-up (0 = none), and
    ``ema_decay``: with d > 0 the loop also keeps the exponential moving average of the iterates (Polyak
    averaging), theta_ema <- d theta_ema + (1 - d) theta after every Adam step, and validates and returns
    those averaged weights. Adam and its step size are untouched; averaging only removes the jitter that
    a constant learning rate leaves in the last iterates.
    """

    conditional: bool = False
    activation: str = "relu"
    lr: float = TEMPLATE["lr"]
    batch_size: int = TEMPLATE["batch_size"]
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    kl_warmup_epochs: int = 0
    ema_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.lr <= 0 or self.batch_size < 1:
            raise ValueError(f"lr must be > 0 and batch_size >= 1, got {self.lr} and {self.batch_size}")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0 and self.adam_eps > 0):
            raise ValueError(f"Adam needs 0 <= beta1, beta2 < 1 and eps > 0, got {self.beta1}, {self.beta2}, "
                             f"{self.adam_eps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = no averaging), got {self.ema_decay}")
        if self.kl_warmup_epochs < 0:
            raise ValueError(f"kl_warmup_epochs must be >= 0, got {self.kl_warmup_epochs}")

    def build(self) -> VAE:
        """A fresh (untrained) model of this config."""
        return (CVAE if self.conditional else VAE)(activation=self.activation)


def kl_weight(config: VAEConfig, epoch: int, step: int, steps: int) -> float:
    """beta of step ``step`` (0-based) of epoch ``epoch`` (1-based): rises linearly from ~0 to 1 over
    ``kl_warmup_epochs`` epochs, then stays 1."""
    if config.kl_warmup_epochs == 0:
        return 1.0
    return min(1.0, ((epoch - 1) * steps + step + 1) / (config.kl_warmup_epochs * steps))


@torch.inference_mode()
def evaluate(model: VAE, x: torch.Tensor, c: torch.Tensor, seed: int, batch_size: int = 2000) -> torch.Tensor:
    """Mean (neg_elbo, recon, kl) per image over float images ``x`` (N, 1, 28, 28), one z each from a
    generator seeded with ``seed`` (the same eps every call); a device tensor of 3 values (no sync)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    sums = torch.zeros(3, device=x.device)
    for i in range(0, x.shape[0], batch_size):
        xb, cb = x[i:i + batch_size], c[i:i + batch_size]
        logits, mu, logvar = model(xb, cb, generator=gen)
        out = vae_loss(logits, xb, mu, logvar)
        sums += torch.stack([out["neg_elbo"], out["recon"], out["kl"]]) * xb.shape[0]
    model.train(was_training)
    return sums / x.shape[0]


def train_vae(train_images: torch.Tensor, train_labels: torch.Tensor, val_images: torch.Tensor,
              val_labels: torch.Tensor, config: VAEConfig, epochs: int, patience: int | None = None,
              run_dir: str | Path | None = None, device: str | torch.device | None = None,
              show_progress: bool = True, desc: str | None = None) -> tuple[VAE, dict[str, Any]]:
    """Train (or resume) a VAE / C-VAE on uint8 images (N, 28, 28) with int labels, for at most ``epochs``
    epochs, stopping early once the validation negative ELBO has not improved for ``patience`` epochs.

    Returns the model with the best-validation weights (in eval mode) and the history: per epoch
    ``train_{loss,neg_elbo,recon,kl}`` (means over the epoch's steps), ``val_{neg_elbo,recon,kl}``,
    ``beta``, ``epoch_seconds``; and ``best_epoch``, ``best_val_loss``, ``stopped_early``.
    Asking a finished run for more epochs continues it (unless it had stopped early).
    """
    check_budget(epochs)
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be a positive number of epochs or None, got {patience}")
    device = get_device(device)
    seed_everything(config.seed)
    model, best = config.build().to(device), config.build().to(device)
    best.load_state_dict(model.state_dict())
    # fused=True: one kernel for the whole Adam update, ~25% of a step faster on CPU for this small MLP
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                 eps=config.adam_eps, fused=device.type in ("cpu", "cuda"))
    modules = {"model": model, "best": best}
    if config.ema_decay:
        modules["ema"] = config.build().to(device)
        modules["ema"].load_state_dict(model.state_dict())
    averaged = modules.get("ema", model)  # the weights that are validated and kept
    pairs = list(zip(averaged.parameters(), model.parameters())) if config.ema_decay else []
    done, history = resume(run_dir, modules, config, {"adam": optimizer})
    if not history:
        history = {**{f"train_{k}": [] for k in LOGGED}, **{f"val_{k}": [] for k in LOGGED[1:]},
                   "beta": [], "epoch_seconds": [], "best_epoch": 0, "best_val_loss": float("inf"),
                   "stopped_early": False}

    x, c = to_unit(train_images.to(device)), train_labels.to(device)  # (N, 28, 28) -> (N, 1, 28, 28)
    xv, cv = to_unit(val_images.to(device)), val_labels.to(device)
    steps = num_batches(x.shape[0], config.batch_size)
    bar = progress(epochs * steps, done * steps, desc or ("C-VAE" if config.conditional else "VAE"), show_progress)
    model.train()
    for epoch in range(done + 1, epochs + 1):
        if patience is not None and epoch - 1 - history["best_epoch"] >= patience:
            break
        start = time.perf_counter()
        seed_everything(epoch_seed(config.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        sums = torch.zeros(len(LOGGED), device=device)
        betas = [kl_weight(config, epoch, s, steps) for s in range(steps)]
        for step, (xb, cb) in enumerate(minibatches(x, c, batch_size=config.batch_size, generator=gen)):
            logits, mu, logvar = model(xb, cb)
            out = vae_loss(logits, xb, mu, logvar, beta=betas[step])
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            with torch.no_grad():
                for p_avg, p in pairs:
                    p_avg.lerp_(p, 1.0 - config.ema_decay)
            sums += torch.stack([out[k].detach() for k in LOGGED]) * xb.shape[0]
            bar.update(1)
        ensure_finite(sums, tuple(f"train {k}" for k in LOGGED), epoch, steps, run_dir)
        val = evaluate(averaged, xv, cv, seed=config.seed)
        for k, v in zip(LOGGED, (sums / x.shape[0]).tolist()):
            history[f"train_{k}"].append(v)
        for k, v in zip(LOGGED[1:], val.tolist()):
            history[f"val_{k}"].append(v)
        history["beta"].append(betas[-1])
        if history["val_neg_elbo"][-1] < history["best_val_loss"]:
            history["best_val_loss"], history["best_epoch"] = history["val_neg_elbo"][-1], epoch
            best.load_state_dict(averaged.state_dict())
        history["epoch_seconds"].append(time.perf_counter() - start)
        bar.set_postfix(epoch=epoch, val=f"{history['val_neg_elbo'][-1]:.2f}",
                        best=f"{history['best_val_loss']:.2f}@{history['best_epoch']}", refresh=False)
        commit(run_dir, modules, config, {"adam": optimizer}, epoch, history)
    bar.close()
    history["stopped_early"] = (patience is not None
                                and len(history["val_neg_elbo"]) - history["best_epoch"] >= patience)
    return best.eval(), history
