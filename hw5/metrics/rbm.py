"""Problem 2's numbers: reconstruction errors of a trained RBM and the PCA baseline.

Scale of every MSE here: the mean over all pixels of all images of (x_hat - x)^2, with x the image in
[0, 1] pixel units and x_hat the reconstruction mapped back to those units (the batch's standardisation
undone, then clipped to [0, 1]; :func:`hw5.models.rbm.to_pixels`). A whole split is processed in order
(no shuffling) in batches of ``batch_size`` = 128, each standardised with its own mean and std exactly as
in training. Two reconstructions of a batch's v = (x - m) / s:

* ``chain``: the CD-k chain's, E[v | h_{k-1}] at the end of k Gibbs steps started at v (the template's
  second output, what the homework's Figure 2 shows). It is random; the draws come from a
  ``torch.Generator`` seeded with ``seed`` at the start of the split, so the number is reproducible.
* ``meanfield``: the deterministic one-step reconstruction E[v | h = p(h | v)] = b + sigma W^T p(h | v).

The PCA baseline is the best linear reconstruction with M components (the optimum of the squared error
among rank-M affine maps): the train split's mean plus the projection on its top-M principal directions,
in the same [0, 1] units, not clipped.

The numbers the Problem 2 notebook prints come from here: :func:`mse_table` (the homework's table, an
:class:`MSETable`), :func:`mse_by_gibbs_steps`, :func:`hidden_unit_statistics`, :func:`chain_seconds`,
:func:`training_times` and :func:`derivation_checks` (Problem 2.1 against brute force); :mod:`hw5.reports.rbm`
turns them into text and the ``metrics.json`` record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data import to_unit
from ..utils import eval_mode, model_device
from ..models.rbm import RBM, RBMConfig, standardize, to_pixels


@torch.no_grad()
def reconstruction_batches(model: RBM, images: torch.Tensor, batch_size: int = 128, seed: int = 0,
                           gibbs_steps: int | None = None, collapsed: bool | None = None,
                           ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (x, chain reconstruction, mean-field reconstruction), each (B, 784) in [0, 1], batch by batch.

    ``images``: uint8 or [0, 1] floats on any device; the batches are on the model's device. The chain runs
    ``gibbs_steps`` Gibbs steps (default: the model's, 5 for CD-5); ``collapsed`` picks the sampler of
    :meth:`RBM.gibbs_chain` (default: its own choice, the collapsed chain when k > 1 and M < 784)."""
    device = model_device(model)
    x_all = to_unit(images, device).flatten(1).to(model.W.dtype)  # (N, 1, 28, 28) -> (N, 784)
    generator = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: device-independent numbers
    with eval_mode(model):
        for start in range(0, x_all.shape[0], batch_size):
            x = x_all[start:start + batch_size]
            v, mean, std = standardize(x)
            chain = model.gibbs_chain(v, k=gibbs_steps, generator=generator, collapsed=collapsed)
            yield x, to_pixels(chain.mean_k, mean, std), to_pixels(model.mean_field_reconstruction(v), mean, std)


def reconstruct(model: RBM, images: torch.Tensor, batch_size: int = 128, seed: int = 0,
                gibbs_steps: int | None = None) -> dict[str, torch.Tensor]:
    """Originals and both reconstructions of ``images`` as display-ready (N, 1, 28, 28) CPU tensors in [0, 1].

    Same batches and draws as :func:`reconstruction_mse` on the same images: the first 64 images
    reconstructed here are exactly those the MSE of the split counted.
    """
    parts: dict[str, list[torch.Tensor]] = {"original": [], "chain": [], "meanfield": []}
    for batch in reconstruction_batches(model, images, batch_size, seed, gibbs_steps):
        for key, value in zip(parts, batch):
            parts[key].append(value.cpu())
    return {key: torch.cat(value).view(-1, 1, 28, 28) for key, value in parts.items()}  # (N, 784) -> (N, 1, 28, 28)


