"""Training the Gaussian-Bernoulli RBM with CD-k, exactly the homework's recipe (Problem 2.2).

One step on a batch x of [0, 1] images (flattened to (B, 784)):

1. standardise it with its own scalar mean and std, v_0 = (x - mean(x)) / std(x) (the template's);
2. run the k-step Gibbs chain v_0 -> h_0 -> v_1 -> ... -> v_k without autograd (:meth:`RBM.gibbs_chain`);
3. minimise the CD loss L = mean F(v_0) - mean F(v_k) (v_k constant) with one Adam step.

Defaults: CD-5, Adam lr 1e-3, weight decay 0, batch 128 (the last, partial batch of an epoch included, as
the template's ``DataLoader`` does), seed 42. ``gradient="analytic"`` (default) sets the gradient of L in
closed form (:meth:`RBM.cd_gradients`, proved equal to autograd's in ``tests/test_rbm.py``); it reuses the
chain's first matmul and skips the autograd graph. ``gradient="autograd"`` calls ``loss.backward()`` on
:meth:`RBM.cd_loss`, the template's literal route. Both give the same updates up to rounding.

Speed: the split stays resident on the device as one (N, 784) tensor; a step is 2k + 3 matmuls, a few
element-wise kernels and a fused Adam update; per-step values are accumulated in a device tensor and read
once per epoch. On a CPU the cost is dominated by drawing the k * B * 784 Gaussian numbers per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as fn

from ..data import minibatches, num_batches, to_unit
from ..metrics.rbm import reconstruction_mse
from ..models.rbm import RBM, standardize, to_pixels
from ..utils import epoch_seed, get_device, seed_everything
from .common import check_budget, commit, ensure_finite, progress, resume

GRADIENTS = ("analytic", "autograd")
LOGGED = ("loss", "train_mse")


@dataclass(frozen=True)
class RBMConfig:
    """What defines an RBM run (the epoch budget is an argument of :func:`train_rbm`).

    ``hidden`` is the homework's M (the number of hidden units F of ``RBM(D, F, k)``).
    """

    hidden: int = 64
    k: int = 5
    sigma: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    gradient: str = "analytic"
    seed: int = 42

    def __post_init__(self) -> None:
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"hidden (M, the number of hidden units) must be a positive integer, got "
                             f"{self.hidden!r}")
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k (Gibbs steps of CD-k) must be a positive integer, got {self.k!r}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive (it is a standard deviation), got {self.sigma!r}")
        if self.batch_size < 1 or not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"need batch_size >= 1, lr > 0 and weight_decay >= 0; got {self.batch_size}, "
                             f"{self.lr} and {self.weight_decay}")
        if self.gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {self.gradient!r}")


def _adam(model: RBM, config: RBMConfig, device: torch.device) -> torch.optim.Adam:
    """Adam over (W, b, alpha); the fused kernel (one launch for all three) where this torch has it."""
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # older torch or a device without the fused kernel
        return torch.optim.Adam(model.parameters(), foreach=True, **kwargs)


def cd_step(model: RBM, optimizer: torch.optim.Optimizer, x: torch.Tensor, gradient: str = "analytic",
            ) -> torch.Tensor:
    """One CD-k update on a batch ``x`` (B, D) of [0, 1] pixels; returns (loss, chain MSE in [0, 1] units).

    The MSE compares x with the chain's last mean E[v | h_{k-1}] mapped back to pixels
    (:func:`hw5.models.rbm.to_pixels`). Returns a device tensor of two values (no host synchronisation).
    """
    v0, mean, std = standardize(x)
    chain = model.gibbs_chain(v0)
    if gradient == "analytic":
        out = model.cd_gradients(v0, chain.v_k, chain.logits_0)
        for name, param in (("W", model.W), ("b", model.b), ("alpha", model.alpha)):
            param.grad = out[name]
        loss = out["loss"]
    else:
        optimizer.zero_grad(set_to_none=True)
        loss = model.cd_loss(v0, chain.v_k)["loss"]
        loss.backward()
    optimizer.step()
    with torch.no_grad():
        mse = fn.mse_loss(to_pixels(chain.mean_k, mean, std), x)
        return torch.stack([loss.detach(), mse])


def train_rbm(images: torch.Tensor, config: RBMConfig, epochs: int, run_dir: str | Path | None = None,
              device: str | torch.device | None = None, eval_images: torch.Tensor | None = None,
              show_progress: bool = True, max_steps: int | None = None) -> tuple[RBM, dict[str, Any]]:
    """Train (or resume) a Gaussian-Bernoulli RBM on uint8 ``images`` (N, 28, 28) for ``epochs`` epochs.

    With ``run_dir`` every epoch is checkpointed there and a rerun resumes from the last one (asking for
    more epochs continues the run). With ``eval_images`` (uint8, e.g. the test split) the reconstruction
    MSEs of :func:`hw5.metrics.rbm.reconstruction_mse` are recorded after every epoch. ``max_steps`` stops
    after that many optimisation steps in this call (for benchmarks; not with ``run_dir``, because a cut
    epoch must not be checkpointed as a whole one).

    Returns the model (eval mode) and the history, per epoch: ``loss`` (mean CD loss over the epoch's
    steps), ``train_mse`` (mean over the epoch's batches of the CD-k chain's reconstruction MSE, per pixel,
    [0, 1] units, taken before each batch's update), ``epoch_seconds`` (wall clock, training only),
    ``epoch_cpu_seconds`` (CPU time of the process, all threads: the cost regardless of other jobs on a
    shared machine) and, with ``eval_images``, ``eval_mse``, ``eval_mse_meanfield`` and ``eval_seconds``;
    also ``steps_per_epoch``.
    """
    check_budget(epochs)
    if max_steps is not None and (max_steps < 1 or run_dir is not None):
        raise ValueError(f"max_steps must be >= 1 and cannot be combined with run_dir (a partial epoch is "
                         f"never checkpointed); got max_steps={max_steps}, run_dir={run_dir}")
    device = get_device(device)
    seed_everything(config.seed)
    model = RBM(D=28 * 28, F=config.hidden, k=config.k, sigma=config.sigma).to(device)
    optimizer = _adam(model, config, device)
    done, history = resume(run_dir, {"model": model}, config, {"adam": optimizer})
    steps = num_batches(images.shape[0], config.batch_size)
    history = history or {**{k: [] for k in LOGGED}, "epoch_seconds": [], "steps_per_epoch": steps}

    x_all = to_unit(images.to(device)).flatten(1)  # (N, 28, 28) uint8 -> (N, 784) in [0, 1]
    total = epochs * steps if max_steps is None else min(max_steps, (epochs - done) * steps)
    bar = progress(total, 0 if max_steps else done * steps, f"RBM M={config.hidden}", show_progress)
    taken = 0
    for epoch in range(done + 1, epochs + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.train()
        seed_everything(epoch_seed(config.seed, epoch))
        order = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        sums = torch.zeros(len(LOGGED), device=device)
        n_steps = 0
        for (x,) in minibatches(x_all, batch_size=config.batch_size, generator=order):
            sums += cd_step(model, optimizer, x, config.gradient)
            n_steps += 1
            taken += 1
            bar.update(1)
            if max_steps is not None and taken >= max_steps:
                break
        ensure_finite(sums, LOGGED, epoch, n_steps, run_dir)
        for key, value in zip(LOGGED, (sums / n_steps).tolist()):
            history[key].append(value)
        history["epoch_seconds"].append(time.perf_counter() - start)
        history.setdefault("epoch_cpu_seconds", []).append(time.process_time() - start_cpu)
        if eval_images is not None:
            start = time.perf_counter()
            scores = reconstruction_mse(model, eval_images, batch_size=config.batch_size)
            history.setdefault("eval_mse", []).append(scores["chain"])
            history.setdefault("eval_mse_meanfield", []).append(scores["meanfield"])
            history.setdefault("eval_seconds", []).append(time.perf_counter() - start)
        commit(run_dir, {"model": model}, config, {"adam": optimizer}, epoch, history)
        if max_steps is not None and taken >= max_steps:
            break
    bar.close()
    return model.eval(), history
