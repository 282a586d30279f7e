"""The course's VAE and class-conditional VAE (C-VAE) for 28x28 Fashion-MNIST.

Both follow the course template exactly; its layer names and sizes are kept (``fc1``, ``fc21``,
``fc22``, ``fc3``, ``fc4``) because the template fixes them, so the homework's reference weights and
ours share one state-dict layout::

    encoder  x (784) [+ one-hot c (10)] -fc1-> 400 -act-> h -fc21-> mu (20)
                                                            -fc22-> log sigma^2 (20)
    decoder  z (20)  [+ one-hot c (10)] -fc3-> 400 -act-> -fc4-> 784 logits l,  p(x_j = 1 | z) = sigmoid(l_j)

The generative model is p(z) = N(0, I_20), p_theta(x | z[, c]) = prod_j Bernoulli(x_j; sigmoid(l_j)),
and the encoder is the diagonal Gaussian q_phi(z | x[, c]) = N(mu, diag(sigma^2)). The pixel values in
[0, 1] are used as the Bernoulli "targets" (the course's binary cross-entropy loss), so
log p(x | z) = sum_j [x_j log sigmoid(l_j) + (1 - x_j) log(1 - sigmoid(l_j))] = -BCE(l, x).

Training maximises the evidence lower bound of each image,

    ELBO(x) = E_{q(z|x)}[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x),

estimated with one reparameterised sample z = mu + sigma * eps, eps ~ N(0, I), and the KL term in
closed form. Losses are reported per image, in nats: ``recon`` = -log p(x | z) (BCE summed over the 784
pixels), ``kl`` = KL, ``neg_elbo`` = recon + kl. The decoder returns logits; the sigmoid is applied only
for display and sampling. Nothing here loads data or writes files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks
from ..utils import exact_fp32
from .base import GenerativeModel, randn

N_IN, N_HID, Z_DIM, N_CLASSES = 784, 400, 20, 10  # fixed by the course template
ACTIVATIONS = {
    "relu": F.relu,  # the course-lab default
    "elu": F.elu,
    "softplus": F.softplus,
    "tanh": torch.tanh,
    "silu": F.silu,
}
LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class VAEConfig:
    """What the course template leaves open in the model: ``conditional`` (the C-VAE, :class:`CVAE`, or the VAE)
    and the hidden ``activation`` (one of :data:`ACTIVATIONS`; the template's ReLU by default). The sizes
    784-400-20 (+10 classes) are fixed by the template."""

    conditional: bool = False
    activation: str = "relu"

    def __post_init__(self) -> None:
        checks.boolean(self, "conditional")
        checks.choice(self, "activation", sorted(ACTIVATIONS))

    def build(self) -> VAE:
        """A fresh (untrained) model of this config: a :class:`CVAE` if ``conditional``, else a :class:`VAE`."""
        return (CVAE if self.conditional else VAE)(self)


class VAE(GenerativeModel):
    """The template's VAE: q(z | x) = N(mu(x), diag exp(logvar(x))), p(x | z) = Bernoulli(sigmoid(l(z))).

    Every method takes a class ``c`` too, and ignores it, so the VAE and the C-VAE share one interface:
    ``encode(x, c)``, ``reparameterize(mu, logvar)``, ``decode(z, c)``, ``forward(x, c)``, ``sample(n, c)``.
    """

    config_class: ClassVar[type] = VAEConfig  # what :func:`hw5.pretrained.pretrained` builds it from

    conditional = False

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        config = self._use_config(VAEConfig(conditional=self.conditional) if config is None else config)
        if config.conditional != self.conditional:
            raise ValueError(f"{type(self).__name__} is {'' if self.conditional else 'not '}conditional but got "
                             f"{config}; build the model with config.build()")
        self.n_in, self.z_dim, self.n_classes = N_IN, Z_DIM, N_CLASSES
        self.act = ACTIVATIONS[config.activation]
        n_cond = N_CLASSES if self.conditional else 0
        self.fc1 = nn.Linear(N_IN + n_cond, N_HID)  # [x, c] -> h
        self.fc21 = nn.Linear(N_HID, Z_DIM)  # h -> mu
        self.fc22 = nn.Linear(N_HID, Z_DIM)  # h -> log sigma^2
        self.fc3 = nn.Linear(Z_DIM + n_cond, N_HID)  # [z, c] -> h'
        self.fc4 = nn.Linear(N_HID, N_IN)  # h' -> logits

    # -- conditioning --------------------------------------------------------------------------------
    def _with_class(self, v: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """[v, onehot(c)] for the C-VAE, v unchanged for the VAE. ``c``: labels (B,) or one-hots (B, 10)."""
        if not self.conditional:
            return v
        return torch.cat([v, self.one_hot(c, v.shape[0]).to(v.dtype)], dim=1)  # (B, d) -> (B, d + 10)

    def one_hot(self, c: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Class labels (B,) -> one-hot rows (B, n_classes); one-hot input is checked and passed through."""
        if c is None:
            raise ValueError("the C-VAE needs the class c of every image (int labels (B,) or one-hots (B, 10))")
        if c.dim() == 2:
            if c.shape != (batch, self.n_classes):
                raise ValueError(f"one-hot classes must have shape ({batch}, {self.n_classes}), got {tuple(c.shape)}")
            return c
        if c.shape != (batch,):
            raise ValueError(f"expected {batch} class labels, got shape {tuple(c.shape)}")
        return F.one_hot(c.long(), self.n_classes)

    # -- the template's four methods -----------------------------------------------------------------
    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log sigma^2) of q(z | x[, c]):  h = act(W1 [x, c] + b1),  mu = W21 h + b21,  logvar = W22 h + b22."""
        x = x.reshape(x.shape[0], self.n_in)  # (B, 1, 28, 28) -> (B, 784)
        h = self.act(self.fc1(self._with_class(x, c)))
        return self.fc21(h), self.fc22(h)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps, sigma = exp(logvar / 2), eps ~ N(0, I): a sample of q that is differentiable
        in (mu, logvar). eps comes from ``generator``'s device (:func:`hw5.models.base.randn`)."""
        eps = randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli logits l of p(x | z[, c]), shape (B, 784):  l = W4 act(W3 [z, c] + b3) + b4."""
        return self.fc4(self.act(self.fc3(self._with_class(z, c))))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits of p(x | z), mu, logvar) for one reparameterised z ~ q(z | x[, c])."""
        mu, logvar = self.encode(x, c)
        return self.decode(self.reparameterize(mu, logvar, generator), c), mu, logvar

    # -- generation ------------------------------------------------------------------------------------
    @exact_fp32
    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images E[x | z] = sigmoid(decode(z, c)), z ~ N(0, I), for display: (n, 1, 28, 28) in [0, 1],
        on the model's device.

        For the C-VAE, ``c`` is one class (an int: n images of that class) or n labels (any device); the VAE
        ignores it. ``generator`` makes the draw reproducible (z comes from its device: a CPU generator gives
        the same images on every device).
        """
        device, n = self.device, checks.count("n", n, 1)
        z = randn((n, self.z_dim), device=device, generator=generator)
        if self.conditional:
            if c is None:
                raise ValueError("C-VAE.sample needs a class c (an int, or n labels)")
            c = torch.full((n,), int(c), device=device) if isinstance(c, int) else c.to(device)
        return torch.sigmoid(self.decode(z, c)).view(n, 1, 28, 28)  # (n, 784) -> (n, 1, 28, 28)

    @exact_fp32
    @torch.no_grad()
    def interpolate(self, x_a: torch.Tensor, x_b: torch.Tensor, c_a: int, c_b: int, steps: int = 10
                    ) -> torch.Tensor:
        """Decoded means along the straight line between the posterior means of two images x_a, x_b
        ([0, 1] floats, (1, 28, 28) or (784,), any device):  z_t = (1 - t) mu_a + t mu_b, t in [0, 1]
        (``steps`` points); for the C-VAE the one-hot class is interpolated the same way. Returns
        (steps, 1, 28, 28) in [0, 1] on the model's device."""
        device, steps = self.device, checks.count("steps", steps, 2)
        x = torch.stack([x_a.reshape(-1), x_b.reshape(-1)]).to(device)  # (2, 784)
        c = torch.tensor([c_a, c_b], device=device)
        mu, _ = self.encode(x, c)
        t = torch.linspace(0.0, 1.0, steps, device=device)[:, None]  # (steps, 1)
        z = (1 - t) * mu[0] + t * mu[1]  # (steps, M)
        onehot = F.one_hot(c, self.n_classes).float()
        c_t = (1 - t) * onehot[0] + t * onehot[1]  # (steps, 10); ignored by the VAE
        return torch.sigmoid(self.decode(z, c_t)).view(steps, 1, 28, 28)  # (steps, 784) -> (steps, 1, 28, 28)

    @exact_fp32
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The decoded posterior mean of each image, for display: E[x | z = mu(x[, c])] = sigmoid(decode(mu, c)),
        (B, 1, 28, 28) in [0, 1]. ``x``: [0, 1] floats (B, 1, 28, 28) or (B, 784), and the C-VAE's classes
        ``c``, on the model's device (no draw: z is the mean, not a sample)."""
        return torch.sigmoid(self.decode(self.encode(x, c)[0], c)).view(-1, 1, 28, 28)  # (B, 784) -> images


