"""Seeds, devices and small model helpers shared by every problem.

Nothing here reads the environment: the device, folders and run mode are arguments, chosen once by
:mod:`hw5.settings` at the top of a notebook or script.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

DEVICE_TYPES = ("cpu", "cuda", "mps")


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``...), else CUDA when
    torch sees a GPU, else the CPU.

    Raises ``ValueError`` naming the fix for a name torch does not know (e.g. ``"gpu"``), a CUDA or MPS
    device this machine does not have, or a CUDA index past the last GPU.
    """
    if device is None or str(device).strip() == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(device).strip().lower()
    if name == "gpu":
        raise ValueError("device 'gpu' is not a torch device name; use 'cuda' (or 'cuda:N' for GPU number N)")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {str(device)!r} is not a device name torch knows; use one of 'cpu', 'cuda', "
                         "'cuda:N' (GPU number N) or 'mps' (Apple GPUs)") from None
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"device {str(device)!r} is not supported by hw5; use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but this PyTorch build sees no CUDA GPU; "
                             "use 'cpu', or install a CUDA build of torch (see the README)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} was asked for but torch sees "
                             f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} (Apple's GPU) is not available on this machine; use 'cpu'"
                         " or 'cuda'")
    return dev


def device_description(device: torch.device) -> str:
    """A human-readable name of the device for reports, e.g. ``"cpu (2 threads)"``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)" if device.type == "cpu" else str(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer): where its inputs must be."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def no_autocast(device: torch.device | str) -> AbstractContextManager:
    """A block where autocast is off on ``device``'s type, whatever the caller enabled: the maths inside runs
    in the dtype of its tensors (fp32), not bf16."""
    kind = torch.device(device).type
    return torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else nullcontext()


@contextmanager
def float32_math(tf32: bool = False, deterministic: bool = False) -> Iterator[None]:
    """A block with the global settings of CUDA's fp32 arithmetic fixed, restored after.

    ``tf32=False``: matmuls (cuBLAS) and convolutions (cuDNN) in IEEE fp32, not TF32 (which rounds their
    inputs to a 10-bit mantissa, ~1e-3 relative); cuDNN runs fp32 convolutions in TF32 by default, and some
    containers switch it on for matmuls too. ``deterministic=True``: cuDNN picks deterministic convolution
    algorithms and no autotuning (``cudnn.benchmark`` off), so a resumed run replays an uninterrupted one.
    On a CPU none of this changes a number.
    """
    matmul, conv, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn
    saved = (matmul.fp32_precision, conv.fp32_precision, cudnn.deterministic, cudnn.benchmark)
    precision = "tf32" if tf32 else "ieee"
    matmul.fp32_precision = conv.fp32_precision = precision
    if deterministic:
        cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision, cudnn.deterministic, cudnn.benchmark = saved


def exact_fp32(method: Callable[..., T]) -> Callable[..., T]:
    """Decorate a model's method to run in exact fp32 on the model's device (:func:`float32_math`,
    :func:`no_autocast`): sampling and decoding for display give the same images under a caller's autocast
    or TF32 setting as without."""

    @functools.wraps(method)
    def wrapped(self: torch.nn.Module, *args: Any, **kwargs: Any) -> T:
        with float32_math(), no_autocast(model_device(self)):
            return method(self, *args, **kwargs)

    return wrapped


@contextmanager
def eval_mode(*models: torch.nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode (batch norm uses its running statistics, dropout is off) for the
    duration of a ``with`` block, then give each back the mode it had: an evaluation never leaves the
    caller's model switched.

    Every evaluation runs in it, so it also makes the arithmetic exact fp32 whatever the caller set:
    autocast off (:func:`no_autocast`) and TF32 off (:func:`float32_math`). Evaluations then give the same
    numbers, to fp32 rounding, on a CPU and on a GPU, inside or outside a caller's ``torch.autocast``."""
    modes = [m.training for m in models]
    device = model_device(models[0]) if models else torch.device("cpu")
    try:
        for m in models:
            m.eval()
        with float32_math(), no_autocast(device):
            yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and every CUDA device) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` of a run seeded with ``seed``.

    Training loops reseed all generators at the start of every epoch from (seed, epoch). The random
    state at an epoch boundary is then a pure function of what a checkpoint's JSON sidecar already
    holds, so a run resumed from epoch ``e`` replays exactly what an uninterrupted run does, on any
    machine that reproduces the uninterrupted run.
    """
    return (seed * 1_000_003 + epoch) % 2**63


def layer_shapes(module: torch.nn.Module, *inputs: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """(name, output shape without the batch axis) of every convolution and linear layer, in call order.

    Runs one forward pass in eval mode without gradients, on the module's device; for checking
    architectures against a figure.
    """
    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)
    found: list[tuple[str, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: found.append((name, tuple(out.shape[1:]))))
             for name, m in module.named_modules() if isinstance(m, kinds)]
    device = model_device(module)
    try:
        with torch.no_grad(), eval_mode(module):
            module(*(x.to(device) for x in inputs))
    finally:
        for h in hooks:
            h.remove()
    return found
