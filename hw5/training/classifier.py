"""Training and evaluating the sample-judging classifier (:mod:`hw5.models.classifier`).

Minimises the cross-entropy  -1/B sum_b log softmax(f(x_b))_{y_b}  with AdamW and a learning rate
lr * gamma^(epoch - 1) (it depends on the epoch only, so a resumed run replays an uninterrupted one), on images in [0, 1] randomly shifted by up to 2 pixels (a cheap augmentation that buys the last
few tenths of a percent of test accuracy).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data import minibatches, num_batches, random_shift, to_unit
from ..models.classifier import Classifier
from ..utils import epoch_seed, get_device, seed_everything
from .common import check_budget, commit, ensure_finite, progress, resume


@dataclass(frozen=True)
class ClassifierConfig:
    """What defines a classifier run (the epoch budget is an argument of :func:`train_classifier`)."""

    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.3
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    lr_decay: float = 0.7
    max_shift: int = 2
    seed: int = 0


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits of ``images`` (uint8 (N, 28, 28) or float (N, 1, 28, 28) in [0, 1]), in eval mode."""
    model.eval()
    x = to_unit(images) if images.dtype == torch.uint8 else images
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    return (predict_logits(model, images).argmax(1) == labels.to(images.device)).float().mean().item()


def train_classifier(images: torch.Tensor, labels: torch.Tensor, config: ClassifierConfig, epochs: int,
                     run_dir: str | Path | None = None, device: str | torch.device | None = None,
                     show_progress: bool = True) -> tuple[Classifier, dict[str, Any]]:
    """Train (or resume) a classifier on uint8 ``images`` (N, 28, 28) and int ``labels`` (N,).

    Returns the model in eval mode and the history (per-epoch ``loss``, ``train_acc``, ``epoch_seconds``).
    """
    check_budget(epochs)
    device = get_device(device)
    seed_everything(config.seed)
    model = Classifier(int(labels.max()) + 1, config.width, config.feature_dim, config.dropout).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    done, history = resume(run_dir, {"model": model}, config, {"adam": optimizer})
    history = history or {"loss": [], "train_acc": [], "epoch_seconds": []}
    x, y = to_unit(images.to(device)), labels.to(device)
    steps = num_batches(x.shape[0], config.batch_size)
    bar = progress(epochs * steps, done * steps, "classifier", show_progress)
    for epoch in range(done + 1, epochs + 1):
        start = time.perf_counter()
        seed_everything(epoch_seed(config.seed, epoch))
        gen = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
        for group in optimizer.param_groups:
            group["lr"] = config.lr * config.lr_decay ** (epoch - 1)
        model.train()
        sums = torch.zeros(2, device=device)
        for step, (xb, yb) in enumerate(minibatches(x, y, batch_size=config.batch_size, generator=gen)):
            logits = model(random_shift(xb, config.max_shift, gen))
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += torch.stack([loss.detach() * yb.shape[0], (logits.argmax(1) == yb).sum().float()])
            bar.update(1)
        ensure_finite(sums, ("loss", "accuracy"), epoch, steps, run_dir)
        loss_sum, correct = sums.tolist()
        history["loss"].append(loss_sum / x.shape[0])
        history["train_acc"].append(correct / x.shape[0])
        history["epoch_seconds"].append(time.perf_counter() - start)
        commit(run_dir, {"model": model}, config, {"adam": optimizer}, epoch, history)
    bar.close()
    return model.eval(), history
