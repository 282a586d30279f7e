"""DCGAN for 28x28 MNIST with exactly the tensor shapes of the homework's Figure 1.

Discriminator D (image -> logit)::

    1x28x28 -conv 4x4/2 p1-> 64x14x14 -conv 4x4/2 p1-> 128x7x7 -conv 3x3/2 p1-> 256x4x4
            -conv 3x3/1 p1-> 512x4x4 -flatten-> 8192 -Linear-> 1 logit

A 4x4 stride-2 convolution would take 7x7 to 3x3, so the third layer uses 3x3 kernels, which give
floor((7 + 2 - 3) / 2) + 1 = 4. Generator G (noise -> image)::

    z (100) -Linear-> 12544 -reshape-> 256x7x7 -convT 4x4/2 p1-> 128x14x14 -convT 4x4/2 p1-> 64x28x28
            -conv 3x3/1 p1-> 32x28x28 -conv 3x3/1 p1-> 1x28x28 -tanh-> image in [-1, 1]

Both follow Radford et al. (2016): batch norm in every layer but D's first and G's last, LeakyReLU(0.2)
in D, ReLU in G, weights drawn from N(0, 0.02). D returns a logit, never a probability; the losses below
apply the sigmoid inside ``binary_cross_entropy_with_logits``, which is exact where sigmoid saturates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks
from ..utils import eval_mode, no_autocast
from .base import GenerativeModel, randn

GENERATOR_LOSSES = ("non_saturating", "minimax")


def _init_dcgan(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@dataclass(frozen=True)
class DCGANConfig:
    """The DCGAN's one free size: ``latent_dim``, the dimension of z (100 in Figure 1). The rest of Figure 1's
    shapes are fixed by the homework."""

    latent_dim: int = 100

    def __post_init__(self) -> None:
        checks.integer(self, "latent_dim", 1)

    def build(self) -> DCGAN:
        """A fresh (untrained) DCGAN of this config."""
        return DCGAN(self)


class Generator(nn.Module):
    """G: z ~ N(0, I_100) -> 1x28x28 image in [-1, 1] (Figure 1's generator)."""

    def __init__(self, latent_dim: int = 100) -> None:
        super().__init__()
        self.latent_dim = checks.count("latent_dim", latent_dim, 1)
        self.project = nn.Linear(latent_dim, 256 * 7 * 7, bias=False)  # (B, 100) -> (B, 12544)
        self.body = nn.Sequential(
            nn.BatchNorm2d(256), nn.ReLU(),
            nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1, bias=False),  # 256x7x7 -> 128x14x14
            nn.BatchNorm2d(128), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, bias=False),  # 128x14x14 -> 64x28x28
            nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 32, 3, stride=1, padding=1, bias=False),  # 64x28x28 -> 32x28x28
            nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 1, 3, stride=1, padding=1),  # 32x28x28 -> 1x28x28
            nn.Tanh(),
        )
        _init_dcgan(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """x = G(z) in [-1, 1]^{1x28x28}."""
        h = self.project(z).view(-1, 256, 7, 7)  # (B, 12544) -> (B, 256, 7, 7)
        return self.body(h)


class Discriminator(nn.Module):
    """D: 1x28x28 image -> one logit l(x), with D(x) = sigmoid(l(x)) = P(x is real) (Figure 1's D)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 64, 4, stride=2, padding=1),  # 1x28x28 -> 64x14x14
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, stride=2, padding=1, bias=False),  # 64x14x14 -> 128x7x7
            nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 256, 3, stride=2, padding=1, bias=False),  # 128x7x7 -> 256x4x4
            nn.BatchNorm2d(256), nn.LeakyReLU(0.2),
            nn.Conv2d(256, 512, 3, stride=1, padding=1, bias=False),  # 256x4x4 -> 512x4x4
            nn.BatchNorm2d(512), nn.LeakyReLU(0.2),
        )
        self.final = nn.Linear(512 * 4 * 4, 1)  # the "final linear layer" that Problem 1.2 removes
        _init_dcgan(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): everything but the final linear layer, flattened: (B, 1, 28, 28) -> (B, 8192)."""
        return self.trunk(x).flatten(1)  # (B, 512, 4, 4) -> (B, 8192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """l(x) = w^T phi(x) + b, shape (B,): a logit, D(x) = sigmoid(l(x)). The last layer runs in fp32 even
        under a bf16 autocast (a bf16 logit would keep 8 bits of it)."""
        features = self.features(x)
        with no_autocast(features.device):
            return self.final(features.float()).squeeze(1)  # (B, 1) -> (B,)


class DCGAN(GenerativeModel):
    """The pair (G, D), with :meth:`sample` for display.

    ``generator`` is the G that samples. After :meth:`use_generator` (which :func:`hw5.training.gan.train_gan`
    calls when it keeps a moving average of G or a selected epoch's G) the last training iterate stays
    reachable as ``raw_generator``; export such a model with ``modules=["generator", "discriminator"]``.
    """

    config_class: ClassVar[type] = DCGANConfig  # what :func:`hw5.pretrained.pretrained` builds it from

    def __init__(self, config: DCGANConfig | None = None) -> None:
        super().__init__()
        config = self._use_config(config)
        self.generator = Generator(config.latent_dim)
        self.discriminator = Discriminator()

    def use_generator(self, kept: Generator) -> None:
        """Sample from ``kept`` from now on; the current G becomes ``raw_generator`` (no-op if it is ``kept``)."""
        if kept is not self.generator:
            self.raw_generator = self.generator
            self.generator = kept

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images G(z), z ~ N(0, I), mapped to [0, 1] for display: (n, 1, 28, 28).

        ``generator`` makes the draw reproducible: z comes from its device (a CPU generator gives the same
        images on every device; :func:`hw5.models.base.randn`).
        """
        device, n = self.device, checks.count("n", n, 1)
        z = randn((n, self.generator.latent_dim), device=device, generator=generator)
        with eval_mode(self.generator):  # running BN statistics; exact fp32 (a GPU's default TF32 convolutions off)
            images = self.generator(z).float()
        return images.add(1.0).div(2.0).clamp(0.0, 1.0)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """D's side of the homework's min-max game, as a loss to minimise.

    D maximises  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],  i.e. minimises
        L_D = -E_x[log sigmoid(l(x))] - E_z[log(1 - sigmoid(l(G(z))))]
    = BCE(l(x), 1) + BCE(l(G(z)), 0), each a batch mean. Returns ``loss`` plus the mean D(x) and D(G(z)).
    """
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    return {"loss": loss, "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> dict[str, torch.Tensor]:
    """G's loss on D's logits for fresh samples G(z).

    * ``"minimax"``: the homework's objective taken literally, G minimises
          L_G = E_z[log(1 - D(G(z)))] = -BCE(l(G(z)), 0).
      Early in training D rejects samples confidently, D(G(z)) ~ 0, where log(1 - D) is flat: its
      gradient with respect to the logit is -D(G(z)) ~ 0, so G barely learns (it "saturates").
    * ``"non_saturating"`` (default): the non-saturating GAN loss of Goodfellow et al. (2014),
          L_G = -E_z[log D(G(z))] = BCE(l(G(z)), 1),
      which has the same fixed point (D(G(z)) = 1/2 at the optimum) but a gradient of 1 - D(G(z)) ~ 1
      with respect to the logit exactly where the min-max form vanishes. This is the form that trains.
    """
    if kind not in GENERATOR_LOSSES:
        raise ValueError(f"generator loss must be one of {GENERATOR_LOSSES}, got {kind!r}")
    fake_logits = fake_logits.float()
    if kind == "non_saturating":
        loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    else:
        loss = -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return {"loss": loss}
