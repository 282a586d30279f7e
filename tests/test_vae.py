"""VAE / C-VAE maths: closed-form KL, reparameterisation, likelihood terms, the template's sizes,
conditioning, importance weights against torch.distributions, and the IWAE bound's ordering."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from hw5.metrics.vae import (aggregate_posterior_kl, class_log_likelihoods, importance_log_weights,
                             iwae_log_likelihoods, iwae_bound, likelihood_report, marginal_likelihood_report,
                             marginal_report, negative_elbo)
from hw5.models.vae import CVAE, VAE, VAEConfig, bernoulli_nll, gaussian_kl, log_normal, vae_loss


def test_closed_form_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 20, generator=gen) * 2, torch.randn(64, 20, generator=gen) * 1.5
    q = D.Normal(mu, torch.exp(0.5 * logvar))
    p = D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = D.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected, rtol=1e-5, atol=1e-5)
    assert torch.all(gaussian_kl(torch.zeros(3, 20), torch.zeros(3, 20)) == 0)  # q = p exactly


def test_reparameterized_sample_has_right_moments_and_carries_gradients():
    mu = torch.tensor([[1.5, -2.0, 0.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.25)]], requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    z = VAE.reparameterize(mu.expand(200_000, 3), logvar.expand(200_000, 3), generator=gen)
    torch.testing.assert_close(z.mean(0), mu[0].detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([1.0, 4.0, 0.25]), rtol=0.02, atol=0)
    z.sum().backward()  # dz/dmu = 1, dz/dlogvar = eps * sigma / 2 = (z - mu) / 2
    torch.testing.assert_close(mu.grad, torch.full_like(mu, 200_000.0))
    torch.testing.assert_close(logvar.grad[0], ((z - mu) / 2).sum(0).detach(), rtol=1e-4, atol=1e-2)


def test_bernoulli_nll_matches_torch_distributions_and_the_formula():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 784, generator=gen) * 3
    x_bin = (torch.rand(8, 784, generator=gen) > 0.5).float()
    expected = -D.Bernoulli(logits=logits).log_prob(x_bin).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x_bin.view(8, 1, 28, 28)), expected)
    x = torch.rand(8, 784, generator=gen)  # grey levels: -[x log s + (1 - x) log(1 - s)]
    s = torch.sigmoid(logits.double())
    manual = -(x * torch.log(s) + (1 - x) * torch.log1p(-s)).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x).double(), manual, rtol=1e-5, atol=1e-3)


def test_log_normal_matches_torch_distributions():
    gen = torch.Generator().manual_seed(3)
    z, mu, logvar = (torch.randn(5, 7, 20, generator=gen) for _ in range(3))
    torch.testing.assert_close(log_normal(z), D.Normal(0.0, 1.0).log_prob(z).sum(-1))
    torch.testing.assert_close(log_normal(z, mu, logvar), D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1))


def test_loss_dict_is_the_negative_elbo_and_beta_weights_kl():
    torch.manual_seed(0)
    model, x = VAE(), torch.rand(16, 1, 28, 28)
    logits, mu, logvar = model(x)
    out = vae_loss(logits, x, mu, logvar, beta=0.25)
    torch.testing.assert_close(out["neg_elbo"], out["recon"] + out["kl"])
    torch.testing.assert_close(out["loss"], out["recon"] + 0.25 * out["kl"])
    torch.testing.assert_close(out["recon"], bernoulli_nll(logits, x).mean())


def test_only_what_the_template_leaves_open_is_configurable():
    """The sizes 784-400-20 (+10) are the template's and not fields; the activation is checked by name."""
    assert {f for f in VAEConfig.__dataclass_fields__} == {"conditional", "activation"}
    with pytest.raises(ValueError, match="VAEConfig.activation must be one of"):
        VAEConfig(activation="sigmoid")


def test_template_layers_and_conditioning_sizes():
    v, c = VAE(), CVAE()
    assert [n for n, _ in v.named_children()] == ["fc1", "fc21", "fc22", "fc3", "fc4"]
    assert (v.fc1.in_features, v.fc1.out_features, v.fc21.out_features, v.fc22.out_features) == (784, 400, 20, 20)
    assert (v.fc3.in_features, v.fc4.out_features) == (20, 784)
    assert (c.fc1.in_features, c.fc3.in_features) == (794, 30)  # 784 + 10 and 20 + 10
    assert v.config == VAEConfig(conditional=False, activation="relu") and c.config == VAEConfig(conditional=True)


