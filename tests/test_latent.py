"""Latent-space statistics (:mod:`hw5.metrics.latent`) against brute force and hand computations: k-NN
accuracy, silhouette, the logistic read-out, the class share of the variance, class-relative values, linear
R^2, active units, the t-SNE cache key, the manifold statistics and the style properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw5 import data
from hw5.metrics.latent import (active_units, class_relative, class_variance_share, knn_accuracy, linear_r2,
                                logistic_readout_accuracy, manifold_statistics, silhouette, style_properties,
                                style_r2, tsne_cache_key, tsne_embedding)
from hw5.metrics.vae import encode_mean
from hw5.models.vae import VAEConfig
from hw5.output import cached_array


@pytest.fixture(scope="module")
def fashion():
    """512 training and 256 validation images of Fashion-MNIST's train split (disjoint)."""
    x, y = data.load("FashionMNIST", "train")
    return x[:512], y[:512], x[1000:1256], y[1000:1256]


def test_knn_accuracy_against_brute_force():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(300, 3))
    labels = rng.integers(0, 4, 300)
    labels[feats[:, 0] > 0.5] = 3  # some structure so accuracy is not chance
    got = knn_accuracy(feats, labels, neighbours=5)
    d = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    correct = 0
    for i in range(300):
        nn_idx = np.argsort(d[i])[:5]
        counts = np.bincount(labels[nn_idx], minlength=4).astype(float)
        for rank, j in enumerate(nn_idx):  # ties: the class of the nearer neighbour wins
            counts[labels[j]] += 1e-3 * (5 - rank) / 5
        correct += counts.argmax() == labels[i]
    assert got == pytest.approx(correct / 300)
    separated = np.concatenate([rng.normal(0, 0.1, (50, 2)), rng.normal(10, 0.1, (50, 2))])
    two = np.repeat([0, 1], 50)
    assert knn_accuracy(separated, two) == 1.0 and silhouette(separated, two) > 0.95
    assert logistic_readout_accuracy(separated, two, separated + 0.05, two) == 1.0
    assert class_variance_share(separated, two) > 0.99
    same_mean = np.concatenate([rng.normal(0, 1, (2000, 3)), rng.normal(0, 1, (2000, 3))])
    assert class_variance_share(same_mean, two.repeat(40)) < 0.01
    # against the one-dimensional eta^2 computed by hand
    f, g = np.array([[1.0], [3.0], [10.0], [14.0]]), np.array([0, 0, 1, 1])
    assert class_variance_share(f, g) == pytest.approx(((2 - 7) ** 2 + (12 - 7) ** 2) / 2 / np.var(f))
    rel = class_relative(np.array([1.0, 3.0, 10.0, 14.0]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(rel, [-1, 1, -2, 2])
    x = rng.normal(size=(400, 3))
    assert linear_r2(x, x @ [1.0, -2.0, 0.5] + 3) == pytest.approx(1.0)
    assert linear_r2(x, rng.normal(size=400)) < 0.05
    assert active_units(np.stack([rng.normal(0, 1, 500), rng.normal(0, 0.05, 500)], 1)) == 1


def test_tsne_is_cached_by_input_and_settings(tmp_path):
    feats = np.random.default_rng(0).normal(size=(150, 5)).astype(np.float32)
    def tsne(f, seed):
        key = tsne_cache_key(f, seed, perplexity=10)
        return (key, *cached_array(tmp_path, key, lambda: tsne_embedding(f, seed, perplexity=10)))

    key_a, a, seconds_a, cached_a = tsne(feats, 0)
    key_b, b, seconds_b, cached_b = tsne(feats, 0)
    assert a.shape == (150, 2) and not cached_a and cached_b and key_a == key_b
    assert np.array_equal(a, b) and seconds_b == pytest.approx(seconds_a)
    key_c, _, _, cached_c = tsne(feats, 1)
    key_d, *_ = tsne(feats + 1, 0)
    assert len({key_a, key_c, key_d}) == 3 and not cached_c
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{k}.npz" for k in (key_a, key_c, key_d))


def test_manifold_statistics_gather_the_latent_statistics(fashion):
    x, y, xv, yv = fashion
    torch.manual_seed(0)
    model = VAEConfig(conditional=True).build().eval()
    mu, mu_val = encode_mean(model, x, y), encode_mean(model, xv, yv)
    emb = mu_val[:, :2]
    stats = manifold_statistics(mu_val, yv.numpy(), mu, y.numpy(), embedding=emb, seed=0)
    assert stats["knn_acc_mu"] == knn_accuracy(mu_val, yv.numpy())
    assert stats["silhouette_2d"] == silhouette(emb, yv.numpy())
    assert stats["linear_probe_mu"] == logistic_readout_accuracy(mu, y.numpy(), mu_val, yv.numpy(), seed=0)
    assert stats["active_units"] == active_units(mu_val) and "knn_acc_2d" in stats
    assert "knn_acc_2d" not in manifold_statistics(mu_val, yv.numpy(), mu, y.numpy())


def test_style_properties_are_relative_to_the_class(fashion):
    x, y = fashion[0][:200], fashion[1][:200]
    props = style_properties(x, y)
    brightness = x.float().div(255).mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(props["brightness"], brightness, rtol=1e-5)
    for c in range(10):  # class-relative properties have mean 0 within every class
        assert abs(props["brightness - class mean"][y.numpy() == c].mean()) < 1e-6
        assert abs(props["width - class mean"][y.numpy() == c].mean()) < 1e-9
    r2 = style_r2(np.stack([props["brightness"], np.random.default_rng(0).normal(size=200)], 1), props)
    assert r2["brightness"] == pytest.approx(1.0) and set(r2) == set(props)
