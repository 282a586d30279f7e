"""Problem 3's bound and report functions against hand computations on tiny inputs (fast: these are the tests
``scripts/mutation.sh`` runs against the mutants of ``hw5/metrics/vae.py`` that the suite reaches only through
its slow, training-backed tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
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
