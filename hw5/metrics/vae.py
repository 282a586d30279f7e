"""Problem 3's evaluation: ELBO and importance-weighted likelihood bounds, latent codes, t-SNE (cached),
and what the 2-D maps show in numbers (k-NN class accuracy, silhouette, a linear probe, active units).

Likelihood bounds are per image, in nats, on the same Bernoulli likelihood the models are trained with
(pixel values in [0, 1] as targets). For the C-VAE they bound the class-conditional log p(x | c).
Nothing here trains a generative model or writes anything but the t-SNE cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
import torch.nn.functional as F

from ..data import to_unit
from ..files import atomic_write
from ..models.vae import VAE, bernoulli_nll, gaussian_kl, log_normal


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]; float input is passed through."""
    return to_unit(images) if images.dtype == torch.uint8 else images


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def negative_elbo(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int = 1, seed: int = 0,
                  batch_size: int = 1000) -> dict[str, float]:
    """Mean per-image ``neg_elbo`` = ``recon`` + ``kl`` (nats), the reconstruction term averaged over
    ``samples`` draws z ~ q(z | x[, c]) per image (the KL term is exact)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    model.eval()
    device = _device(model)
    gen = torch.Generator(device=device).manual_seed(seed)
    recon_sum = kl_sum = 0.0
    for i in range(0, images.shape[0], batch_size):
        x, c = _unit(images[i:i + batch_size].to(device)), labels[i:i + batch_size].to(device)
        mu, logvar = model.encode(x, c)
        kl_sum += gaussian_kl(mu, logvar).sum().item()
        for _ in range(samples):
            recon_sum += bernoulli_nll(model.decode(model.reparameterize(mu, logvar, gen), c), x).sum().item() / samples
    n = images.shape[0]
    return {"neg_elbo": (recon_sum + kl_sum) / n, "recon": recon_sum / n, "kl": kl_sum / n}


@torch.inference_mode()
def importance_log_weights(model: VAE, x: torch.Tensor, c: torch.Tensor, k: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_i = log p(x | z_i[, c]) + log p(z_i) - log q(z_i | x[, c]) for k draws z_i ~ q: (k, B).

    log p(x | z) = sum_j [x_j l_j - softplus(l_j)], with the x.l term done as one batched product.
    """
    model.eval()
    b = x.shape[0]
    x = x.reshape(b, -1)  # (B, 1, 28, 28) -> (B, 784)
    mu, logvar = model.encode(x, c)
    eps = torch.randn((k, b, mu.shape[1]), device=x.device, generator=generator)
    z = mu + eps * torch.exp(0.5 * logvar)  # (k, B, M)
    c_rep = None if c is None else c.repeat(k)  # row i * B + j is image j's class, matching z's flattening
    logits = model.decode(z.reshape(k * b, -1), c_rep).view(k, b, -1)  # (k*B, 784) -> (k, B, 784)
    log_px = (logits * x).sum(-1) - F.softplus(logits).sum(-1)  # (k, B)
    return log_px + log_normal(z) - log_normal(z, mu, logvar)


