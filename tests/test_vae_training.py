"""VAE training loop and Problem 3's evaluation helpers, on small real Fashion-MNIST subsets: the loss
falls, resume == uninterrupted, the best-validation weights are returned, configs are validated, and
k-NN accuracy / t-SNE cache / probes behave."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hw5 import data
from hw5.checkpoint import CheckpointError
from hw5.metrics.vae import (active_units, class_relative, class_variance_share, elbo_terms, encode_mean,
                             knn_accuracy, linear_probe, linear_r2, negative_elbo, silhouette, tsne_cache_key,
                             tsne_embedding)
from hw5.output import cached_array
from hw5.models.vae import VAE, vae_loss
from hw5.training.vae import VALIDATION_BATCH, VAEConfig, kl_weight, train_vae


@pytest.fixture(scope="module")
def fashion():
    """512 training and 256 validation images of Fashion-MNIST's train split (disjoint)."""
    x, y = data.load("FashionMNIST", "train")
    return x[:512], y[:512], x[1000:1256], y[1000:1256]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(fashion):
    x, y = data.to_unit(fashion[0][:128]), fashion[1][:128]
    for cfg in (VAEConfig(), VAEConfig(conditional=True)):
        torch.manual_seed(0)
        model = cfg.build()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(25):
            logits, mu, logvar = model(x, y, generator=gen)
            out = vae_loss(logits, x, mu, logvar)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.append(out["loss"].item())
        assert losses[-1] < 0.7 * losses[0]  # ~545 nats at initialisation (all pixels at p = 1/2)


def _strip_times(history):
    return {k: v for k, v in history.items() if k not in ("epoch_seconds", "epoch_cpu_seconds")}


@pytest.mark.parametrize("cfg", [VAEConfig(conditional=True, kl_warmup_epochs=2), VAEConfig(ema_decay=0.9)],
                         ids=["cvae-warmup", "vae-ema"])
def test_resume_after_interruption_reproduces_an_uninterrupted_run(fashion, tmp_path, cfg):
    straight, h_straight = train_vae(*fashion, cfg, epochs=3, show_progress=False)
    train_vae(*fashion, cfg, epochs=2, run_dir=tmp_path, show_progress=False)  # "interrupted" after epoch 2
    resumed, h_resumed = train_vae(*fashion, cfg, epochs=3, run_dir=tmp_path, show_progress=False)
    assert _strip_times(h_resumed) == _strip_times(h_straight)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    # a finished run answers at once from its checkpoint; another config is refused
    again, h_again = train_vae(*fashion, cfg, epochs=3, run_dir=tmp_path, show_progress=False)
    assert h_again["epoch_seconds"] == h_resumed["epoch_seconds"]
    with pytest.raises(CheckpointError, match="was saved with config"):
        train_vae(*fashion, dataclasses.replace(cfg, activation="elu"), epochs=3, run_dir=tmp_path,
                  show_progress=False)


def test_returns_best_validation_weights(fashion):
    cfg = VAEConfig()
    model, h = train_vae(*fashion, cfg, epochs=4, patience=10, show_progress=False)
    assert len(h["val_neg_elbo"]) == len(h["train_neg_elbo"]) == len(h["kl_weight"]) == 4
    assert h["best_val_loss"] == min(h["val_neg_elbo"]) and not h["stopped_early"]
    assert h["best_epoch"] == 1 + int(np.argmin(h["val_neg_elbo"]))
    xv, yv = data.to_unit(fashion[2]), fashion[3]
    again = elbo_terms(model, xv, yv, seed=cfg.seed, batch_size=VALIDATION_BATCH)[0].item()  # the loop's, redone
    assert again == pytest.approx(h["best_val_loss"], abs=1e-3)
    np.testing.assert_allclose(np.add(h["val_recon"], h["val_kl"]), h["val_neg_elbo"], rtol=1e-5)


