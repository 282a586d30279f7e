"""Training speed of hw5's four loops against template-style baselines, in one process and one run.

    python benchmarks/bench_train.py                 # the default device (cuda when available)
    python benchmarks/bench_train.py --device cpu

For each loop (DCGAN, RBM at M = 256, VAE, C-VAE) it times a fixed number of optimisation steps of the hw5
loop (``hw5.training.*``, called exactly as the notebooks call it) and of a baseline of the same maths
written the way the course templates write it (``benchmarks/baselines.py``: a ``DataLoader`` over a
per-item dataset, fp32, ``.item()`` every step), on the same device and data, with the homework's batch
sizes. Steps per second are taken from the difference between a short and a long run, so one-off costs
(building the model, first-call kernel selection, moving the split to the device) cancel out.

Work per step is counted once, on the baseline's step, with ``torch.utils.flop_counter.FlopCounterMode``
(matmuls and convolutions, forward and backward); hw5's achieved rate is that useful work per second,
shown against the machine's own matmul rate measured in the same run (a large fp32 ``torch.matmul``), so
the ratio holds on a noisy machine. The last line reads ``ratios: gan=<x> rbm=<x> vae=<x> cvae=<x>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import baselines  # noqa: E402

from hw5 import data  # noqa: E402
from hw5.models.dcgan import DCGAN  # noqa: E402
from hw5.training.gan import GANConfig, train_gan  # noqa: E402
from hw5.training.rbm import RBMConfig, train_rbm  # noqa: E402
from hw5.training.vae import VAEConfig, train_vae  # noqa: E402
from hw5.utils import device_description, get_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, seconds: float = 1.5) -> float:
    """Sustained rate of an (n x n) @ (n x n) matmul in GFLOP/s (2 n^3 FLOPs per product)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
        _sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def steps_per_second(run: Callable[[int], object], short: int, long: int, device: torch.device) -> float:
    """(long - short) / (t(long) - t(short)): the marginal rate, one-off costs cancelled."""
    times = {}
    for n in (short, long):
        _sync(device)
        start = time.perf_counter()
        run(n)
        _sync(device)
        times[n] = time.perf_counter() - start
    return (long - short) / max(times[long] - times[short], 1e-9)


def flops_per_step(step: Callable[[], object]) -> float:
    """FLOPs of one baseline step (matmuls and convolutions, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    args = parser.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)
    mnist, mnist_y = data.load("MNIST", "train")
    kmnist, kmnist_y = data.load("KMNIST", "train")
    fashion, fashion_y = data.load("FashionMNIST", "train")
    val, val_y = fashion[-256:], fashion_y[-256:]  # the VAE loop validates every epoch; a small set here

    gpu = device.type == "cuda"
    steps = {"gan": (2, 8 if not gpu else 60), "rbm": (40, 240 if not gpu else 600),
             "vae": (40, 400 if not gpu else 600), "cvae": (40, 400 if not gpu else 600)}
    cases = {
        "gan": (
            lambda n: train_gan(mnist[: n * 200], GANConfig(), 1, None, device, show_progress=False),
            lambda n: baselines.gan_epoch(DCGAN().to(device), baselines.loader(mnist, mnist_y, 200, signed=True),
                                          device, n),
        ),
        "rbm": (
            lambda n: train_rbm(kmnist[: n * 128], RBMConfig(hidden=256), 1, None, device, show_progress=False),
            lambda n: baselines.rbm_epoch(baselines.TemplateRBM(F=256).to(device),
                                          baselines.loader(kmnist, kmnist_y, 128), device, n),
        ),
        "vae": (
            lambda n: train_vae(fashion[: n * 128], fashion_y[: n * 128], val, val_y, VAEConfig(), 1, None, None,
                                device, show_progress=False),
            lambda n: baselines.vae_epoch(baselines.TemplateVAE().to(device),
                                          baselines.loader(fashion, fashion_y, 128), device, n),
        ),
        "cvae": (
            lambda n: train_vae(fashion[: n * 128], fashion_y[: n * 128], val, val_y, VAEConfig(conditional=True),
                                1, None, None, device, show_progress=False),
            lambda n: baselines.vae_epoch(baselines.TemplateVAE(conditional=True).to(device),
                                          baselines.loader(fashion, fashion_y, 128), device, n),
        ),
    }

    start = time.perf_counter()
    peak32 = matmul_gflops(device, torch.float32)
    peak16 = matmul_gflops(device, torch.bfloat16)
    print(f"device: {device_description(device)}; torch {torch.__version__}")
    print(f"matmul 2048^3: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s\n")
    header = (f"{'loop':<6}{'baseline steps/s':>18}{'hw5 steps/s':>13}{'hw5/baseline':>14}{'GFLOP/step':>12}"
              f"{'hw5 GFLOP/s':>13}{'of fp32 peak':>14}")
    print(header)
    print("-" * len(header))
    ratios = {}
    for name, (hw5_run, base_run) in cases.items():
        short, long = steps[name]
        work = flops_per_step(lambda: base_run(1))
        base = steps_per_second(base_run, short, long, device)
        ours = steps_per_second(hw5_run, short, long, device)
        ratios[name] = ours / base
        achieved = work * ours / 1e9
        print(f"{name:<6}{base:>18.2f}{ours:>13.2f}{ratios[name]:>13.2f}x{work / 1e9:>12.3f}{achieved:>13.1f}"
              f"{100 * achieved / peak32:>13.0f}%", flush=True)
    print(f"\n(benchmark wall time {time.perf_counter() - start:.0f} s)")
    print("ratios: " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
