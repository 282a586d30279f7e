"""Model and metric details the fast suite left open, each against a hand computation (fast: run by
``scripts/mutation.sh`` against ``hw5/models/`` and ``hw5/metrics/gan.py``). Device placement is checked on
PyTorch's ``meta`` device, a second device on any machine."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hw5.metrics.gan import class_fractions, inception_score, judge, sample_report
from hw5.models.classifier import Classifier, ClassifierConfig, LinearProbeConfig
from hw5.models.base import rand, randn
from hw5.models.dcgan import DCGAN, DCGANConfig, Discriminator, Generator
from hw5.models.rbm import RBM, RBMConfig, standardize
from hw5.models.vae import VAE, VAEConfig, vae_loss


def test_class_fractions_list_every_class_even_one_never_predicted():
    assert class_fractions(torch.eye(10)[[0, 1, 1, 3]]) == [0.25, 0.5, 0.0, 0.25] + [0.0] * 6


def test_sample_report_splits_its_inception_score_as_asked_with_10_by_default():
    torch.manual_seed(0)
    clf = Classifier(ClassifierConfig(width=4, feature_dim=8)).eval()
    samples = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    real, _ = judge(clf, torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(2)))
    _, probs = judge(clf, samples)
    default = sample_report(clf, samples, real)  # 10 splits of 1 sample each: needs exactly 10 or fewer
    assert (default["classifier_is"], default["classifier_is_std"]) == pytest.approx(inception_score(probs, 10))
    two = sample_report(clf, samples[:5], real, splits=2)  # 5 samples cannot make 10 splits
    assert (two["classifier_is"], two["classifier_is_std"]) == pytest.approx(inception_score(probs[:5], 2))


def test_linear_probe_config_checks_both_sizes():
    assert LinearProbeConfig(in_features=1, num_classes=1).build().weight.shape == (1, 1)
    for kwargs, name in (({"in_features": 0}, "in_features"), ({"in_features": 3, "num_classes": 0}, "num_classes"),
                         ({"in_features": 2.0}, "in_features")):
        with pytest.raises(ValueError, match=name):
            LinearProbeConfig(**kwargs)


def test_reparameterize_draws_eps_in_the_dtype_of_mu_from_the_generator_given():
    mu = torch.linspace(-1, 1, 6, dtype=torch.float64).view(2, 3)
    logvar = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64).view(2, 3)
    z = VAE.reparameterize(mu, logvar, torch.Generator().manual_seed(7))
    eps = torch.randn((2, 3), dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert z.dtype == torch.float64
    torch.testing.assert_close(z, mu + eps * torch.exp(0.5 * logvar), rtol=0, atol=1e-15)


def test_reparameterize_draws_on_the_device_of_mu():
    mu = torch.zeros(2, 3, device="meta")
    assert VAE.reparameterize(mu, mu).device == torch.device("meta")


def test_cvae_forward_decodes_its_seeded_sample_under_the_class_given():
    torch.manual_seed(0)
    model = VAEConfig(conditional=True).build().eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    c = torch.tensor([4, 0, 9])
    logits, mu, logvar = model(x, c, torch.Generator().manual_seed(5))
    with torch.no_grad():
        h = torch.relu(model.fc1(torch.cat([x.view(3, 784), torch.eye(10)[c]], 1)))
        mu_hand, logvar_hand = model.fc21(h), model.fc22(h)
        eps = torch.randn((3, 20), generator=torch.Generator().manual_seed(5))
        z = mu_hand + eps * torch.exp(0.5 * logvar_hand)
        expected = model.fc4(torch.relu(model.fc3(torch.cat([z, torch.eye(10)[c]], 1))))
    torch.testing.assert_close(mu, mu_hand)
    torch.testing.assert_close(logvar, logvar_hand)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_vae_loss_is_the_negative_elbo_by_default():
    gen = torch.Generator().manual_seed(0)
    logits, x = torch.randn(4, 784, generator=gen), torch.rand(4, 784, generator=gen)
    mu, logvar = torch.randn(4, 20, generator=gen), torch.randn(4, 20, generator=gen)
    out = vae_loss(logits, x, mu, logvar)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()
    assert out["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(out["neg_elbo"].item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx((out["recon"] + kl).item(), rel=1e-5)


def test_inception_score_splits_boundaries_and_spread():
    """IS per split = exp(mean_x KL(p(y|x) || p_split(y))); (mean, unbiased std) over the splits, std 0 for one
    split; N = splits is enough; 10 splits by default."""
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(10, 4, generator=gen), 1).double()

    def split_is(chunk: torch.Tensor) -> float:
        marginal = chunk.mean(0)
        return float(torch.exp((chunk * (chunk.log() - marginal.log())).sum(1).mean()))

    halves = [split_is(probs[:5]), split_is(probs[5:])]
    mean, std = inception_score(probs, splits=2)
    assert mean == pytest.approx(sum(halves) / 2, rel=1e-9)
    assert std == pytest.approx(abs(halves[0] - halves[1]) / 2 ** 0.5, rel=1e-9)
    assert inception_score(probs, splits=1) == pytest.approx((split_is(probs), 0.0), rel=1e-9)
    assert inception_score(probs[:4], splits=4)[0] == pytest.approx(1.0)  # one image per split: KL = 0
    assert inception_score(probs) == pytest.approx(inception_score(probs, 10))
    with pytest.raises(ValueError):
        inception_score(probs[:3], splits=4)


def test_a_callback_is_called_with_each_epoch_number():
    from hw5.training.loop import Callback

    started: list[int] = []
    hook = Callback(on_epoch_start=started.append)
    hook.epoch_start(1), hook.epoch_start(2)
    assert started == [1, 2]
    ended = Callback(on_epoch_end=lambda epoch, log, history: {"seen": f"{epoch} {log} {sorted(history)}"})
    assert ended.epoch_end(3, "log", {"a": 1}) == {"seen": "3 log ['a']"}
    assert Callback().epoch_end(3, "log", {}) is None


# ---- the architectures, layer by layer, against Figure 1 written with torch.nn.functional -------------------
def _layers(module, kind):
    return [m for m in module.modules() if isinstance(m, kind)]


def _batch_norm(h, bn):
    """Training-mode batch norm with the batch's statistics and the layer's scale and shift."""
    return F.batch_norm(h, None, None, bn.weight, bn.bias, training=True, eps=1e-5)


def _scramble_batch_norms(module, seed=0):
    """Scales and shifts away from (1, 0), so that a missing batch-norm layer changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in _layers(module, nn.BatchNorm2d):
            bn.weight.copy_(1 + 0.5 * torch.randn(bn.weight.shape, generator=gen))
            bn.bias.copy_(0.5 * torch.randn(bn.bias.shape, generator=gen))