def test_cvae_output_depends_on_class_and_vae_does_not():
    torch.manual_seed(0)
    z = torch.randn(4, 20)
    for model, should_change in ((VAE(), False), (CVAE(), True)):
        a, b = model.decode(z, torch.tensor([0, 1, 2, 3])), model.decode(z, torch.tensor([9, 8, 7, 6]))
        assert (not torch.equal(a, b)) == should_change
        x = torch.rand(4, 1, 28, 28)
        mu_a, _ = model.encode(x, torch.tensor([0, 1, 2, 3]))
        mu_b, _ = model.encode(x, torch.tensor([5, 5, 5, 5]))
        assert (not torch.equal(mu_a, mu_b)) == should_change
    cvae = CVAE()  # labels and one-hots are the same input
    labels = torch.tensor([3, 0, 9, 1])
    torch.testing.assert_close(cvae.decode(z, labels), cvae.decode(z, torch.nn.functional.one_hot(labels, 10).float()))


def test_cvae_needs_a_class_and_checks_its_shape():
    model = CVAE()
    with pytest.raises(ValueError, match="needs the class c"):
        model(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="expected 2 class labels"):
        model(torch.rand(2, 1, 28, 28), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"one-hot classes must have shape \(2, 10\)"):
        model.decode(torch.zeros(2, 20), torch.zeros(2, 9))
    with pytest.raises(ValueError, match="needs a class"):
        model.sample(3)


def test_samples_are_display_ready_and_reproducible():
    torch.manual_seed(0)
    for model, c in ((VAE(), None), (CVAE(), 4)):
        a = model.sample(6, c, generator=torch.Generator().manual_seed(5))
        b = model.sample(6, c, generator=torch.Generator().manual_seed(5))
        assert a.shape == (6, 1, 28, 28) and a.min() >= 0 and a.max() <= 1
        torch.testing.assert_close(a, b)


def test_importance_weights_match_torch_distributions():
    torch.manual_seed(0)
    model = CVAE().eval()
    x, c = torch.rand(3, 1, 28, 28), torch.tensor([2, 5, 7])
    logw = importance_log_weights(model, x, c, samples=4, generator=torch.Generator().manual_seed(9))
    # the same draws, scored independently
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        mu, logvar = model.encode(x, c)
        eps = torch.randn((4, 3, 20), generator=gen)
        for i in range(4):
            z = mu + eps[i] * torch.exp(0.5 * logvar)
            q = D.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
            p = D.Normal(0.0, 1.0).log_prob(z).sum(1)
            lik = -bernoulli_nll(model.decode(z, c), x)
            torch.testing.assert_close(logw[i], lik + p - q, rtol=1e-5, atol=1e-3)


@pytest.fixture(scope="module")
def small_trained_vae():
    """A template-size VAE after 150 Adam steps on 256 smooth blob images (a tiny, fast problem)."""
    gen = torch.Generator().manual_seed(0)
    grid = torch.linspace(-1, 1, 28)
    centres = torch.rand(256, 2, generator=gen) * 1.2 - 0.6
    d2 = (grid[None, :, None] - centres[:, None, None, 0]) ** 2 + (grid[None, None, :] - centres[:, None, None, 1]) ** 2
    x = torch.exp(-d2 / 0.05).unsqueeze(1)  # (256, 1, 28, 28) in [0, 1]
    torch.manual_seed(0)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(150):
        logits, mu, logvar = model(x)
        loss = vae_loss(logits, x, mu, logvar)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(small_trained_vae):
    model, x = small_trained_vae
    labels = torch.zeros(x.shape[0], dtype=torch.long)
    elbo = -negative_elbo(model, x, labels, samples=50)["neg_elbo"]
    bounds = {k: -iwae_bound(model, x, labels, samples=k, seed=1) for k in (1, 10, 100)}
    assert abs(bounds[1] - elbo) < 0.5  # L_1 is the ELBO (both Monte Carlo, 256 images)
    assert elbo < bounds[10] < bounds[100]
    # other chunkings (one image per chunk; k split into parts of 30 draws) draw other samples, so agree
    # up to Monte Carlo noise (the k = 100 bound varies by ~0.01 nats between seeds here)
    for rows in (100, 30):
        assert abs(iwae_bound(model, x, labels, samples=100, seed=1, rows_per_chunk=rows) + bounds[100]) < 0.05


