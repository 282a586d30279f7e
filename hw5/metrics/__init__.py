"""Evaluation: functions that compute numbers from models and data, and nothing else (no tables, no training,
no file writes). One module per model family (``gan``, ``rbm``, ``vae``), plus what several families use:
``latent`` (latent-space statistics), ``features`` (frozen feature maps), ``probe`` (a fitted linear probe's
accuracy), ``paired`` (McNemar's test of two classifiers on one test set), ``classifier`` and
``common``. Presentation of these numbers is in :mod:`hw5.reports`.
"""

__all__ = ["classifier", "common", "features", "gan", "latent", "paired", "probe", "rbm", "vae"]
