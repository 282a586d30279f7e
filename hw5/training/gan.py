"""The DCGAN training loop: alternating D and G steps on the MNIST train split.

One step on a batch x of real images (in [-1, 1]) and fresh noise z ~ N(0, I):

1. D step: minimise  L_D = BCE(l(x), 1) + BCE(l(G(z)), 0)  over D's parameters (G(z) detached);
2. G step: minimise the non-saturating GAN loss  L_G = BCE(l(G(z)), 1) = -E[log D(G(z))]  (or the literal
   min-max  E[log(1 - D(G(z)))]  when ``generator_loss="minimax"``), reusing the same G(z).

Each optimizer is Adam(lr 2e-4, betas (0.5, 0.999)), the course defaults. Per step the loop logs L_D,
L_G, mean D(x) and mean D(G(z)); the shared runner (:func:`hw5.training.loop.fit`) keeps them on the
device, checks them for NaN/inf every ``check_every`` steps, and checkpoints every epoch.

Two options, both off by default (the default config trains bit for bit as the committed 30-epoch run did):

* averaging (``ema_decay`` = d > 0): a moving average of G's weights, theta_ema <- d theta_ema +
  (1 - d) theta after every G step (Yazici et al., "The Unusual Effectiveness of Averaging in GAN
  Training", ICLR 2019). A GAN's iterates circle around an equilibrium rather than converge to it under
  a constant step size; their average sits closer to its centre. Only G is averaged: D keeps training
  against the raw G, whose trajectory is unchanged by the averaging.
* selection on the train split (``keep_best``): with a ``judge`` classifier and ``held_out`` training images,
  each epoch ends with an FD-classifier estimate (:func:`hw5.metrics.gan.fd_estimate`) of the raw and the
  averaged G, and the G (averaged if enabled) of the epoch with the lowest estimate is kept and returned.
  The test set never chooses anything.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from .. import checks
from ..configs import TrainingConfig
from ..data import to_signed, to_unit
from ..metrics import gan as quality
from ..models.dcgan import DCGAN, GENERATOR_LOSSES, DCGANConfig, Generator, discriminator_loss, generator_loss
from ..utils import epoch_seed, get_device, seed_everything
from .loop import Callback, EpochEnd, Hook, Run, Step, StepInfo, fit
from .optim import PRECISIONS, autocast, resolve_precision
from .policies import KeepBest, MovingAverage

LOGGED = ("d_loss", "g_loss", "d_real", "d_fake")
BN_BATCHES = 10  # noise batches (of batch_size) over which the averaged G's batch-norm statistics are recomputed
BN_NOISE_OFFSET = 2**40  # the recomputation's noise stream: epoch_seed(seed, epoch) + this, apart from training's
ESTIMATE_SAMPLES = 1000  # samples per FD-classifier estimate


@dataclass(frozen=True)
class GANTraining(TrainingConfig):
    """What defines a GAN run besides its budget (epochs are an argument of :func:`train_gan`): the model's
    config ``model`` and the course recipe's optimisation (Adam, lr 2e-4, betas (0.5, 0.999), batch 200).

    ``ema_decay``: d in [0, 1); d > 0 keeps the moving average of G's weights (0: off). ``keep_best``: return
    the G (averaged if d > 0) of the epoch with the lowest train-split FD estimate (needs ``train_gan``'s
    ``judge`` and ``held_out``), instead of the last one.
    """

    # Added after the committed 30-epoch run: recorded only when switched on, so run folders written before
    # still resume (a checkpoint refuses a config that differs from the one it was saved with).
    ADDED: ClassVar[dict[str, Any]] = {"ema_decay": 0.0, "keep_best": False}

    model: DCGANConfig = field(default_factory=DCGANConfig)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 200
    generator_loss: str = "non_saturating"
    precision: str = "fp32"  # on every device; "tf32" and "bf16" by name (see training.optim.resolve_precision)
    channels_last: bool = True
    ema_decay: float = 0.0
    keep_best: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        checks.instance(self, "model", DCGANConfig)
        checks.real(self, "lr", 0.0, low_open=True)
        checks.real(self, "beta1", 0.0, 1.0, high_open=True)
        checks.real(self, "beta2", 0.0, 1.0, high_open=True)
        checks.integer(self, "batch_size", 1)
        checks.choice(self, "generator_loss", GENERATOR_LOSSES)
        checks.choice(self, "precision", PRECISIONS)
        checks.boolean(self, "channels_last")
        checks.real(self, "ema_decay", 0.0, 1.0, high_open=True)
        checks.boolean(self, "keep_best")
        checks.integer(self, "seed", 0)


@torch.no_grad()
def recompute_batch_norm(generator: Generator, config: GANTraining, epoch: int) -> None:
    """Set the batch-norm running statistics of (averaged) ``generator`` to those of its own weights.

    The running mean and variance of a batch-norm layer describe the activations of the weights that
    produced them; the averaged weights theta_ema were never run, and their activations' statistics are not
    the average of the iterates' (they are nonlinear in the weights; the iterates' running statistics also
    lag by ~1/momentum = 10 steps). So rather than averaging the buffers, they are recomputed for theta_ema,
    the fix of Izmailov et al. (2018) for averaged weights (``torch.optim.swa_utils.update_bn``): reset, then
    forward passes in train mode over :data:`BN_BATCHES` noise batches of ``batch_size`` (each layer
    normalised by its batch statistics, as in training) with momentum None, i.e. the running mean and
    (unbiased) variance become the plain averages of the K batch statistics. In fp32, as G samples; the noise
    comes from its own generator seeded from (seed, epoch), so training's random stream is untouched.
    """
    device = next(generator.parameters()).device
    noise = torch.Generator(device).manual_seed(epoch_seed(config.seed, epoch) + BN_NOISE_OFFSET)
    batches = [torch.randn(config.batch_size, config.model.latent_dim, device=device, generator=noise)
               for _ in range(BN_BATCHES)]
    update_bn(batches, generator)


def _modules(model: DCGAN, config: GANTraining) -> dict[str, nn.Module]:
    """The checkpointed modules: G and D, plus G's moving average (``generator_ema``) and the kept copy
    (``generator_kept``) when enabled, both starting as copies of the initial G (no random draws)."""
    modules: dict[str, nn.Module] = {"generator": model.generator, "discriminator": model.discriminator}
    if config.ema_decay:
        modules["generator_ema"] = copy.deepcopy(model.generator).requires_grad_(False)
    if config.keep_best:
        modules["generator_kept"] = copy.deepcopy(model.generator).requires_grad_(False)
    return modules


def _check_judging(config: GANTraining, judge: nn.Module | None, held_out: torch.Tensor | None) -> None:
    if (judge is None) != (held_out is None):
        raise ValueError("judge and held_out go together: pass both (a trained classifier and held-out training "
                         "images) for the per-epoch FD estimates, or neither")
    if config.keep_best and judge is None:
        raise ValueError("keep_best=True selects an epoch by its FD estimate on held-out training images: pass "
                         "judge (a trained hw5.models.classifier.Classifier) and held_out (training images)")


def gan_step(config: GANTraining, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
             device: torch.device) -> Step:
    """One training step of :func:`train_gan` on a batch of real images x in [-1, 1] and fresh noise z:
    a D update on L_D(x, G(z) detached), then a G update on L_G(G(z)) with the same fakes. Returns the step
    function the runner calls."""
    gen, disc = modules["generator"], modules["discriminator"]

    def step(batch: tuple[torch.Tensor, ...], info: StepInfo) -> dict[str, torch.Tensor]:
        (real,) = batch
        z = torch.randn(real.shape[0], config.model.latent_dim, device=device)
        with autocast(device, config.precision):
            fake = gen(z)
            d_out = discriminator_loss(disc(real), disc(fake.detach()))
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_out["loss"].backward()
        optimizers["discriminator"].step()
        # G's update needs dL_G/dG(z) through D, not D's own gradients: D's parameters leave the graph for the
        # backward pass (a sixth of D's backward work; the next D step would discard those gradients anyway)
        disc.requires_grad_(False)
        try:
            with autocast(device, config.precision):
                g_out = generator_loss(disc(fake), config.generator_loss)
            optimizers["generator"].zero_grad(set_to_none=True)
            g_out["loss"].backward()
        finally:
            disc.requires_grad_(True)
        optimizers["generator"].step()
        return {"d_loss": d_out["loss"].detach(), "g_loss": g_out["loss"].detach(),
                "d_real": d_out["d_real"].detach(), "d_fake": d_out["d_fake"].detach()}

    return step


def _record(history: dict[str, Any], key: str, epoch: int, value: float) -> None:
    """history[key][epoch - 1] = value; epochs run without an estimate (an earlier call without judge) hold None."""
    values = history.setdefault(key, [])
    values.extend([None] * (epoch - 1 - len(values)))
    values.append(value)


def _epoch_end(config: GANTraining, modules: dict[str, nn.Module], judge: nn.Module | None,
               reference: torch.Tensor | None, estimate_samples: int) -> EpochEnd:
    """The per-epoch summary: step logs into the history and, with a judge, the FD estimates of the raw and the
    averaged G."""
    averaged = modules.get("generator_ema")
    candidates = {"raw": modules["generator"], **({"ema": averaged} if averaged is not None else {})}

    def end(epoch: int, log: torch.Tensor, history: dict[str, Any]) -> dict[str, str]:
        for key, column in zip(LOGGED, log.T.tolist()):
            history[key].extend(column)
        if judge is None:
            return {}
        for name, generator in candidates.items():
            value = quality.fd_estimate(judge, generator, reference, estimate_samples, config.seed)
            _record(history, f"fd_estimate_{name}", epoch, value)
        return {f"fd_{name}": f"{history[f'fd_estimate_{name}'][-1]:.2f}" for name in candidates}

    return end


def _hooks(config: GANTraining, modules: dict[str, nn.Module], summarise: EpochEnd) -> list[Hook]:
    """The run's hooks, in order: the moving average of G (its batch-norm statistics recomputed at each epoch's
    end, before anything samples from it), the summary and estimates, and the kept copy of the G that the
    estimates rank (averaged if enabled)."""
    hooks: list[Hook] = []
    averaged = modules.get("generator_ema")
    if averaged is not None:
        hooks.append(MovingAverage(modules["generator"], averaged, config.ema_decay,
                                   recompute=lambda epoch: recompute_batch_norm(averaged, config, epoch)))
    hooks.append(Callback(on_epoch_end=summarise))
    if config.keep_best:
        ranked, key = (modules["generator"], "fd_estimate_raw") if averaged is None else (averaged, "fd_estimate_ema")
        hooks.append(KeepBest(ranked, modules["generator_kept"], lambda history: history[key], epoch_key="kept_epoch",
                              label="kept"))
    return hooks


def train_gan(images: torch.Tensor, config: GANTraining, epochs: int, *, run_dir: str | Path | None = None,
              device: str | torch.device | None = None, show_progress: bool | TextIO = True, check_every: int = 50,
              judge: nn.Module | None = None, held_out: torch.Tensor | None = None,
              estimate_samples: int = ESTIMATE_SAMPLES) -> tuple[DCGAN, dict[str, Any]]:
    """Train (or resume) a DCGAN on ``images`` (uint8 or [0, 1] floats, (N, 28, 28)) for ``epochs`` epochs.

    With ``run_dir``, every epoch is checkpointed there and a rerun resumes from the last one: asking for
    more epochs than were done continues the run. Returns the model (in eval mode, on ``device``) and the
    history: per-step ``d_loss``, ``g_loss``, ``d_real``, ``d_fake``, and ``steps_per_epoch``,
    ``epoch_seconds``, ``epoch_cpu_seconds``.

    The returned model's ``generator`` is the kept G: the last iterate by default; the moving average with
    ``config.ema_decay`` > 0; the selected epoch's (averaged) G with ``config.keep_best``. In the latter two
    cases the last raw iterate is ``model.raw_generator`` (:meth:`hw5.models.dcgan.DCGAN.use_generator`).

    ``judge`` (a trained :class:`hw5.models.classifier.Classifier`) and ``held_out`` (training images, e.g. a
    slice of the train split; never test images) add per-epoch estimates: ``history["fd_estimate_raw"]``
    (and ``"fd_estimate_ema"`` with averaging), the FD-classifier of ``estimate_samples`` samples (the same
    noise every epoch) against ``held_out``; ``history["kept_epoch"]`` says which epoch ``keep_best`` kept.
    A resumed run must be given the same judge and held-out images for its estimates to be comparable.
    ``show_progress``: the bar of :func:`hw5.training.loop.progress` (stderr, none, or a text stream).
    """
    _check_judging(config, judge, held_out)
    device = get_device(device)
    memory = torch.channels_last if config.channels_last else torch.contiguous_format
    data = to_signed(images, device).contiguous(memory_format=memory)  # (N, 1, 28, 28) in [-1, 1]
    reference = None if judge is None else quality.judge(judge, to_unit(held_out, name="held_out"))[0]
    seed_everything(config.seed)
    model = DCGAN(config.model).to(device, memory_format=memory)
    modules = _modules(model, config)
    betas = (config.beta1, config.beta2)
    # the plain (foreach) Adam of the committed 30-epoch run; the fused kernel rounds differently
    optimizers = {name: torch.optim.Adam(modules[name].parameters(), lr=config.lr, betas=betas)
                  for name in ("generator", "discriminator")}
    run = Run("DCGAN", modules, optimizers, config, config.seed, (data,), config.batch_size, LOGGED,
              drop_last=True, precision=resolve_precision(config.precision, device))
    fresh = {**{k: [] for k in LOGGED}, **({"kept_epoch": 0} if config.keep_best else {})}
    summarise = _epoch_end(config, modules, judge, reference, estimate_samples)
    history = fit(run, epochs, gan_step(config, modules, optimizers, device), history=fresh, run_dir=run_dir,
                  hooks=_hooks(config, modules, summarise), show_progress=show_progress, check_every=check_every)
    model.use_generator(modules.get("generator_kept", modules.get("generator_ema", model.generator)))
    return model.eval(), history