def test_decoding_one_z_under_every_class_and_interpolation_endpoints():
    torch.manual_seed(0)
    model = CVAE().eval()
    z = torch.randn(3, 20)
    grid = model.decode_under_all_classes(z)
    assert grid.shape == (3, 10, 1, 28, 28)
    torch.testing.assert_close(grid[1, 7], torch.sigmoid(model.decode(z[1:2], torch.tensor([7]))).view(1, 28, 28))
    xa, xb = torch.randint(0, 256, (28, 28), dtype=torch.uint8), torch.randint(0, 256, (28, 28), dtype=torch.uint8)
    path = model.interpolate(xa.float().div(255), xb.float().div(255), 2, 6, steps=5)
    mu, _ = model.encode(torch.stack([xa, xb]).float().div(255).unsqueeze(1), torch.tensor([2, 6]))
    torch.testing.assert_close(path[0, 0], torch.sigmoid(model.decode(mu[:1], torch.tensor([2]))).view(28, 28))
    torch.testing.assert_close(path[-1, 0], torch.sigmoid(model.decode(mu[1:], torch.tensor([6]))).view(28, 28))


def test_class_log_likelihoods_are_per_class_iwae_estimates():
    torch.manual_seed(0)
    model = CVAE().eval()
    x = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    ll = class_log_likelihoods(model, x, samples=8, seed=3)
    assert ll.shape == (5, 10)
    torch.testing.assert_close(ll[:, 4], iwae_log_likelihoods(model, x, torch.full((5,), 4), samples=8, seed=3 + 4))
    with pytest.raises(ValueError, match="need a C-VAE"):
        class_log_likelihoods(VAE(), x, samples=2)
    labels = torch.tensor([0, 1, 2, 3, 4])
    report = marginal_report(ll, labels)
    by_hand = -(torch.logsumexp(ll, 1) - torch.log(torch.tensor(10.0))).mean().item()
    assert report["marginal_bound"] == pytest.approx(by_hand, rel=1e-6)
    assert report["bayes_accuracy"] == (ll.argmax(1) == labels).float().mean().item()


def test_likelihood_report_is_the_elbo_and_the_iwae_bound(small_trained_vae):
    model, x = small_trained_vae
    labels = torch.zeros(x.shape[0], dtype=torch.long)
    report = likelihood_report(model, x[:64], labels[:64], x, labels, elbo_samples=3, iwae_samples=20,
                               iwae_images=100, seed=2)
    test = negative_elbo(model, x, labels, samples=3, seed=2)
    assert report["val_neg_elbo"] == negative_elbo(model, x[:64], labels[:64], samples=3, seed=2)["neg_elbo"]
    assert (report["test_neg_elbo"], report["test_recon"], report["test_kl"]) == (test["neg_elbo"], test["recon"], test["kl"])
    assert report["test_iwae_bound"] == iwae_bound(model, x[:100], labels[:100], samples=20, seed=2)
    assert report["iwae_images"] == 100 and report["iwae_samples"] == 20 and report["iwae_seconds"] >= 0
    assert likelihood_report(model, x, labels, x, labels, 1, 2, 10_000)["iwae_images"] == x.shape[0]


def test_marginal_likelihood_report_sums_the_classes():
    torch.manual_seed(0)
    model = CVAE().eval()
    x, labels = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8), torch.arange(6)
    report = marginal_likelihood_report(model, x, labels, samples=4, seed=1)
    expected = marginal_report(class_log_likelihoods(model, x, samples=4, seed=1), labels)
    assert report["marginal_bound"] == expected["marginal_bound"]
    assert report["bayes_accuracy"] == expected["bayes_accuracy"]
    assert report["marginal_samples"] == 4 and report["marginal_images"] == 6


