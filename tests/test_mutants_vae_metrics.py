"""Problem 3's bound and report functions against hand computations on tiny inputs (fast: these are the tests
``scripts/mutation.sh`` runs against the mutants of ``hw5/metrics/vae.py`` that the suite reaches only through
its slow, training-backed tests)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn
from hw5.metrics import common
from hw5.metrics import vae as metrics
from hw5.models.vae import VAEConfig


def prior_posterior_vae(conditional: bool = False):
    """q(z | x) = p(z) = N(0, I) and a decoder that ignores z: every ELBO term is known in closed form,
    KL = 0 and -log p(x | z) = the Bernoulli loss of one fixed logit vector (per class for the C-VAE)."""
    torch.manual_seed(0)
    model = VAEConfig(conditional=conditional).build().eval()
    with torch.no_grad():
        for layer in (model.fc21, model.fc22):
            layer.weight.zero_(), layer.bias.zero_()
        model.fc3.weight[:, :model.z_dim].zero_()  # z is read through fc3's first 20 columns only
    return model


def fixed_logits(model, c: int | None = None) -> torch.Tensor:
    """The decoder's logits (784,) of the prior-posterior VAE, for class c of a C-VAE."""
    with torch.no_grad():
        pre = model.fc3.bias.clone()
        if c is not None:
            pre += model.fc3.weight[:, model.z_dim + c]
        return model.fc4(torch.relu(pre))


