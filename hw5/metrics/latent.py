"""Statistics of a latent space that any model family can use: given features f (N, D) of N items (e.g. a
VAE's posterior means) and their classes y (N,), how much of the class (and of other properties) they hold,
and their 2-D t-SNE map.

    active units          #{d : Var_n(f_nd) > threshold}
    class-variance share  between-class variance / total variance (a multivariate eta^2)
    k-NN accuracy         leave-one-out majority vote of the k nearest other items
    silhouette            mean (b - a) / max(a, b), the classes as clusters
    logistic read-out     test accuracy of a multinomial logistic regression fit on training features
    linear R^2            cross-validated R^2 of a least-squares map features -> a property

Inputs are NumPy arrays, torch tensors on any device (copied to the host: :func:`as_numpy`) or anything
``np.asarray`` takes; outputs are Python floats or NumPy arrays; only
:func:`style_properties` reads images. Nothing here trains a generative model or writes a file
(:func:`hw5.output.cached_array` stores the t-SNE maps under :func:`tsne_cache_key`).
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import sklearn
import torch

from ..data import to_unit


def as_numpy(values: np.ndarray | torch.Tensor, dtype: type | None = None) -> np.ndarray:
    """``values`` as a NumPy array: a tensor (on any device, e.g. a GPU's posterior means) is detached and
    copied to the host; anything else goes through ``np.asarray``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Latent dimensions d with Cov_x(E_q[z_d]) = Var_x(mu_d) > ``threshold`` (Burda et al., 2016)."""
    return int((np.var(as_numpy(mu), axis=0) > threshold).sum())


def class_variance_share(features: np.ndarray, labels: np.ndarray) -> float:
    """The share of the features' total variance that lies between the class means (a multivariate eta^2):

        sum_d Var_c(E[f_d | c]) / sum_d Var(f_d)   (class-frequency weighted), in [0, 1];

    1 when every class is a single point, 0 when all classes have the same mean.
    """
    features = as_numpy(features, dtype=np.float64)
    labels = as_numpy(labels)
    centred = features - features.mean(0)
    classes, counts = np.unique(labels, return_counts=True)
    means = np.stack([centred[labels == c].mean(0) for c in classes])  # (C, D)
    between = (counts[:, None] * means ** 2).sum() / len(labels)
    return float(between / (centred ** 2).mean(0).sum())


def class_relative(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``values`` minus the mean of their class: what is left of a property once the class is known."""
    values, labels = as_numpy(values, dtype=np.float64), as_numpy(labels)
    means = np.zeros(int(labels.max()) + 1)
    np.add.at(means, labels, values)
    return values - (means / np.bincount(labels, minlength=len(means)))[labels]


def linear_r2(features: np.ndarray, target: np.ndarray, folds: int = 2) -> float:
    """Cross-validated R^2 of a least-squares linear map features -> target (1 = the features hold the
    target linearly, 0 = no better than its mean); ``folds`` contiguous folds, no shuffling."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score

    return float(cross_val_score(LinearRegression(), as_numpy(features), as_numpy(target), cv=folds,
                                 scoring="r2").mean())


# -- t-SNE: the 2-D maps and the key they are cached under ---------------------------------------------------
TSNE_SETTINGS = {"n_components": 2, "init": "pca", "learning_rate": "auto", "method": "barnes_hut"}


def tsne_cache_key(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> str:
    """A key naming one :func:`tsne_embedding`: a hash of the input bytes, the t-SNE settings, the seed and
    sklearn's version (for :func:`hw5.output.cached_array`)."""
    features = np.ascontiguousarray(as_numpy(features), dtype=np.float32)
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
    features = np.ascontiguousarray(as_numpy(features), dtype=np.float32)
    embedding = TSNE(**TSNE_SETTINGS, perplexity=perplexity, random_state=seed,
                     n_jobs=n_jobs).fit_transform(features)
    return embedding.astype(np.float32), time.perf_counter() - start


# -- class structure ---------------------------------------------------------------------------------------------
def knn_accuracy(features: np.ndarray, labels: np.ndarray, neighbours: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour class accuracy, k = ``neighbours``: each point is given the majority
    class of its k nearest other points (Euclidean; ties go to the class of the nearer neighbours)."""
    from sklearn.neighbors import NearestNeighbors

    features, labels, k = as_numpy(features), as_numpy(labels), neighbours
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

    return float(silhouette_score(as_numpy(features), as_numpy(labels)))


def logistic_readout_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                              test_labels: np.ndarray, seed: int = 0) -> float:
    """Test accuracy of an sklearn read-out: a multinomial logistic regression (L2 penalty C = 1, lbfgs,
    ``random_state=seed``) fit on the standardised ``train_features``, scored on ``test_features``: how
    much class information the features hold *linearly*.

    Not Problem 1's linear probe (the torch :class:`hw5.models.classifier.LinearProbe`, fitted by
    :mod:`hw5.training.probe`); the records and tables keep the name ``linear_probe_mu`` for this number.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    readout = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    readout.fit(as_numpy(train_features), as_numpy(train_labels))
    return float(readout.score(as_numpy(test_features), as_numpy(test_labels)))


def manifold_statistics(mu: np.ndarray, labels: np.ndarray, train_mu: np.ndarray, train_labels: np.ndarray,
                        embedding: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """How much of the class the latent codes ``mu`` (N, M) of test images hold, and (with ``embedding``,
    their 2-D t-SNE map) how much of it the map shows: ``knn_acc_mu``, ``silhouette_mu``, ``linear_probe_mu``
    (:func:`logistic_readout_accuracy` fit on ``train_mu``), ``class_variance_share_mu``, ``active_units``;
    and ``knn_acc_2d``, ``silhouette_2d`` when ``embedding`` is given."""
    mu, labels, train_mu, train_labels = as_numpy(mu), as_numpy(labels), as_numpy(train_mu), as_numpy(train_labels)
    out = {"knn_acc_mu": knn_accuracy(mu, labels), "silhouette_mu": silhouette(mu, labels),
           "linear_probe_mu": logistic_readout_accuracy(train_mu, train_labels, mu, labels, seed=seed),
           "class_variance_share_mu": class_variance_share(mu, labels), "active_units": active_units(mu)}
    if embedding is not None:
        embedding = as_numpy(embedding)
        out.update(knn_acc_2d=knn_accuracy(embedding, labels), silhouette_2d=silhouette(embedding, labels))
    return out


# -- style: what the codes hold beyond the class -------------------------------------------------------------
def style_properties(images: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image properties of style: ``brightness`` (mean pixel value in [0, 1]), and brightness and
    ``width`` (columns holding a pixel above 0.2) relative to the mean of the image's class."""
    x = to_unit(images).cpu().numpy()[:, 0]  # (N, 28, 28), for NumPy
    y = labels.cpu().numpy()
    brightness = x.mean(axis=(1, 2))
    width = (x > 0.2).any(axis=1).sum(axis=1)
    return {"brightness": brightness, "brightness - class mean": class_relative(brightness, y),
            "width - class mean": class_relative(width, y)}


def style_r2(mu: np.ndarray, properties: dict[str, np.ndarray]) -> dict[str, float]:
    """:func:`linear_r2` of each property from the codes ``mu``."""
    mu = as_numpy(mu)
    return {name: linear_r2(mu, values) for name, values in properties.items()}
