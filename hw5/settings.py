"""The one place hw5 reads the environment: a small :class:`Settings` object, made once at the top of a
notebook or script (``S = hw5.Settings.from_env()``) and passed on as plain arguments (a device, folders,
a budget). Nothing else in hw5 reads ``os.environ``.

Environment switches (all optional):

* ``HW5_QUICK=1``        quick mode: tiny budgets so CI can execute every notebook in minutes (default:
  full mode, the homework's hyper-parameters). Figures and runs go to ``figures/quick`` and ``runs/quick``.
* ``HW5_USE_SHIPPED=1``  full mode only: evaluate the shipped weights (``hw5/weights``) instead of training;
  figures and ``metrics.json`` go to ``figures/shipped`` so that the committed full-run results stay as they are.
* ``HW5_DEVICE``         ``cpu``, ``cuda``, ``cuda:1``, ``mps``; default: CUDA when torch sees a GPU.
* ``HW5_OUT``            root folder for figures and runs (default: the repository of a source checkout,
  else the current directory).
* ``HW5_DATA``           a folder holding ``<Name>/raw/*.gz``, searched before the default places.
* ``HW5_CACHE``          where downloads and decoded arrays go (default: see :mod:`hw5.data`).
* ``HW5_PROGRESS``       a file that the training's progress bars are appended to (:attr:`Settings.progress`;
  default: none). ``scripts/execute_notebook.py`` sets it to a temporary file that it shows on the terminal:
  a notebook's own stderr would be stored in the notebook, this side channel is not.

Switches take 1/true/yes/on or 0/false/no/off (or empty); anything else is an error that names the variable.
The three folders must exist: a path that does not is a ``FileNotFoundError`` naming the variable, the path and
the fix, never a silent fallback to the default (a typo would otherwise write hours of runs somewhere else, or
look for data in a place that cannot hold it). ``HW5_PROGRESS`` must name a file in an existing folder (the file
is created if needed); :meth:`Settings.from_env` opens it, nothing is opened at import.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import torch

from . import data
from .checks import existing_path
from .locations import SHIPPED_WEIGHTS, SOURCE_ROOT, default_output_root
from .utils import device_description, get_device

VARIABLES = ("HW5_QUICK", "HW5_USE_SHIPPED", "HW5_DEVICE", "HW5_OUT", "HW5_DATA", "HW5_CACHE", "HW5_PROGRESS")
_ON, _OFF = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def _switch(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _ON | _OFF:
        return value in _ON
    raise ValueError(f"{name}={environ[name]!r} is not a switch; set it to 1 (on) or 0 (off), or unset it")


def _folder(environ: Mapping[str, str], name: str) -> Path | None:
    """The existing folder that variable ``name`` of ``environ`` names (``~`` expanded), or ``None`` when it is
    unset or empty; a path that is not an existing folder raises ``FileNotFoundError`` naming ``name``."""
    value = environ.get(name)
    return existing_path(name, value) if value else None


def _progress(environ: Mapping[str, str], name: str = "HW5_PROGRESS") -> bool | TextIO:
    """``False`` when variable ``name`` is unset or empty, else the file it names opened for appending as UTF-8
    text, line-buffered (created if needed; a bar's redraws are flushed by tqdm itself). A path whose folder
    does not exist, or that is a folder, raises ``FileNotFoundError`` naming ``name``."""
    value = environ.get(name)
    if not value:
        return False
    path = Path(value).expanduser()
    if not path.parent.is_dir() or path.is_dir():
        raise FileNotFoundError(f"{name} is {value!r}, which is not a file in an existing folder; create the "
                                f"folder, fix the path, or unset {name}")
    return open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- open for the process's lifetime


@dataclass(frozen=True)
class Settings:
    """Run mode, device and folders of one notebook or script execution.

    ``progress`` is what a notebook passes as the training's ``show_progress``: ``False`` (no bar, the
    default), ``True`` (a bar on stderr) or a text stream that the bar is written to (``HW5_PROGRESS``: the
    runner's side channel, never stored in the notebook). It is neither compared (two settings that differ only in
    where progress goes describe the same run) nor shown in the repr (it names a temporary file).
    """

    quick: bool = False
    use_shipped: bool = False
    device: torch.device = field(default_factory=get_device)
    out: Path = field(default_factory=default_output_root)
    data_roots: tuple[Path, ...] | None = None  # None: hw5.data's default places
    cache_dir: Path | None = None  # None: hw5.data's default cache
    progress: bool | TextIO = field(default=False, compare=False, repr=False)  # see the class docstring

    def __post_init__(self) -> None:
        if self.quick and self.use_shipped:
            raise ValueError("quick mode always trains; use_shipped needs quick=False")
        object.__setattr__(self, "device", get_device(self.device))
        object.__setattr__(self, "out", Path(self.out))
        if not isinstance(self.progress, bool) and not callable(getattr(self.progress, "write", None)):
            raise TypeError(f"Settings.progress must be True, False or a text stream, got "
                            f"{type(self.progress).__name__}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from the ``HW5_*`` variables of ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        quick = _switch(env, "HW5_QUICK")
        try:
            device = get_device(env.get("HW5_DEVICE") or None)
        except ValueError as exc:
            raise ValueError(f"HW5_DEVICE={env['HW5_DEVICE']!r}: {exc}") from None
        out, data_root, cache_dir = (_folder(env, name) for name in ("HW5_OUT", "HW5_DATA", "HW5_CACHE"))
        roots = (data_root, *data.default_roots()) if data_root is not None else None
        return cls(quick=quick, use_shipped=_switch(env, "HW5_USE_SHIPPED") and not quick, device=device,
                   out=out if out is not None else default_output_root(), data_roots=roots, cache_dir=cache_dir,
                   progress=_progress(env))

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (e.g. ``S.replace(device="cpu")``)."""
        return dataclasses.replace(self, **changes)

    @property
    def mode(self) -> str:
        """``"quick"`` or ``"full"``, as written into every ``metrics.json``."""
        return "quick" if self.quick else "full"

    def describe(self) -> str:
        """One line for a notebook's first output."""
        return (f"mode {self.mode}, device {device_description(self.device)}, "
                f"shipped weights: {self.use_shipped}")

    @property
    def training_clock(self) -> str:
        """Whose wall clock a training time read from a history is, for the line that prints it: the
        history of shipped weights is the one their training run recorded (on the machine that trained them);
        any other history was recorded by this run, on this machine."""
        return "the shipped weights' training run" if self.use_shipped else "this machine"

    def _folder(self, kind: str, problem: int) -> Path:
        sub = "quick" if self.quick else "shipped" if self.use_shipped and kind == "figures" else None
        path = self.out / kind / sub / f"problem{problem}" if sub else self.out / kind / f"problem{problem}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def figures_dir(self, problem: int) -> Path:
        """``figures/problemN`` (full mode), ``figures/quick/problemN`` or ``figures/shipped/problemN``
        under :attr:`out`, created: quick and shipped runs never overwrite a full run's results."""
        return self._folder("figures", problem)

    def runs_dir(self, problem: int) -> Path:
        """``runs/problemN`` (``runs/quick/problemN`` in quick mode) under :attr:`out`, created: the
        resumable checkpoints of a problem's training runs."""
        return self._folder("runs", problem)

    def weights_dir(self) -> Path:
        """Where a notebook exports the weights it trained: the package's ``hw5/weights`` for a full run
        in a source checkout (they are the shipped weights), else ``<out>/weights`` (``<out>/runs/quick/
        weights`` in quick mode): an installed hw5 never writes into its own folder."""
        if self.quick:
            return self.out / "runs" / "quick" / "weights"
        return SHIPPED_WEIGHTS if SOURCE_ROOT is not None and self.out == SOURCE_ROOT else self.out / "weights"

    def load(self, name: str, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`hw5.data.load` of ``name``/``split`` on :attr:`device`, from these settings' data places."""
        return data.load(name, split, self.device, roots=self.data_roots, cache_dir=self.cache_dir)