def bernoulli_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-sum_j [x_j log sigmoid(l_j) + (1 - x_j) log(1 - sigmoid(l_j))] per row, by torch.distributions."""
    return -torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(x.flatten(1)).sum(1)


def test_negative_elbo_of_the_prior_posterior_vae_is_its_reconstruction_loss():
    model = prior_posterior_vae()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    expected = bernoulli_loss(fixed_logits(model), x).mean().item()
    for samples, batch_size in ((1, 1000), (3, 2)):
        got = metrics.negative_elbo(model, x, torch.zeros(5, dtype=torch.long), samples=samples,
                                    batch_size=batch_size)
        assert list(got) == ["neg_elbo", "recon", "kl"]
        assert got["kl"] == pytest.approx(0.0, abs=1e-9)
        assert got["recon"] == pytest.approx(expected, rel=1e-5)
        assert got["neg_elbo"] == pytest.approx(expected, rel=1e-5)


def test_negative_elbo_adds_the_closed_form_kl_of_each_image():
    """With mu = a fixed vector and logvar = a fixed vector (weights zeroed, biases set), KL is known."""
    model = prior_posterior_vae()
    with torch.no_grad():
        model.fc21.bias.copy_(torch.linspace(-1, 1, 20))
        model.fc22.bias.copy_(torch.linspace(-0.5, 0.3, 20))
    mu, logvar = torch.linspace(-1, 1, 20).double(), torch.linspace(-0.5, 0.3, 20).double()
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum().item()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    got = metrics.negative_elbo(model, x, torch.zeros(3, dtype=torch.long), samples=2)
    assert got["kl"] == pytest.approx(kl, rel=1e-5)
    assert got["neg_elbo"] == pytest.approx(got["recon"] + kl, rel=1e-6)
    assert got["recon"] == pytest.approx(bernoulli_loss(fixed_logits(model), x).mean().item(), rel=1e-5)


def test_iwae_bound_is_minus_the_mean_exact_log_likelihood_of_the_prior_posterior_vae():
    model = prior_posterior_vae()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    expected = bernoulli_loss(fixed_logits(model), x).mean().item()  # -mean log p(x)
    for samples in (1, 7):
        got = metrics.iwae_bound(model, x, torch.zeros(4, dtype=torch.long), samples=samples, rows_per_chunk=5)
        assert got == pytest.approx(expected, rel=1e-5)


def test_the_marginal_of_a_prior_posterior_cvae_is_the_log_mean_of_its_class_likelihoods():
    model = prior_posterior_vae(conditional=True)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    class_ll = torch.stack([-bernoulli_loss(fixed_logits(model, c), x) for c in range(10)], 1).double()  # (3, 10)
    labels = class_ll.argmax(1)
    labels[0] = (labels[0] + 1) % 10  # one wrong label: accuracy 2/3
    report = metrics.marginal_likelihood_report(model, x, labels, samples=2)
    assert class_ll.min() > -700  # exp() of it is a normal float64
    log_px = torch.log(class_ll.exp().mean(1))  # uniform p(c): log of the mean of p(x | c)
    assert report["marginal_bound"] == pytest.approx(-log_px.mean().item(), rel=1e-5)
    assert report["bayes_accuracy"] == pytest.approx(2 / 3)
    assert report["marginal_samples"] == 2 and report["marginal_images"] == 3 and report["marginal_seconds"] > 0


def test_likelihood_report_holds_the_validation_and_test_bounds():
    model = prior_posterior_vae()
    gen = torch.Generator().manual_seed(5)
    val, test = torch.rand(3, 1, 28, 28, generator=gen), torch.rand(6, 1, 28, 28, generator=gen)
    zeros = torch.zeros(6, dtype=torch.long)
    loss = fixed_logits(model)
    report = metrics.likelihood_report(model, val, zeros[:3], test, zeros, elbo_samples=2, iwae_samples=3,
                                       iwae_images=4)
    assert report["val_neg_elbo"] == pytest.approx(bernoulli_loss(loss, val).mean().item(), rel=1e-5)
    test_loss = bernoulli_loss(loss, test)
    assert report["test_neg_elbo"] == pytest.approx(test_loss.mean().item(), rel=1e-5)
    assert report["test_recon"] == pytest.approx(test_loss.mean().item(), rel=1e-5)
    assert report["test_kl"] == pytest.approx(0.0, abs=1e-9)
    assert report["test_iwae_bound"] == pytest.approx(test_loss[:4].mean().item(), rel=1e-5)
    assert (report["iwae_samples"], report["iwae_images"]) == (3, 4) and report["iwae_seconds"] > 0
    more = metrics.likelihood_report(model, val, zeros[:3], test, zeros, 1, 1, iwae_images=100)
    assert more["iwae_images"] == 6


def test_sweep_winner_is_the_first_candidate_with_the_lowest_value_anywhere_on_its_curve():
    assert metrics.sweep_winner({"a": [5.0, 3.0, 4.0], "b": [3.5, 3.2], "c": [9.0, 2.0, 8.0]}) == "c"
    assert metrics.sweep_winner({"a": [3.0, 1.0], "b": [1.0], "c": [2.0]}) == "a"  # a tie: the first
    for bad in ({}, {"a": [1.0], "b": []}):
        with pytest.raises(ValueError, match="a sweep needs at least one candidate"):
            metrics.sweep_winner(bad)


class FixedClassifier(nn.Module):
    """A 'classifier' that calls image i of a batch class answers[i] (one-hot logits), in order of calls."""

    def __init__(self, answers: list[int]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        take, self.answers = self.answers[:x.shape[0]], self.answers[x.shape[0]:]
        return torch.eye(10)[take] * 5.0


def test_conditional_sample_report_counts_what_the_classifier_saw_per_class_asked():
    model = prior_posterior_vae(conditional=True)
    # 2 samples per class, asked 0 0 1 1 ... 9 9: class 0 judged right twice, class 1 once, the rest never
    answers = [0, 0, 1, 3] + [(c + 1) % 10 for c in range(2, 10) for _ in range(2)]
    report = metrics.conditional_sample_report(model, FixedClassifier(answers), n_per_class=2)
    assert report["accuracy"] == pytest.approx(3 / 20)
    assert report["per_class"] == [1.0, 0.5] + [0.0] * 8
    confusion = np.zeros((10, 10), dtype=np.int64)
    for asked, seen in zip(np.repeat(np.arange(10), 2), answers):
        confusion[asked, seen] += 1
    np.testing.assert_array_equal(report["confusion"], confusion)


def test_prior_class_shares_are_the_classifiers_class_frequencies():
    model = prior_posterior_vae()
    shares = metrics.prior_class_shares(model, FixedClassifier([3, 3, 7, 0, 3]), n=5)
    assert shares == pytest.approx([0.2, 0, 0, 0.6, 0, 0, 0, 0.2, 0, 0])


def test_interpolation_rows_hold_both_images_around_the_path_for_every_model_and_pair():
    vae, cvae = prior_posterior_vae(), prior_posterior_vae(conditional=True)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(6))
    labels = torch.tensor([2, 0, 1])
    names = ["zero", "one", "two"]
    rows = metrics.interpolation_rows({"VAE": vae, "C-VAE": cvae}, x, labels, [(0, 1), (2, 0)], names, steps=4)
    assert list(rows) == ["VAE: two -> zero", "C-VAE: two -> zero", "VAE: one -> two", "C-VAE: one -> two"]
    for key, row in rows.items():
        assert row.shape == (6, 1, 28, 28)
    torch.testing.assert_close(rows["VAE: two -> zero"][0], x[0])
    torch.testing.assert_close(rows["VAE: two -> zero"][-1], x[1])
    torch.testing.assert_close(rows["C-VAE: one -> two"][0], x[2])
    # the VAE's path decodes the same fixed logits everywhere (the decoder ignores z)
    torch.testing.assert_close(rows["VAE: two -> zero"][1:5], torch.sigmoid(fixed_logits(vae)).view(1, 1, 28, 28)
                               .expand(4, 1, 28, 28))
    # the C-VAE's path starts at class 1's decoded mean and ends at class 2's
    torch.testing.assert_close(rows["C-VAE: one -> two"][1], torch.sigmoid(fixed_logits(cvae, 1)).view(1, 28, 28))
    torch.testing.assert_close(rows["C-VAE: one -> two"][4], torch.sigmoid(fixed_logits(cvae, 2)).view(1, 28, 28))


def random_vae(conditional: bool = False):
    torch.manual_seed(0)
    return VAEConfig(conditional=conditional).build().eval()


def test_negative_elbo_is_the_seeded_one_sample_estimate_computed_in_batches_of_the_size_asked_for():
    """recon = mean_x BCE(decode(mu + sigma eps)), eps drawn batch after batch from a generator seeded with
    ``seed`` (0 by default), one draw per image by default; the encoder sees batches of ``batch_size``."""
    model = random_vae()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    c = torch.zeros(5, dtype=torch.long)

    def by_hand(seed: int, batch_size: int) -> float:
        gen, total = torch.Generator().manual_seed(seed), 0.0
        with torch.no_grad():
            for i in range(0, 5, batch_size):
                xb = x[i:i + batch_size].view(-1, 784)
                h = torch.relu(model.fc1(xb))
                mu, logvar = model.fc21(h), model.fc22(h)
                z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
                total += bernoulli_loss(model.fc4(torch.relu(model.fc3(z))), xb).sum().item()
        return total / 5

    seen: list[int] = []
    encode = model.encode
    model.encode = lambda xb, cb: seen.append(xb.shape[0]) or encode(xb, cb)
    got = metrics.negative_elbo(model, x, c, seed=3, batch_size=2)
    assert seen == [2, 2, 1]
    assert got["recon"] == pytest.approx(by_hand(3, 2), rel=1e-5)
    assert got["recon"] != pytest.approx(by_hand(4, 2), rel=1e-5)
    assert metrics.negative_elbo(model, x, c)["recon"] == pytest.approx(by_hand(0, 5), rel=1e-5)
    seen.clear()
    metrics.negative_elbo(model, torch.rand(1001, 1, 28, 28), torch.zeros(1001, dtype=torch.long))
    assert seen == [1000, 1]  # the default batch


def test_iwae_bound_is_minus_the_mean_of_the_per_image_bounds_with_the_same_seed_and_chunks():
    from hw5.metrics.vae import iwae_log_likelihoods

    model = random_vae()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    c = torch.zeros(4, dtype=torch.long)
    for seed, rows in ((0, 16384), (5, 16384), (5, 3)):
        expected = -iwae_log_likelihoods(model, x, c, 7, seed=seed, rows_per_chunk=rows).mean().item()
        assert metrics.iwae_bound(model, x, c, 7, seed=seed, rows_per_chunk=rows) == pytest.approx(expected, rel=1e-6)
    assert metrics.iwae_bound(model, x, c, 7) == pytest.approx(
        -iwae_log_likelihoods(model, x, c, 7, seed=0).mean().item(), rel=1e-6)
    assert metrics.iwae_bound(model, x, c, 7, seed=5) != pytest.approx(metrics.iwae_bound(model, x, c, 7), rel=1e-6)
    assert metrics.iwae_bound(model, x, c, 7, seed=5, rows_per_chunk=3) != pytest.approx(
        metrics.iwae_bound(model, x, c, 7, seed=5), rel=1e-6)


class FirstPixels(nn.Module):
    """A 'classifier' whose logits are an image's first 10 pixels: its verdict depends on the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10]


