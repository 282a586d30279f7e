"""Every training entry point the notebooks call, on each device, resume included.

Parametrised over the devices present (the CPU always, CUDA when torch sees a GPU); the images and labels are
given on the CPU, as ``hw5.data.load`` returns them. A GPU draws other random numbers than a CPU during training
(its own generators), so a device's run is not compared with the CPU's; each test checks, on its device:

(a) the run trains there: the returned modules are on the device in eval mode, the history is well formed
    (one finite value per step or epoch) and, where a few steps on separable data make it a safe claim, the
    training loss falls;
(b) a run interrupted after epoch 1 and resumed from its folder equals the uninterrupted run bit for bit
    (weights, buffers and history but the wall-clock times): the runner reseeds every generator per epoch and
    runs cuDNN deterministic (:func:`hw5.utils.float32_math`), so this holds on a GPU too;
(c) the run folder records ``{"device": <type>, "precision": "fp32"}`` (a resume elsewhere is refused:
    ``tests/test_gpu_ready.py``).

On a CPU-only machine these compare the CPU with itself (the CUDA legs are not collected). The evaluation
functions, compared across devices on the same draws: ``tests/test_devices.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hw5.models.classifier import Classifier, ClassifierConfig
from hw5.models.rbm import RBMConfig
from hw5.models.vae import VAEConfig
from hw5.training.classifier import ClassifierTraining, train_classifier
from hw5.training.gan import GANTraining, train_gan
from hw5.training.rbm import RBMTraining, train_rbm
from hw5.training.vae import VARIANTS, VAETraining, train_plain_and_averaged, train_snapshots, train_vae

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TIMES = ("epoch_seconds", "epoch_cpu_seconds", "eval_seconds")


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def _digits(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable stand-ins for digits: image i is the fixed random pattern of class i mod 10 plus 20% noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    patterns = (torch.rand(10, 28, 28, generator=gen) < 0.3).float()
    images = (0.8 * patterns[labels] + 0.2 * torch.rand(n, 28, 28, generator=gen)) * 255
    return images.to(torch.uint8), labels


def _strip(history: dict) -> dict:
    """A history without its wall-clock times (the only values a resumed run may not replay)."""
    return {k: v for k, v in history.items() if k not in TIMES}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _trained_on(model: torch.nn.Module, device: str) -> None:
    """The model came back on ``device``, every parameter and buffer, in eval mode."""
    assert {t.device.type for t in (*model.parameters(), *model.buffers())} == {device}
    assert not any(m.training for m in model.modules())


def _recorded(run_dir: Path, device: str) -> None:
    sidecar = json.loads((run_dir / "checkpoint.json").read_text())
    assert sidecar["environment"] == {"device": device, "precision": "fp32"}


def _finite(values: list, count: int) -> None:
    assert len(values) == count and all(isinstance(v, float) and math.isfinite(v) for v in values), values


def _resumed(train, tmp_path: Path, epochs: int = 2):
    """(uninterrupted run, run stopped after epoch 1 and resumed): ``train(run_dir, epochs)`` called three times."""
    straight = train(tmp_path / "straight", epochs)
    train(tmp_path / "resumed", 1)
    return straight, train(tmp_path / "resumed", epochs)


def test_gan_with_averaging_judge_and_keep_best(device, tmp_path):
    x, _ = _digits(8)  # one step of 8 images per epoch: the DCGAN has its full size (~1 s a step on 2 cores)
    torch.manual_seed(1)
    judge = Classifier(ClassifierConfig(width=4, feature_dim=16)).to(device)
    config = GANTraining(batch_size=8, ema_decay=0.9, keep_best=True)

    def train(run_dir, epochs):
        return train_gan(x, config, epochs, run_dir=run_dir, device=device, show_progress=False, judge=judge,
                         held_out=x, estimate_samples=10)

    (model, history), (resumed, resumed_history) = _resumed(train, tmp_path)
    _same_weights(model, resumed)
    assert _strip(history) == _strip(resumed_history)
    _trained_on(model, device)
    assert sorted(name for name, _ in model.named_children()) == ["discriminator", "generator", "raw_generator"]
    assert history["steps_per_epoch"] == 1
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        _finite(history[key], 2)
    for key in ("fd_estimate_raw", "fd_estimate_ema"):
        _finite(history[key], 2)
    assert history["kept_epoch"] == 1 + min(range(2), key=history["fd_estimate_ema"].__getitem__)
    _recorded(tmp_path / "resumed", device)


def test_rbm_and_its_export(device, tmp_path, monkeypatch):
    """``train_rbm`` resumes bit for bit; ``train_or_load`` (the notebook's call) exports the weights, and the
    shipped mode loads them back on the settings' device."""
    from hw5 import locations
    from hw5.pretrained import train_or_load
    from hw5.settings import Settings

    x, _ = _digits()
    config = RBMTraining(RBMConfig(hidden=8, gibbs_steps=2), batch_size=32)

    def train(run_dir, epochs):
        return train_rbm(x, config, epochs, run_dir=run_dir, device=device, eval_images=x[:16], show_progress=False)

    (model, history), (resumed, resumed_history) = _resumed(train, tmp_path)
    _same_weights(model, resumed)
    assert _strip(history) == _strip(resumed_history)
    _trained_on(model, device)
    for key in ("loss", "train_mse", "eval_mse", "eval_mse_meanfield"):
        _finite(history[key], 2)
    assert history["cholesky_fallbacks"] == [0, 0]  # 8 random filters: W W^T positive definite
    _recorded(tmp_path / "resumed", device)
    settings = Settings(out=tmp_path / "out", device=device)
    exported, exported_history = train_or_load("rbm_t", settings, 2, lambda run_dir: train(run_dir, 2), config)
    _same_weights(model, exported)
    assert _strip(exported_history) == _strip(history)
    _recorded(settings.runs_dir(2) / "rbm_t", device)
    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", settings.weights_dir())
    shipped, shipped_history = train_or_load("rbm_t", settings.replace(use_shipped=True), 2, None, config)
    _trained_on(shipped, device)
    _same_weights(model, shipped)
    assert _strip(shipped_history) == _strip(history)


@pytest.mark.parametrize("conditional", [False, True], ids=["VAE", "C-VAE"])
def test_vae_and_cvae(device, tmp_path, conditional):
    x, y = _digits(80)
    config = VAETraining(model=VAEConfig(conditional=conditional), batch_size=32, lr=3e-3,
                         ema_decay=0.5 if conditional else 0.0)

    def train(run_dir, epochs):
        return train_vae(x[:64], y[:64], x[64:], y[64:], config, epochs, run_dir=run_dir, device=device,
                         show_progress=False)

    (model, history), (resumed, resumed_history) = _resumed(train, tmp_path)
    _same_weights(model, resumed)
    assert _strip(history) == _strip(resumed_history)
    _trained_on(model, device)
    assert model.conditional is conditional
    for key in ("train_loss", "val_neg_elbo", "val_recon", "val_kl"):
        _finite(history[key], 2)
    assert history["train_loss"][1] < history["train_loss"][0]
    assert history["best_val_loss"] == min(history["val_neg_elbo"])
    _recorded(tmp_path / "resumed", device)


def test_plain_and_averaged(device, tmp_path):
    x, y = _digits(80)

    def train(run_dir, epochs):
        return train_plain_and_averaged(x[:64], y[:64], x[64:], y[64:], VAETraining(batch_size=32, lr=3e-3), epochs,
                                        ema_decay=0.5, run_dir=run_dir, device=device)

    straight, resumed = _resumed(train, tmp_path)
    assert (straight.kept, straight.curves, straight.training) == (resumed.kept, resumed.curves, resumed.training)
    assert _strip(straight.history) == _strip(resumed.history)
    _same_weights(straight.model, resumed.model)
    _trained_on(straight.model, device)
    assert straight.kept in VARIANTS and straight.training.ema_decay == (0.5 if straight.kept == "averaged" else 0.0)
    for curve in straight.curves.values():
        _finite(curve, 2)
    assert straight.history["train_loss"][1] < straight.history["train_loss"][0]
    _recorded(tmp_path / "resumed", device)


def test_snapshots_resume_after_an_interruption(device, tmp_path, monkeypatch):
    import hw5.training.vae as training

    x, y = _digits(80)
    config = VAETraining(batch_size=32, lr=3e-3)

    def train(run_dir):
        return train_snapshots(x[:64], y[:64], x[64:], y[64:], config, (1, 2), run_dir=run_dir, device=device,
                               show_progress=False)

    straight = train(tmp_path / "straight")
    calls, original = [], training.elbo_terms

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the validation at the end of epoch 2: epoch 1 (and its snapshot) is committed
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "elbo_terms", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed")
    monkeypatch.setattr(training, "elbo_terms", original)
    resumed = train(tmp_path / "resumed")
    assert [s.epochs for s in straight] == [s.epochs for s in resumed] == [1, 2]
    for a, b in zip(straight, resumed):
        assert _strip(a.history) == _strip(b.history)
        _same_weights(a.model, b.model)
        _trained_on(a.model, device)
    _finite(straight[1].history["val_neg_elbo"], 2)
    _recorded(tmp_path / "resumed", device)


def test_classifier(device, tmp_path):
    x, y = _digits(64)
    config = ClassifierTraining(model=ClassifierConfig(width=4, feature_dim=16), lr=5e-3, batch_size=16)

    def train(run_dir, epochs):
        return train_classifier(x, y, config, epochs, run_dir=run_dir, device=device, show_progress=False)

    (model, history), (resumed, resumed_history) = _resumed(train, tmp_path)
    _same_weights(model, resumed)  # the batch-norm buffers too
    assert _strip(history) == _strip(resumed_history)
    _trained_on(model, device)
    _finite(history["loss"], 2)
    assert history["loss"][1] < history["loss"][0] and 0.0 <= history["train_acc"][1] <= 1.0
    _recorded(tmp_path / "resumed", device)
