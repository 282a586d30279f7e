"""Shared test set-up: a headless matplotlib and at most two threads.

No environment scrubbing is needed: the library reads no environment variable (only ``hw5.settings``, whose
tests pass their environment explicitly), so a test behaves the same however the suite was launched.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