def test_prior_class_shares_judge_the_seeded_prior_samples():
    model = random_vae()
    with torch.no_grad():
        model.fc4.bias.zero_()
    samples = model.sample(40, generator=torch.Generator().manual_seed(3))
    expected = torch.bincount(samples.flatten(1)[:, :10].argmax(1), minlength=10).double() / 40
    assert metrics.prior_class_shares(model, FirstPixels(), 40, seed=3) == pytest.approx(expected.tolist())
    default = torch.bincount(model.sample(40, generator=torch.Generator().manual_seed(0)).flatten(1)[:, :10]
                             .argmax(1), minlength=10).double() / 40
    assert metrics.prior_class_shares(model, FirstPixels(), 40) == pytest.approx(default.tolist())
    assert expected.tolist() != default.tolist()
    assert len(metrics.prior_class_shares(model, FirstPixels(), 1)) == 10
    with pytest.raises(ValueError, match="n must be"):
        metrics.prior_class_shares(model, FirstPixels(), 0)


# -- independent re-derivations shared by the tests below -------------------------------------------------------
class TinyCVAE(nn.Module):
    """A cheap stand-in for a C-VAE with the interface the bounds use (encode, decode, conditional, n_classes):
    a 2-d code, a linear encoder and a linear decoder, so that thousands of decoder rows cost almost nothing."""

    conditional = True

    def __init__(self, n_classes: int = 2) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(11)
        self.n_classes, self.z_dim = n_classes, 2
        self.enc = nn.Parameter(torch.randn(784, 2, generator=gen) * 0.05)
        self.dec = nn.Parameter(torch.randn(2, 784, generator=gen) * 0.5)
        self.shift = nn.Parameter(torch.randn(n_classes, 784, generator=gen) * 0.5)

    def encode(self, x, c):
        x = x.reshape(x.shape[0], 784)
        mu = (x - 0.5) @ self.enc + 0.3 * c[:, None]
        return mu, torch.full_like(mu, -1.0) + 0.2 * c[:, None]

    def decode(self, z, c):
        return z @ self.dec + self.shift[c]


