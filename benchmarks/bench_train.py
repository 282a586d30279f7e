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
the ratio holds on a noisy machine.

The "floor" columns bound what removing overhead from a loop could reach: the hw5 step's matmuls, convolutions,
factorisations, random draws and fused optimiser updates (the aten calls it dispatches, recorded with their
exact shapes) are replayed back to back on random tensors, without Python, autograd or element-wise kernels.
``floor/baseline`` is the ratio a loop would have if everything else cost nothing.
The last line reads ``ratios: gan=<x> rbm=<x> vae=<x> cvae=<x>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import baselines  # noqa: E402

from hw5 import data  # noqa: E402
from hw5.models.dcgan import DCGAN  # noqa: E402
from hw5.models.rbm import RBMConfig  # noqa: E402
from hw5.models.vae import VAEConfig  # noqa: E402
from hw5.training.gan import GANTraining, train_gan  # noqa: E402
from hw5.training.rbm import RBMTraining, train_rbm  # noqa: E402
from hw5.training.vae import VAETraining, train_vae  # noqa: E402
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


# the work a step cannot shed: what would remain if Python, autograd and element-wise kernels were free
FLOOR_OPS = frozenset({"mm", "addmm", "bmm", "addmv", "mv", "convolution", "convolution_backward",
                       "linalg_cholesky_ex", "rand", "randn", "normal_", "uniform_", "bernoulli",
                       "_fused_adam_", "_fused_adamw_"})


class _TensorSpec:
    """Shape, strides, dtype and device of a recorded tensor argument."""

    def __init__(self, t: torch.Tensor) -> None:
        self.key = (tuple(t.shape), tuple(t.stride()), t.dtype, t.device)


class DenseRecorder(TorchDispatchMode):
    """Records every FLOOR_OPS call (the aten overload and its arguments' specs) while running as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in FLOOR_OPS:
            spec = lambda a: _TensorSpec(a) if isinstance(a, torch.Tensor) else a  # noqa: E731
            self.calls.append((func, tree_map(spec, args), tree_map(spec, kwargs)))
        return func(*args, **kwargs)


def record(run: Callable[[], object]) -> list:
    """The FLOOR_OPS calls that ``run()`` dispatches."""
    recorder = DenseRecorder()
    with recorder:
        run()
    return recorder.calls


def replay_seconds(calls: list, device: torch.device) -> float:
    """Wall time of the recorded calls replayed back to back on pooled random tensors of the same specs."""
    pool: dict = {}  # one tensor per (spec, its n-th use within a call): a call's arguments never alias
    uses: dict = {}

    def make(a: object) -> object:
        if not isinstance(a, _TensorSpec):
            return a
        uses[a.key] = uses.get(a.key, -1) + 1
        key = (a.key, uses[a.key])
        if key not in pool:
            shape, stride, dtype, dev = a.key
            t = torch.empty_strided(shape, stride, dtype=dtype, device=dev)
            if dtype.is_floating_point:
                t.normal_()
                if len(shape) == 2 and shape[0] == shape[1]:  # a Cholesky input must be positive definite
                    t.copy_(t @ t.T + shape[0] * torch.eye(shape[0], dtype=dtype, device=dev))
            else:
                t.zero_()
            pool[key] = t
        return pool[key]

    def materialise(args: object, kwargs: object) -> tuple:
        uses.clear()
        return tree_map(make, args), tree_map(make, kwargs)

    calls = [(func, *materialise(args, kwargs)) for func, args, kwargs in calls]
    _sync(device)
    start = time.perf_counter()
    for func, args, kwargs in calls:
        func(*args, **kwargs)
    _sync(device)
    return time.perf_counter() - start


def floor_steps_per_second(run: Callable[[int], object], short: int, long: int, device: torch.device) -> float:
    """Marginal steps/s of the replayed dense work of ``run`` (as :func:`steps_per_second`)."""
    short_calls, long_calls = record(lambda: run(short)), record(lambda: run(long))
    replay_seconds(short_calls, device)  # warm-up: first-call kernel selection
    seconds = replay_seconds(long_calls, device) - replay_seconds(short_calls, device)
    return (long - short) / max(seconds, 1e-9)


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
            lambda n: train_gan(mnist[: n * 200], GANTraining(), 1, device=device, show_progress=False),
            lambda n: baselines.gan_epoch(DCGAN().to(device), baselines.loader(mnist, mnist_y, 200, signed=True),
                                          device, n),
        ),
        "rbm": (
            lambda n: train_rbm(kmnist[: n * 128], RBMTraining(RBMConfig(hidden=256)), 1, device=device, show_progress=False),
            lambda n: baselines.rbm_epoch(baselines.TemplateRBM(F=256).to(device),
                                          baselines.loader(kmnist, kmnist_y, 128), device, n),
        ),
        "vae": (
            lambda n: train_vae(fashion[: n * 128], fashion_y[: n * 128], val, val_y, VAETraining(), 1, device=device,
                                show_progress=False),
            lambda n: baselines.vae_epoch(baselines.TemplateVAE().to(device),
                                          baselines.loader(fashion, fashion_y, 128), device, n),
        ),
        "cvae": (
            lambda n: train_vae(fashion[: n * 128], fashion_y[: n * 128], val, val_y, VAETraining(VAEConfig(conditional=True)),
                                1, device=device, show_progress=False),
            lambda n: baselines.vae_epoch(baselines.TemplateVAE(conditional=True).to(device),
                                          baselines.loader(fashion, fashion_y, 128), device, n),
        ),
    }

    start = time.perf_counter()
    peak32 = matmul_gflops(device, torch.float32)
    peak16 = matmul_gflops(device, torch.bfloat16)
    print(f"device: {device_description(device)}; torch {torch.__version__}")
    print(f"matmul 2048^3: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s\n")
    header = (f"{'loop':<6}{'baseline steps/s':>18}{'hw5 steps/s':>13}{'hw5/baseline':>14}{'floor steps/s':>15}"
              f"{'floor/baseline':>16}{'GFLOP/step':>12}{'hw5 GFLOP/s':>13}{'of fp32 peak':>14}")
    print(header)
    print("-" * len(header))
    ratios = {}
    for name, (hw5_run, base_run) in cases.items():
        short, long = steps[name]
        work = flops_per_step(lambda: base_run(1))
        base = steps_per_second(base_run, short, long, device)
        ours = steps_per_second(hw5_run, short, long, device)
        floor = floor_steps_per_second(hw5_run, short, long, device)
        ratios[name] = ours / base
        achieved = work * ours / 1e9
        print(f"{name:<6}{base:>18.2f}{ours:>13.2f}{ratios[name]:>13.2f}x{floor:>15.2f}{floor / base:>15.2f}x"
              f"{work / 1e9:>12.3f}{achieved:>13.1f}{100 * achieved / peak32:>13.0f}%", flush=True)
    print(f"\n(benchmark wall time {time.perf_counter() - start:.0f} s)")
    print("ratios: " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
