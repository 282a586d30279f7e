"""Every evaluation function the notebooks call works whatever device its inputs are on.

Parametrised over the devices present (the CPU always, CUDA when torch sees a GPU): the model lives on the
device, the images and labels stay on the CPU (as ``hw5.data.load`` returns them by default), and each result
equals the all-CPU computation and is where the function's docstring says it is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw5.metrics import classifier as C
from hw5.metrics import gan as G
from hw5.metrics import rbm as R
from hw5.metrics import vae as V
from hw5.models.classifier import Classifier
from hw5.models.dcgan import DCGAN
from hw5.models.rbm import RBM, RBMConfig
from hw5.models.vae import CVAE, VAE
from hw5.training.classifier import ClassifierTraining, train_classifier
from hw5.training.gan import GANTraining, train_gan
from hw5.training.rbm import RBMTraining, train_rbm
from hw5.training.vae import VAETraining, train_vae
from hw5.utils import get_device, layer_shapes

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _images(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=gen))


def _on(model: torch.nn.Module, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights on the CPU and on ``device``."""
    torch.manual_seed(0)
    cpu = model.eval()
    there = type(model)(model.config)
    there.load_state_dict(cpu.state_dict())
    return cpu, there.to(device).eval()


def _close(a, b, **tol):
    if isinstance(a, torch.Tensor):
        assert b.device.type == get_device(b.device).type
        torch.testing.assert_close(a.cpu(), b.cpu(), **tol)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _close(a[key], b[key], **tol)
    elif isinstance(a, (list, tuple)):
        for x, y in zip(a, b):
            _close(x, y, **tol)
    else:
        assert a == pytest.approx(b, rel=1e-4, abs=1e-4)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def test_the_default_device_is_the_gpu_when_there_is_one():
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_vae_evaluation(device):
    x, y = _images()
    for cls in (VAE, CVAE):
        cpu, there = _on(cls(), device)
        _close(V.negative_elbo(cpu, x, y, samples=2), V.negative_elbo(there, x, y, samples=2))
        assert V.elbo_terms(there, x, y).device.type == device
        bounds = V.iwae_log_likelihoods(there, x, y, samples=4)
        assert bounds.device.type == device and bounds.shape == (40,)
        np.testing.assert_allclose(V.encode_mean(cpu, x, y), V.encode_mean(there, x, y), rtol=1e-4, atol=1e-5)
        assert isinstance(V.iwae_bound(there, x, y, samples=3), float)
        path = there.interpolate(x[0].float() / 255, x[1].float() / 255, 2, 5, steps=4)
        assert path.device.type == device and path.shape == (4, 1, 28, 28)
    ll = V.class_log_likelihoods(there, x[:6], samples=3)
    assert ll.device.type == device and ll.shape == (6, 10)
    report = V.marginal_report(ll, y[:6])  # labels on the CPU, scores on the device
    assert 0.0 <= report["bayes_accuracy"] <= 1.0
    images, classes = there.class_samples(2, generator=torch.Generator(device).manual_seed(0))
    assert images.device.type == classes.device.type == device
    assert there.decode_under_all_classes(torch.zeros(2, 20)).device.type == device


def test_rbm_evaluation(device):
    x, _ = _images(300)
    cpu, there = _on(RBM(RBMConfig(hidden=16, gibbs_steps=3)), device)
    scores_cpu, scores = R.reconstruction_mse(cpu, x), R.reconstruction_mse(there, x)
    assert scores["meanfield"] == pytest.approx(scores_cpu["meanfield"], rel=1e-4)
    if device == "cpu":
        assert scores == scores_cpu  # the chain's draws come from the device's generator: equal on the CPU
    shown = R.reconstruct(there, x[:10])
    assert shown["chain"].device.type == "cpu" and shown["chain"].shape == (10, 1, 28, 28)
    pca = R.pca_reconstruction_mse(x.to(device), x, [4])
    assert pca == pytest.approx(R.pca_reconstruction_mse(x, x, [4]))


def test_gan_and_classifier_evaluation(device):
    x, y = _images(60)
    cpu, there = _on(Classifier(), device)
    _close(C.predict_logits(cpu, x), C.predict_logits(there, x), rtol=1e-4, atol=1e-4)
    assert C.predict_logits(there, x).device.type == device
    assert C.classifier_accuracy(there, x, y) == pytest.approx(C.classifier_accuracy(cpu, x, y))
    feats, probs = G.judge(there, x)
    assert feats.device.type == probs.device.type == device
    real, _ = G.judge(cpu, x)  # features on the CPU, samples judged on the device: the FD still compares
    report = G.sample_report(there, x[:30].float() / 255, real, splits=3)
    assert report["fd_classifier"] >= -1e-6 and len(report["class_fractions"]) == 10
    gan_cpu, gan = _on(DCGAN(), device)
    samples = gan.sample(4, generator=torch.Generator(device).manual_seed(0))
    assert samples.device.type == device
    idx, dist = G.nearest_neighbours(samples, x)  # reference images on the CPU
    assert idx.device.type == dist.device.type == device
    shapes = layer_shapes(gan.discriminator, torch.zeros(1, 1, 28, 28))  # input on the CPU
    assert shapes[-1] == ("final", (1,))


def test_training_loops_take_cpu_data_to_the_device(device):
    x, y = _images(64)
    gan, _ = train_gan(x, GANTraining(batch_size=32), 1, device=device, show_progress=False)
    rbm, _ = train_rbm(x, RBMTraining(RBMConfig(hidden=8), batch_size=32), 1, device=device, eval_images=x[:16],
                       show_progress=False)
    vae, _ = train_vae(x, y, x[:16], y[:16], VAETraining(batch_size=32), 1, device=device, show_progress=False)
    clf, _ = train_classifier(x, y, ClassifierTraining(batch_size=32), 1, device=device, show_progress=False)
    for model in (gan, rbm, vae, clf):
        assert next(model.parameters()).device.type == device and not model.training