def iwae_by_hand(model, images, labels, k: int, seed: int, per_chunk: int, only=None) -> torch.Tensor:
    """log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x) per image with torch.distributions; eps drawn chunk after
    chunk of ``per_chunk`` images from one generator seeded ``seed``, each chunk's eps shaped (k, B, M).
    ``only``: the indices of the images to evaluate (all by default; the draws are the same)."""
    x = images.reshape(images.shape[0], 784).float()
    keep = torch.zeros(x.shape[0], dtype=torch.bool)
    keep[slice(None) if only is None else only] = True
    gen, out = torch.Generator().manual_seed(seed), []
    with torch.no_grad():
        for i in range(0, x.shape[0], per_chunk):
            eps = torch.randn((k, x[i:i + per_chunk].shape[0], model.z_dim), generator=gen)
            sel = keep[i:i + per_chunk]
            xb, cb, eps = x[i:i + per_chunk][sel], labels[i:i + per_chunk][sel], eps[:, sel]
            if xb.shape[0] == 0:
                continue
            mu, logvar = model.encode(xb, cb)
            sigma = torch.exp(0.5 * logvar)
            z = mu + eps * sigma
            logits = model.decode(z.reshape(-1, mu.shape[1]), cb.repeat(k)).view(k, xb.shape[0], 784)
            logw = (torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(xb).sum(-1)
                    + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                    - torch.distributions.Normal(mu, sigma).log_prob(z).sum(-1))
            out.append(torch.logsumexp(logw, 0) - np.log(k))
    return torch.cat(out)


def elbo_by_hand(model, images, samples: int, seed: int) -> dict[str, float]:
    """Mean recon (over ``samples`` draws eps ~ N(0, I) of one generator seeded ``seed``) and closed-form KL of a
    VAE on fewer than 1000 images (one batch)."""
    x = images.reshape(images.shape[0], 784)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mu, logvar = model.encode(x, None)
        sigma = torch.exp(0.5 * logvar)
        recon = sum(bernoulli_loss(model.decode(mu + torch.randn(mu.shape, generator=gen) * sigma), x)
                    for _ in range(samples)) / samples
        kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma),
                                               torch.distributions.Normal(0.0, 1.0)).sum(1)
    return {"recon": recon.mean().item(), "kl": kl.mean().item(), "neg_elbo": (recon + kl).mean().item()}


