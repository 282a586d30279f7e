"""The presentation layer (hw5.reports): each problem's text tables and metrics.json records, built from
numbers given here, so that every line and column can be checked against them. One section per problem."""

from __future__ import annotations

import pytest

from hw5.reports import gan as gan_reports
from hw5.training.probe import ProbeReport
from hw5.training.probe_grid import ProbeGrid, ProbePoint

# ---------------------------------------------------------------------------------------------------- Problem 1


def _probe_report() -> ProbeReport:
    grid = ProbeGrid.from_values((0, 8), (1e-2, 1e-3), (0, 1))
    scores = {p: 0.9 + 0.01 * p.copies / 8 + 0.001 * p.radius + (0.0001 if p.penalty == 1e-3 else 0.0)
              for p in grid.points}
    return ProbeReport(point=ProbePoint(8, 1e-3, 1), cv_acc=scores[ProbePoint(8, 1e-3, 1)], cv_scores=scores,
                       folds=5, train_acc=0.99876, test_acc=0.98765, test_acc_single_view=0.98123, feature_dim=8192,
                       n_train_images=6000)


def test_probe_table_lines_up_one_row_per_feature_map():
    report = _probe_report()
    table = gan_reports.probe_table({"GAN discriminator": report, "raw pixels": report}).splitlines()
    assert len(table) == 3 and table[1].startswith("GAN discriminator") and table[2].startswith("raw pixels")
    assert table[1].split()[2:] == ["8192", "8", "1e-03", "1", f"{100 * report.cv_acc:.2f}%", "99.88%", "98.77%",
                                    "98.12%"]
    assert len({len(line) for line in table}) == 1  # the columns line up


def test_cv_grid_table_shows_one_penalty_rows_copies_columns_radius():
    report = _probe_report()
    grid = gan_reports.cv_grid_table(report, 1e-3).splitlines()
    assert grid[0] == "5-fold CV accuracy, penalty 0.001; rows: copies c, columns: radius r"
    assert grid[1].split() == ["c", "r=0", "r=1"] and len(grid) == 2 + 2  # header, 2 copies
    assert grid[3].split() == ["8"] + [f"{100 * report.cv_scores[ProbePoint(8, 1e-3, r)]:.2f}%" for r in (0, 1)]
    assert grid[2].split() == ["0"] + [f"{100 * report.cv_scores[ProbePoint(0, 1e-3, r)]:.2f}%" for r in (0, 1)]
    with pytest.raises(ValueError, match="no point with penalty 0.5"):
        gan_reports.cv_grid_table(report, 0.5)