def _n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def test_discriminator_is_figure_1_layer_by_layer():
    """conv 4x4/2 (bias) -> lrelu(0.2) -> [conv (no bias) -> BN -> lrelu(0.2)] x 3 (4x4/2, 3x3/2, 3x3/1, all
    padding 1) -> Linear(8192, 1); no conv before a batch norm has a bias (BN's shift takes its place)."""
    torch.manual_seed(0)
    d = Discriminator().train()
    _scramble_batch_norms(d)
    convs, bns = _layers(d, nn.Conv2d), _layers(d, nn.BatchNorm2d)
    assert len(convs) == 4 and len(bns) == 3
    x = torch.randn(6, 1, 28, 28)
    h = F.leaky_relu(F.conv2d(x, convs[0].weight, convs[0].bias, stride=2, padding=1), 0.2)  # -> 64x14x14
    for conv, bn, stride in zip(convs[1:], bns, (2, 2, 1)):  # -> 128x7x7 -> 256x4x4 -> 512x4x4
        h = F.leaky_relu(_batch_norm(F.conv2d(h, conv.weight, None, stride=stride, padding=1), bn), 0.2)
    expected = (h.flatten(1) @ d.final.weight.t() + d.final.bias).squeeze(1)  # (6, 8192) -> (6,)
    torch.testing.assert_close(d(x), expected, rtol=1e-5, atol=1e-5)
    assert _n_parameters(d) == (16 * 64 + 64) + 64 * 128 * 16 + 128 * 256 * 9 + 256 * 512 * 9 \
        + 2 * (128 + 256 + 512) + 8192 + 1