def test_aggregate_posterior_kl_splits_the_kl_term_exactly():
    """mean KL = I + KL(q(z) || p(z)), with I estimated against a brute-force mixture density; I <= log N."""
    torch.manual_seed(0)
    model = VAE().eval()
    x, labels = torch.rand(40, 1, 28, 28), torch.zeros(40, dtype=torch.long)
    out = aggregate_posterior_kl(model, x, labels, seed=3, rows_per_chunk=7)
    mu, logvar = model.encode(x)
    mu, logvar = mu.detach().double(), logvar.detach().double()
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3)).double()
    z = mu + eps * torch.exp(0.5 * logvar)
    q = D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)  # batch of 40 components
    log_pairs = q.log_prob(z[:, None, :])  # (40 draws, 40 components)
    info = (log_pairs.diagonal() - (torch.logsumexp(log_pairs, 1) - math.log(40))).mean().item()
    assert out["mutual_information"] == pytest.approx(info, abs=1e-6)
    assert out["kl"] == pytest.approx(gaussian_kl(mu, logvar).mean().item(), rel=1e-9)
    assert out["aggregate_kl"] == pytest.approx(out["kl"] - out["mutual_information"], abs=1e-9)
    assert out["mutual_information"] <= out["log_n"] + 1e-9 and out["log_n"] == pytest.approx(math.log(40))


def test_aggregate_posterior_kl_of_a_posterior_equal_to_the_prior_is_zero():
    model = VAE().eval()
    with torch.no_grad():
        for layer in (model.fc21, model.fc22):  # mu = 0, logvar = 0 for every image: q(z | x) = p(z)
            layer.weight.zero_()
            layer.bias.zero_()
    out = aggregate_posterior_kl(model, torch.rand(30, 1, 28, 28), torch.zeros(30, dtype=torch.long))
    assert out["kl"] == 0 and abs(out["mutual_information"]) < 1e-9 and abs(out["aggregate_kl"]) < 1e-9


def test_iwae_bound_is_the_log_of_the_mean_importance_weight():
    """L_k = log (1/k) sum_i w_i of the very weights importance_log_weights draws (same generator), computed
    here as the log of a float64 mean: the - log k and the mean (not a max or a sum) are what is checked."""
    from hw5.metrics.vae import importance_log_weights, iwae_log_likelihoods

    torch.manual_seed(0)
    model = VAEConfig(conditional=True).build().eval()
    x, c = torch.rand(3, 1, 28, 28), torch.tensor([2, 5, 7])
    bounds = iwae_log_likelihoods(model, x, c, samples=7, seed=4)
    with torch.no_grad():
        logw = importance_log_weights(model, x, c, 7, torch.Generator().manual_seed(4)).double()  # (7, 3)
    shift = logw.max(0).values  # for float64 exp without underflow
    expected = torch.log(torch.exp(logw - shift).mean(0)) + shift
    torch.testing.assert_close(bounds.double(), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("samples", [1, 5, 50])
def test_iwae_bound_is_exact_when_the_posterior_is_the_prior_and_the_decoder_ignores_z(samples):
    """q(z | x) = p(z) = N(0, I) and p(x | z) = p(x): every weight w_i = p(x), so L_k = log p(x) for every k."""
    from hw5.metrics.vae import iwae_log_likelihoods

    torch.manual_seed(0)
    model = VAEConfig().build().eval()
    with torch.no_grad():
        for layer in (model.fc21, model.fc22):  # mu = 0, log sigma^2 = 0
            layer.weight.zero_(), layer.bias.zero_()
        model.fc3.weight.zero_()  # the decoder reads z through fc3 only
        logits = model.fc4(torch.relu(model.fc3.bias))  # (784,): the same for every z
    x = torch.rand(4, 1, 28, 28)
    bernoulli = torch.distributions.Bernoulli(logits=logits, validate_args=False)  # grey levels as targets
    log_px = bernoulli.log_prob(x.view(4, 784)).sum(1)
    bounds = iwae_log_likelihoods(model, x, torch.zeros(4, dtype=torch.long), samples=samples, seed=1)
    torch.testing.assert_close(bounds, log_px, rtol=0, atol=1e-3)
