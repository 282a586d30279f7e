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
element-wise kernels and a fused Adam update; per-step values stay in a device tensor (the shared runner,
:func:`hw5.training.loop.fit`) and are read once per epoch. On a CPU the cost is dominated by drawing the
k * B * 784 Gaussian numbers per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

import torch
import torch.nn.functional as fn

from .. import checks
from ..configs import TrainingConfig
from ..data import to_unit
from ..metrics.rbm import reconstruction_mse
from ..models.rbm import RBM, RBMConfig, standardize, to_pixels
from ..utils import get_device, seed_everything
from .loop import Callback, Run, StepInfo, fit
from .optim import adam

GRADIENTS = ("analytic", "autograd")
LOGGED = ("loss", "train_mse", "cholesky_fallbacks")
AVERAGED = ("loss", "train_mse")  # per-epoch means; the fallbacks are counted


@dataclass(frozen=True)
class RBMTraining(TrainingConfig):
    """What defines an RBM run besides its budget (epochs are an argument of :func:`train_rbm`): the model's
    config ``model`` (its ``hidden`` is the homework's M; ``gibbs_steps`` the k of CD-k) and the template's
    optimisation (Adam, lr 1e-3, batch 128, seed 42)."""

    # ``visible`` joined the record when the model got its own config; 784 reproduces the runs recorded before.
    ADDED: ClassVar[dict[str, Any]] = {"visible": 28 * 28}

    model: RBMConfig = field(default_factory=RBMConfig)
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    gradient: str = "analytic"
    seed: int = 42

    def __post_init__(self) -> None:
        checks.instance(self, "model", RBMConfig)
        if self.model.visible != 28 * 28:
            raise ValueError(f"RBMTraining.model.visible must be 784 (28x28 images), got {self.model.visible}")
        checks.real(self, "lr", 0.0, low_open=True)
        checks.real(self, "weight_decay", 0.0)
        checks.integer(self, "batch_size", 1)
        checks.choice(self, "gradient", GRADIENTS)
        checks.integer(self, "seed", 0)


def cd_step(model: RBM, optimizer: torch.optim.Optimizer, x: torch.Tensor, gradient: str = "analytic",
            ) -> dict[str, torch.Tensor]:
    """One CD-k update on a batch ``x`` (B, D) of [0, 1] pixels; returns ``loss``, ``train_mse`` (the chain's
    MSE in [0, 1] units) and ``cholesky_fallbacks`` (1. when the chain fell back, see :meth:`RBM.gibbs_chain`)
    as 0-d device tensors (no host synchronisation).

    The MSE compares x with the chain's last mean E[v | h_{k-1}] mapped back to pixels
    (:func:`hw5.models.rbm.to_pixels`).
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
        return {"loss": loss.detach(), "train_mse": mse, "cholesky_fallbacks": chain.fallback}


def train_rbm(images: torch.Tensor, config: RBMTraining, epochs: int, *, run_dir: str | Path | None = None,
              device: str | torch.device | None = None, eval_images: torch.Tensor | None = None,
              show_progress: bool | TextIO = True) -> tuple[RBM, dict[str, Any]]:
    """Train (or resume) a Gaussian-Bernoulli RBM on ``images`` (uint8, or floats in [0, 1]; (N, 28, 28)) for
    ``epochs`` epochs.

    With ``run_dir`` every epoch is checkpointed there and a rerun resumes from the last one (asking for
    more epochs continues the run). With ``eval_images`` (e.g. the test split) the reconstruction MSEs of
    :func:`hw5.metrics.rbm.reconstruction_mse` are recorded after every epoch.

    Returns the model (eval mode, on ``device``) and the history, per epoch: ``loss`` (mean CD loss over the
    epoch's steps), ``train_mse`` (mean over the epoch's batches of the CD-k chain's reconstruction MSE, per
    pixel, [0, 1] units, taken before each batch's update), ``cholesky_fallbacks`` (the epoch's steps whose
    chain could not use the Cholesky factor: :meth:`RBM.gibbs_chain`), ``epoch_seconds``, ``epoch_cpu_seconds`` and,
    with ``eval_images``, ``eval_mse``, ``eval_mse_meanfield`` and ``eval_seconds``; also ``steps_per_epoch``.
    ``show_progress``: the bar of :func:`hw5.training.loop.progress` (stderr, none, or a text stream).
    """
    device = get_device(device)
    x_all = to_unit(images, device).flatten(1)  # (N, 1, 28, 28) -> (N, 784) in [0, 1]
    if eval_images is not None:
        to_unit(eval_images[:1], name="eval_images")  # refuse bad evaluation images now, not after an epoch
    seed_everything(config.seed)
    model = RBM(config.model).to(device)
    optimizer = adam(model.parameters(), device, lr=config.lr, weight_decay=config.weight_decay)
    run = Run(f"RBM M={config.model.hidden}", {"model": model}, {"adam": optimizer}, config, config.seed, (x_all,),
              config.batch_size, LOGGED)

    def step(batch: tuple[torch.Tensor, ...], info: StepInfo) -> dict[str, torch.Tensor]:
        return cd_step(model, optimizer, batch[0], config.gradient)

    def summarise(epoch: int, log: torch.Tensor, history: dict[str, Any]) -> None:
        means, fallbacks = log.mean(0).tolist(), int(log[:, LOGGED.index("cholesky_fallbacks")].sum())
        for key in AVERAGED:
            history[key].append(means[LOGGED.index(key)])
        # a run begun before the count was recorded has no entries for its earlier epochs: None, not 0
        history.setdefault("cholesky_fallbacks", [None] * (len(history["loss"]) - 1)).append(fallbacks)
        if eval_images is not None:
            start = time.perf_counter()
            scores = reconstruction_mse(model, eval_images, batch_size=config.batch_size)
            history.setdefault("eval_mse", []).append(scores["chain"])
            history.setdefault("eval_mse_meanfield", []).append(scores["meanfield"])
            history.setdefault("eval_seconds", []).append(time.perf_counter() - start)

    history = fit(run, epochs, step, history={k: [] for k in LOGGED}, run_dir=run_dir,
                  hooks=[Callback(on_epoch_end=summarise)], show_progress=show_progress)
    return model.eval(), history