def test_generator_is_figure_1_layer_by_layer():
    """Linear(100, 12544, no bias) -> BN -> relu -> convT 4x4/2 -> BN -> relu -> convT 4x4/2 -> BN -> relu ->
    conv 3x3/1 -> BN -> relu -> conv 3x3/1 (bias) -> tanh, all padding 1, no bias before a batch norm."""
    torch.manual_seed(0)
    g = Generator(100).train()
    _scramble_batch_norms(g)
    ups, convs, bns = _layers(g, nn.ConvTranspose2d), _layers(g, nn.Conv2d), _layers(g, nn.BatchNorm2d)
    assert len(ups) == 2 and len(convs) == 2 and len(bns) == 4
    z = torch.randn(6, 100)
    h = F.relu(_batch_norm((z @ g.project.weight.t()).view(6, 256, 7, 7), bns[0]))  # (6, 12544) -> 256x7x7
    for up, bn in zip(ups, bns[1:3]):  # -> 128x14x14 -> 64x28x28
        h = F.relu(_batch_norm(F.conv_transpose2d(h, up.weight, None, stride=2, padding=1), bn))
    h = F.relu(_batch_norm(F.conv2d(h, convs[0].weight, None, stride=1, padding=1), bns[3]))  # -> 32x28x28
    expected = torch.tanh(F.conv2d(h, convs[1].weight, convs[1].bias, stride=1, padding=1))  # -> 1x28x28
    torch.testing.assert_close(g(z), expected, rtol=1e-5, atol=1e-5)
    assert _n_parameters(g) == 100 * 12544 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 32 * 9 + (32 * 9 + 1) \
        + 2 * (256 + 128 + 64 + 32)


def test_dcgan_weights_start_from_n_0_002_and_batch_norm_scales_from_n_1_002():
    """Radford et al.'s initialisation, checked by the sample moments of every layer type together."""
    torch.manual_seed(0)
    model = DCGAN()
    weights = torch.cat([m.weight.flatten() for m in model.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))])
    scales = torch.cat([m.weight.flatten() for m in _layers(model, nn.BatchNorm2d)])
    shifts = [m.bias for m in model.modules() if getattr(m, "bias", None) is not None
              and not isinstance(m, nn.BatchNorm2d)] + [m.bias for m in _layers(model, nn.BatchNorm2d)]
    assert abs(weights.mean()) < 1e-4 and abs(weights.std() - 0.02) < 1e-4  # 3.3M draws
    assert abs(scales.mean() - 1) < 3e-3 and abs(scales.std() - 0.02) < 2e-3  # 1,376 draws
    assert len(shifts) == 3 + 7 and all(not b.any() for b in shifts)  # D's first conv, D's final, G's last


def test_latent_dim_1_is_the_smallest_and_only_integers_are_taken():
    assert DCGANConfig(latent_dim=1).build().generator(torch.randn(2, 1)).shape == (2, 1, 28, 28)
    assert Generator(1).latent_dim == 1
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"latent_dim must be an integer >= 1, got {bad!r}"):
            Generator(bad)
        with pytest.raises(ValueError, match=f"DCGANConfig.latent_dim must be an integer >= 1, got {bad!r}"):
            DCGANConfig(latent_dim=bad)


