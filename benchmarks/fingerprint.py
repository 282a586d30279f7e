"""Fingerprints of short runs of every training loop, to show a refactor changes no number.

Prints the state-dict SHA-256 (first 16 hex digits) of: 2 DCGAN epochs with a moving average of G on 600 MNIST
images; 2 RBM epochs (M = 16) on 1,024 KMNIST images; 2 classifier epochs; 3 VAE epochs (plain), 3 C-VAE
epochs (averaged iterates), the plain-and-averaged run and the 1/3-epoch snapshots on 1,000 Fashion-MNIST
images; the linear probe of a 2 x 2 x 2 grid on an untrained discriminator, and the SHA-256 of the recorded
histories and the probe's report. Run it before and after a change, on the same machine, and diff::

    .venv/bin/python benchmarks/fingerprint.py > before.json     # about 2 minutes on 2 CPU cores
"""
import hashlib, json, sys, tempfile
from pathlib import Path
import torch
from hw5 import data

def sha(module_or_modules):
    h = hashlib.sha256()
    sd = module_or_modules.state_dict()
    for k in sorted(sd):
        h.update(k.encode()); h.update(sd[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]

def hist_sha(history):
    return hashlib.sha256(json.dumps(history, sort_keys=True, default=float).encode()).hexdigest()[:16]

torch.set_num_threads(2)
out = {}
mn_x, mn_y = data.load("MNIST", "train")
km_x, _ = data.load("KMNIST", "train")
fa_x, fa_y = data.load("FashionMNIST", "train")

from hw5.training.gan import GANTraining, train_gan
cfg = GANTraining(ema_decay=0.9)
with tempfile.TemporaryDirectory() as d:
    gan, h = train_gan(mn_x[:600], cfg, 2, run_dir=Path(d) / "gan", device="cpu", show_progress=False)
out["gan_ema"] = sha(gan)
from hw5.training.rbm import RBMTraining, train_rbm
from hw5.models.rbm import RBMConfig
rbm, h = train_rbm(km_x[:1024], RBMTraining(RBMConfig(hidden=16)), 2, device="cpu", show_progress=False)
out["rbm"] = sha(rbm)
from hw5.training.classifier import ClassifierTraining, train_classifier
clf, h = train_classifier(mn_x[:600], mn_y[:600], ClassifierTraining(), 2, device="cpu", show_progress=False)
out["classifier"] = sha(clf)
from hw5.training import vae as tv
from hw5.models.vae import VAEConfig
x, y, xv, yv = fa_x[:1000], fa_y[:1000], fa_x[1000:1300], fa_y[1000:1300]
m, h = tv.train_vae(x, y, xv, yv, tv.VAETraining(), 3, device="cpu", show_progress=False)
out["vae_plain"] = sha(m); out["vae_plain_hist"] = hist_sha({k: v for k, v in h.items() if "seconds" not in k})
m, h = tv.train_vae(x, y, xv, yv, tv.VAETraining(model=VAEConfig(conditional=True), ema_decay=0.9), 3, device="cpu", show_progress=False)
out["cvae_avg"] = sha(m); out["cvae_avg_hist"] = hist_sha({k: v for k, v in h.items() if "seconds" not in k})
with tempfile.TemporaryDirectory() as d:
    res = tv.train_plain_and_averaged(x, y, xv, yv, tv.VAETraining(), 3, ema_decay=0.9, patience=2,
                                      run_dir=Path(d) / "pa", device="cpu")
    m, h, curves = res.model, res.history, res.curves
out["plain_and_averaged"] = sha(m); out["pa_curves"] = hist_sha(curves)
snaps = tv.train_snapshots(x, y, xv, yv, tv.VAETraining(), (1, 3), device="cpu", show_progress=False)
out["snapshots"] = [sha(s.model) for s in snaps]
try:  # the probe's fitting moved from hw5.metrics.probe to hw5.training.probe
    from hw5.training.probe import ProbeConfig, run_probe
except ImportError:
    from hw5.metrics.probe import ProbeConfig, run_probe
torch.manual_seed(0)
from hw5.models.dcgan import DCGAN, DCGANConfig
d = DCGAN(DCGANConfig()).discriminator.eval()
cfg = ProbeConfig(penalties=(1e-2, 1e-3), copies=(0, 1), radii=(0, 1), folds=2, max_iter=20)
probe, report = run_probe(lambda im: d.features(im * 2 - 1), mn_x[:300], mn_y[:300], mn_x[300:500], mn_y[300:500], cfg, device="cpu")
out["probe"] = sha(probe); out["probe_report"] = hist_sha(report.to_dict())
print(json.dumps(out, indent=1))
