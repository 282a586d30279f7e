"""Problem 3's evaluation: ELBO and importance-weighted likelihood bounds, latent codes, t-SNE (cached),
and what the 2-D maps show in numbers (k-NN class accuracy, silhouette, a linear probe, active units).

Likelihood bounds are per image, in nats, on the same Bernoulli likelihood the models are trained with
(pixel values in [0, 1] as targets). For the C-VAE they bound the class-conditional log p(x | c).
Nothing here trains a generative model or writes a file (:mod:`hw5.output` caches the t-SNE maps). Every
function takes images and labels on any device and computes on the model's; results meant for sklearn
and plots are NumPy arrays on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np
import sklearn
import torch
import torch.nn.functional as F

from ..data import to_unit
from ..models.vae import VAE, bernoulli_nll, gaussian_kl, log_normal
from ..utils import eval_mode, model_device
from .common import accuracy


@torch.inference_mode()
def elbo_terms(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int = 1, seed: int = 0,
               batch_size: int = 1000) -> torch.Tensor:
    """Mean per-image (neg_elbo, recon, kl) in nats, a float64 tensor of 3 values on the model's device (no
    host synchronisation: the training loop validates with it every epoch).

    recon = -E_q[log p(x | z[, c])] averaged over ``samples`` draws z = mu + sigma * eps per image; kl =
    KL(q(z | x[, c]) || p(z)) in closed form; neg_elbo = recon + kl. The draws come from a generator on the
    model's device seeded with ``seed``, so every call with the same arguments sees the same eps (epochs are
    compared on the same draw). ``images`` (uint8 or [0, 1] floats) and ``labels`` may be on any device.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    if c_all.shape[0] != x_all.shape[0]:
        raise ValueError(f"{x_all.shape[0]} images but {c_all.shape[0]} labels")
    gen = torch.Generator(device=device).manual_seed(seed)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with eval_mode(model):
        for i in range(0, x_all.shape[0], batch_size):
            x, c = x_all[i:i + batch_size], c_all[i:i + batch_size]
            mu, logvar = model.encode(x, c)
            recon = sum(bernoulli_nll(model.decode(model.reparameterize(mu, logvar, gen), c), x).sum()
                        for _ in range(samples)) / samples
            sums += torch.stack([recon, gaussian_kl(mu, logvar).sum()]).double()
    recon, kl = sums / x_all.shape[0]
    return torch.stack([recon + kl, recon, kl])


def negative_elbo(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int = 1, seed: int = 0,
                  batch_size: int = 1000) -> dict[str, float]:
    """:func:`elbo_terms` as Python floats: ``neg_elbo`` = ``recon`` + ``kl`` (nats per image)."""
    return dict(zip(("neg_elbo", "recon", "kl"), elbo_terms(model, images, labels, samples, seed,
                                                            batch_size).tolist()))


