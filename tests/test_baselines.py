"""The benchmark's template-style baselines compute the same maths as hw5 (so the speed ratios compare
like with like)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import baselines  # noqa: E402

from hw5.models.rbm import RBM, RBMConfig  # noqa: E402
from hw5.models.vae import CVAE, VAE, vae_loss  # noqa: E402


def test_template_rbm_free_energy_equals_hw5():
    torch.manual_seed(0)
    template = baselines.TemplateRBM(D=20, F=6)
    with torch.no_grad():
        template.v_bias.normal_()
        template.h_bias.normal_()
    ours = RBM(RBMConfig(visible=20, hidden=6, gibbs_steps=5))
    ours.load_state_dict({"W": template.W, "b": template.v_bias, "alpha": template.h_bias, "sigma": torch.ones(20)})
    v = torch.randn(9, 20)
    assert torch.allclose(template.free_energy(v), ours.free_energy(v), atol=1e-5)
    v_k, mean = template(v)
    assert v_k.shape == mean.shape == (9, 20)


def test_template_vae_loss_equals_hw5_negative_elbo():
    torch.manual_seed(0)
    for conditional, cls in ((False, VAE), (True, CVAE)):
        template = baselines.TemplateVAE(conditional)
        ours = cls()
        ours.load_state_dict(template.state_dict())
        x = torch.rand(7, 1, 28, 28)
        y = torch.randint(0, 10, (7,))
        c = torch.nn.functional.one_hot(y, 10).float() if conditional else None
        mu_t, logvar_t = template.encode(x.view(-1, 784), c)
        mu, logvar = ours.encode(x, y)
        assert torch.allclose(mu, mu_t, atol=1e-6) and torch.allclose(logvar, logvar_t, atol=1e-6)
        z = torch.randn(7, 20)
        probs = template.decode(z, c)
        logits = ours.decode(z, y)
        assert torch.allclose(torch.sigmoid(logits), probs, atol=1e-6)
        bce = torch.nn.functional.binary_cross_entropy(probs, x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        ours_loss = vae_loss(logits, x, mu, logvar)["neg_elbo"]
        assert torch.allclose((bce + kld) / 7, ours_loss, rtol=1e-5)


def test_baseline_loops_take_steps():
    images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    cpu = torch.device("cpu")
    data = baselines.loader(images, labels, 16)
    assert len(baselines.rbm_epoch(baselines.TemplateRBM(F=8), data, cpu, 3)) == 3
    assert len(baselines.vae_epoch(baselines.TemplateVAE(conditional=True), data, cpu, 2)) == 2
    from hw5.models.dcgan import DCGAN
    signed = baselines.loader(images, labels, 8, signed=True)
    x, _ = next(iter(signed))
    assert x.shape == (8, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert len(baselines.gan_epoch(DCGAN(), signed, cpu, 1)) == 1


def test_floor_recorder_keeps_the_dense_work_and_replays_it():
    import bench_train

    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    x = torch.randn(4, 5)

    def step() -> None:
        layer(x).relu().sum().backward()
        torch.randn(7)

    calls = bench_train.record(step)
    # forward addmm, backward mm for the weight gradient only (x needs none), the draw; relu and sum dropped
    assert sorted(func.overloadpacket.__name__ for func, _, _ in calls) == ["addmm", "mm", "randn"]
    assert layer.weight.grad is not None  # recording ran the step as usual
    assert bench_train.replay_seconds(calls, torch.device("cpu")) > 0