def test_class_log_likelihoods_are_iwae_bounds_per_class_seeded_seed_plus_class_in_the_chunks_asked_for():
    model = TinyCVAE(n_classes=3)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(7))

    def by_hand(seed, per_chunk):
        return torch.stack([iwae_by_hand(model, x, torch.full((3,), c), 2, seed + c, per_chunk)
                            for c in range(3)], 1)

    got = metrics.class_log_likelihoods(model, x, samples=2, seed=4, rows_per_chunk=3)  # 3 // 2: 1 image a chunk
    assert got.shape == (3, 3)
    torch.testing.assert_close(got, by_hand(4, 1), rtol=1e-5, atol=1e-4)
    default = metrics.class_log_likelihoods(model, x, samples=2)  # seed 0, every image in one chunk
    torch.testing.assert_close(default, by_hand(0, 3), rtol=1e-5, atol=1e-4)
    assert not torch.allclose(by_hand(0, 3), by_hand(1, 3), rtol=1e-3) and not torch.allclose(
        by_hand(4, 1), by_hand(4, 3), rtol=1e-3)


def test_class_log_likelihoods_fill_chunks_of_16384_decoder_rows_by_default():
    """5 samples: 16384 // 5 = 3276 images a chunk, so image 3276 starts a second chunk (16385 would not)."""
    model = TinyCVAE(n_classes=1)
    x = torch.rand(3277, 784, generator=torch.Generator().manual_seed(8))
    got = metrics.class_log_likelihoods(model, x, samples=5)[:, 0]
    some = [0, 1, 1000, 3275, 3276]
    expected = iwae_by_hand(model, x, torch.zeros(3277, dtype=torch.long), 5, 0, 3276, only=some)
    torch.testing.assert_close(got[some], expected, rtol=1e-5, atol=1e-4)


def test_marginal_likelihood_report_uses_the_seed_asked_for_and_times_itself():
    model = TinyCVAE(n_classes=2)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    labels = torch.tensor([0, 1, 1, 0])

    def by_hand(seed):
        ll = torch.stack([iwae_by_hand(model, x, torch.full((4,), c), 3, seed + c, 4) for c in range(2)], 1)
        return -(torch.logsumexp(ll, 1) - np.log(2)).mean().item(), (ll.argmax(1) == labels).double().mean().item()

    for kwargs, seed in (({}, 0), ({"seed": 5}, 5)):
        start = time.perf_counter()
        report = metrics.marginal_likelihood_report(model, x, labels, samples=3, **kwargs)
        elapsed = time.perf_counter() - start
        bound, acc = by_hand(seed)
        assert report["marginal_bound"] == pytest.approx(bound, rel=1e-5)
        assert report["bayes_accuracy"] == pytest.approx(acc)
        assert 0 < report["marginal_seconds"] <= elapsed
    assert by_hand(0)[0] != pytest.approx(by_hand(1)[0], rel=1e-5)


def test_likelihood_report_draws_the_samples_asked_for_with_the_seed_asked_for():
    model = random_vae()
    gen = torch.Generator().manual_seed(10)
    val, test = torch.rand(3, 1, 28, 28, generator=gen), torch.rand(5, 1, 28, 28, generator=gen)
    zeros = torch.zeros(5, dtype=torch.long)
    for kwargs, seed in (({"seed": 4}, 4), ({}, 0)):
        start = time.perf_counter()
        report = metrics.likelihood_report(model, val, zeros[:3], test, zeros, elbo_samples=2, iwae_samples=3,
                                           iwae_images=4, **kwargs)
        elapsed = time.perf_counter() - start
        val_hand, test_hand = elbo_by_hand(model, val, 2, seed), elbo_by_hand(model, test, 2, seed)
        assert report["val_neg_elbo"] == pytest.approx(val_hand["neg_elbo"], rel=1e-5)
        assert report["test_neg_elbo"] == pytest.approx(test_hand["neg_elbo"], rel=1e-5)
        assert report["test_recon"] == pytest.approx(test_hand["recon"], rel=1e-5)
        assert report["test_kl"] == pytest.approx(test_hand["kl"], rel=1e-5)
        iwae = -iwae_by_hand(model, test[:4], zeros[:4], 3, seed, 4).mean().item()
        assert report["test_iwae_bound"] == pytest.approx(iwae, rel=1e-5)
        assert 0 < report["iwae_seconds"] <= elapsed
    # the draws matter: other seeds or sample counts give other numbers
    assert elbo_by_hand(model, val, 2, 4)["neg_elbo"] != pytest.approx(elbo_by_hand(model, val, 2, 0)["neg_elbo"],
                                                                       rel=1e-5)
    assert elbo_by_hand(model, val, 2, 4)["neg_elbo"] != pytest.approx(elbo_by_hand(model, val, 1, 4)["neg_elbo"],
                                                                       rel=1e-5)
    assert elbo_by_hand(model, test, 2, 4)["neg_elbo"] != pytest.approx(
        elbo_by_hand(model, test, 1, 4)["neg_elbo"], rel=1e-5)
    assert iwae_by_hand(model, test[:4], zeros[:4], 3, 4, 4).mean().item() != pytest.approx(
        iwae_by_hand(model, test[:4], zeros[:4], 3, 0, 4).mean().item(), rel=1e-5)


