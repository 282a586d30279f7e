"""Problem 2's reconstruction metrics against hand computations on tiny inputs (fast: these are the tests
``scripts/mutation.sh`` runs against the mutants of ``hw5/metrics/rbm.py``; the suite's data-backed tests of
the same functions are too slow to rerun per mutant)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hw5.metrics import rbm as metrics
from hw5.models.rbm import RBM, RBMConfig

D = 784


def tiny_rbm(hidden: int = 3, seed: int = 0, sigma: float = 1.0) -> RBM:
    """An RBM on 28x28 images with a few hidden units and random (not small) weights and biases."""
    torch.manual_seed(seed)
    model = RBM(RBMConfig(visible=D, hidden=hidden, gibbs_steps=1, sigma=sigma))
    with torch.no_grad():
        model.W.copy_(torch.randn(hidden, D) * 0.05)
        model.b.copy_(torch.randn(D) * 0.1)
        model.alpha.copy_(torch.randn(hidden))
    return model


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def by_hand_standardise(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The template's batch standardisation, in float64 NumPy: (x - m) / s, s the unbiased std."""
    m = x.mean()
    s = x.std(ddof=1)
    return (x - m) / s, m, s


def by_hand_meanfield(model: RBM, x: np.ndarray) -> np.ndarray:
    """clip(m + s (b + sigma W^T sigmoid(alpha + W v / sigma)), 0, 1) with v the standardised batch."""
    W, b, alpha = (t.detach().double().numpy() for t in (model.W, model.b, model.alpha))
    sigma = model.sigma.double().numpy()
    v, m, s = by_hand_standardise(x)
    p = 1.0 / (1.0 + np.exp(-(alpha + (v / sigma) @ W.T)))
    return np.clip(m + s * (b + sigma * (p @ W)), 0.0, 1.0)


