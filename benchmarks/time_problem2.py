"""Wall time of Problem 2's full training: three GB-RBMs (M = 16, 64, 256), CD-5, 25 epochs, all 60,000
KMNIST training images, exactly the notebook's recipe (``RBMTraining(RBMConfig(hidden=M))``), without
checkpoints or per-epoch evaluation.

    python benchmarks/time_problem2.py                # default device (cuda when available)
    python benchmarks/time_problem2.py --device cpu --epochs 25

Prints one line per model and the total; the issue's goal is the three models in under 4 minutes on the
2-core development CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hw5 import data  # noqa: E402
from hw5.models.rbm import RBMConfig  # noqa: E402
from hw5.training.rbm import RBMTraining, train_rbm  # noqa: E402
from hw5.utils import device_description, get_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--epochs", type=int, default=25)
    args = parser.parse_args()
    device = get_device(args.device)
    images, _ = data.load("KMNIST", "train", device)
    print(f"device: {device_description(device)}; {args.epochs} epochs on {len(images)} images per model")
    total = 0.0
    for hidden in (16, 64, 256):
        start = time.perf_counter()
        config = RBMTraining(RBMConfig(hidden=hidden))
        _, history = train_rbm(images, config, args.epochs, device=device, show_progress=False)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"M = {hidden:3d}: {seconds:6.1f} s ({seconds / args.epochs:.2f} s per epoch), "
              f"last epoch's running train MSE {history['train_mse'][-1]:.4f}", flush=True)
    print(f"all three: {total:.1f} s")


if __name__ == "__main__":
    main()
