"""The presentation layer (hw5.reports): each problem's text tables and metrics.json records, built from
numbers given here, so that every line and column can be checked against them. One section per problem."""

from __future__ import annotations

import json

import pytest

from hw5.metrics.rbm import MSETable
from hw5.reports import gan as gan_reports
from hw5.reports import rbm as rbm_reports
from hw5.training.probe import ProbeReport
from hw5.training.probe_grid import ProbeGrid, ProbePoint

# ---------------------------------------------------------------------------------------------------- Problem 1


def _history(steps_per_epoch: int, epochs: int) -> dict:
    """A DCGAN history whose step i holds i in ``d_loss``, i + 1 in ``g_loss``, i + 2 in ``d_real`` and i + 3 in
    ``d_fake``."""
    n = steps_per_epoch * epochs
    return {"steps_per_epoch": steps_per_epoch, **{k: [float(i + j) for i in range(n)]
                                                   for j, k in enumerate(("d_loss", "g_loss", "d_real", "d_fake"))}}


def test_curve_and_fooling_tables_average_the_right_steps():
    h = _history(4, 3)  # 12 steps
    lines = gan_reports.curve_table(h, ((1, 1), (2, 3))).splitlines()
    assert lines[0].split() == ["mean", "per", "step", "L_D", "L_G", "D(x)", "D(G(z))"]
    assert lines[1] == f"epochs  1-1   {1.5:6.2f} {2.5:6.2f} {3.5:6.2f} {4.5:6.2f}"  # steps 0..3
    assert lines[2] == f"epochs  2-3   {7.5:6.2f} {8.5:6.2f} {9.5:6.2f} {10.5:6.2f}"  # steps 4..11
    assert len(lines) == 4 and lines[-1] == f"first 12 steps: mean D(G(z)) {sum(range(3, 15)) / 12:.2f}"
    long = _history(50, 3)  # 150 steps: the last line covers the first 100
    assert gan_reports.curve_table(long, ((1, 1),)).splitlines()[-1] == "first 100 steps: mean D(G(z)) 52.50"
    with pytest.raises(ValueError, match="not within the 3 recorded"):
        gan_reports.curve_table(h, ((2, 4),))
    text = gan_reports.fooling_table({"a": h, "minimax": _history(2, 1)}, 2).splitlines()
    assert text[0] == "             a: 12 steps; mean D(G(z)) first 2 steps 3.500, last 2 13.500; mean L_D last 2 10.50"
    assert text[1] == "       minimax: 2 steps; mean D(G(z)) first 2 steps 3.500, last 2 3.500; mean L_D last 2 0.50"


def test_quality_table_prints_every_number_of_sample_quality():
    quality = {"n_samples": 1000, "classifier_is": 9.123, "classifier_is_std": 0.045, "fd_classifier": 12.34,
               "real_test_is": 9.876, "real_train_vs_test_fd_classifier": 0.56,
               "class_fractions": [0.1] * 9 + [0.1], "test_class_fractions": [0.05] * 10}
    lines = gan_reports.quality_table(quality).splitlines()
    assert lines[0] == "1000 samples: classifier IS 9.12 ± 0.04, FD-classifier 12.3"
    assert lines[1] == "real images: IS of the test set 9.88; FD-classifier of 1000 train images vs the test set 0.6"
    assert lines[2] == "samples per digit      " + " ".join(["10.0%"] * 10)
    assert lines[3] == "test images per digit  " + " ".join([" 5.0%"] * 10)
    assert len(lines) == 4


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


# ---------------------------------------------------------------------------------------------------- Problem 2

def _mse_table() -> MSETable:
    rows = {m: {"train_mse": 0.01 * m, "test_mse": 0.011 * m, "train_mse_meanfield": 0.002 * m,
                "test_mse_meanfield": 0.0025 * m} for m in (16, 4)}
    return MSETable(rows, {4: 0.031, 16: 0.0123}, {4: 0.032, 16: 0.01249})


def test_mse_table_text_has_a_row_per_model_in_aligned_columns():
    table = _mse_table()
    lines = rbm_reports.mse_table_text(table).splitlines()
    assert len(lines) == 5 and lines[0] == "MSE per pixel, [0, 1] units"
    assert lines[1].split() == ["CD-5", "chain", "mean-field", "PCA", "(rank", "M)"]
    assert lines[2].split() == ["train", "test"] * 3
    assert lines[3].split() == ["M", "=", "4", "0.0400", "0.0440", "0.0080", "0.0100", "0.0310", "0.0320"]
    assert lines[4].startswith("M =  16") and lines[4].split()[-2:] == ["0.0123", "0.0125"]
    assert len({len(line.rstrip()) for line in lines[2:]}) == 1  # the columns line up
    assert rbm_reports.mse_table_text(table, decimals=2).splitlines()[3].split()[3] == "0.04"


def test_mse_record_is_the_metrics_json_layout_and_reads_back():
    table = _mse_table()
    record = rbm_reports.mse_record(table)
    assert list(record) == ["mse_scale", "M4", "M16", "pca", "pca_train"]
    assert record["M16"] == table.rows[16] and record["pca"] == {"M4": 0.032, "M16": 0.01249}
    assert record["pca_train"] == {"M4": 0.031, "M16": 0.0123} and "per pixel, [0, 1] units" in record["mse_scale"]
    recorded = json.loads(json.dumps({**record, "run": {}}))  # metrics.json holds other keys too
    assert rbm_reports.mse_table_from_record(recorded) == table


def test_steps_table_text_has_a_column_per_k_and_the_meanfield_mse_last():
    text = rbm_reports.steps_table_text({8: {1: 0.1, 3: 0.05}, 4: {1: 0.2, 3: 0.125}}, {8: 0.5, 4: 0.25})
    lines = text.splitlines()
    assert lines[0] == "test MSE of the k-step chain's reconstruction"
    assert lines[1].split() == ["k", "1", "3", "mean-field"]
    assert lines[2].split() == ["M", "=", "4", "0.2000", "0.1250", "0.2500"]
    assert lines[3].split() == ["M", "=", "8", "0.1000", "0.0500", "0.5000"]
