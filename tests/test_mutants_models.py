"""Model and metric details the fast suite left open, each against a hand computation (fast: run by
``scripts/mutation.sh`` against ``hw5/models/`` and ``hw5/metrics/gan.py``)."""

from __future__ import annotations

import pytest
import torch
from hw5.metrics.gan import class_fractions, inception_score, judge, sample_report
from hw5.models.classifier import Classifier, ClassifierConfig, LinearProbeConfig
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
