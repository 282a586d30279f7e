"""The DCGAN training loop: alternating D and G steps on the MNIST train split.

One step on a batch x of real images (in [-1, 1]) and fresh noise z ~ N(0, I):

1. D step: minimise  L_D = BCE(l(x), 1) + BCE(l(G(z)), 0)  over D's parameters (G(z) detached);
2. G step: minimise the non-saturating GAN loss  L_G = BCE(l(G(z)), 1) = -E[log D(G(z))]  (or the literal
   min-max  E[log(1 - D(G(z)))]  when ``generator_loss="minimax"``), reusing the same G(z).

Each optimizer is Adam(lr 2e-4, betas (0.5, 0.999)), the course defaults. Per step the loop logs L_D,
L_G, mean D(x) and mean D(G(z)); the shared runner (:func:`hw5.training.loop.fit`) keeps them on the
device, checks them for NaN/inf every ``check_every`` steps, and checkpoints every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import checks
from ..data import to_signed
from ..models.dcgan import DCGAN, GENERATOR_LOSSES, discriminator_loss, generator_loss
from ..utils import get_device, seed_everything
from .loop import PRECISIONS, Run, StepInfo, autocast, fit

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
    precision: str = "auto"  # bf16 autocast on GPUs, fp32 on CPUs (see training.loop.resolve_precision)
    channels_last: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        checks.integer(self, "latent_dim", 1)
        checks.real(self, "lr", 0.0, low_open=True)
        checks.real(self, "beta1", 0.0, 1.0, high_open=True)
        checks.real(self, "beta2", 0.0, 1.0, high_open=True)
        checks.integer(self, "batch_size", 1)
        checks.choice(self, "generator_loss", GENERATOR_LOSSES)
        checks.choice(self, "precision", PRECISIONS)
        checks.boolean(self, "channels_last")
        checks.integer(self, "seed", 0)


def train_gan(images: torch.Tensor, config: GANConfig, epochs: int, run_dir: str | Path | None = None,
              device: str | torch.device | None = None, show_progress: bool = True,
              check_every: int = 50) -> tuple[DCGAN, dict[str, Any]]:
    """Train (or resume) a DCGAN on ``images`` (uint8 or [0, 1] floats, (N, 28, 28)) for ``epochs`` epochs.

    With ``run_dir``, every epoch is checkpointed there and a rerun resumes from the last one: asking for
    more epochs than were done continues the run. Returns the model (in eval mode, on ``device``) and the
    history: per-step ``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, and ``steps_per_epoch``,
    ``epoch_seconds``, ``epoch_cpu_seconds``.
    """
    device = get_device(device)
    memory = torch.channels_last if config.channels_last else torch.contiguous_format
    data = to_signed(images, device).contiguous(memory_format=memory)  # (N, 1, 28, 28) in [-1, 1]
    seed_everything(config.seed)
    model = DCGAN(config.latent_dim).to(device, memory_format=memory)
    gen, disc = model.generator, model.discriminator
    betas = (config.beta1, config.beta2)
    # the plain (foreach) Adam of the committed 30-epoch run; the fused kernel rounds differently
    optimizers = {"generator": torch.optim.Adam(gen.parameters(), lr=config.lr, betas=betas),
                  "discriminator": torch.optim.Adam(disc.parameters(), lr=config.lr, betas=betas)}
    run = Run("DCGAN", {"generator": gen, "discriminator": disc}, optimizers, config, config.seed, (data,),
              config.batch_size, LOGGED, drop_last=True)

    def step(batch: tuple[torch.Tensor, ...], info: StepInfo) -> torch.Tensor:
        (real,) = batch
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
        return torch.stack([d_out["loss"], g_out["loss"], d_out["d_real"], d_out["d_fake"]]).detach()

    def keep_steps(epoch: int, log: torch.Tensor, history: dict[str, Any]) -> None:
        for key, column in zip(LOGGED, log.T.tolist()):
            history[key].extend(column)

    history = fit(run, epochs, step, history={k: [] for k in LOGGED}, run_dir=run_dir, on_epoch_end=keep_steps,
                  show_progress=show_progress, check_every=check_every)
    return model.eval(), history