def test_moving_average_is_what_is_validated_and_returned(fashion, tmp_path):
    from hw5.checkpoint import load_checkpoint

    cfg = VAEConfig(ema_decay=0.99)
    model, h = train_vae(*fashion, cfg, epochs=2, run_dir=tmp_path, show_progress=False)
    raw, avg, best = cfg.build(), cfg.build(), cfg.build()
    load_checkpoint(tmp_path, {"model": raw, "ema": avg, "best": best}, cfg)
    xv, yv = data.to_unit(fashion[2]), fashion[3]
    assert elbo_terms(avg, xv, yv, seed=0, batch_size=VALIDATION_BATCH)[0].item() == pytest.approx(h["val_neg_elbo"][-1], abs=1e-3)
    assert not torch.equal(raw.fc1.weight, avg.fc1.weight)  # the average lags the iterates
    best_epoch_weights = avg if h["best_epoch"] == 2 else best
    assert torch.equal(model.fc4.weight, best_epoch_weights.fc4.weight)


def test_early_stopping_keeps_the_best_epoch(fashion):
    """Validated on uniform noise, a model that learns clothes gets worse on the validation split from
    epoch 2 on: with patience 2 the run stops after epoch 3 and returns epoch 1's weights."""
    noise = torch.randint(0, 256, (256, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cfg = VAEConfig()
    model, h = train_vae(fashion[0], fashion[1], noise, fashion[3], cfg, epochs=12, patience=2,
                         show_progress=False)
    assert h["best_epoch"] == 1 and len(h["val_neg_elbo"]) == 3 and h["stopped_early"]
    assert min(h["val_neg_elbo"][1:]) > h["val_neg_elbo"][0]
    again = elbo_terms(model, noise, fashion[3], seed=cfg.seed, batch_size=VALIDATION_BATCH)[0].item()
    assert again == pytest.approx(h["val_neg_elbo"][0], abs=1e-3)


def test_kl_warmup_schedule_and_config_validation():
    cfg = VAEConfig(kl_warmup_epochs=2)
    assert kl_weight(cfg, 1, 0, 10) == pytest.approx(0.05)
    assert kl_weight(cfg, 2, 9, 10) == 1.0 and kl_weight(cfg, 5, 0, 10) == 1.0
    assert kl_weight(VAEConfig(), 1, 0, 10) == 1.0
    with pytest.raises(ValueError, match="activation must be one of"):
        VAEConfig(activation="swish")
    with pytest.raises(ValueError, match=r"beta2 must be a finite number in \[0, 1\)"):
        VAEConfig(beta2=1.0)
    with pytest.raises(ValueError, match="kl_warmup_epochs must be an integer >= 0"):
        VAEConfig(kl_warmup_epochs=-1)
    images, labels = torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train_vae(images, labels, images, labels, VAEConfig(), epochs=0)


def test_negative_elbo_evaluation_matches_the_loss_and_samples_average(fashion):
    torch.manual_seed(0)
    model = VAE().eval()
    x, y = fashion[2][:64], fashion[3][:64]
    one = negative_elbo(model, x, y, samples=1, seed=3)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        logits, mu, logvar = model(data.to_unit(x), y, generator=gen)
        out = vae_loss(logits, data.to_unit(x), mu, logvar)
    assert one["neg_elbo"] == pytest.approx(out["neg_elbo"].item(), rel=1e-5)
    assert one["kl"] == pytest.approx(negative_elbo(model, x, y, samples=7)["kl"], rel=1e-6)  # exact term


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
    assert linear_probe(separated, two, separated + 0.05, two) == 1.0
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


def test_encoder_means_and_conditional_samples(fashion):
    torch.manual_seed(0)
    model = VAEConfig(conditional=True).build()
    mu = encode_mean(model, fashion[2][:50], fashion[3][:50], batch_size=16)
    assert mu.shape == (50, 20) and mu.dtype == np.float32
    images, classes = model.class_samples(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (30, 1, 28, 28) and classes.tolist() == [c for c in range(10) for _ in range(3)]
    assert not hasattr(VAE(), "class_samples"), "class-conditional samples are the C-VAE's alone"