def test_use_generator_samples_from_the_kept_generator_and_keeps_the_last_iterate():
    model = DCGAN(DCGANConfig(latent_dim=4))
    last, kept = model.generator, Generator(4)
    model.use_generator(model.generator)  # already in use: nothing moves
    assert model.generator is last and not hasattr(model, "raw_generator")
    model.use_generator(kept)
    assert model.generator is kept and model.raw_generator is last


def test_classifier_is_two_conv_blocks_a_feature_layer_and_a_dropout_head():
    """[conv 3x3 p1 (no bias) -> BN -> relu] x 2 -> maxpool 2, twice (width, then 2 width channels) ->
    Linear(2 width 49, feature_dim) -> relu -> dropout(p) -> Linear(feature_dim, num_classes)."""
    torch.manual_seed(0)
    config = ClassifierConfig(num_classes=3, width=4, feature_dim=5, dropout=0.5)
    model = Classifier(config).train()
    _scramble_batch_norms(model)
    convs, bns, linears = _layers(model, nn.Conv2d), _layers(model, nn.BatchNorm2d), _layers(model, nn.Linear)
    assert len(convs) == len(bns) == 4 and len(linears) == 2
    x = torch.rand(6, 1, 28, 28)
    h = x
    for i, (conv, bn) in enumerate(zip(convs, bns)):
        h = F.relu(_batch_norm(F.conv2d(h, conv.weight, None, padding=1), bn))
        if i % 2 == 1:
            h = F.max_pool2d(h, 2)  # 28 -> 14 -> 7
    features = F.relu(h.flatten(1) @ linears[0].weight.t() + linears[0].bias)  # (6, 8 * 49) -> (6, 5)
    torch.testing.assert_close(model.features(x), features, rtol=1e-5, atol=1e-5)
    torch.manual_seed(1)
    logits = model(x)
    torch.manual_seed(1)
    expected = F.dropout(model.features(x), 0.5, training=True) @ linears[1].weight.t() + linears[1].bias
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits, model.eval()(x))  # the dropout acts in training only
    assert _n_parameters(model) == 9 * 4 + 4 * 4 * 9 + 4 * 8 * 9 + 8 * 8 * 9 + 2 * (4 + 4 + 8 + 8) \
        + (8 * 49 * 5 + 5) + (5 * 3 + 3)


@pytest.mark.parametrize("name", ["num_classes", "width", "feature_dim"])
def test_classifier_sizes_start_at_1(name):
    assert getattr(ClassifierConfig(**{name: 1}), name) == 1
    with pytest.raises(ValueError, match=f"ClassifierConfig.{name} must be an integer >= 1, got 0"):
        ClassifierConfig(**{name: 0})


def test_classifier_dropout_is_a_probability_below_1():
    for ok in (0.0, 0.999):
        assert ClassifierConfig(dropout=ok).dropout == ok
    for bad, interval in ((-0.1, r"\[0, 1\)"), (1.0, r"\[0, 1\)"), (1.5, r"\[0, 1\)")):
        with pytest.raises(ValueError, match=f"ClassifierConfig.dropout must be a finite number in {interval}"):
            ClassifierConfig(dropout=bad)


# ---- random draws: on the generator's device, then moved --------------------------------------------------------
META = torch.device("meta")  # a second device on any machine (shapes and dtypes, no values): device bugs show on a CPU


