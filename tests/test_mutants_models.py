"""Model and metric details the fast suite left open, each against a hand computation (fast: run by
``scripts/mutation.sh`` against ``hw5/models/`` and ``hw5/metrics/gan.py``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hw5.metrics.gan import class_fractions, inception_score, judge, sample_report
from hw5.models.classifier import Classifier, ClassifierConfig, LinearProbeConfig
from hw5.models.dcgan import DCGAN, DCGANConfig, Discriminator, Generator
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
