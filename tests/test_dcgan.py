"""DCGAN: Figure 1's shapes, the two generator losses, training dynamics, resume, and the NaN guard."""

from __future__ import annotations

import math

import pytest
import torch
from hw5 import data
from hw5.checkpoint import load_checkpoint
from hw5.models.dcgan import DCGAN, Discriminator, Generator, discriminator_loss, generator_loss
from hw5.training import gan as gan_loop
from hw5.training.loop import TrainingDiverged, autocast, resolve_precision
from hw5.training.gan import GANConfig, train_gan
from hw5.utils import layer_shapes


def test_discriminator_shapes_follow_figure_1():
    d = Discriminator().eval()
    x = torch.randn(3, 1, 28, 28)
    assert [shape for _, shape in layer_shapes(d, x)] == [(64, 14, 14), (128, 7, 7), (256, 4, 4), (512, 4, 4), (1,)]
    assert d.features(x).shape == (3, 8192)
    assert d.final.in_features == 8192 and d.final.out_features == 1
    assert d(x).shape == (3,)


def test_generator_shapes_follow_figure_1():
    g = Generator(100).eval()
    z = torch.randn(3, 100)
    layers = [shape for _, shape in layer_shapes(g, z)]
    assert layers == [(256 * 7 * 7,), (128, 14, 14), (64, 28, 28), (32, 28, 28), (1, 28, 28)]
    x = g(z)
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        Generator(0)


def test_sample_is_display_ready_and_seeded():
    model = DCGAN()
    a = model.sample(5, generator=torch.Generator().manual_seed(1))
    b = model.sample(5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 1, 28, 28) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and model.generator.training, "training mode is restored"


def test_losses_match_a_hand_computation():
    real = torch.tensor([2.0, -0.5, 0.3], dtype=torch.float64)
    fake = torch.tensor([-1.5, 0.2, -3.0, 4.0], dtype=torch.float64)
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    d_hand = (-sum(math.log(sig(r)) for r in real.tolist()) / 3
              - sum(math.log(1 - sig(f)) for f in fake.tolist()) / 4)
    out = discriminator_loss(real, fake)
    assert out["loss"].item() == pytest.approx(d_hand, rel=1e-6)
    assert out["d_real"].item() == pytest.approx(sum(map(sig, real.tolist())) / 3, rel=1e-6)
    assert out["d_fake"].item() == pytest.approx(sum(map(sig, fake.tolist())) / 4, rel=1e-6)
    ns = -sum(math.log(sig(f)) for f in fake.tolist()) / 4
    mm = sum(math.log(1 - sig(f)) for f in fake.tolist()) / 4
    assert generator_loss(fake)["loss"].item() == pytest.approx(ns, rel=1e-6)
    assert generator_loss(fake, "minimax")["loss"].item() == pytest.approx(mm, rel=1e-6)
    with pytest.raises(ValueError, match="generator loss must be one of"):
        generator_loss(fake, "wasserstein")


def test_minimax_loss_saturates_where_non_saturating_does_not():
    """At a confidently rejected sample (logit -8, D = 3e-4) the min-max gradient vanishes."""
    logit = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(generator_loss(logit, "minimax")["loss"], logit)
    (g_ns,) = torch.autograd.grad(generator_loss(logit, "non_saturating")["loss"], logit)
    assert abs(g_mm.item()) == pytest.approx(torch.sigmoid(torch.tensor(-8.0)).item(), rel=1e-4)
    assert abs(g_ns.item()) == pytest.approx(1 - torch.sigmoid(torch.tensor(-8.0)).item(), rel=1e-4)
    assert abs(g_ns.item()) > 1000 * abs(g_mm.item())


def test_discriminator_steps_separate_real_from_fake():
    torch.manual_seed(0)
    model = DCGAN()
    x = data.to_signed(data.load("MNIST", "train")[0][:64])
    z = torch.randn(64, 100)
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    with torch.no_grad():
        fake = model.generator(z)

    def d_out():  # as the training step sees D: batch statistics, real and fake batches separately
        with torch.no_grad():
            return discriminator_loss(model.discriminator(x), model.discriminator(fake))

    before = d_out()
    for _ in range(5):
        loss = discriminator_loss(model.discriminator(x), model.discriminator(fake))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = d_out()
    assert after["d_real"] > before["d_real"] and after["d_fake"] < before["d_fake"]
    assert after["loss"] < before["loss"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="generator_loss must be one of"):
        GANConfig(generator_loss="hinge")
    with pytest.raises(ValueError, match=r"GANConfig.lr must be a finite number in \(0, inf\)"):
        GANConfig(lr=0.0)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train_gan(torch.zeros(4, 28, 28, dtype=torch.uint8), GANConfig(batch_size=2), 0)
    with pytest.raises(ValueError, match="precision must be one of"):
        GANConfig(batch_size=2, precision="fp16")


def test_auto_precision_is_bf16_on_gpus_and_fp32_on_cpus():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", cpu)
    x = torch.randn(4, 4)
    with autocast(cpu, "auto"):
        assert (x @ x).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (x @ x).dtype == torch.bfloat16


@pytest.fixture(scope="module")
def few_digits() -> torch.Tensor:
    return data.load("MNIST", "train")[0][:300]


def test_resume_after_interruption_equals_uninterrupted_run(few_digits, tmp_path):
    config = GANConfig(batch_size=100)
    straight, hist = train_gan(few_digits, config, 2, tmp_path / "a", "cpu", show_progress=False)
    train_gan(few_digits, config, 1, tmp_path / "b", "cpu", show_progress=False)  # "interrupted" here
    resumed, hist_b = train_gan(few_digits, config, 2, tmp_path / "b", "cpu", show_progress=False)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k
    assert hist["d_loss"] == hist_b["d_loss"] and len(hist["d_loss"]) == 2 * 3
    assert hist["steps_per_epoch"] == 3 and len(hist_b["epoch_seconds"]) == 2
    for key in ("g_loss", "d_real", "d_fake"):
        assert len(hist[key]) == 6 and all(math.isfinite(v) for v in hist[key])


def test_checkpoint_of_another_config_is_refused(few_digits, tmp_path):
    train_gan(few_digits, GANConfig(batch_size=100), 1, tmp_path, "cpu", show_progress=False)
    with pytest.raises(ValueError, match="(?s)saved with config.*'batch_size': 100.*loaded with config.*'batch_size': 150"):
        train_gan(few_digits, GANConfig(batch_size=150), 2, tmp_path, "cpu", show_progress=False)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(few_digits, tmp_path, monkeypatch):
    config = GANConfig(batch_size=100)
    train_gan(few_digits, config, 1, tmp_path, "cpu", show_progress=False)
    good = load_checkpoint(tmp_path, {"generator": Generator(), "discriminator": Discriminator()})

    def exploding(real_logits, fake_logits):
        out = discriminator_loss(real_logits, fake_logits)
        return {**out, "loss": out["loss"] * float("nan")}

    monkeypatch.setattr(gan_loop, "discriminator_loss", exploding)
    with pytest.raises(TrainingDiverged) as err:
        train_gan(few_digits, config, 3, tmp_path, "cpu", show_progress=False, check_every=2)
    msg = str(err.value)
    assert "d_loss" in msg and "became NaN/inf in epoch 2 by step 2" in msg
    assert f"the last good checkpoint (end of epoch 1) is kept in {tmp_path}" in msg
    kept = load_checkpoint(tmp_path, {"generator": Generator(), "discriminator": Discriminator()})
    assert kept["epoch"] == 1 and kept["files"] == good["files"]