@pytest.mark.parametrize("draw, torch_draw", [(rand, torch.rand), (randn, torch.randn)])
def test_draws_come_from_the_generators_device_and_land_on_the_device_asked(draw, torch_draw):
    gen, twin = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x = draw((2, 5), device=META, generator=gen, dtype=torch.float64)
    assert x.device == META and x.dtype == torch.float64 and x.shape == (2, 5)
    torch_draw((2, 5), generator=twin, dtype=torch.float64)  # drawn on the CPU generator, as here
    assert torch.equal(gen.get_state(), twin.get_state())
    before = torch.get_rng_state()  # no generator: the device's own; the CPU's global generator is untouched
    y = draw((2, 5), device=META)
    assert y.device == META and y.dtype == torch.float32 and torch.equal(torch.get_rng_state(), before)
    got = draw((3,), device="cpu", generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.equal(got, torch_draw((3,), generator=torch.Generator().manual_seed(4), dtype=torch.float64))


# ---- the RBM: its config, samplers and chains ---------------------------------------------------------------------
SIGMA_6 = (0.7, 1.0, 1.5, 0.9, 1.2, 2.0)


def _rbm64(hidden: int = 3, seed: int = 0) -> RBM:
    """A float64 RBM with D = 6 unequal sigmas and random weights and biases of order 1."""
    gen = torch.Generator().manual_seed(seed)
    rbm = RBM(RBMConfig(visible=6, hidden=hidden, sigma=SIGMA_6)).double()
    with torch.no_grad():
        rbm.W.copy_(torch.randn(hidden, 6, generator=gen, dtype=torch.float64) * 0.6)
        rbm.b.copy_(torch.randn(6, generator=gen, dtype=torch.float64) * 0.5)
        rbm.alpha.copy_(torch.randn(hidden, generator=gen, dtype=torch.float64) * 0.5)
    return rbm


def _v0(n: int = 64, seed: int = 9) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_rbm_config_sizes_start_at_1():
    assert RBMConfig(visible=1, hidden=1, gibbs_steps=1).build().W.shape == (1, 1)
    for name in ("visible", "hidden", "gibbs_steps"):
        with pytest.raises(ValueError, match=rf"RBMConfig\.{name} must be an integer >= 1, got 0"):
            RBMConfig(**{name: 0})


def test_rbm_sigma_is_one_positive_finite_number_or_one_per_visible_unit_kept_as_a_float_buffer():
    config = RBMConfig(visible=2, sigma=[0.5, 2])
    assert config.sigma == (0.5, 2) and hash(config) == hash(RBMConfig(visible=2, sigma=(0.5, 2)))
    for sigma in ((0.5, 2), (1, 2), 2):  # ints too: a float buffer, so that .double() converts it with W
        built = RBMConfig(visible=2, sigma=sigma).build()
        assert built.sigma.dtype == torch.float32 and built.double().sigma.dtype == torch.float64
    for bad in ([1.0], [1.0, 2.0, 3.0], [1.0, 0.0], [1.0, -1.0], [1.0, math.inf], [1.0, math.nan], [1.0, True]):
        with pytest.raises(ValueError, match=r"RBMConfig\.sigma must be one positive finite float or 2 of them"):
            RBMConfig(visible=2, sigma=bad)
    for bad in (0.0, -1.0, math.inf, True):
        with pytest.raises(ValueError, match=r"RBMConfig\.sigma"):
            RBMConfig(sigma=bad)


def test_standardize_divides_by_the_unbiased_std_down_to_two_pixels():
    v, m, s = standardize(torch.tensor([[0.0, 1.0]]))
    assert s.item() == pytest.approx(torch.tensor([0.0, 1.0]).std().item()) and m.item() == 0.5
    torch.testing.assert_close(v, torch.tensor([[-0.5, 0.5]]) / s)
    v, _, s = standardize(torch.tensor([[0.25]]))  # one pixel: no spread, s floored at eps and v = 0
    assert s.item() == pytest.approx(1e-6) and v.item() == 0.0


def test_rbm_samplers_draw_in_the_dtype_and_on_the_device_of_their_input():
    rbm = _rbm64()
    p = torch.rand(4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    # h = 1[u < p], u from the same generator state as p: u = p exactly, so all 0; just above p, all 1
    assert torch.equal(rbm.sample_bernoulli(p, torch.Generator().manual_seed(5)), torch.zeros_like(p))
    above = p.nextafter(torch.ones_like(p))
    assert torch.equal(rbm.sample_bernoulli(above, torch.Generator().manual_seed(5)), torch.ones_like(p))
    mean = _v0(4)
    eps = torch.randn(4, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    torch.testing.assert_close(rbm.sample_gaussian(mean, torch.Generator().manual_seed(6)), mean + rbm.sigma * eps,
                               rtol=0, atol=1e-15)  # v = mean + sigma * eps
    rbm.to(META)
    for out in (rbm.sample_bernoulli(p.to(META), torch.Generator()), rbm.sample_gaussian(mean.to(META), torch.Generator())):
        assert out.device == META and out.dtype == torch.float64


def test_noise_factor_is_the_cholesky_factor_of_w_w_transpose_and_says_when_it_fails():
    W = _rbm64().W.detach()
    gram = W @ W.T
    for on_device in (False, True):  # W W^T positive definite: its own factor on both routes, no jitter
        L, fallback = RBM.noise_factor(gram, on_device)
        assert torch.equal(L, torch.linalg.cholesky(gram)) and fallback.dtype == torch.float64 and fallback.item() == 0
    for row in (0, 1):  # a hidden unit with no weights: W W^T singular; Cholesky fails at minor row + 1
        singular = W.clone()
        singular[row] = 0.0
        gram = singular @ singular.T
        L, fallback = RBM.noise_factor(gram, False)
        assert L is None and fallback.dtype == torch.float64 and fallback.item() == 1.0
        L, fallback = RBM.noise_factor(gram, True)
        delta = 1e-6 * gram.trace() / 3 + 1e-12
        torch.testing.assert_close(L @ L.T, gram + delta * torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-14)
        assert fallback.item() == 1.0 and torch.equal(L, L.tril())
    L, fallback = RBM.noise_factor(gram.to(META), True)  # decided on the device: nothing read back
    assert L.device == fallback.device == META


def _collapsed_by_hand(rbm: RBM, v0: torch.Tensor, k: int, gen: torch.Generator, L: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[v | h_{k-1}], v_k) of the collapsed chain in float64, its draws in the sampler's order:
    a_0 = alpha + W u_0;  h_t = 1[r_t < sigmoid(a_t)], r ~ U;  a_{t+1} = alpha + W c + (W W^T) h_t + L z_t."""
    W, s, b, alpha = (t.detach() for t in (rbm.W, rbm.sigma, rbm.b, rbm.alpha))
    f64 = torch.float64
    a = alpha + (v0 / s) @ W.T
    for _ in range(k - 1):
        h = (torch.rand(a.shape, generator=gen, dtype=f64) < torch.sigmoid(a)).to(f64)
        a = alpha + W @ (b / s) + h @ (W @ W.T) + torch.randn(h.shape, generator=gen, dtype=f64) @ L.T
    h = (torch.rand(a.shape, generator=gen, dtype=f64) < torch.sigmoid(a)).to(f64)
    mean = b + s * (h @ W)
    return mean, mean + s * torch.randn(mean.shape, generator=gen, dtype=f64)


def _plain_by_hand(rbm: RBM, v0: torch.Tensor, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[v | h_{k-1}], v_k) of the literal chain in float64: h_t = 1[r_t < sigmoid(alpha + W v_t / sigma)],
    v_{t+1} = b + sigma (W^T h_t + eps_t)."""
    W, s, b, alpha = (t.detach() for t in (rbm.W, rbm.sigma, rbm.b, rbm.alpha))
    v = v0
    for _ in range(k):
        a = alpha + (v / s) @ W.T
        h = (torch.rand(a.shape, generator=gen, dtype=torch.float64) < torch.sigmoid(a)).to(torch.float64)
        mean = b + s * (h @ W)
        v = mean + s * torch.randn(mean.shape, generator=gen, dtype=torch.float64)
    return mean, v


@pytest.mark.parametrize("k", [1, 3])
def test_the_plain_chain_is_its_recursion_by_hand_in_float64(k):
    rbm, v0 = _rbm64(), _v0()
    chain = rbm.gibbs_chain(v0, k, torch.Generator().manual_seed(3), collapsed=False)
    mean, v = _plain_by_hand(rbm, v0, k, torch.Generator().manual_seed(3))
    torch.testing.assert_close(chain.mean_k, mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(chain.v_k, v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_the_collapsed_chain_is_its_recursion_by_hand_on_the_same_generator(k):
    """The default sampler for k > 1 and F < D; k - 1 collapsed steps, then h_{k-1} and v_k."""
    rbm, v0 = _rbm64(), _v0()
    chain = rbm.gibbs_chain(v0, k, torch.Generator().manual_seed(7))
    W = rbm.W.detach()
    mean, v = _collapsed_by_hand(rbm, v0, k, torch.Generator().manual_seed(7), torch.linalg.cholesky(W @ W.T))
    torch.testing.assert_close(chain.mean_k, mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(chain.v_k, v, rtol=0, atol=1e-12)
    assert chain.fallback.dtype == torch.float64 and chain.fallback.item() == 0.0


def test_the_device_route_runs_the_collapsed_chain_with_the_jittered_factor_when_cholesky_fails():
    rbm, v0 = _rbm64(), _v0()
    with torch.no_grad():
        rbm.W[1] = 0.0
    W = rbm.W.detach()
    gram = W @ W.T
    L = torch.linalg.cholesky(gram + (1e-6 * gram.trace() / 3 + 1e-12) * torch.eye(3, dtype=torch.float64))
    chain = rbm.gibbs_chain(v0, 3, torch.Generator().manual_seed(8), device_fallback=True)
    mean, v = _collapsed_by_hand(rbm, v0, 3, torch.Generator().manual_seed(8), L)
    torch.testing.assert_close(chain.v_k, v, rtol=0, atol=1e-12)
    assert chain.fallback.item() == 1.0
    # a one-step chain needs no factor: nothing falls back, even when asked for the collapsed sampler
    assert rbm.gibbs_chain(v0, 1, torch.Generator(), collapsed=True, device_fallback=True).fallback.item() == 0.0


def test_the_default_sampler_is_the_plain_chain_unless_there_are_fewer_hidden_than_visible_units():
    rbm, v0 = _rbm64(hidden=6), _v0()  # F = D
    default = rbm.gibbs_chain(v0, 3, torch.Generator().manual_seed(4))
    plain = rbm.gibbs_chain(v0, 3, torch.Generator().manual_seed(4), collapsed=False)
    assert torch.equal(default.v_k, plain.v_k) and torch.equal(default.mean_k, plain.mean_k)


@pytest.mark.parametrize("collapsed", [False, True])
def test_the_chain_stays_on_the_device_of_its_input_and_reads_nothing_back(collapsed):
    rbm = _rbm64().to(META)
    chain = rbm.gibbs_chain(torch.zeros(4, 6, dtype=torch.float64, device=META), 3, torch.Generator().manual_seed(1),
                            collapsed=collapsed)
    assert all(t.device == META and t.dtype == torch.float64 and t.shape == s
               for t, s in zip(chain, [(4, 6), (4, 6), (4, 3), ()]))


def test_a_half_precision_cvae_appends_its_one_hot_classes_in_its_own_dtype():
    torch.manual_seed(0)
    model = VAEConfig(conditional=True).build().to(torch.bfloat16)
    x = torch.rand(3, 784).to(torch.bfloat16)
    for c in (torch.tensor([0, 4, 9]), torch.eye(10)[[0, 4, 9]]):  # labels, and float32 one-hot rows
        logits, mu, _ = model(x, c, generator=torch.Generator().manual_seed(1))
        assert logits.dtype == mu.dtype == torch.bfloat16 and logits.shape == (3, 784)