def conditional_verdicts_by_hand(model, n_per_class: int, seed: int):
    """(accuracy, per_class, confusion) of FirstPixels on n_per_class decoded prior samples z ~ N(0, I) per class,
    z drawn from a generator seeded ``seed``, classes asked 0 0 .. 1 1 .. 9 9."""
    asked = torch.arange(10).repeat_interleave(n_per_class)
    with torch.no_grad():
        z = torch.randn((asked.shape[0], 20), generator=torch.Generator().manual_seed(seed))
        images = torch.sigmoid(model.decode(z, asked))
    seen = images[:, :10].argmax(1)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (asked.numpy(), seen.numpy()), 1)
    per_class = [confusion[c, c] / n_per_class for c in range(10)]
    return float((seen == asked).sum()) / asked.shape[0], per_class, confusion


def test_conditional_sample_report_judges_the_seeded_class_samples():
    model = random_vae(conditional=True)
    for n, kwargs, seed in ((3, {"seed": 3}, 3), (1, {}, 0)):
        report = metrics.conditional_sample_report(model, FirstPixels(), n_per_class=n, **kwargs)
        acc, per_class, confusion = conditional_verdicts_by_hand(model, n, seed)
        assert report["accuracy"] == pytest.approx(acc)
        assert report["per_class"] == pytest.approx(per_class)
        np.testing.assert_array_equal(report["confusion"], confusion)
    for n in (3, 1):  # the seed matters
        assert not np.array_equal(conditional_verdicts_by_hand(model, n, 0)[2],
                                  conditional_verdicts_by_hand(model, n, 1)[2])
        assert not np.array_equal(conditional_verdicts_by_hand(model, n, 3)[2],
                                  conditional_verdicts_by_hand(model, n, 4)[2])


def test_conditional_sample_report_checks_n_per_class_before_asking_the_model_for_samples():
    """The unconditional VAE has no class_samples: only the report's own check can raise the ValueError."""
    for model in (random_vae(), random_vae(conditional=True)):
        for bad in (0, -2):
            with pytest.raises(ValueError, match=rf"^n_per_class must be an integer >= 1, got {bad}$"):
                metrics.conditional_sample_report(model, FirstPixels(), n_per_class=bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (a GPU)")
def test_conditional_sample_report_takes_a_classifier_on_another_device_than_the_model():
    model = random_vae(conditional=True)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).cuda()
    report = metrics.conditional_sample_report(model, classifier, n_per_class=2, seed=1)
    images, asked = model.class_samples(2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        seen = classifier(images.cuda()).argmax(1).cpu()
    assert report["accuracy"] == pytest.approx((seen == asked).double().mean().item())
    assert report["confusion"].sum() == 20


def test_interpolation_rows_hold_ten_decoded_steps_by_default():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(12))
    rows = metrics.interpolation_rows({"VAE": prior_posterior_vae()}, x, torch.tensor([0, 1]), [(0, 1)], ["a", "b"])
    assert rows["VAE: a -> b"].shape == (12, 1, 28, 28)


