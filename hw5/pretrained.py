"""Shipped weights: ``hw5.pretrained("dcgan")`` returns a trained model in one call, no training.

Each shipped model is a weights-only checkpoint folder ``hw5/weights/<name>/`` (see
:mod:`hw5.checkpoint`) whose ``checkpoint.json`` also names the model class (``builder``), its
config (``model_config``: the fields of the class's ``config_class``) and what the run recorded (epochs,
history, metrics). Only classes
inside the ``hw5`` package can be built, so a tampered sidecar cannot import arbitrary code.

A notebook's one call per trained model: :func:`train_or_load` (train, or load the shipped weights) and
:func:`fit_or_load_probe` (the same for Problem 1.2's linear probe, whose test accuracy is measured either way).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import locations
from .checkpoint import CheckpointError, has_checkpoint, load_checkpoint, read_sidecar, save_checkpoint
from .metrics.features import Extractor
from .metrics.probe import evaluate_probe
from .settings import Settings
from .training.probe import ProbeReport, run_probe
from .training.probe_grid import ProbeConfig
from .utils import get_device

SIDECAR = "checkpoint.json"


def _submodules(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    return {"model": model} if names == ["model"] else {name: getattr(model, name) for name in names}


def export_pretrained(name: str, model: nn.Module, config: Any, state: dict[str, Any], root: str | Path,
                      modules: list[str] | None = None) -> Path:
    """Save ``model`` as a weights-only checkpoint ``<root>/<name>/`` that :func:`pretrained` can load with
    ``directory=root`` (no optimizer state); ``root`` is e.g. :meth:`hw5.settings.Settings.weights_dir`.

    ``model.config`` is the model's config (the class is built from it: ``type(model)(model.config)``); ``config``
    the run's (a training config, recorded flat); ``modules`` names the sub-modules to store
    (default: the whole model as ``"model"``); ``state`` is JSON-able (epoch, history, metrics...).
    """
    cls = type(model)
    if not cls.__module__.startswith("hw5."):
        raise ValueError(f"only hw5 models can be exported, not {cls.__module__}.{cls.__qualname__}")
    names = modules or ["model"]
    directory = Path(root) / name
    state = {"epoch": 0, **state, "builder": f"{cls.__module__}:{cls.__qualname__}",
             "model_config": dataclasses.asdict(model.config)}
    return save_checkpoint(directory, _submodules(model, names), config, state, tag="final")


def available(directory: str | Path | None = None) -> list[str]:
    """Names of the shipped models."""
    root = Path(directory) if directory is not None else locations.SHIPPED_WEIGHTS
    return sorted(p.name for p in root.iterdir() if has_checkpoint(p)) if root.is_dir() else []


def pretrained_info(name: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The sidecar of shipped model ``name``: config, epochs, history and recorded metrics."""
    root = Path(directory) if directory is not None else locations.SHIPPED_WEIGHTS
    if not has_checkpoint(root / name):
        raise FileNotFoundError(
            f"no shipped weights named {name!r} in {root} (available: {available(root) or 'none'}); "
            "run the problem's notebook in full mode to train and export them."
        )
    info = read_sidecar(root / name)
    for key in ("builder", "model_config"):
        if key not in info:
            raise CheckpointError(f"{root / name / SIDECAR} has no {key!r}: it is a training checkpoint, not exported "
                                  "weights; export them with hw5.pretrained.export_pretrained")
    return info


def pretrained(name: str, device: str | torch.device | None = None,
               directory: str | Path | None = None) -> nn.Module:
    """Build shipped model ``name`` and load its weights; returned in eval mode on ``device``."""
    root = Path(directory) if directory is not None else locations.SHIPPED_WEIGHTS
    info = pretrained_info(name, root)
    module_name, _, qualname = info["builder"].partition(":")
    if not module_name.startswith("hw5."):
        raise CheckpointError(f"{root / name / SIDECAR} names builder {info['builder']!r} outside hw5")
    cls = getattr(importlib.import_module(module_name), qualname)
    try:
        model = cls(cls.config_class(**info["model_config"]))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{root / name / SIDECAR}: its model_config {info['model_config']} does not build a "
                              f"{qualname} ({error}); re-export the weights with this version of hw5") from error
    load_checkpoint(root / name, _submodules(model, info["modules"]))
    return model.to(get_device(device)).eval()


def train_or_load(name: str, settings: Settings, problem: int,
                  train: Callable[[Path], tuple[nn.Module, dict[str, Any]]], config: Any,
                  modules: list[str] | None = None, extra: dict[str, Any] | None = None
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """A notebook's one call per trained model: the shipped weights, or a (resumable) training run.

    With ``settings.use_shipped`` (a :class:`hw5.settings.Settings`): the shipped model ``name`` on
    ``settings.device`` and the history its sidecar recorded. Otherwise ``train(run_dir)`` with ``run_dir`` =
    ``settings.runs_dir(problem) / name`` (a rerun resumes there), then the result is exported as weights
    ``<settings.weights_dir()>/<name>/`` with ``config``, the epochs, the history and ``extra`` (JSON-able).
    Returns (model in eval mode, history).
    """
    if settings.use_shipped:
        return pretrained(name, settings.device), pretrained_info(name)["history"]
    model, history = train(settings.runs_dir(problem) / name)
    epochs = len(history.get("epoch_seconds", []))
    export_pretrained(name, model, config, {"epoch": epochs, "history": history, **(extra or {})},
                      settings.weights_dir(), modules)
    return model.eval(), history


def fit_or_load_probe(name: str, settings: Settings, extractor: Extractor, train_images: torch.Tensor,
                      train_labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                      config: ProbeConfig) -> tuple[nn.Module, ProbeReport]:
    """:func:`hw5.training.probe.run_probe` and export of the probe as weights ``name`` with its report, or,
    with ``settings.use_shipped``, the shipped probe ``name`` and the report its full run recorded (its grid,
    choice and cross-validated accuracies); either way ``test_acc`` is measured here, on ``test_images``
    (:func:`hw5.metrics.probe.evaluate_probe`, at the chosen radius and, for ``test_acc_single_view``, at 0)."""
    if not settings.use_shipped:
        probe, report = run_probe(extractor, train_images, train_labels, test_images, test_labels, config,
                                  settings.device)
        export_pretrained(name, probe, config, {"probe": report.to_dict()}, settings.weights_dir())
        return probe, report
    probe, report = pretrained(name, settings.device), ProbeReport.from_dict(pretrained_info(name)["probe"])
    single = evaluate_probe(probe, extractor, test_images, test_labels, 0, settings.device)
    measured = evaluate_probe(probe, extractor, test_images, test_labels, report.point.radius, settings.device)
    return probe, dataclasses.replace(report, test_acc=measured, test_acc_single_view=single)
