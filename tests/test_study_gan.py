"""scripts/study_gan.py (issue #18's study, meant for a GPU machine) end to end on a few hundred images: the kept
generator is the epoch with the lowest averaged estimate, the numbers are written and finite, and a bad split is
refused before anything trains."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "study_gan.py"
SMALL = ["--device", "cpu", "--precision", "fp32", "--epochs", "2", "--images", "300", "--held-out", "100",
         "--samples", "1000", "--per-digit", "5", "--test", "200"]


@pytest.mark.slow
def test_study_writes_the_measurements_and_keeps_the_best_estimated_epoch(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), *SMALL, "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "study.json").read_text())["runs"]["fp32"]
    estimates = run["fd_estimate_ema"]
    assert len(estimates) == len(run["fd_estimate_raw"]) == 2
    assert run["kept_epoch"] == 1 + estimates.index(min(estimates))
    assert sorted(run["final"]) == sorted(["raw", "averaged", f"kept (epoch {run['kept_epoch']})"])
    for m in run["final"].values():
        assert 1.0 <= m["classifier_is"] <= 10.0 and m["fd_classifier"] >= 0.0
    assert 0.0 <= run["probe_cv_acc"] <= 1.0 and 0.0 <= run["probe_test_acc"] <= 1.0
    assert all(math.isfinite(v) for v in estimates)
    assert "probe on D (homework protocol)" in done.stdout and (tmp_path / "fp32" / "checkpoint.json").exists()


def test_study_refuses_a_held_out_set_as_large_as_the_training_images(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--images", "500", "--held-out", "500", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "need 0 < --held-out < --images <= 60000" in done.stderr
    assert not any(tmp_path.iterdir())


def test_study_refuses_a_sample_count_that_is_not_a_multiple_of_1000_before_it_trains(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--samples", "1500", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--samples must be a positive multiple of 1000" in done.stderr and "1500" in done.stderr
    assert not any(tmp_path.iterdir())
