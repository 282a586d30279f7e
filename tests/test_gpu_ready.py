"""What a GPU would change, checked on any machine: evaluation noise from CPU generators (the same draws on every
device), evaluation in exact fp32 whatever autocast or TF32 the caller set, the DCGAN's fp32 default, the run
folder's record of device type and precision (resuming elsewhere refused), and the RBM's Cholesky fallback
counted on the device. The cross-device comparisons themselves are in ``tests/test_devices.py`` (they run where
a CUDA GPU is visible)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hw5
from hw5.checkpoint import CheckpointError
from hw5.metrics import gan as gan_metrics
from hw5.metrics import latent
from hw5.metrics.rbm import reconstruction_mse
from hw5.metrics.vae import elbo_terms, iwae_log_likelihoods
from hw5.models.base import rand, randn
from hw5.models.classifier import Classifier
from hw5.models.dcgan import DCGAN, Discriminator
from hw5.models.rbm import RBM, RBMConfig
from hw5.models.vae import VAE, VAEConfig
from hw5.training.gan import GANTraining
from hw5.training.optim import resolve_precision
from hw5.training.rbm import RBMTraining, train_rbm
from hw5.utils import eval_mode, float32_math, no_autocast


# -- noise: from the generator's device, then moved -----------------------------------------------------------
def test_noise_comes_from_the_generator_and_lands_on_the_device():
    draws = randn((3, 4), device="cpu", generator=torch.Generator().manual_seed(5))
    assert torch.equal(draws, torch.randn(3, 4, generator=torch.Generator().manual_seed(5)))
    uniform = rand((6,), device=torch.device("cpu"), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert uniform.dtype == torch.float64
    assert torch.equal(uniform, torch.rand(6, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    torch.manual_seed(9)
    expected = torch.randn(2, 2)
    torch.manual_seed(9)
    assert torch.equal(randn((2, 2), device="cpu"), expected)  # no generator: the device's default one


def test_the_evaluation_draws_are_the_cpu_generators_own():
    """ELBO and IWAE use a CPU generator seeded ``seed``: the bound equals a hand computation on those draws
    (so a GPU, which receives the same draws, reproduces the CPU's numbers to float rounding)."""
    torch.manual_seed(0)
    model = VAE(VAEConfig()).eval()
    x = torch.rand(7, 1, 28, 28)
    labels = torch.zeros(7, dtype=torch.long)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
        logits = model.decode(z)
        recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x.view(7, -1), reduction="sum") / 7
    neg_elbo, rec, _ = elbo_terms(model, x, labels, seed=3).tolist()
    assert rec == pytest.approx(recon.item(), rel=1e-6)
    assert neg_elbo > rec
    a, b = (iwae_log_likelihoods(model, x, labels, samples=4, seed=1) for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, iwae_log_likelihoods(model, x, labels, samples=4, seed=2))


# -- exact fp32 in every evaluation ---------------------------------------------------------------------------
def test_evaluations_ignore_a_callers_bf16_autocast():
    torch.manual_seed(0)
    vae, x, labels = VAE(VAEConfig()).eval(), torch.rand(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)
    rbm = RBM(RBMConfig(hidden=16))
    v = torch.randn(4, 784)
    gan = DCGAN()
    judge = Classifier()
    plain = (elbo_terms(vae, x, labels), iwae_log_likelihoods(vae, x, labels, samples=3),
             rbm.gibbs_chain(v, generator=torch.Generator().manual_seed(1)).mean_k,
             gan_metrics.judge(judge, x)[0], reconstruction_mse(rbm, x[:, 0])["chain"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = (elbo_terms(vae, x, labels), iwae_log_likelihoods(vae, x, labels, samples=3),
                 rbm.gibbs_chain(v, generator=torch.Generator().manual_seed(1)).mean_k,
                 gan_metrics.judge(judge, x)[0], reconstruction_mse(rbm, x[:, 0])["chain"])
    for a, b in zip(plain, under):
        assert (torch.equal(a, b) and a.dtype == b.dtype) if isinstance(a, torch.Tensor) else a == b


def test_the_discriminators_logit_is_fp32_under_autocast():
    disc = Discriminator()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert disc(torch.randn(2, 1, 28, 28)).dtype == torch.float32


def test_float32_math_switches_tf32_off_and_restores_the_callers_setting():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    try:
        matmul.fp32_precision = conv.fp32_precision = "tf32"
        with float32_math():
            assert matmul.fp32_precision == conv.fp32_precision == "ieee"
        with float32_math(tf32=True, deterministic=True):
            assert matmul.fp32_precision == "tf32" and torch.backends.cudnn.deterministic
        assert matmul.fp32_precision == conv.fp32_precision == "tf32"
        with eval_mode(torch.nn.Linear(2, 2)):  # every evaluation: exact fp32
            assert matmul.fp32_precision == conv.fp32_precision == "ieee"
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
        assert matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved
    with torch.autocast("cpu", dtype=torch.bfloat16), no_autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# -- precision: fp32 by default, recorded, and resuming elsewhere refused ---------------------------------------
def test_the_dcgan_trains_in_fp32_by_default_on_every_device():
    assert GANTraining().precision == "fp32"
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("fp32", cuda) == "fp32" and resolve_precision("tf32", cuda) == "tf32"
    assert resolve_precision("tf32", cpu) == "fp32"  # a CPU has no TF32
    assert resolve_precision("bf16", cuda) == "bf16" and resolve_precision("auto", cuda) == "bf16"
    shipped = json.loads((Path(hw5.__file__).parent / "weights" / "dcgan" / "checkpoint.json").read_text())
    assert shipped["config"]["precision"] == "fp32"  # the shipped run's record (trained on a CPU)


@pytest.fixture()
def tiny_rbm_run(tmp_path):
    images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)
    config = RBMTraining(RBMConfig(hidden=8, gibbs_steps=2), batch_size=32)
    model, history = train_rbm(images, config, 1, run_dir=tmp_path / "run", device="cpu", show_progress=False)
    return images, config, tmp_path / "run", history


def test_a_run_folder_records_device_and_precision(tiny_rbm_run):
    _, _, run_dir, history = tiny_rbm_run
    sidecar = json.loads((run_dir / "checkpoint.json").read_text())
    assert sidecar["environment"] == {"device": "cpu", "precision": "fp32"}
    assert "environment" not in history


def test_resuming_on_another_device_type_is_refused_with_both_named(tiny_rbm_run):
    images, config, run_dir, _ = tiny_rbm_run
    path = run_dir / "checkpoint.json"
    sidecar = json.loads(path.read_text())
    sidecar["environment"] = {"device": "cuda", "precision": "bf16"}
    path.write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match=r"(?s)'cuda'.*'bf16'.*'cpu'.*'fp32'.*another run folder"):
        train_rbm(images, config, 2, run_dir=run_dir, device="cpu", show_progress=False)