@torch.inference_mode()
def iwae_nll(model: VAE, images: torch.Tensor, labels: torch.Tensor, k: int, seed: int = 0,
             rows_per_chunk: int = 16384, return_per_image: bool = False) -> float | tuple[float, torch.Tensor]:
    """Mean importance-weighted estimate of -log p(x[| c]) (Burda et al., 2016):

        log p(x) >= L_k = E[log (1/k) sum_i w_i],   w_i = p(x, z_i) / q(z_i | x),  z_i ~ q(z | x),

    computed as logsumexp_i(log w_i) - log k. L_1 is the ELBO, L_k grows with k and tends to log p(x),
    so -L_k (reported) is an upper bound on the NLL that tightens with k. Images are processed in chunks
    of about ``rows_per_chunk`` decoder rows (k * images), so k = 1000 on 10,000 images fits in memory.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    device = _device(model)
    gen = torch.Generator(device=device).manual_seed(seed)
    per_chunk = max(1, rows_per_chunk // k)
    sub_k = min(k, rows_per_chunk)  # for k > rows_per_chunk, draw the k samples of one image in parts
    out = []
    for i in range(0, images.shape[0], per_chunk):
        x, c = _unit(images[i:i + per_chunk].to(device)), labels[i:i + per_chunk].to(device)
        logw = torch.cat([importance_log_weights(model, x, c, min(sub_k, k - j), gen) for j in range(0, k, sub_k)])
        out.append(torch.logsumexp(logw, dim=0) - math.log(k))  # (B,)
    log_p = torch.cat(out)
    nll = -log_p.mean().item()
    return (nll, -log_p) if return_per_image else nll


def class_log_likelihoods(model: VAE, images: torch.Tensor, k: int, seed: int = 0,
                          rows_per_chunk: int = 16384) -> torch.Tensor:
    """IWAE estimates of log p(x | c) for every image and every class c: (N, n_classes), for a C-VAE.

    With a uniform p(c) they give the C-VAE's own marginal  log p(x) = logsumexp_c log p(x | c) - log 10
    (comparable with the VAE's log p(x), unlike log p(x | c)) and its Bayes classifier
    argmax_c p(c | x) = argmax_c log p(x | c).
    """
    if not model.conditional:
        raise ValueError("class-conditional likelihoods need a C-VAE (model.conditional is False)")
    columns = []
    for c in range(model.n_classes):
        labels = torch.full((images.shape[0],), c, dtype=torch.long)
        _, nll = iwae_nll(model, images, labels, k, seed=seed + c, rows_per_chunk=rows_per_chunk,
                          return_per_image=True)
        columns.append(-nll)
    return torch.stack(columns, dim=1)  # (N, 10)


@torch.inference_mode()
def encode_mean(model: VAE, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> np.ndarray:
    """The posterior means mu(x[, c]) of ``images``, (N, z_dim) float32 NumPy."""
    model.eval()
    device = _device(model)
    return torch.cat([model.encode(_unit(images[i:i + batch_size].to(device)), labels[i:i + batch_size].to(device))[0]
                      for i in range(0, images.shape[0], batch_size)]).cpu().numpy()


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


def tsne_embedding(features: np.ndarray, seed: int = 0, perplexity: float = 30.0, n_jobs: int | None = None,
                   cache_dir: str | Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """``sklearn.manifold.TSNE`` of ``features`` to 2-D (Barnes-Hut, PCA initialisation, ``random_state=seed``).

    With ``cache_dir``, the embedding is stored under a key that hashes the input bytes, the t-SNE
    settings and sklearn's version, and a later call with the same key loads it. Returns the (N, 2)
    embedding and ``{"seconds", "cached", "key"}``; ``seconds`` is the time of the computation that made it.
    """
    from sklearn.manifold import TSNE

    features = np.ascontiguousarray(features, dtype=np.float32)
    settings = {"n_components": 2, "perplexity": perplexity, "init": "pca", "learning_rate": "auto",
                "method": "barnes_hut", "random_state": seed}
    digest = hashlib.sha256(features.tobytes())
    digest.update(json.dumps({**settings, "shape": features.shape, "sklearn": sklearn.__version__},
                             sort_keys=True).encode())
    key = digest.hexdigest()[:16]
    path = Path(cache_dir) / f"tsne-{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path) as cached:
            return cached["embedding"], {"seconds": float(cached["seconds"]), "cached": True, "key": key}
    start = time.perf_counter()
    embedding = TSNE(**settings, n_jobs=n_jobs).fit_transform(features).astype(np.float32)
    seconds = time.perf_counter() - start
    if path is not None:
        atomic_write(path, lambda fh: np.savez(fh, embedding=embedding, seconds=seconds))
    return embedding, {"seconds": seconds, "cached": False, "key": key}


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour class accuracy: each point is given the majority class of its k
    nearest other points (Euclidean; ties go to the class of the nearer neighbours)."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
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


@torch.inference_mode()
def conditional_samples(model: VAE, n_per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` prior samples of every class from a C-VAE: images (10 n, 1, 28, 28) in [0, 1] and
    the classes asked for (10 n,)."""
    if not model.conditional:
        raise ValueError("conditional samples need a C-VAE (model.conditional is False)")
    device = _device(model)
    gen = torch.Generator(device=device).manual_seed(seed)
    classes = torch.arange(model.n_classes, device=device).repeat_interleave(n_per_class)
    return model.sample(classes.shape[0], classes, generator=gen), classes


@torch.inference_mode()
def decode_under_all_classes(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """E[x | z, c] for every z and every class c: (n_z, n_classes, 1, 28, 28) in [0, 1]."""
    n, m = z.shape
    classes = torch.arange(model.n_classes, device=z.device).repeat(n)  # (n * 10,): 0..9, 0..9, ...
    logits = model.decode(z.repeat_interleave(model.n_classes, dim=0), classes)  # (n*10, 784)
    return torch.sigmoid(logits).view(n, model.n_classes, 1, 28, 28)  # (n*10, 784) -> (n, 10, 1, 28, 28)


@torch.inference_mode()
def interpolate(model: VAE, x_a: torch.Tensor, x_b: torch.Tensor, c_a: int, c_b: int, steps: int = 10) -> torch.Tensor:
    """Decoded means along the straight line between the posterior means of two images:
    z_t = (1 - t) mu_a + t mu_b, t in [0, 1] (``steps`` points); for the C-VAE the one-hot class is
    interpolated the same way. Returns (steps, 1, 28, 28) in [0, 1]."""
    model.eval()
    device = _device(model)
    x = _unit(torch.stack([x_a, x_b]).to(device))
    c = torch.tensor([c_a, c_b], device=device)
    mu, _ = model.encode(x, c)
    t = torch.linspace(0.0, 1.0, steps, device=device)[:, None]  # (steps, 1)
    z = (1 - t) * mu[0] + t * mu[1]  # (steps, M)
    onehot = F.one_hot(c, model.n_classes).float()
    c_t = (1 - t) * onehot[0] + t * onehot[1]  # (steps, 10); ignored by the VAE
    return torch.sigmoid(model.decode(z, c_t)).view(steps, 1, 28, 28)