def test_snapshot_statistics_read_the_history_and_the_class_content_of_the_test_posterior_means():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = random_vae(conditional=True)
    gen = torch.Generator().manual_seed(13)
    train_y, test_y = torch.randint(0, 2, (40,), generator=gen) * 3, torch.randint(0, 2, (30,), generator=gen) * 3
    # class 3's images are brighter, so the codes carry some (not all) of the class
    train_x = torch.rand(40, 1, 28, 28, generator=gen) * (0.6 + 0.1 * train_y.view(-1, 1, 1, 1))
    test_x = torch.rand(30, 1, 28, 28, generator=gen) * (0.6 + 0.1 * test_y.view(-1, 1, 1, 1))
    history = {"val_neg_elbo": [130.0, 120.0, 125.0, 126.0, 127.0], "best_val_loss": 119.5, "best_epoch": 2,
               "val_kl": [10.0, 11.0, 12.0, 13.0, 14.0]}

    def mu_by_hand(x, y):
        with torch.no_grad():
            h = torch.relu(model.fc1(torch.cat([x.view(-1, 784), nn.functional.one_hot(y, 10).float()], 1)))
            return model.fc21(h).numpy().astype(np.float64)

    mu, train_mu, y = mu_by_hand(test_x, test_y), mu_by_hand(train_x, train_y), test_y.numpy()
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train_mu, train_y.numpy())
    # 5 nearest other points, majority of 2 classes (no ties), by brute force
    dist = ((mu[:, None] - mu[None]) ** 2).sum(-1) + np.diag(np.full(30, np.inf))
    nearest = np.argsort(dist, 1)[:, :5]
    knn = ((y[nearest] == y[:, None]).sum(1) >= 3).mean()
    centred = mu - mu.mean(0)
    between = sum((y == c).mean() * (centred[y == c].mean(0) ** 2).sum() for c in (0, 3))
    share = between / (centred ** 2).sum(1).mean()

    got = metrics.snapshot_statistics(model, history, train_x, train_y, test_x, test_y)
    assert got == pytest.approx({"epochs": 5, "best_val_neg_elbo": 119.5, "val_kl": 11.0,
                                 "linear_probe_mu": probe.score(mu, y), "knn_acc_mu": knn,
                                 "class_variance_share_mu": share}, rel=1e-5)
    assert 0 < share < 1 and 0.5 < knn < 1 and 0.5 < probe.score(mu, y) < 1  # none of them trivial


def test_predicted_classes_take_the_argmax_of_scores_even_of_a_single_class():
    torch.testing.assert_close(common.predicted_classes(torch.tensor([[0.3], [-2.0], [5.0]])),
                               torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(common.predicted_classes(torch.tensor([[0.1, 0.9], [0.7, 0.3]])),
                               torch.tensor([1, 0]))
    torch.testing.assert_close(common.predicted_classes(torch.tensor([2, 0], dtype=torch.int32)),
                               torch.tensor([2, 0]))


def test_predicted_classes_reject_float_vectors_and_integer_tensors_that_are_not_vectors():
    for bad in (torch.tensor([0.0, 1.0]), torch.zeros(2, 2, 2), torch.zeros(2, 2, 2, dtype=torch.long),
                torch.tensor(3), torch.zeros(2, dtype=torch.complex64)):
        with pytest.raises(ValueError, match=r"^scores must be class scores \(N, C\) or integer classes \(N,\)"):
            common.predicted_classes(bad)


def test_accuracy_rejects_labels_that_are_not_an_integer_vector():
    scores = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    for bad, shown in ((torch.tensor([1.0, 0.0]), r"\(2,\)"), (torch.tensor([[1], [0]]), r"\(2, 1\)"),
                       ([1, 0], "list")):
        with pytest.raises(ValueError, match=rf"^labels must be an integer tensor \(N,\), got {shown}$"):
            common.accuracy(scores, bad)


def test_accuracy_needs_as_many_labels_as_scores_and_at_least_one():
    with pytest.raises(ValueError, match=r"^scores hold 2 items and labels 3: need the same number, at least one$"):
        common.accuracy(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 0, 0]))
    with pytest.raises(ValueError, match=r"^scores hold 0 items and labels 0"):
        common.accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert common.accuracy(torch.tensor([[0.2, 0.5, 0.1]]), torch.tensor([1])) == 1.0
    assert common.correct(torch.tensor([[0.2, 0.5, 0.1]]), torch.tensor([2])) == 0


def test_hits_move_the_labels_to_the_scores_device():
    """The meta device stands in for a GPU: comparing a meta tensor with CPU labels would raise."""
    hits = common._hits(torch.zeros(3, 4, device="meta"), torch.tensor([0, 1, 2]))
    assert hits.device.type == "meta" and hits.shape == (3,) and hits.dtype == torch.bool
