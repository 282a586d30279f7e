"""The DCGAN training loop: alternating D and G steps on the MNIST train split.

One step on a batch x of real images (in [-1, 1]) and fresh noise z ~ N(0, I):

1. D step: minimise  L_D = BCE(l(x), 1) + BCE(l(G(z)), 0)  over D's parameters (G(z) detached);
2. G step: minimise the non-saturating GAN loss  L_G = BCE(l(G(z)), 1) = -E[log D(G(z))]  (or the literal
   min-max  E[log(1 - D(G(z)))]  when ``generator_loss="minimax"``), reusing the same G(z).

Each optimizer is Adam(lr 2e-4, betas (0.5, 0.999)), the course defaults. Per step the loop logs L_D,
L_G, mean D(x) and mean D(G(z)) into a device tensor (no host synchronisation inside the step), checks
them for NaN/inf every ``check_every`` steps, and checkpoints every epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import minibatches, num_batches, to_signed
from ..models.dcgan import DCGAN, GENERATOR_LOSSES, discriminator_loss, generator_loss
from ..utils import epoch_seed, get_device, seed_everything
from .common import PRECISIONS, autocast, check_budget, commit, ensure_finite, progress, resume

LOGGED = ("d_loss", "g_loss", "d_real", "d_fake")


@dataclass(frozen=True)
class GANConfig:
    """What defines a GAN run (budgets such as epochs are arguments of :func:`train_gan`)."""

    latent_dim: int = 100
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 200
    generator_loss: str = "non_saturating"
    precision: str = "auto"  # bf16 autocast on GPUs, fp32 on CPUs (see training.common.resolve_precision)
    channels_last: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {self.generator_loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"batch_size must be >= 1 and lr > 0, got {self.batch_size} and {self.lr}")


def train_gan(images: torch.Tensor, config: GANConfig, epochs: int, run_dir: str | Path | None = None,
              device: str | torch.device | None = None, show_progress: bool = True,
              check_every: int = 50) -> tuple[DCGAN, dict[str, Any]]:
    """Train (or resume) a DCGAN on uint8 ``images`` (N, 28, 28) for ``epochs`` epochs in total.

    With ``run_dir``, every epoch is checkpointed there and a rerun resumes from the last one: asking for
    more epochs than were done continues the run. Returns the model (in eval mode) and the history:
    per-step ``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, ``steps_per_epoch`` and ``epoch_seconds``.
    """
    check_budget(epochs)
    device = get_device(device)
    seed_everything(config.seed)
    model = DCGAN(config.latent_dim).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    gen, disc = model.generator, model.discriminator
    betas = (config.beta1, config.beta2)
    optimizers = {"generator": torch.optim.Adam(gen.parameters(), lr=config.lr, betas=betas),
                  "discriminator": torch.optim.Adam(disc.parameters(), lr=config.lr, betas=betas)}
    modules = {"generator": gen, "discriminator": disc}
    done, history = resume(run_dir, modules, config, optimizers)
    steps = num_batches(images.shape[0], config.batch_size, drop_last=True)
    history = history or {**{k: [] for k in LOGGED}, "steps_per_epoch": steps, "epoch_seconds": []}

    data = to_signed(images.to(device))  # (N, 28, 28) uint8 -> (N, 1, 28, 28) in [-1, 1]
    if config.channels_last:
        data = data.contiguous(memory_format=torch.channels_last)
    bar = progress(epochs * steps, done * steps, "DCGAN", show_progress)
    model.train()
    for epoch in range(done + 1, epochs + 1):
        start = time.perf_counter()
        seed_everything(epoch_seed(config.seed, epoch))
        order = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        log = torch.zeros(steps, len(LOGGED), device=device)
        batches = minibatches(data, batch_size=config.batch_size, generator=order, drop_last=True)
        for step, (real,) in enumerate(batches):
            z = torch.randn(real.shape[0], config.latent_dim, device=device)
            with autocast(device, config.precision):
                fake = gen(z)
                d_out = discriminator_loss(disc(real), disc(fake.detach()))
            optimizers["discriminator"].zero_grad(set_to_none=True)
            d_out["loss"].backward()
            optimizers["discriminator"].step()

            with autocast(device, config.precision):
                g_out = generator_loss(disc(fake), config.generator_loss)
            optimizers["generator"].zero_grad(set_to_none=True)
            g_out["loss"].backward()
            optimizers["generator"].step()

            log[step] = torch.stack([d_out["loss"], g_out["loss"], d_out["d_real"], d_out["d_fake"]]).detach()
            if (step + 1) % check_every == 0 or step + 1 == steps:
                ensure_finite(log[: step + 1], LOGGED, epoch, step + 1, run_dir)
                last = log[step].tolist()
                bar.set_postfix(epoch=epoch, d_loss=f"{last[0]:.3f}", g_loss=f"{last[1]:.3f}",
                                refresh=False)
            bar.update(1)
        for k, column in zip(LOGGED, log.T.tolist()):
            history[k].extend(column)
        history["epoch_seconds"].append(time.perf_counter() - start)
        commit(run_dir, modules, config, optimizers, epoch, history)
    bar.close()
    return model.eval(), history
