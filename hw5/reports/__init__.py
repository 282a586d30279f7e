"""Presentation: what the notebooks print and record, built from the numbers :mod:`hw5.metrics` computes.

Metrics compute numbers; the modules here turn them into fixed-width text tables and the per-problem records
(``metrics.json``). Nothing here trains, evaluates a model or writes a file: :mod:`hw5.output` writes.
"""

__all__ = ["gan", "rbm", "vae"]