@torch.inference_mode()
def importance_log_weights(model: VAE, x: torch.Tensor, c: torch.Tensor | None, samples: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_i = log p(x | z_i[, c]) + log p(z_i) - log q(z_i | x[, c]) for ``samples`` draws z_i ~ q:
    (samples, B), on the device of ``x`` (which must be the model's; [0, 1] floats (B, 1, 28, 28)).

    log p(x | z) = sum_j [x_j l_j - softplus(l_j)], with the x.l term done as one batched product.
    """
    k, b = samples, x.shape[0]
    x = x.reshape(b, -1)  # (B, 1, 28, 28) -> (B, 784)
    mu, logvar = model.encode(x, c)
    eps = torch.randn((k, b, mu.shape[1]), device=x.device, generator=generator)
    z = mu + eps * torch.exp(0.5 * logvar)  # (k, B, M)
    c_rep = None if c is None else c.repeat(k)  # row i * B + j is image j's class, matching z's flattening
    logits = model.decode(z.reshape(k * b, -1), c_rep).view(k, b, -1)  # (k*B, 784) -> (k, B, 784)
    log_px = (logits * x).sum(-1) - F.softplus(logits).sum(-1)  # (k, B)
    return log_px + log_normal(z) - log_normal(z, mu, logvar)


@torch.inference_mode()
def iwae_log_likelihoods(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int, seed: int = 0,
                         rows_per_chunk: int = 16384) -> torch.Tensor:
    """Per-image importance-weighted lower bounds L_k on log p(x[| c]) (Burda et al., 2016), k = ``samples``:

        log p(x) >= L_k = E[log (1/k) sum_i w_i],   w_i = p(x, z_i) / q(z_i | x),  z_i ~ q(z | x),

    computed as logsumexp_i(log w_i) - log k; (N,) on the model's device. L_1 is the ELBO, L_k grows with k
    and tends to log p(x). Images are processed in chunks of about ``rows_per_chunk`` decoder rows
    (k * images), so k = 1000 on 10,000 images fits in memory. Inputs may be on any device.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples (importance samples per image) must be a positive integer, got {samples!r}")
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    per_chunk = max(1, rows_per_chunk // samples)
    part = min(samples, rows_per_chunk)  # for k > rows_per_chunk, draw one image's samples in parts
    out = []
    with eval_mode(model):
        for i in range(0, x_all.shape[0], per_chunk):
            x, c = x_all[i:i + per_chunk], c_all[i:i + per_chunk]
            logw = torch.cat([importance_log_weights(model, x, c, min(part, samples - j), gen)
                              for j in range(0, samples, part)])
            out.append(torch.logsumexp(logw, dim=0) - math.log(samples))  # (B,)
    return torch.cat(out)


def iwae_nll(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int, seed: int = 0,
             rows_per_chunk: int = 16384) -> float:
    """The mean of -L_k over ``images`` (:func:`iwae_log_likelihoods`), nats per image: an upper bound on
    -log p(x[| c]) under the model's Bernoulli likelihood that tightens as ``samples`` grows."""
    return -iwae_log_likelihoods(model, images, labels, samples, seed, rows_per_chunk).mean().item()


def class_log_likelihoods(model: VAE, images: torch.Tensor, samples: int, seed: int = 0,
                          rows_per_chunk: int = 16384) -> torch.Tensor:
    """IWAE estimates of log p(x | c) for every image and every class c of a C-VAE: (N, n_classes) on the
    model's device.

    With a uniform p(c) they give the C-VAE's own marginal  log p(x) = logsumexp_c log p(x | c) - log 10
    (comparable with the VAE's log p(x), unlike log p(x | c)) and its Bayes classifier
    argmax_c p(c | x) = argmax_c log p(x | c) (:func:`marginal_report`).
    """
    if not model.conditional:
        raise ValueError("class-conditional likelihoods need a C-VAE (model.conditional is False)")
    columns = [iwae_log_likelihoods(model, images, torch.full((images.shape[0],), c, dtype=torch.long), samples,
                                    seed=seed + c, rows_per_chunk=rows_per_chunk) for c in range(model.n_classes)]
    return torch.stack(columns, dim=1)  # (N, 10)


def marginal_report(class_ll: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """From :func:`class_log_likelihoods` (N, C): ``marginal_nll`` = -mean_x [logsumexp_c log p(x | c) -
    log C] (uniform p(c)), and ``bayes_accuracy`` of argmax_c log p(x | c) against ``labels`` (any device)."""
    log_px = torch.logsumexp(class_ll, dim=1) - math.log(class_ll.shape[1])
    return {"marginal_nll": -log_px.mean().item(), "bayes_accuracy": accuracy(class_ll, labels)}


@torch.inference_mode()
def encode_mean(model: VAE, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> np.ndarray:
    """The posterior means mu(x[, c]) of ``images`` (any device), as (N, z_dim) float32 NumPy on the CPU
    (for sklearn and plots)."""
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    with eval_mode(model):
        means = [model.encode(x_all[i:i + batch_size], c_all[i:i + batch_size])[0]
                 for i in range(0, x_all.shape[0], batch_size)]
    return torch.cat(means).cpu().numpy()


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Latent dimensions d with Cov_x(E_q[z_d]) = Var_x(mu_d) > ``threshold`` (Burda et al., 2016)."""
    return int((np.var(mu, axis=0) > threshold).sum())


def class_variance_share(features: np.ndarray, labels: np.ndarray) -> float:
    """The share of the features' total variance that lies between the class means (a multivariate eta^2):

        sum_d Var_c(E[f_d | c]) / sum_d Var(f_d)   (class-frequency weighted), in [0, 1];

    1 when every class is a single point, 0 when all classes have the same mean.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    centred = features - features.mean(0)
    classes, counts = np.unique(labels, return_counts=True)
    means = np.stack([centred[labels == c].mean(0) for c in classes])  # (C, D)
    between = (counts[:, None] * means ** 2).sum() / len(labels)
    return float(between / (centred ** 2).mean(0).sum())


def class_relative(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``values`` minus the mean of their class: what is left of a property once the class is known."""
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
    means = np.zeros(int(labels.max()) + 1)
    np.add.at(means, labels, values)
    return values - (means / np.bincount(labels, minlength=len(means)))[labels]


def linear_r2(features: np.ndarray, target: np.ndarray, folds: int = 2) -> float:
    """Cross-validated R^2 of a least-squares linear map features -> target (1 = the features hold the
    target linearly, 0 = no better than its mean); ``folds`` contiguous folds, no shuffling."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score

    return float(cross_val_score(LinearRegression(), features, target, cv=folds, scoring="r2").mean())


TSNE_SETTINGS = {"n_components": 2, "init": "pca", "learning_rate": "auto", "method": "barnes_hut"}


def tsne_cache_key(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> str:
    """A key naming one :func:`tsne_embedding`: a hash of the input bytes, the t-SNE settings, the seed and
    sklearn's version (for :func:`hw5.output.cached_array`)."""
    features = np.ascontiguousarray(features, dtype=np.float32)
    digest = hashlib.sha256(features.tobytes())
    digest.update(json.dumps({**TSNE_SETTINGS, "perplexity": perplexity, "random_state": seed,
                              "shape": features.shape, "sklearn": sklearn.__version__}, sort_keys=True).encode())
    return f"tsne-{digest.hexdigest()[:16]}"


def tsne_embedding(features: np.ndarray, seed: int = 0, perplexity: float = 30.0, n_jobs: int | None = None
                   ) -> tuple[np.ndarray, float]:
    """``sklearn.manifold.TSNE`` of ``features`` to 2-D (Barnes-Hut, PCA initialisation, ``random_state=seed``):
    the (N, 2) float32 embedding and the seconds it took."""
    from sklearn.manifold import TSNE

    start = time.perf_counter()
    features = np.ascontiguousarray(features, dtype=np.float32)
    embedding = TSNE(**TSNE_SETTINGS, perplexity=perplexity, random_state=seed,
                     n_jobs=n_jobs).fit_transform(features)
    return embedding.astype(np.float32), time.perf_counter() - start


def knn_accuracy(features: np.ndarray, labels: np.ndarray, neighbours: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour class accuracy, k = ``neighbours``: each point is given the majority
    class of its k nearest other points (Euclidean; ties go to the class of the nearer neighbours)."""
    from sklearn.neighbors import NearestNeighbors

    labels, k = np.asarray(labels), neighbours
    idx = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features, return_distance=False)
    # drop each point itself (it is its own nearest neighbour unless duplicated: then drop one copy)
    own = idx == np.arange(len(labels))[:, None]
    own[~own.any(1), -1] = True  # a duplicate took the point's place: drop the farthest instead
    neighbours = idx[~own].reshape(len(labels), k)
    votes = np.zeros((len(labels), int(labels.max()) + 1))
    weight = 1.0 + 1e-3 * (k - np.arange(k)) / k  # one vote each; a nearer neighbour breaks ties
    np.add.at(votes, (np.arange(len(labels))[:, None], labels[neighbours]), weight)
    return float((votes.argmax(1) == labels).mean())


def silhouette(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (b - a) / max(a, b) with the classes as clusters, in [-1, 1]: near 1
    when each class is a tight, separated cluster, near 0 when classes overlap."""
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(features, labels))


def linear_probe(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, seed: int = 0) -> float:
    """Test accuracy of a multinomial logistic regression fit on standardised ``train_features``: how
    much class information the features hold *linearly*."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train_features, train_labels)
    return float(probe.score(test_features, test_labels))
