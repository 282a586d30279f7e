"""The contract every hw5 model keeps, in code (the pattern of pytorch-generative's ``GenerativeModel``).

A model is an ``nn.Module`` built from ONE frozen config dataclass, its ``config_class``:

* ``Model(config)`` builds it; ``Model()`` builds the config's defaults (``config_class()``): one rule for
  defaults in every family; anything that is not a ``config_class`` is a ``TypeError`` that says how to build it;
* ``model.config`` is that config, and ``config.build()`` is the same as ``Model(config)``
  (:func:`hw5.pretrained.pretrained` rebuilds shipped weights from the recorded config this way);
* ``model.device`` is where its parameters live: library functions move their inputs there;
* a generative model also has ``sample(n, ..., generator=None)``: n draws from the model, on its device, for
  display (:class:`GenerativeModel`);
* random numbers come from the generator's device and then move to the data's (:func:`randn`, :func:`rand`):
  a CPU ``torch.Generator`` gives the same draws on every device, so evaluation seeded on the CPU reproduces
  on a GPU; a generator on the model's device (or none) draws there, fast, for training.

Nothing here loads data, writes files or plots.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from .. import checks


def _source(device: torch.device | str, generator: torch.Generator | None) -> torch.device | str:
    """Where to draw: the generator's device, or ``device`` (its default generator) when there is none."""
    return device if generator is None else generator.device


def randn(shape: tuple[int, ...] | torch.Size, *, device: torch.device | str,
          generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """eps ~ N(0, I) of ``shape`` on ``device``, drawn on ``generator``'s device (``device``'s default generator
    if None) and then moved: the same generator state gives the same numbers whatever ``device`` is."""
    return torch.randn(shape, generator=generator, device=_source(device, generator), dtype=dtype).to(device)


def rand(shape: tuple[int, ...] | torch.Size, *, device: torch.device | str,
         generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """u ~ U[0, 1) of ``shape`` on ``device``, drawn like :func:`randn` (on the generator's device, then moved)."""
    return torch.rand(shape, generator=generator, device=_source(device, generator), dtype=dtype).to(device)


class Model(nn.Module):
    """An ``nn.Module`` built from its config (see the module docstring)."""

    config_class: ClassVar[type]
    config: Any

    def _use_config(self, config: Any) -> Any:
        """Set and return ``self.config``: ``config``, or the defaults ``config_class()`` for None; a
        ``TypeError`` for anything else. Each model's ``__init__`` calls it once, after ``nn.Module``'s."""
        config = self.config_class() if config is None else config
        checks.argument(type(self).__name__, "config", config, self.config_class)
        self.config = config
        return config

    @property
    def device(self) -> torch.device:
        """The device of the model's first parameter (or buffer): where it computes."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")


class GenerativeModel(Model, ABC):
    """A model that draws samples: :meth:`sample`."""

    @abstractmethod
    def sample(self, n: int, *args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> torch.Tensor:
        """``n`` draws from the model, on :attr:`device`; ``generator`` makes them reproducible (a CPU generator: the
        same draws on every device, see :func:`randn`)."""
