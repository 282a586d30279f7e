"""Fingerprints of short runs of every training loop, to show that a refactor changes no number.

Prints, as JSON, the state-dict SHA-256 (first 16 hex digits) of: 2 DCGAN epochs with a moving average of G on
600 MNIST images; 2 RBM epochs (M = 16) on 1,024 KMNIST images; 2 classifier epochs on 600 MNIST images;
3 VAE epochs (plain iterates), 3 C-VAE epochs (averaged iterates), the plain-and-averaged run and the 1/3-epoch
snapshots on 1,000 Fashion-MNIST images; the linear probe of a 2 x 2 x 2 grid on an untrained discriminator;
and the SHA-256 of the recorded histories (timings left out) and of the probe's report. Run it before and after
a change, on the same machine, and compare::

    .venv/bin/python benchmarks/fingerprint.py > before.json     # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hw5 import data
from hw5.models import DCGAN, DCGANConfig, RBMConfig, VAEConfig
from hw5.training import (ClassifierTraining, GANTraining, RBMTraining, VAETraining, train_classifier, train_gan,
                          train_plain_and_averaged, train_rbm, train_snapshots, train_vae)
from hw5.training.probe import ProbeConfig, run_probe


def weights_hash(module: nn.Module) -> str:
    """SHA-256 of a module's state dict: every tensor's bytes, in key order."""
    digest = hashlib.sha256()
    state = module.state_dict()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def record_hash(record: Any) -> str:
    """SHA-256 of a JSON-able record (histories: timings left out)."""
    if isinstance(record, dict):
        record = {k: v for k, v in record.items() if "seconds" not in k}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=float).encode()).hexdigest()[:16]


def main() -> None:
    torch.set_num_threads(2)
    out: dict[str, Any] = {}
    mnist, mnist_labels = data.load("MNIST", "train")
    kmnist, _ = data.load("KMNIST", "train")
    fashion, fashion_labels = data.load("FashionMNIST", "train")
    with tempfile.TemporaryDirectory() as folder:
        gan, _ = train_gan(mnist[:600], GANTraining(ema_decay=0.9), 2, run_dir=Path(folder) / "gan", device="cpu",
                           show_progress=False)
    out["gan_ema"] = weights_hash(gan)
    rbm, _ = train_rbm(kmnist[:1024], RBMTraining(RBMConfig(hidden=16)), 2, device="cpu", show_progress=False)
    out["rbm"] = weights_hash(rbm)
    classifier, _ = train_classifier(mnist[:600], mnist_labels[:600], ClassifierTraining(), 2, device="cpu",
                                     show_progress=False)
    out["classifier"] = weights_hash(classifier)
    vae_data = fashion[:1000], fashion_labels[:1000], fashion[1000:1300], fashion_labels[1000:1300]
    model, history = train_vae(*vae_data, VAETraining(), 3, device="cpu", show_progress=False)
    out["vae_plain"], out["vae_plain_hist"] = weights_hash(model), record_hash(history)
    model, history = train_vae(*vae_data, VAETraining(model=VAEConfig(conditional=True), ema_decay=0.9), 3,
                               device="cpu", show_progress=False)
    out["cvae_avg"], out["cvae_avg_hist"] = weights_hash(model), record_hash(history)
    with tempfile.TemporaryDirectory() as folder:
        both = train_plain_and_averaged(*vae_data, VAETraining(), 3, ema_decay=0.9, patience=2,
                                        run_dir=Path(folder) / "pa", device="cpu")
    out["plain_and_averaged"], out["pa_curves"] = weights_hash(both.model), record_hash(both.curves)
    snapshots = train_snapshots(*vae_data, VAETraining(), (1, 3), device="cpu", show_progress=False)
    out["snapshots"] = [weights_hash(s.model) for s in snapshots]
    torch.manual_seed(0)
    discriminator = DCGAN(DCGANConfig()).discriminator.eval()
    config = ProbeConfig(penalties=(1e-2, 1e-3), copies=(0, 1), radii=(0, 1), folds=2, max_iter=20)
    probe, report = run_probe(lambda x: discriminator.features(x * 2 - 1), mnist[:300], mnist_labels[:300],
                              mnist[300:500], mnist_labels[300:500], config, device="cpu")
    out["probe"], out["probe_report"] = weights_hash(probe), record_hash(report.to_dict())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
