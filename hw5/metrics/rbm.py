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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ..data import to_unit
from ..utils import eval_mode, model_device
from ..models.rbm import RBM, standardize, to_pixels


@torch.no_grad()
def reconstruction_batches(model: RBM, images: torch.Tensor, batch_size: int = 128, seed: int = 0,
                           gibbs_steps: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (x, chain reconstruction, mean-field reconstruction), each (B, 784) in [0, 1], batch by batch.

    ``images``: uint8 or [0, 1] floats on any device; the batches are on the model's device. The chain runs
    ``gibbs_steps`` Gibbs steps (default: the model's, 5 for CD-5)."""
    device = model_device(model)
    x_all = to_unit(images, device).flatten(1).to(model.W.dtype)  # (N, 1, 28, 28) -> (N, 784)
    generator = torch.Generator(device=device).manual_seed(seed)
    with eval_mode(model):
        for start in range(0, x_all.shape[0], batch_size):
            x = x_all[start:start + batch_size]
            v, mean, std = standardize(x)
            chain = model.gibbs_chain(v, k=gibbs_steps, generator=generator)
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
                       gibbs_steps: int | None = None) -> dict[str, float]:
    """Per-pixel MSE in [0, 1] units of the ``chain`` (``gibbs_steps`` steps, default the model's) and
    ``meanfield`` reconstructions of a whole split."""
    sums = None
    count = 0
    for x, chain, meanfield in reconstruction_batches(model, images, batch_size, seed, gibbs_steps):
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
