"""Problem 1's text tables: the linear probe's choices and accuracies, built from the reports that
:mod:`hw5.training.probe` computes. Accuracies are printed in percent with two decimals.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..training.probe import ProbeReport
from ..training.probe_grid import ProbePoint


def probe_table(reports: Mapping[str, ProbeReport]) -> str:
    """The probes' choices and accuracies as a fixed-width text table, one row per feature map."""
    lines = [f"{'features':<27}{'dim':>5}{'copies':>7}{'penalty':>9}{'r':>3}{'CV acc':>9}{'train acc':>11}"
             f"{'test acc':>10}{'1-view test':>13}"]
    for name, r in reports.items():
        lines.append(f"{name:<27}{r.feature_dim:>5}{r.point.copies:>7}{r.point.penalty:>9.0e}{r.point.radius:>3}"
                     f"{100 * r.cv_acc:>8.2f}%{100 * r.train_acc:>10.2f}%{100 * r.test_acc:>9.2f}%"
                     f"{100 * r.test_acc_single_view:>12.2f}%")
    return "\n".join(lines)


def cv_grid_table(report: ProbeReport, penalty: float) -> str:
    """The cross-validated accuracies of a report's grid at one ``penalty``: rows copies c, columns radius r."""
    points = [p for p in report.cv_scores if p.penalty == penalty]
    if not points:
        raise ValueError(f"the report's grid has no point with penalty {penalty:g}")
    copies, radii = sorted({p.copies for p in points}), sorted({p.radius for p in points})
    lines = [f"{report.folds}-fold CV accuracy, penalty {penalty:g}; rows: copies c, columns: radius r",
             "    c " + "".join(f"{f'r={r}':>9}" for r in radii)]
    for c in copies:
        lines.append(f"{c:>5} " + "".join(f"{100 * report.cv_scores[ProbePoint(c, penalty, r)]:>8.2f}%"
                                          for r in radii))
    return "\n".join(lines)
