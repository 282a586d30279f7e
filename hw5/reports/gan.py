"""Problem 1's text tables: the DCGAN's training curves, the generator-loss comparison, the sample quality and
the linear probe's choices and accuracies, each built from numbers that :mod:`hw5.metrics.gan` and
:mod:`hw5.training.probe` compute. Accuracies are printed in percent with two decimals.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..metrics.gan import curve_means, fooling_means
from ..training.probe import ProbeReport
from ..training.probe_grid import ProbePoint


def curve_table(history: dict, phases: tuple[tuple[int, int], ...]) -> str:
    """Mean L_D, L_G, D(x), D(G(z)) per step over each (first, last) epoch range of a DCGAN history
    (:func:`hw5.metrics.gan.curve_means`), and the mean D(G(z)) of the first 100 steps, as text."""
    lines = ["mean per step     L_D    L_G   D(x)  D(G(z))"]
    for first, last in phases:
        m = curve_means(history, (first, last))
        lines.append(f"epochs {first:>2}-{last:<2}  {m['d_loss']:6.2f} {m['g_loss']:6.2f} {m['d_real']:6.2f} "
                     f"{m['d_fake']:6.2f}")
    early = len(history["d_fake"][:100])  # the steps the mean covers: 100, or all of a shorter run
    return "\n".join(lines + [f"first {early} steps: mean D(G(z)) {fooling_means(history, 100)['d_fake_first']:.2f}"])


def quality_table(quality: dict) -> str:
    """:func:`hw5.metrics.gan.sample_quality`'s numbers as text (IS to 2 decimals, FD to 1, class shares
    in %)."""
    q, n = quality, quality["n_samples"]
    return "\n".join([
        f"{n} samples: classifier IS {q['classifier_is']:.2f} ± {q['classifier_is_std']:.2f}, FD-classifier "
        f"{q['fd_classifier']:.1f}",
        f"real images: IS of the test set {q['real_test_is']:.2f}; FD-classifier of {n} train images vs the test "
        f"set {q['real_train_vs_test_fd_classifier']:.1f}",
        *(f"{name:<23}" + " ".join(f"{100 * f:4.1f}%" for f in q[key])
          for name, key in (("samples per digit", "class_fractions"),
                            ("test images per digit", "test_class_fractions")))])


def fooling_table(histories: dict[str, dict], window: int = 20) -> str:
    """For each run: its steps, the mean D(G(z)) over its first and last ``window`` steps and its mean L_D over
    the last ``window`` steps (:func:`hw5.metrics.gan.fooling_means`), as text (the generator-loss comparison
    of Problem 1)."""
    lines = []
    for name, h in histories.items():
        m = fooling_means(h, window)
        lines.append(f"{name:>14}: {len(h['d_fake'])} steps; mean D(G(z)) first {window} steps "
                     f"{m['d_fake_first']:.3f}, last {window} {m['d_fake_last']:.3f}; "
                     f"mean L_D last {window} {m['d_loss_last']:.2f}")
    return "\n".join(lines)


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
