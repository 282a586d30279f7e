"""Every number in README.md's "Results of the full runs" table is the committed record's number, rounded as the
README prints it.

Each row's numbers are read in order and compared with a list built from ``figures/problemN/metrics.json``: a
result is formatted from the record (percent with 2 or 1 decimals, nats with 2, MSEs with 4, ...), and a number
that is part of the recipe rather than a result (the section number "1.2", "CD-5", "[0, 1]", "5-NN") is listed
as the literal text it must be. A number added to the row without a counterpart here fails the test, as does
any disagreement between the README and the record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Results of the full runs"
# "10,000", "98.46", "0.0733"; a comma is a thousands separator only before three digits ("CD-5, 25 epochs");
# a minus sign is never part of a result
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
CELL = re.compile(r"(?<!\\)\|")  # columns split at "|", not at the escaped "\|" of "p(x \| c)"

pytestmark = pytest.mark.skipif(not (ROOT / "figures").is_dir(), reason="needs a source checkout (figures/)")


def results_rows(readme: str) -> dict[int, list[str]]:
    """The numbers of each row of the results table, keyed by problem, in reading order (all columns after the
    first)."""
    if HEADING not in readme:
        raise AssertionError(f"README.md has no section {HEADING!r}: update tests/test_readme_results.py")
    section = readme.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows: dict[int, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in CELL.split(line.strip())[1:-1]]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = [n for cell in cells[1:] for n in NUMBER.findall(cell)]
    return rows


def _pct(x: float, decimals: int) -> str:
    return f"{100 * x:.{decimals}f}"


def expected_rows(p1: dict, p2: dict, p3: dict) -> dict[int, list[str]]:
    """The numbers each row must state, in order, from the three records."""
    d, probe, s = p1["probe"]["GAN discriminator"], p1["probe"], p1["samples"]
    row1 = [
        str(p1["run"]["epochs"]),  # "the course recipe (30 epochs)"
        "1.2",  # the homework's section
        str(d["feature_dim"]), str(d["n_train_images"] // 10),  # "8192-d features of 600 images per digit"
        _pct(d["test_acc"], 2), _pct(d["train_acc"], 2),
        _pct(probe["untrained D"]["test_acc"], 2), _pct(probe["raw pixels"]["test_acc"], 2),
        f"{s['n_samples']:,}", f"{s['classifier_is']:.2f}", f"{s['real_test_is']:.2f}",
        f"{s['fd_classifier']:.1f}", f"{s['real_train_vs_test_fd_classifier']:.1f}",
        _pct(min(s["class_fractions"]), 1), _pct(max(s["class_fractions"]), 1),  # "every digit 8.1-11.9%"
        _pct(p1["extension_probe"]["test_acc"], 2),
    ]
    hidden = [16, 64, 256]
    row2 = ["5", str(p2["run"]["epochs"]), "0", "1", "5"]  # "CD-5, 25 epochs", "[0, 1] units", "CD-5 chain"
    for m in hidden:
        row2 += [str(m), f"{p2[f'M{m}']['train_mse']:.4f}", f"{p2[f'M{m}']['test_mse']:.4f}"]
    for m in hidden:
        row2 += [f"{p2[f'M{m}']['train_mse_meanfield']:.4f}", f"{p2[f'M{m}']['test_mse_meanfield']:.4f}"]
    row2 += [f"{p2['pca'][f'M{m}']:.4f}" for m in hidden]
    vae, cvae = p3["vae"], p3["cvae"]
    assert vae["epochs"] == cvae["epochs"] and vae["iwae_samples"] == cvae["iwae_samples"]
    row3 = [
        str(vae["epochs"]),
        f"{vae['test_neg_elbo']:.2f}", f"{cvae['test_neg_elbo']:.2f}", f"{cvae['marginal_bound']:.2f}",
        str(vae["iwae_samples"]), f"{vae['test_iwae_bound']:.2f}", f"{cvae['test_iwae_bound']:.2f}",
        _pct(cvae["conditional_sample_acc"], 1),
        "5",  # "5-NN class accuracy"
        _pct(vae["knn_acc_2d"], 1), _pct(cvae["knn_acc_2d"], 1),
    ]
    return {1: row1, 2: row2, 3: row3}


def _records(folder: Path) -> tuple[dict, dict, dict]:
    return tuple(json.loads((folder / f"problem{n}" / "metrics.json").read_text(encoding="utf-8")) for n in (1, 2, 3))


def test_every_number_of_the_readmes_results_table_is_the_records():
    stated = results_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    want = expected_rows(*_records(ROOT / "figures"))
    assert sorted(stated) == [1, 2, 3]
    for problem in (1, 2, 3):
        assert stated[problem] == want[problem], f"README.md's results row {problem} and the record disagree"


@pytest.mark.parametrize("old, new", [
    ("**98.40%** test", "**98.41%** test"),  # a rounded result that is not the record's
    ("FD-classifier 12.7", "FD-classifier 12.9"),
    ("M = 64 0.0550 / 0.0571", "M = 64 0.0550 / 0.0561"),
    ("C-VAE 235.20", "C-VAE 235.2"),  # the record's number at another precision
    ("82.1% of C-VAE samples", "82.1% of 10 C-VAE samples"),  # a number the test does not know
])
def test_a_doctored_readme_is_caught(tmp_path, old, new):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(old) == 1, f"the README no longer says {old!r}: update this test's examples"
    doctored = tmp_path / "README.md"
    doctored.write_text(readme.replace(old, new), encoding="utf-8")
    want = expected_rows(*_records(ROOT / "figures"))
    stated = results_rows(doctored.read_text(encoding="utf-8"))
    assert any(stated[p] != want[p] for p in (1, 2, 3))


def test_a_doctored_record_is_caught(tmp_path):
    """The same check fails when the record moves and the README does not (a rerun that rewrote metrics.json)."""
    p1, p2, p3 = _records(ROOT / "figures")
    p3["cvae"]["conditional_sample_acc"] -= 0.01
    stated = results_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    assert stated[3] != expected_rows(p1, p2, p3)[3] and stated[1] == expected_rows(p1, p2, p3)[1]


def test_a_readme_without_the_table_is_refused():
    with pytest.raises(AssertionError, match="no section '## Results of the full runs'"):
        results_rows("# hw5\n\nno table here\n")
