"""Gaussian-Bernoulli restricted Boltzmann machine (the course's ``RBM(D, F, k)`` template, built here from an
:class:`RBMConfig` with ``visible`` = D, ``hidden`` = F, ``gibbs_steps`` = k).

Visible units v in R^D (real valued), hidden units h in {0, 1}^F, where F = M is the number of hidden
units (the template's name; the homework's M). The free energy is written FE(v), not F(v), so that F
always means the hidden size. Energy (the homework's, with the
template's W of shape (F, D), so the homework's W_ij is ``W[j, i]``)::

    E(v, h) = -( sum_ij W_ij h_j v_i / sigma_i - sum_i (v_i - b_i)^2 / (2 sigma_i^2) + sum_j alpha_j h_j )

and p(v, h) = exp(-E(v, h)) / Z. Summing or integrating the exponent out gives (derivation in the
Problem 2 notebook, proved numerically in ``tests/test_rbm.py``)::

    p(h_j = 1 | v) = sigmoid(alpha_j + sum_i W_ij v_i / sigma_i)
    p(v_i = x | h) = N(x; b_i + sigma_i sum_j W_ij h_j, sigma_i^2)
    FE(v) = -log sum_h exp(-E(v, h))
          = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(alpha_j + sum_i W_ij v_i / sigma_i)

Contrastive divergence (CD-k) minimises  L = mean FE(v_data) - mean FE(v_k)  with v_k, the end of a
k-step Gibbs chain started at the data, held constant. Its gradient is the familiar update
"model statistics minus data statistics" (:meth:`RBM.cd_gradients`), e.g. for W
dL/dW_ji = < p(h_j=1|v) v_i / sigma_i >_{v_k} - < p(h_j=1|v) v_i / sigma_i >_{v_data}.

Internally the chain runs in the scaled coordinates u = v / sigma, where every sigma disappears:
p(h | v) = sigmoid(alpha + W u) and u | h ~ N(b / sigma + W^T h, I). That is the same chain, with
fewer operations per step.

The module also holds the template's pre-processing: each batch x of [0, 1] images is standardised
with its own scalar mean and standard deviation, v = (x - mean(x)) / std(x) (:func:`standardize`);
:func:`to_pixels` maps a visible vector back to [0, 1] pixels with the same two numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as fn
from torch import nn

from .. import checks
from ..utils import exact_fp32, no_autocast
from .base import GenerativeModel, rand, randn


def standardize(x: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The template's per-batch standardisation: v = (x - m) / s with scalar m = mean(x), s = std(x).

    ``x`` is a batch of images in [0, 1], any shape; s is the unbiased standard deviation of all its
    entries (``torch.std``'s default, as in the template), floored at ``eps`` so that a constant batch
    gives zeros rather than NaN. Returns (v, m, s) with m and s 0-d tensors (no host synchronisation).
    """
    m = x.mean()
    centred = x - m
    # two-pass std = ||x - m|| / sqrt(n - 1), as torch.std but reusing the centred batch
    s = (torch.linalg.vector_norm(centred) / max(x.numel() - 1, 1) ** 0.5).clamp_min(eps)
    return centred.div_(s), m, s


