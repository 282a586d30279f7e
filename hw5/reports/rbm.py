"""Problem 2's text tables and its ``metrics.json`` record, built from the numbers :mod:`hw5.metrics.rbm`
computes: the homework's MSE table (:class:`hw5.metrics.rbm.MSETable`) and the MSE of the k-step chain.
Every MSE is per pixel, in [0, 1] units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..metrics.rbm import ROW_KEYS, MSETable

MSE_SCALE = ("per pixel, [0, 1] units; splits in order in batches of 128, each standardised with its own mean "
             "and std; chain = E[v | h_(k-1)] of the CD-k chain with draws seeded with 0 per split")


def mse_table_text(table: MSETable, decimals: int = 4) -> str:
    """The homework's MSE table as fixed-width text: a row per M with the CD-k chain's, the mean-field and the
    rank-M PCA reconstruction's train and test MSE, every MSE rounded to ``decimals`` decimals."""
    w = decimals + 6
    lines = ["MSE per pixel, [0, 1] units",
             " " * 10 + "".join(name.rjust(2 * w) for name in ("CD-5 chain", "mean-field", "PCA (rank M)")),
             " " * 10 + ("train".rjust(w) + "test".rjust(w)) * 3]
    for m, row in sorted(table.rows.items()):
        values = [row[key] for key in ROW_KEYS] + [table.pca_train[m], table.pca_test[m]]
        lines.append(f"M = {m:3d}   " + "".join(f"{v:{w}.{decimals}f}" for v in values))
    return "\n".join(lines)


def mse_record(table: MSETable) -> dict[str, Any]:
    """The table's ``metrics.json`` layout: ``"M16": row, ...``, ``"pca": {"M16": test}``, ``"pca_train"`` and
    ``"mse_scale"``, a line that says what the numbers are."""
    return {"mse_scale": MSE_SCALE, **{f"M{m}": dict(row) for m, row in sorted(table.rows.items())},
            "pca": {f"M{m}": v for m, v in sorted(table.pca_test.items())},
            "pca_train": {f"M{m}": v for m, v in sorted(table.pca_train.items())}}


def mse_table_from_record(record: Mapping[str, Any]) -> MSETable:
    """The table of an :func:`mse_record` record (other keys of ``metrics.json`` are ignored)."""
    ms = sorted(int(key[1:]) for key in record["pca"])
    return MSETable({m: {key: float(record[f"M{m}"][key]) for key in ROW_KEYS} for m in ms},
                    {m: float(record["pca_train"][f"M{m}"]) for m in ms},
                    {m: float(record["pca"][f"M{m}"]) for m in ms})


def steps_table_text(by_steps: Mapping[int, Mapping[int, float]], meanfield: Mapping[int, float],
                     decimals: int = 4) -> str:
    """:func:`hw5.metrics.rbm.mse_by_gibbs_steps` of several models (keyed by M) as text: a row per M, a
    column per k, and each M's mean-field MSE in the last column; every MSE rounded to ``decimals`` decimals."""
    steps = sorted({k for curve in by_steps.values() for k in curve})
    w = decimals + 4
    lines = ["test MSE of the k-step chain's reconstruction",
             "k        " + "".join(f"{k:>{w}d}" for k in steps) + "   mean-field"]
    for m, curve in sorted(by_steps.items()):
        lines.append(f"M = {m:3d}  " + "".join(f"{curve[k]:{w}.{decimals}f}" for k in steps)
                     + f"   {meanfield[m]:{w}.{decimals}f}")
    return "\n".join(lines)
