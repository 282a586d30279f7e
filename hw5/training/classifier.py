"""Training the sample-judging classifier (:mod:`hw5.models.classifier`).

Minimises the cross-entropy  -1/B sum_b log softmax(f(x_b))_{y_b}  with AdamW and a learning rate
lr * gamma^(epoch - 1) (it depends on the epoch only, so a resumed run replays an uninterrupted one), on
images in [0, 1] randomly shifted by up to 2 pixels (a cheap augmentation that buys the last few tenths of
a percent of test accuracy). Its evaluation (:func:`hw5.metrics.classifier.predict_logits`, accuracy) is
in :mod:`hw5.metrics.classifier`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

import torch
import torch.nn.functional as F

from .. import checks
from ..configs import TrainingConfig
from ..data import random_shift, to_labels, to_unit
from ..models.classifier import Classifier, ClassifierConfig
from ..utils import get_device, seed_everything
from .loop import Callback, Run, StepInfo, fit


@dataclass(frozen=True)
class ClassifierTraining(TrainingConfig):
    """What defines a classifier run besides its budget (epochs are an argument of :func:`train_classifier`):
    the model's config ``model`` and its optimisation (AdamW, step decay, random shifts)."""

    # ``num_classes`` joined the record when the model got its own config; 10 reproduces the recorded runs.
    ADDED: ClassVar[dict[str, Any]] = {"num_classes": 10}

    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    lr_decay: float = 0.7
    max_shift: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        checks.instance(self, "model", ClassifierConfig)
        checks.real(self, "lr", 0.0, low_open=True)
        checks.real(self, "weight_decay", 0.0)
        checks.integer(self, "batch_size", 1)
        checks.real(self, "lr_decay", 0.0, 1.0, low_open=True)
        checks.integer(self, "max_shift", 0, 13)
        checks.integer(self, "seed", 0)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, config: ClassifierTraining, epochs: int, *,
                     run_dir: str | Path | None = None, device: str | torch.device | None = None,
                     show_progress: bool | TextIO = True) -> tuple[Classifier, dict[str, Any]]:
    """Train (or resume) a classifier on ``images`` (uint8, or floats in [0, 1]; (N, 28, 28)) and int
    ``labels`` (N,).

    Returns the model in eval mode on ``device`` and the history (per-epoch ``loss``, ``train_acc``,
    ``epoch_seconds``).
    ``show_progress``: the bar of :func:`hw5.training.loop.progress` (stderr, none, or a text stream).
    """
    device = get_device(device)
    x = to_unit(images, device)
    y = to_labels(labels, x.shape[0], config.model.num_classes, device)
    seed_everything(config.seed)
    model = Classifier(config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = Run("classifier", {"model": model}, {"adam": optimizer}, config, config.seed, (x, y),
              config.batch_size, ("loss", "correct"))

    def schedule(epoch: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = config.lr * config.lr_decay ** (epoch - 1)

    def step(batch: tuple[torch.Tensor, ...], info: StepInfo) -> dict[str, torch.Tensor]:
        xb, yb = batch
        logits = model(random_shift(xb, config.max_shift, info.generator))
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach() * yb.shape[0], "correct": (logits.argmax(1) == yb).sum().float()}

    def summarise(epoch: int, log: torch.Tensor, history: dict[str, Any]) -> None:
        loss_sum, correct = log.sum(0).tolist()
        history["loss"].append(loss_sum / x.shape[0])
        history["train_acc"].append(correct / x.shape[0])

    history = fit(run, epochs, step, history={"loss": [], "train_acc": []}, run_dir=run_dir,
                  hooks=[Callback(schedule, summarise)], show_progress=show_progress)
    return model.eval(), history
