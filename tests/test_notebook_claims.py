"""Functions behind claims the notebooks print: McNemar's paired test (Problem 1.2's two probes on one test
set) and the convergence check of a fitted linear probe."""

import numpy as np
import pytest
import scipy.stats
import torch

from hw5.metrics.paired import mcnemar_exact
from hw5.metrics.probe import evaluate_probe, probe_correct, probe_gradient
from hw5.models.classifier import LinearProbe, LinearProbeConfig
from hw5.training.probe import train_probe


@pytest.mark.parametrize("a_only,b_only,both,neither", [(89, 154, 9700, 57), (3, 0, 10, 2), (5, 5, 1, 1),
                                                        (0, 12, 40, 3), (40, 71, 9800, 89)])
def test_mcnemar_exact_matches_scipy_binomtest_on_the_discordant_items(a_only, b_only, both, neither):
    correct_a = torch.tensor([True] * a_only + [False] * b_only + [True] * both + [False] * neither)
    correct_b = torch.tensor([False] * a_only + [True] * b_only + [True] * both + [False] * neither)
    perm = torch.randperm(len(correct_a), generator=torch.Generator().manual_seed(0))
    result = mcnemar_exact(correct_a[perm], correct_b[perm])
    expected = scipy.stats.binomtest(a_only, a_only + b_only, 0.5, alternative="two-sided").pvalue
    assert (result["a_only"], result["b_only"], result["n"]) == (a_only, b_only, a_only + b_only)
    assert result["p_value"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_exact_without_discordant_items_is_one_and_rejects_bad_input():
    same = torch.tensor([True, False, True])
    assert mcnemar_exact(same, same)["p_value"] == 1.0
    with pytest.raises(ValueError, match="bool tensor"):
        mcnemar_exact(torch.tensor([1, 0, 1]), same)
    with pytest.raises(ValueError, match="same non-empty items"):
        mcnemar_exact(same, same[:2])


def _problem(seed=0, n=300, d=12, classes=3):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    features = torch.randn(n, d, generator=g) * 3 + 5 + labels[:, None].float() * torch.randn(d, generator=g)
    return features, labels


def test_probe_gradient_matches_the_softmax_regression_gradient_in_numpy():
    features, labels = _problem()
    probe = LinearProbe(LinearProbeConfig(12, 3))
    with torch.no_grad():
        probe.weight.copy_(torch.randn(3, 12, generator=torch.Generator().manual_seed(1)) * 0.1)
        probe.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    penalty = 0.05
    f = features.double().numpy()
    mean, std = f.mean(0), f.std(0, ddof=1)
    u = (f - mean) / std
    w = probe.weight.detach().double().numpy() * std
    b = probe.bias.detach().double().numpy() + probe.weight.detach().double().numpy() @ mean
    logits = u @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(3)[labels.numpy()]
    grad_w = (p - onehot).T @ u / len(u) + penalty * w
    grad_b = (p - onehot).mean(0)
    flat = np.concatenate([grad_w.ravel(), grad_b])
    objective = -np.log(p[np.arange(len(u)), labels.numpy()]).mean() + 0.5 * penalty * (w ** 2).sum()
    result = probe_gradient(probe, features, labels, penalty)
    assert result["objective"] == pytest.approx(objective, rel=1e-4)
    assert result["grad_max"] == pytest.approx(np.abs(flat).max(), rel=1e-3)
    assert result["grad_norm"] == pytest.approx(np.linalg.norm(flat), rel=1e-3)


def test_probe_gradient_is_near_zero_at_a_converged_fit_and_not_before():
    features, labels = _problem()
    assert probe_gradient(train_probe(features, labels, 0.01, max_iter=500), features, labels, 0.01)["grad_max"] < 1e-4
    assert probe_gradient(train_probe(features, labels, 0.01, max_iter=1), features, labels, 0.01)["grad_max"] > 1e-3


def test_probe_correct_is_per_image_and_averages_to_evaluate_probe():
    features, labels = _problem(n=60, d=4)
    images = torch.rand(60, 28, 28, generator=torch.Generator().manual_seed(2))
    extractor = lambda x: x.flatten(1)[:, :16]  # noqa: E731
    probe = train_probe(extractor(images[:, None]), labels, 0.1, max_iter=50)
    hits = probe_correct(probe, extractor, images, labels, 0)
    logits = images.flatten(1)[:, :16] @ probe.weight.T + probe.bias
    assert hits.dtype == torch.bool and torch.equal(hits, logits.argmax(1) == labels)
    assert hits.float().mean().item() == pytest.approx(evaluate_probe(probe, extractor, images, labels, 0))


def test_problem1_figures_say_what_they_plot():
    import matplotlib.pyplot as plt

    from hw5.plotting.gan import class_fractions_figure, loss_comparison_figure

    fig = class_fractions_figure([0.1] * 10, [0.1] * 10)
    ax = fig.axes[0]
    assert ax.get_title() and "classifier" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["GAN samples",
                                                                    "MNIST test images, as the classifier reads them"]
    plt.close(fig)
    runs = {"non-saturating loss": {"d_fake": [0.2] * 20}, "literal min-max loss": {"d_fake": [0.0] * 20}}
    fig = loss_comparison_figure(runs, {name: torch.rand(12, 1, 28, 28) for name in runs})
    curves = fig.axes[0]
    assert "D(G(z))" in curves.get_ylabel() and "generated images" in curves.get_title()
    assert [t.get_text() for t in curves.get_legend().get_texts()] == list(runs)
    assert [ax.get_title() for ax in fig.axes[1:]] == [f"samples after training: {name}" for name in runs]
    assert fig.axes[1].images[0].get_array().shape == (2 * 30 - 2, 6 * 30 - 2)  # 12 samples, 6 per row
    plt.close(fig)