def to_pixels(v: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Undo :func:`standardize` and clip to the pixel range: x = clip(m + v * s, 0, 1)."""
    return torch.addcmul(mean, v, std).clamp_(0.0, 1.0)


class GibbsChain(NamedTuple):
    """The end of a k-step Gibbs chain v_0 -> h_0 -> v_1 -> ... -> h_{k-1} -> v_k.

    ``v_k``: the last visible sample; ``mean_k``: E[v | h_{k-1}], the mean it was drawn around;
    ``logits_0``: alpha + W (v_0 / sigma), the data's hidden pre-activations (p(h | v_0) = sigmoid of it);
    ``fallback``: a 0-d float tensor on the chain's device, 1. when the collapsed chain could not use the
    Cholesky factor of W W^T (see :meth:`RBM.gibbs_chain`), else 0. (read it without a sync by summing).
    """

    v_k: torch.Tensor
    mean_k: torch.Tensor
    logits_0: torch.Tensor
    fallback: torch.Tensor


@dataclass(frozen=True)
class RBMConfig:
    """The RBM's sizes: ``visible`` = D units (784 for 28x28 images), ``hidden`` = M = F units (the homework's M,
    the template's F), ``gibbs_steps`` = k of CD-k, and ``sigma``, the visible units' standard deviation in the
    energy: one positive float for all (the template's 1), or ``visible`` values (a tuple, one per unit)."""

    visible: int = 784
    hidden: int = 64
    gibbs_steps: int = 5
    sigma: float | tuple[float, ...] = 1.0

    def __post_init__(self) -> None:
        checks.integer(self, "visible", 1)
        checks.integer(self, "hidden", 1)
        checks.integer(self, "gibbs_steps", 1)
        if isinstance(self.sigma, (list, tuple)):
            object.__setattr__(self, "sigma", tuple(self.sigma))  # frozen and hashable
            if len(self.sigma) != self.visible or not all(
                    isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s > 0
                    for s in self.sigma):
                raise ValueError(f"RBMConfig.sigma must be one positive finite float or {self.visible} of them (one "
                                 f"per visible unit), got {len(self.sigma)} values {self.sigma[:4]}...")
        else:
            checks.real(self, "sigma", 0.0, low_open=True)

    def build(self) -> RBM:
        """A fresh (untrained) RBM of this config: W ~ N(0, 1e-4), b = alpha = 0."""
        return RBM(self)


class RBM(GenerativeModel):
    """Gaussian-Bernoulli RBM with D = ``config.visible`` visible and F = ``config.hidden`` hidden units, trained
    by CD-k with k = ``config.gibbs_steps``.

    Parameters (the template's, and its names): ``W`` (F, D) with entries drawn from N(0, 1e-4) (variance 1e-4,
    i.e. standard deviation 1e-2: ``randn * 1e-2``), visible bias ``b`` (D,) = 0, hidden bias ``alpha`` (F,) = 0.
    ``sigma`` (D,) is a buffer, the per-visible standard deviation of the energy (not trained; the template's
    sigma_i = 1).
    """

    config_class: ClassVar[type] = RBMConfig  # what :func:`hw5.pretrained.pretrained` builds it from

    def __init__(self, config: RBMConfig | None = None) -> None:
        super().__init__()
        config = self._use_config(config)
        self.visible, self.hidden, self.gibbs_steps = config.visible, config.hidden, config.gibbs_steps
        self.W = nn.Parameter(torch.randn(config.hidden, config.visible) * 1e-2)
        self.b = nn.Parameter(torch.zeros(config.visible))
        self.alpha = nn.Parameter(torch.zeros(config.hidden))
        sigma = torch.as_tensor(config.sigma, dtype=torch.float32).expand(config.visible)  # () or (D,) -> (D,)
        self.register_buffer("sigma", sigma.clone())

    # --- conditionals ----------------------------------------------------------------------------------

    def hidden_logits(self, v: torch.Tensor) -> torch.Tensor:
        """a_j(v) = alpha_j + sum_i W_ij v_i / sigma_i, shape (B, F)."""
        return torch.addmm(self.alpha, v / self.sigma, self.W.t())

    def p_h_given_v(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v) = sigmoid(alpha_j + sum_i W_ij v_i / sigma_i), shape (B, F)."""
        return torch.sigmoid(self.hidden_logits(v))

    def mean_v_given_h(self, h: torch.Tensor) -> torch.Tensor:
        """E[v_i | h] = b_i + sigma_i sum_j W_ij h_j (the mean of the Gaussian p(v_i | h)), shape (B, D)."""
        return torch.addmm(self.b, h, self.W * self.sigma)  # W * sigma scales column i by sigma_i

    def sample_bernoulli(self, p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """h ~ Bernoulli(p) elementwise, as 0./1. floats: h = [u < p] with u ~ U[0, 1)."""
        u = rand(p.shape, device=p.device, generator=generator, dtype=p.dtype)
        return (u < p).to(p.dtype)

    def sample_gaussian(self, mean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """v ~ N(mean, diag(sigma^2)): v = mean + sigma * eps with eps ~ N(0, I), shape of ``mean``."""
        eps = randn(mean.shape, device=mean.device, generator=generator, dtype=mean.dtype)
        return torch.addcmul(mean, eps, self.sigma)

    # --- energies --------------------------------------------------------------------------------------

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h) = -( sum_ij W_ij h_j v_i / sigma_i - sum_i (v_i - b_i)^2 / (2 sigma_i^2)
        + sum_j alpha_j h_j ), one value per row: v (B, D), h (B, F) -> (B,)."""
        interaction = ((h @ self.W) * (v / self.sigma)).sum(1)
        quadratic = ((v - self.b) ** 2 / (2 * self.sigma ** 2)).sum(1)
        return -(interaction - quadratic + h @ self.alpha)

    def free_energy(self, v: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The free energy FE(v) = -log sum_h exp(-E(v, h))
        = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(alpha_j + sum_i W_ij v_i / sigma_i).

        ``reduction="mean"`` (the template's) averages over the batch; ``"none"`` returns (B,).
        """
        quadratic = ((v - self.b) ** 2 / (2 * self.sigma ** 2)).sum(1)
        per_sample = quadratic - fn.softplus(self.hidden_logits(v)).sum(1)
        if reduction == "none":
            return per_sample
        if reduction == "mean":
            return per_sample.mean()
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")

    # --- CD-k ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def gibbs_chain(self, v: torch.Tensor, k: int | None = None, generator: torch.Generator | None = None,
                    collapsed: bool | None = None, device_fallback: bool | None = None) -> GibbsChain:
        """k steps (default ``gibbs_steps`` of the config) of block Gibbs sampling from v_0 = ``v`` (B, D)::

            h_t ~ p(h | v_t) = Bernoulli(sigmoid(alpha + W v_t / sigma)),
            v_{t+1} ~ p(v | h_t) = N(b + sigma W^T h_t, diag(sigma^2)),      t = 0 .. k-1.

        Runs without autograd: CD treats the chain's end as a constant. In u = v / sigma the visible step
        is u_{t+1} = c + W^T h_t + eps_t with c = b / sigma and eps_t ~ N(0, I_D).

        ``collapsed`` (default: whenever k > 1 and F < D) draws the same chain without the intermediate
        visible samples, which nothing but the next hidden step reads: for 0 < t < k, v_t enters only via
        the pre-activation a_t = alpha + W u_t, and given h_{t-1} it is exactly Gaussian,

            a_t = alpha + W c + (W W^T) h_{t-1} + L z_t,   z_t ~ N(0, I_F),   L L^T = W W^T (Cholesky),

        so each intermediate step costs F random numbers and (F x F) matmuls instead of D random numbers
        and two (F x D) matmuls. (h_0, ..., h_{k-1}, v_k) have exactly the joint law of the plain chain;
        only the last visible sample is drawn in R^D.

        When the Cholesky factorisation fails (W W^T singular to working precision, e.g. a hidden unit whose
        weights are all 0), ``fallback`` is 1 and the chain is still drawn, without asking the host (a GPU
        keeps its queue full: no synchronisation per step):

        * on the CPU, where reading the factorisation's status costs nothing, by the plain chain (exact);
        * on other devices, by the collapsed chain with the factor of W W^T + delta I, delta = 1e-6 times the
          mean diagonal of W W^T (plus 1e-12): the pre-activation noise gets a variance delta too large,
          about 10 float32 rounding units of the diagonal. The factor is chosen on the device
          (``torch.where`` on the status); ``device_fallback=True`` takes this route on the CPU too (tests).
        """
        k = self.gibbs_steps if k is None else k
        if k < 1:
            raise ValueError(f"k (Gibbs steps) must be >= 1, got {k}")
        with no_autocast(v.device):  # a caller's bf16 autocast would round the chain's matmuls: fp32 here
            return self._gibbs_chain(v, k, generator, collapsed, device_fallback)

    @staticmethod
    def noise_factor(gram: torch.Tensor, on_device: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(L, fallback) for the collapsed chain's pre-activation noise, ``gram`` = W W^T (F, F).

        L is the Cholesky factor, L L^T = W W^T, and ``fallback`` (0-d, dtype of ``gram``) is 0. When the
        factorisation fails (W W^T singular to working precision) ``fallback`` is 1 and L is
        ``None`` with ``on_device=False`` (the caller runs the plain chain), or, with ``on_device=True``, the
        factor of W W^T + delta I, delta = 1e-6 * mean_j (W W^T)_jj + 1e-12, chosen by ``torch.where`` on the
        factorisation's status so that no value is read back to the host.
        """
        chol, info = torch.linalg.cholesky_ex(gram)
        fallback = (info != 0).to(gram.dtype)
        if on_device:
            jittered = gram.clone()
            jittered.diagonal().add_(1e-6 * gram.diagonal().mean() + 1e-12)  # W W^T + delta I
            return torch.where(info == 0, chol, torch.linalg.cholesky_ex(jittered)[0]), fallback
        return (chol if int(info) == 0 else None), fallback  # on the CPU reading the status costs nothing

    def _gibbs_chain(self, v: torch.Tensor, k: int, generator: torch.Generator | None, collapsed: bool | None,
                     device_fallback: bool | None) -> GibbsChain:
        """:meth:`gibbs_chain`'s body (autocast off)."""
        W = self.W
        collapsed = self.hidden < self.visible if collapsed is None else collapsed  # read only when k > 1
        u = v / self.sigma
        c = self.b / self.sigma  # the visible bias in u units
        logits_0 = torch.addmm(self.alpha, u, W.t())  # (B, D) @ (D, F) -> (B, F)
        chol, fallback = None, torch.zeros((), device=v.device, dtype=v.dtype)
        if collapsed and k > 1:
            gram = W @ W.t()  # (F, D) @ (D, F) -> (F, F), the covariance of W eps
            on_device = device_fallback if device_fallback is not None else v.device.type != "cpu"
            chol, fallback = self.noise_factor(gram, on_device)
        logits = logits_0
        if chol is not None:
            shift = torch.addmv(self.alpha, W, c)  # alpha + W c, (F,)
            for _ in range(k - 1):
                h = self.sample_bernoulli(torch.sigmoid(logits), generator)
                z = randn(h.shape, device=h.device, generator=generator, dtype=h.dtype)
                logits = torch.addmm(torch.addmm(shift, h, gram), z, chol.t())  # (B, F) @ (F, F)
        else:
            for _ in range(k - 1):
                h = self.sample_bernoulli(torch.sigmoid(logits), generator)
                u = torch.addmm(c, h, W)  # (B, F) @ (F, D) -> (B, D)
                u = u + randn(u.shape, device=u.device, generator=generator, dtype=u.dtype)
                logits = torch.addmm(self.alpha, u, W.t())  # (B, D) @ (D, F) -> (B, F)
        h = self.sample_bernoulli(torch.sigmoid(logits), generator)
        mean_k = self.mean_v_given_h(h)
        return GibbsChain(self.sample_gaussian(mean_k, generator), mean_k, logits_0, fallback)

    @exact_fp32
    @torch.no_grad()
    def sample(self, n: int, steps: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
        """n visible vectors E[v | h_{steps-1}] (n, D) at the end of ``steps`` block-Gibbs steps started from
        v_0 ~ N(b, diag(sigma^2)) (the visible law when every hidden unit is off), in the standardised units the
        RBM models (:func:`to_pixels` maps them to pixels with a batch's mean and std). On the model's device;
        ``generator`` makes the draw reproducible (a CPU generator: the same draw on every device)."""
        n = checks.count("n", n, 1)
        v_0 = self.sample_gaussian(self.b.expand(n, self.visible), generator)  # (D,) -> (n, D)
        return self.gibbs_chain(v_0, checks.count("steps", steps, 1), generator).mean_k

    def forward(self, v: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The template's CD-k chain: (v_k, E[v | h_{k-1}]), the last visible sample and the last mean
        of p(v | h), both (B, D) and detached (see :meth:`gibbs_chain`)."""
        chain = self.gibbs_chain(v, generator=generator)
        return chain.v_k, chain.mean_k

    @torch.no_grad()
    def mean_field_reconstruction(self, v: torch.Tensor) -> torch.Tensor:
        """Deterministic one-step reconstruction E[v | h = p(h | v)] = b + sigma W^T sigmoid(alpha + W v / sigma)."""
        return self.mean_v_given_h(self.p_h_given_v(v))

    def cd_loss(self, v_data: torch.Tensor, v_model: torch.Tensor) -> dict[str, torch.Tensor]:
        """The template's CD loss  L = mean FE(v_data) - mean FE(v_model), with v_model (= v_k) detached."""
        return {"loss": self.free_energy(v_data) - self.free_energy(v_model.detach())}

    @torch.no_grad()
    def cd_gradients(self, v_data: torch.Tensor, v_model: torch.Tensor,
                     logits_data: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """L = mean FE(v_data) - mean FE(v_model) (as :meth:`cd_loss`) and its gradient in closed form.

        With u = v / sigma and p(v) = p(h = 1 | v), dFE/dW_ji = -p_j(v) u_i, dFE/db_i = -(v_i - b_i) / sigma_i^2,
        dFE/dalpha_j = -p_j(v), so (B rows each, <.> = batch mean)::

            dL/dW     = < p(v) u^T >_model - < p(v) u^T >_data          (F, D)
            dL/db     = (< u >_model - < u >_data) / sigma              (D,)
            dL/dalpha = < p(v) >_model - < p(v) >_data                  (F,)

        i.e. minus the classic CD update (data statistics minus model statistics). ``logits_data``, the
        data's hidden pre-activations if already known (:class:`GibbsChain`), saves a matmul.
        Returns ``loss`` and the gradients ``W``, ``b``, ``alpha``.
        """
        c = self.b / self.sigma
        u0, uk = v_data / self.sigma, v_model / self.sigma
        a0 = torch.addmm(self.alpha, u0, self.W.t()) if logits_data is None else logits_data
        ak = torch.addmm(self.alpha, uk, self.W.t())
        p0, pk = torch.sigmoid(a0), torch.sigmoid(ak)
        n0, nk = u0.shape[0], uk.shape[0]
        loss = ((0.5 * fn.mse_loss(u0, c.expand_as(u0), reduction="sum") - fn.softplus(a0).sum()) / n0
                - (0.5 * fn.mse_loss(uk, c.expand_as(uk), reduction="sum") - fn.softplus(ak).sum()) / nk)
        grad_w = torch.addmm(pk.t() @ uk, p0.t(), u0, beta=1.0 / nk, alpha=-1.0 / n0)  # (F, B) @ (B, D)
        grad_b = (uk.mean(0) - u0.mean(0)) / self.sigma
        grad_alpha = pk.mean(0) - p0.mean(0)
        return {"loss": loss, "W": grad_w, "b": grad_b, "alpha": grad_alpha}