def reconstruction_mse(model: RBM, images: torch.Tensor, batch_size: int = 128, seed: int = 0,
                       gibbs_steps: int | None = None, collapsed: bool | None = None) -> dict[str, float]:
    """Per-pixel MSE in [0, 1] units of the ``chain`` (``gibbs_steps`` steps, default the model's) and
    ``meanfield`` reconstructions of a whole split (``collapsed``: see :func:`reconstruction_batches`)."""
    sums = None
    count = 0
    for x, chain, meanfield in reconstruction_batches(model, images, batch_size, seed, gibbs_steps, collapsed):
        batch = torch.stack([(chain - x).pow_(2).sum(), (meanfield - x).pow_(2).sum()]).double()
        sums = batch if sums is None else sums + batch
        count += x.numel()
    if sums is None:
        raise ValueError("reconstruction_mse needs at least one image")
    chain_mse, meanfield_mse = (sums / count).tolist()
    return {"chain": chain_mse, "meanfield": meanfield_mse}


def pca_fit(train_images: torch.Tensor, max_components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (784,) and the top ``max_components`` principal directions (784, K) of the train images in
    [0, 1] units (eigenvectors of the covariance, in decreasing order of variance; float64)."""
    x = to_unit(train_images, "cpu", name="train_images").flatten(1)  # (N, 784), on the CPU (float64 eigh)
    if not 1 <= max_components <= x.shape[1]:
        raise ValueError(f"max_components must be in [1, {x.shape[1]}], got {max_components}")
    mean = x.double().mean(0)
    centred = x - mean.float()
    # float32 product (fast), float64 eigendecomposition: the covariance entries are accurate to ~1e-7
    cov = (centred.t() @ centred).double() / x.shape[0]  # (784, N) @ (N, 784) -> (784, 784)
    _, vectors = torch.linalg.eigh(cov)  # ascending eigenvalues
    return mean, vectors.flip(1)[:, :max_components]


def pca_reconstruction_mse(train_images: torch.Tensor, images: torch.Tensor, components: Sequence[int]
                           ) -> dict[int, float]:
    """Per-pixel MSE in [0, 1] units of the best rank-M linear reconstruction of ``images``, for each M.

    x_hat = mu + V_M V_M^T (x - mu) with (mu, V) from :func:`pca_fit` on ``train_images``. Because V is
    orthonormal, ||x - x_hat||^2 = ||x - mu||^2 - ||V_M^T (x - mu)||^2, so one projection serves every M.
    """
    mean, vectors = pca_fit(train_images, max(components))
    centred = to_unit(images, "cpu").flatten(1).double() - mean  # (N, 784)
    energy = (centred @ vectors).pow(2).sum(0).cumsum(0)  # (N, K) -> (K,): captured energy of the top m
    total = centred.pow(2).sum()
    n = centred.numel()
    return {m: float((total - energy[m - 1]) / n) for m in components}


# --- the homework's table and the notebook's extensions ------------------------------------------------

ROW_KEYS = ("train_mse", "test_mse", "train_mse_meanfield", "test_mse_meanfield")


def mse_row(model: RBM, train_images: torch.Tensor, test_images: torch.Tensor, batch_size: int = 128,
            seed: int = 0) -> dict[str, float]:
    """One model's row of the homework's MSE table: ``train_mse`` / ``test_mse`` (the CD-k chain's
    reconstruction, what Figure 2 shows) and ``train_mse_meanfield`` / ``test_mse_meanfield``, each
    :func:`reconstruction_mse` of the whole split (chain draws seeded with ``seed`` per split)."""
    train = reconstruction_mse(model, train_images, batch_size, seed)
    test = reconstruction_mse(model, test_images, batch_size, seed)
    return {"train_mse": train["chain"], "test_mse": test["chain"],
            "train_mse_meanfield": train["meanfield"], "test_mse_meanfield": test["meanfield"]}


@dataclass(frozen=True)
class MSETable:
    """The numbers of Problem 2.2's MSE table: a row (:data:`ROW_KEYS`) per number of hidden units M, and the
    PCA baseline with M components on the train and test splits. All per pixel, [0, 1] units. Its text and
    its ``metrics.json`` record: :mod:`hw5.reports.rbm`."""

    rows: dict[int, dict[str, float]]
    pca_train: dict[int, float]
    pca_test: dict[int, float]

    def meanfield_over_pca(self) -> dict[int, float]:
        """Test MSE of the mean-field reconstruction divided by PCA's with as many components, per M."""
        return {m: row["test_mse_meanfield"] / self.pca_test[m] for m, row in sorted(self.rows.items())}

    def train_test_gaps(self) -> dict[int, dict[str, float]]:
        """Test MSE minus train MSE per M, of the ``chain``, the ``meanfield`` reconstruction and ``pca``."""
        return {m: {"chain": row["test_mse"] - row["train_mse"],
                    "meanfield": row["test_mse_meanfield"] - row["train_mse_meanfield"],
                    "pca": self.pca_test[m] - self.pca_train[m]} for m, row in sorted(self.rows.items())}


def mse_table(models: Mapping[int, RBM], train_images: torch.Tensor, test_images: torch.Tensor,
              batch_size: int = 128, seed: int = 0) -> MSETable:
    """The whole MSE table of ``models`` (keyed by M): :func:`mse_row` of each, and the PCA baseline
    (:func:`pca_reconstruction_mse` fitted on ``train_images``) with the same numbers of components."""
    ms = sorted(models)
    rows = {m: mse_row(models[m], train_images, test_images, batch_size, seed) for m in ms}
    return MSETable(rows, pca_reconstruction_mse(train_images, train_images, ms),
                    pca_reconstruction_mse(train_images, test_images, ms))


def training_times(histories: Mapping[int, Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """Per M, from :func:`hw5.training.rbm.train_rbm`'s histories: ``epochs``, ``train_seconds`` (wall clock of
    the training steps), ``train_cpu_seconds`` (CPU time of the process, all threads) and ``eval_seconds``
    (the per-epoch test evaluations; 0 when there were none)."""
    return {m: {"epochs": len(h["loss"]), "train_seconds": sum(h["epoch_seconds"]),
                "train_cpu_seconds": sum(h["epoch_cpu_seconds"]), "eval_seconds": sum(h.get("eval_seconds", []))}
            for m, h in sorted(histories.items())}


def mse_by_gibbs_steps(model: RBM, images: torch.Tensor, steps: Sequence[int], batch_size: int = 128,
                       seed: int = 0) -> dict[int, float]:
    """MSE of the k-step chain's reconstruction E[v | h_{k-1}] of ``images`` for each k in ``steps``
    (same batches and seed for every k; k = the model's own k gives :func:`reconstruction_mse`'s chain)."""
    return {k: reconstruction_mse(model, images, batch_size, seed, gibbs_steps=k)["chain"] for k in steps}


@torch.no_grad()
def hidden_unit_statistics(model: RBM, images: torch.Tensor, batch_size: int = 128, low: float = 0.1,
                           high: float = 0.9) -> dict[str, float]:
    """How decided the hidden units are on ``images`` and how large the filters are.

    ``undecided``: the fraction of the probabilities p(h_j = 1 | v) (all units, all images, each batch of
    ``batch_size`` standardised as in training) strictly between ``low`` and ``high``; ``filter_norm``:
    the mean over hidden units j of ||W_j||, the Euclidean norm of unit j's 784 weights."""
    device = model_device(model)
    x_all = to_unit(images, device).flatten(1).to(model.W.dtype)  # (N, 1, 28, 28) -> (N, 784)
    undecided = torch.zeros((), dtype=torch.float64, device=device)
    with eval_mode(model):  # exact fp32 (no autocast, no TF32)
        for start in range(0, x_all.shape[0], batch_size):
            p = model.p_h_given_v(standardize(x_all[start:start + batch_size])[0])  # (B, F)
            undecided += ((p > low) & (p < high)).sum()
    return {"undecided": float(undecided) / (x_all.shape[0] * model.hidden),
            "filter_norm": float(model.W.norm(dim=1).mean())}


@torch.no_grad()
def chain_seconds(model: RBM, images: torch.Tensor, collapsed: bool, repeats: int = 50,
                  gibbs_steps: int | None = None) -> float:
    """Seconds per call of :meth:`RBM.gibbs_chain` on the first batch of ``images`` (all of them: pass
    e.g. 128), plain (``collapsed=False``) or collapsed, best of three rounds of ``repeats`` calls."""
    v = standardize(to_unit(images, model_device(model)).flatten(1).to(model.W.dtype))[0]
    generator = torch.Generator(device=v.device).manual_seed(0)  # a timing: draws where the chain runs
    sync = (lambda: torch.cuda.synchronize(v.device)) if v.device.type == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(3):
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            model.gibbs_chain(v, k=gibbs_steps, generator=generator, collapsed=collapsed)
        sync()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def derivation_checks(seed: int = 0) -> dict[str, float]:
    """Problem 2.1's results against brute force on a tiny float64 GB-RBM (D = 3, F = 4, random parameters,
    sigma = (0.5, 1.3, 2)); returns the largest absolute difference of each check.

    * p(h_j = 1 | v) = sigmoid(a_j(v)) against the marginal of exp(-E(v, h)) over all 2^F hidden states;
    * FE(v) = quadratic - sum_j softplus(a_j(v)) against -log sum_h exp(-E(v, h));
    * p(v_i = x | h) = N(x; b_i + sigma_i sum_j W_ij h_j, sigma_i^2) against exp(-E(v, h)) as a function of
      v_i alone (the other visibles held fixed, which the factorisation over i allows), normalised by
      numerical integration (trapezoid rule on [-25, 25]), for every i and every h.
    """
    gen = torch.Generator().manual_seed(seed)
    tiny = RBM(RBMConfig(visible=3, hidden=4, gibbs_steps=1, sigma=(0.5, 1.3, 2.0))).double()
    with torch.no_grad():
        for param in tiny.parameters():
            param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64))
    hs = torch.tensor([[(n >> j) & 1 for j in range(4)] for n in range(16)], dtype=torch.float64)  # all 2^4 h
    v = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        unnorm = torch.exp(-torch.stack([tiny.energy(row.expand(16, 3), hs) for row in v]))  # (5, 16)
        p_h = (tiny.p_h_given_v(v) - unnorm @ hs / unnorm.sum(1, keepdim=True)).abs().max()
        fe = (tiny.free_energy(v, reduction="none") + unnorm.sum(1).log()).abs().max()
        x = torch.linspace(-25, 25, 20001, dtype=torch.float64)
        p_v = torch.zeros((), dtype=torch.float64)
        for i in range(3):
            grid = v[0].repeat(len(x), 1)
            grid[:, i] = x  # vary v_i, hold the other visibles at v[0]'s values
            for h in hs:
                w = torch.exp(-tiny.energy(grid, h.expand(len(x), 4)))
                normal = torch.distributions.Normal(tiny.mean_v_given_h(h[None])[0, i], tiny.sigma[i])
                p_v = torch.maximum(p_v, (w / torch.trapezoid(w, x) - normal.log_prob(x).exp()).abs().max())
    return {"p(h_j=1|v) = sigmoid(alpha_j + sum_i W_ij v_i / sigma_i), against the sum over 2^F states": float(p_h),
            "p(v_i=x|h) = N(x; b_i + sigma_i sum_j W_ij h_j, sigma_i^2), against exp(-E) / its integral": float(p_v),
            "FE(v) = sum_i (v_i-b_i)^2/(2 sigma_i^2) - sum_j softplus(a_j(v)), against -log sum_h exp(-E)": float(fe)}