def by_hand_chain_k1(model: RBM, x: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """One Gibbs step's mean E[v | h_0] in pixels, h_0 = [u < p(h | v)] with u drawn from ``generator``
    (the chain's first draw), then the batch's standardisation undone and clipped."""
    W, b, alpha = (t.detach().double().numpy() for t in (model.W, model.b, model.alpha))
    sigma = model.sigma.double().numpy()
    v, m, s = by_hand_standardise(x)
    p = 1.0 / (1.0 + np.exp(-(alpha + (v / sigma) @ W.T)))
    u = torch.rand(p.shape, generator=generator).double().numpy()
    h = (u < p).astype(np.float64)
    # the final visible sample draws (B, D) normals after h; only the mean enters the reconstruction
    torch.randn((x.shape[0], D), generator=generator)
    return np.clip(m + s * (b + sigma * (h @ W)), 0.0, 1.0)


def test_meanfield_and_one_step_chain_mse_are_the_pixel_mse_over_batches_by_hand():
    model = tiny_rbm(sigma=0.8)
    x = images(7)
    flat = x.flatten(1).double().numpy()
    got = metrics.reconstruction_mse(model, x, batch_size=3, seed=5, gibbs_steps=1, collapsed=False)
    gen = torch.Generator().manual_seed(5)
    meanfield, chain = [], []
    for start in range(0, 7, 3):  # batches of 3, 3, 1, each with its own mean and std
        batch = flat[start:start + 3]
        meanfield.append(by_hand_meanfield(model, batch))
        chain.append(by_hand_chain_k1(model, batch, gen))
    assert got["meanfield"] == pytest.approx(((np.concatenate(meanfield) - flat) ** 2).mean(), rel=1e-5)
    assert got["chain"] == pytest.approx(((np.concatenate(chain) - flat) ** 2).mean(), rel=1e-5)


def test_reconstruct_returns_the_batches_the_mse_counted_as_images():
    model = tiny_rbm()
    model.gibbs_steps = 3  # the one step asked for, not the model's three
    x = images(5)
    parts = metrics.reconstruct(model, x, batch_size=2, seed=3, gibbs_steps=1)
    assert set(parts) == {"original", "chain", "meanfield"}
    for key in parts:
        assert parts[key].shape == (5, 1, 28, 28)
    torch.testing.assert_close(parts["original"], x)
    flat = x.flatten(1).double().numpy()
    expected = np.concatenate([by_hand_meanfield(model, flat[i:i + 2]) for i in range(0, 5, 2)])
    np.testing.assert_allclose(parts["meanfield"].flatten(1).double().numpy(), expected, atol=1e-5)
    gen = torch.Generator().manual_seed(3)
    chain = np.concatenate([by_hand_chain_k1(model, flat[i:i + 2], gen) for i in range(0, 5, 2)])
    np.testing.assert_allclose(parts["chain"].flatten(1).double().numpy(), chain, atol=1e-5)
    mse = metrics.reconstruction_mse(model, x, batch_size=2, seed=3, gibbs_steps=1)
    assert mse["chain"] == pytest.approx(((chain - flat) ** 2).mean(), rel=1e-5)


def test_reconstruct_defaults_to_batches_of_128_and_seed_0():
    model = tiny_rbm()
    x = images(130)
    parts = metrics.reconstruct(model, x)
    flat = x.flatten(1).double().numpy()
    gen = torch.Generator().manual_seed(0)
    for start in (0, 128):  # batches of 128 and 2, each standardised on its own
        batch = flat[start:start + 128]
        got = slice(start, start + batch.shape[0])
        np.testing.assert_allclose(parts["meanfield"][got].flatten(1).double().numpy(),
                                   by_hand_meanfield(model, batch), atol=1e-5)
        np.testing.assert_allclose(parts["chain"][got].flatten(1).double().numpy(),
                                   by_hand_chain_k1(model, batch, gen), atol=1e-5)


def test_the_model_default_chain_length_and_the_sampler_choice_are_passed_on():
    model = tiny_rbm()
    model.gibbs_steps = 3
    x = images(4)
    default = metrics.reconstruction_mse(model, x, seed=2)
    three = metrics.reconstruction_mse(model, x, seed=2, gibbs_steps=3)
    one = metrics.reconstruction_mse(model, x, seed=2, gibbs_steps=1)
    assert default == three and default["chain"] != one["chain"]
    assert default["meanfield"] == one["meanfield"]  # the mean-field reconstruction draws nothing
    plain = metrics.reconstruction_mse(model, x, seed=2, collapsed=False)
    collapsed = metrics.reconstruction_mse(model, x, seed=2, collapsed=True)
    assert plain["chain"] != collapsed["chain"]  # same law, different draws
    assert metrics.mse_by_gibbs_steps(model, x, [1, 3], seed=2) == {1: one["chain"], 3: three["chain"]}


def test_reconstruction_mse_of_no_image_is_refused():
    with pytest.raises(ValueError):
        metrics.reconstruction_mse(tiny_rbm(), torch.zeros(0, 784))


def test_pca_mse_is_the_residual_of_the_best_rank_m_reconstruction():
    gen = torch.Generator().manual_seed(0)
    # low-rank structure plus noise, so that every number of components leaves a different residual
    basis = torch.rand(6, D, generator=gen)
    train = (torch.rand(40, 6, generator=gen) @ basis / 6 + 0.05 * torch.rand(40, D, generator=gen)).clamp(0, 1)
    test = (torch.rand(9, 6, generator=gen) @ basis / 6 + 0.05 * torch.rand(9, D, generator=gen)).clamp(0, 1)
    got = metrics.pca_reconstruction_mse(train.view(-1, 1, 28, 28), test.view(-1, 1, 28, 28), [1, 2, 5])
    a, t = train.double().numpy(), test.double().numpy()
    mu = a.mean(0)
    _, _, vt = np.linalg.svd(a - mu, full_matrices=False)  # rows of vt: principal directions, by variance
    for m in (1, 2, 5):
        v = vt[:m].T
        x_hat = mu + (t - mu) @ v @ v.T
        assert got[m] == pytest.approx(((t - x_hat) ** 2).mean(), rel=1e-6)
    mean, vectors = metrics.pca_fit(train, 3)
    np.testing.assert_allclose(mean.numpy(), mu, atol=1e-12)
    assert vectors.shape == (D, 3)
    np.testing.assert_allclose(np.abs(vectors.numpy().T @ vt[:3].T), np.eye(3), atol=1e-6)
    for bad in (0, D + 1):
        with pytest.raises(ValueError):
            metrics.pca_fit(train, bad)
    assert metrics.pca_fit(train, D)[1].shape == (D, D)


def test_mse_row_table_ratios_and_gaps_are_assembled_from_their_parts():
    models = {2: tiny_rbm(2, seed=1), 4: tiny_rbm(4, seed=2)}
    train, test = images(6, seed=3), images(4, seed=4)
    table = metrics.mse_table(models, train, test, batch_size=4, seed=1)
    for m, model in models.items():
        tr = metrics.reconstruction_mse(model, train, 4, 1)
        te = metrics.reconstruction_mse(model, test, 4, 1)
        assert table.rows[m] == {"train_mse": tr["chain"], "test_mse": te["chain"],
                                 "train_mse_meanfield": tr["meanfield"], "test_mse_meanfield": te["meanfield"]}
    assert table.pca_train == metrics.pca_reconstruction_mse(train, train, [2, 4])
    assert table.pca_test == metrics.pca_reconstruction_mse(train, test, [2, 4])
    assert list(table.rows) == [2, 4]
    ratios = table.meanfield_over_pca()
    gaps = table.train_test_gaps()
    for m in (2, 4):
        row = table.rows[m]
        assert ratios[m] == pytest.approx(row["test_mse_meanfield"] / table.pca_test[m])
        assert gaps[m] == pytest.approx({"chain": row["test_mse"] - row["train_mse"],
                                         "meanfield": row["test_mse_meanfield"] - row["train_mse_meanfield"],
                                         "pca": table.pca_test[m] - table.pca_train[m]})


def test_training_times_sum_the_per_epoch_records():
    histories = {8: {"loss": [1.0, 2.0, 3.0], "epoch_seconds": [1.5, 2.5, 3.0], "epoch_cpu_seconds": [2.0, 4.0, 1.0],
                     "eval_seconds": [0.25, 0.5, 0.25]},
                 4: {"loss": [1.0], "epoch_seconds": [7.0], "epoch_cpu_seconds": [9.0]}}
    got = metrics.training_times(histories)
    assert list(got) == [4, 8]
    assert got[8] == {"epochs": 3, "train_seconds": 7.0, "train_cpu_seconds": 7.0, "eval_seconds": 1.0}
    assert got[4] == {"epochs": 1, "train_seconds": 7.0, "train_cpu_seconds": 9.0, "eval_seconds": 0}


def test_hidden_unit_statistics_count_undecided_probabilities_by_hand():
    model = tiny_rbm(hidden=5, seed=3)
    x = images(5, seed=6)
    flat = x.flatten(1).double().numpy()
    W, alpha = model.W.detach().double().numpy(), model.alpha.detach().double().numpy()
    p = np.concatenate([1 / (1 + np.exp(-(alpha + by_hand_standardise(flat[i:i + 2])[0] @ W.T)))
                        for i in range(0, 5, 2)])
    for low, high in ((0.1, 0.9), (0.3, 0.6)):
        got = metrics.hidden_unit_statistics(model, x, batch_size=2, low=low, high=high)
        expected = ((p > low) & (p < high)).mean()
        assert 0 < expected < 1
        assert got["undecided"] == pytest.approx(expected)
    assert got["filter_norm"] == pytest.approx(np.linalg.norm(W, axis=1).mean(), rel=1e-6)


def test_chain_seconds_is_a_positive_time_per_call(monkeypatch):
    model = tiny_rbm()
    calls = []
    original = model.gibbs_chain
    monkeypatch.setattr(model, "gibbs_chain", lambda *a, **k: calls.append(k) or original(*a, **k))
    seconds = metrics.chain_seconds(model, images(3), collapsed=True, repeats=2, gibbs_steps=2)
    assert 0 < seconds < 10
    assert len(calls) == 6 and all(k["k"] == 2 and k["collapsed"] is True for k in calls)


def test_derivation_checks_are_tiny_for_the_true_formulas():
    checks = metrics.derivation_checks()
    assert len(checks) == 3 and all(0 <= value < 1e-6 for value in checks.values())
    # each number is labelled with the formula it checks (the notebook prints the labels)
    formulas = ["p(h_j=1|v) = sigmoid(alpha_j + sum_i W_ij v_i / sigma_i)",
                "p(v_i=x|h) = N(x; b_i + sigma_i sum_j W_ij h_j, sigma_i^2)",
                "FE(v) = sum_i (v_i-b_i)^2/(2 sigma_i^2) - sum_j softplus(a_j(v))"]
    assert [key.split(", against")[0] for key in checks] == formulas
    assert [key.split(", against ")[1] for key in checks] == [
        "the sum over 2^F states", "exp(-E) / its integral", "-log sum_h exp(-E)"]


def test_the_table_helpers_default_to_batches_of_128_and_seed_0():
    model = tiny_rbm()
    # images of very different brightness, so that which batch an image is standardised in shows
    x = images(130) * torch.linspace(0.05, 1.0, 130).view(130, 1, 1, 1)
    flat = x.flatten(1).double().numpy()
    gen = torch.Generator().manual_seed(0)
    chain = np.concatenate([by_hand_chain_k1(model, flat[s:s + 128], gen) for s in (0, 128)])
    meanfield = np.concatenate([by_hand_meanfield(model, flat[s:s + 128]) for s in (0, 128)])
    chain_mse, meanfield_mse = ((chain - flat) ** 2).mean(), ((meanfield - flat) ** 2).mean()
    assert metrics.mse_by_gibbs_steps(model, x, [1])[1] == pytest.approx(chain_mse, rel=1e-5)
    row = metrics.mse_row(model, x, x)
    assert row == pytest.approx({"train_mse": chain_mse, "test_mse": chain_mse, "train_mse_meanfield": meanfield_mse,
                                 "test_mse_meanfield": meanfield_mse}, rel=1e-5)


def test_pca_takes_one_component_and_names_bad_train_images():
    train = images(20)
    mean, vectors = metrics.pca_fit(train, 1)
    assert vectors.shape == (D, 1)
    centred = train.flatten(1).double().numpy() - mean.numpy()
    top = np.linalg.svd(centred, full_matrices=False)[2][0]
    assert abs(float(vectors[:, 0].numpy() @ top)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"\btrain_images\b"):
        metrics.pca_fit(train * 2, 1)  # floats outside [0, 1]


def test_mse_table_defaults_to_batches_of_128_and_seed_0():
    model = tiny_rbm()
    x = images(130) * torch.linspace(0.05, 1.0, 130).view(130, 1, 1, 1)
    table = metrics.mse_table({3: model}, x, x)
    assert table.rows[3] == metrics.mse_row(model, x, x, batch_size=128, seed=0)
