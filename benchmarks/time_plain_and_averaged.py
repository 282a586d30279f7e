"""Problem 3's plain and averaged variants: one shared trajectory against two separate runs.

    python benchmarks/time_plain_and_averaged.py                     # default device, 3 epochs
    python benchmarks/time_plain_and_averaged.py --device cpu --epochs 5 --conditional

Both on the notebook's split (48,000 training and 12,000 validation Fashion-MNIST images), the template's
recipe with the moving average's decay 0.999, no patience (every epoch runs), checkpoints in a temporary
folder as in the notebook. Checks that the two give the same validation curves, and prints one line:
``variants: one trajectory <s> s, two runs <s> s, ratio <r>, device <name>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hw5 import data  # noqa: E402
from hw5.models.vae import VAEConfig  # noqa: E402
from hw5.training.vae import VAETraining, train_plain_and_averaged, train_vae  # noqa: E402
from hw5.utils import device_description, get_device  # noqa: E402

DECAY = 0.999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--conditional", action="store_true", help="the C-VAE instead of the VAE")
    args = parser.parse_args()
    device = get_device(args.device)
    x, y = data.load("FashionMNIST", "train", device)
    (x_tr, y_tr), (x_val, y_val) = [(x[i.to(device)], y[i.to(device)])
                                    for i in data.train_val_split(len(x), val_fraction=0.2, seed=0)]
    config = VAETraining(VAEConfig(conditional=args.conditional))
    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        curves = train_plain_and_averaged(x_tr, y_tr, x_val, y_val, config, args.epochs, ema_decay=DECAY,
                                          run_dir=Path(runs) / "joint", device=device).curves
        joint = time.perf_counter() - start
        start = time.perf_counter()
        separate = {v: train_vae(x_tr, y_tr, x_val, y_val, dataclasses.replace(config, ema_decay=d), args.epochs,
                                 run_dir=Path(runs) / v, device=device, show_progress=False)[1]["val_neg_elbo"]
                    for v, d in (("plain", 0.0), ("averaged", DECAY))}
        two = time.perf_counter() - start
    if separate != curves:
        raise SystemExit(f"the one-trajectory curves differ from the separate runs': {curves} vs {separate}")
    print(f"variants: one trajectory {joint:.1f} s, two runs {two:.1f} s, ratio {two / joint:.2f}, "
          f"device {device_description(device)}")


if __name__ == "__main__":
    main()
