"""Shared test set-up: a headless matplotlib and at most two threads.

No environment scrubbing is needed: the library reads no environment variable (only ``hw5.settings``, whose
tests pass their environment explicitly), so a test behaves the same however the suite was launched.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


class TinyExtractor(torch.nn.Module):
    """A small seeded non-linear feature map of [0, 1] images: (B, 1, 28, 28) -> (B, 12)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 5, stride=3), torch.nn.Tanh(),
                                       torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture
def tiny_extractor() -> type[TinyExtractor]:
    """Builds :class:`TinyExtractor`s: the same seeded weights every time."""
    return TinyExtractor