def test_a_folder_written_before_the_record_still_resumes(tiny_rbm_run):
    images, config, run_dir, _ = tiny_rbm_run
    path = run_dir / "checkpoint.json"
    sidecar = json.loads(path.read_text())
    del sidecar["environment"]
    path.write_text(json.dumps(sidecar))
    _, history = train_rbm(images, config, 2, run_dir=run_dir, device="cpu", show_progress=False)
    assert len(history["loss"]) == 2 and history["cholesky_fallbacks"] == [0, 0]


# -- the RBM's Cholesky fallback, decided on the device ----------------------------------------------------------
def _singular_rbm() -> RBM:
    torch.manual_seed(0)
    rbm = RBM(RBMConfig(hidden=6, gibbs_steps=3))
    with torch.no_grad():
        rbm.W[2] = 0.0  # a dead hidden unit: W W^T is singular, its Cholesky factorisation fails
        rbm.alpha.normal_()
    return rbm


def test_a_singular_gram_falls_back_to_the_exact_plain_chain_on_the_cpu():
    rbm, v = _singular_rbm(), torch.randn(5, 784)
    chain = rbm.gibbs_chain(v, generator=torch.Generator().manual_seed(1), collapsed=True)
    plain = rbm.gibbs_chain(v, generator=torch.Generator().manual_seed(1), collapsed=False)
    assert chain.fallback.item() == 1.0 and plain.fallback.item() == 0.0
    assert torch.equal(chain.v_k, plain.v_k)


def test_the_device_side_fallback_draws_a_finite_chain_and_changes_nothing_when_not_needed():
    rbm, v = _singular_rbm(), torch.randn(5, 784)
    chain = rbm.gibbs_chain(v, generator=torch.Generator().manual_seed(1), collapsed=True, device_fallback=True)
    assert chain.fallback.item() == 1.0 and torch.isfinite(chain.v_k).all()
    healthy = RBM(RBMConfig(hidden=6, gibbs_steps=3))
    a = healthy.gibbs_chain(v, generator=torch.Generator().manual_seed(2), collapsed=True)
    b = healthy.gibbs_chain(v, generator=torch.Generator().manual_seed(2), collapsed=True, device_fallback=True)
    assert a.fallback.item() == b.fallback.item() == 0.0 and torch.equal(a.v_k, b.v_k)


def test_training_counts_the_fallbacks_per_epoch(tiny_rbm_run):
    assert tiny_rbm_run[3]["cholesky_fallbacks"] == [0]


# -- NumPy statistics take tensors from any device ----------------------------------------------------------------
def test_latent_statistics_take_tensors():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(60, 3, generator=gen)
    labels = torch.arange(60) % 3
    mu[:, 0] += labels * 3.0
    assert latent.knn_accuracy(mu, labels) == latent.knn_accuracy(mu.numpy(), labels.numpy())
    assert latent.class_variance_share(mu, labels) == latent.class_variance_share(mu.numpy(), labels.numpy())
    assert latent.active_units(mu) == latent.active_units(mu.numpy())
    assert isinstance(latent.as_numpy(mu.requires_grad_()), np.ndarray)


def test_sampling_for_display_ignores_a_callers_autocast():
    torch.manual_seed(0)
    vae, cvae, rbm = VAE(VAEConfig()), VAEConfig(conditional=True).build(), RBM()
    x = torch.rand(2, 1, 28, 28)

    def draws():
        return (vae.sample(3, generator=torch.Generator().manual_seed(1)),
                cvae.class_samples(1, torch.Generator().manual_seed(1))[0],
                cvae.interpolate(x[0], x[1], 0, 1, steps=3), vae.reconstruct(x),
                rbm.sample(2, steps=2, generator=torch.Generator().manual_seed(1)))

    plain = draws()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = draws()
    for a, b in zip(plain, under):
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