class CVAE(VAE):
    """The template's C-VAE: q(z | x, c), p(x | z, c) with the one-hot class c concatenated to the encoder's
    input (784 + 10 -> 400) and the decoder's input (20 + 10 -> 400); the prior p(z) = N(0, I) ignores c.
    The bound is on the class-conditional likelihood:  log p(x | c) >= E_q[log p(x | z, c)] - KL(q(z|x,c) || p(z))."""

    conditional = True

    @exact_fp32
    @torch.no_grad()
    def class_samples(self, n_per_class: int, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_per_class`` prior samples of every class: images E[x | z, c] (10 n, 1, 28, 28) in [0, 1] and
        the classes asked for (10 n,), 0 0 ... 1 1 ..., both on the model's device."""
        n_per_class = checks.count("n_per_class", n_per_class, 1)
        classes = torch.arange(self.n_classes, device=self.device).repeat_interleave(n_per_class)
        return self.sample(classes.shape[0], classes, generator=generator), classes

    @exact_fp32
    @torch.no_grad()
    def decode_under_all_classes(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z, c] for every row of ``z`` (n, M; any device) and every class c: (n, n_classes, 1, 28, 28)
        in [0, 1] on the model's device."""
        z = z.to(self.device)
        n = z.shape[0]
        classes = torch.arange(self.n_classes, device=z.device).repeat(n)  # (n * 10,): 0..9, 0..9, ...
        logits = self.decode(z.repeat_interleave(self.n_classes, dim=0), classes)  # (n*10, 784)
        return torch.sigmoid(logits).view(n, self.n_classes, 1, 28, 28)  # (n*10, 784) -> (n, 10, 1, 28, 28)


# -- the loss ---------------------------------------------------------------------------------------------
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per row, in closed form:

        KL = 1/2 sum_d (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2).      (B, M) -> (B,)
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) = sum_j BCE(l_j, x_j) = sum_j [softplus(l_j) - x_j l_j], per row: (B, 784) -> (B,)."""
    x = x.reshape(logits.shape)  # (B, 1, 28, 28) -> (B, 784)
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Batch means (nats per image) of recon = -log p(x|z), kl = KL(q || p), neg_elbo = recon + kl, and the
    training objective ``loss`` = recon + beta * kl (beta < 1 only during an optional KL warm-up; beta = 1
    is the negative ELBO)."""
    recon, kl = bernoulli_nll(logits, x).mean(), gaussian_kl(mu, logvar).mean()
    return {"loss": recon + beta * kl, "neg_elbo": recon + kl, "recon": recon, "kl": kl}


def log_normal(z: torch.Tensor, mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last axis (standard normal when mu, logvar are None):

        -1/2 sum_d [log 2 pi + logvar_d + (z_d - mu_d)^2 / exp(logvar_d)].
    """
    if mu is None:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)
