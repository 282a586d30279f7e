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


def brightness_ramp_images() -> torch.Tensor:
    """130 images of very different brightness, so that which batch an image is standardised in shows."""
    return images(130) * torch.linspace(0.05, 1.0, 130).view(130, 1, 1, 1)


def by_hand_mses_in_batches_of_128_seed_0(model: RBM, x: torch.Tensor) -> tuple[float, float]:
    """The one-step chain's and the mean-field reconstruction's MSE of ``x`` in batches of 128 and 2, the
    chain's draws from a generator seeded with 0."""
    flat = x.flatten(1).double().numpy()
    gen = torch.Generator().manual_seed(0)
    chain = np.concatenate([by_hand_chain_k1(model, flat[s:s + 128], gen) for s in (0, 128)])
    meanfield = np.concatenate([by_hand_meanfield(model, flat[s:s + 128]) for s in (0, 128)])
    return ((chain - flat) ** 2).mean(), ((meanfield - flat) ** 2).mean()


def test_the_table_helpers_default_to_batches_of_128_and_seed_0():
    model = tiny_rbm()
    x = brightness_ramp_images()
    chain_mse, meanfield_mse = by_hand_mses_in_batches_of_128_seed_0(model, x)
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


def test_mse_table_defaults_to_batches_of_128_and_seed_0(monkeypatch):
    train = brightness_ramp_images()
    test = train.flip(0)  # the same images, batched differently
    pca_calls = []

    def fake_pca(fit_on, images, components):
        # the PCA (a 784 x 784 float64 eigendecomposition, seconds on a busy CPU) has tests of its own
        pca_calls.append((fit_on, images, components))
        return {m: 1.0 if images is train else 2.0 for m in components}

    monkeypatch.setattr(metrics, "pca_reconstruction_mse", fake_pca)
    model = tiny_rbm()
    train_chain, train_meanfield = by_hand_mses_in_batches_of_128_seed_0(model, train)
    test_chain, test_meanfield = by_hand_mses_in_batches_of_128_seed_0(model, test)
    table = metrics.mse_table({3: model}, train, test)
    assert table.rows[3] == pytest.approx({"train_mse": train_chain, "test_mse": test_chain,
                                           "train_mse_meanfield": train_meanfield,
                                           "test_mse_meanfield": test_meanfield}, rel=1e-5)
    assert test_chain != pytest.approx(train_chain, rel=1e-3)
    name = {id(train): "train", id(test): "test"}
    assert sorted((name.get(id(fit_on)), name.get(id(images)), components) for fit_on, images, components in pca_calls
                  ) == [("train", "test", [3]), ("train", "train", [3])]  # both fitted on train, with M components
    assert (table.pca_train, table.pca_test) == ({3: 1.0}, {3: 2.0})


# --- derivation_checks against brute force, with a known mistake planted in the model ---------------------

# the documented sigma of the tiny check RBM, as the RBM stores it (a float32 buffer, 1.3 rounded)
SIGMA = np.array([0.5, 1.3, 2.0], dtype=np.float32).astype(np.float64)
ALL_H = np.array([[(n >> j) & 1 for j in range(4)] for n in range(16)], dtype=np.float64)  # all 2^4 h
GRID = np.linspace(-25, 25, 20001)  # derivation_checks' integration grid


class SigmaForgottenRBM(RBM):
    """The three Problem 2.1 formulas with sigma forgotten, a typical derivation slip; energy() is the true one."""

    def p_h_given_v(self, v):
        return torch.sigmoid(self.alpha + v @ self.W.t())

    def free_energy(self, v, reduction="mean"):
        return ((v - self.b) ** 2).sum(1) / 2 - torch.nn.functional.softplus(self.alpha + v @ self.W.t()).sum(1)

    def mean_v_given_h(self, h):
        return self.b + h @ self.W


class CoupledVisiblesRBM(RBM):
    """An energy with a v_0 v_1 coupling, under which p(v_0 | h) and p(v_1 | h) depend on the other visible."""

    COUPLING = 0.7

    def energy(self, v, h):
        return super().energy(v, h) + self.COUPLING * v[:, 0] * v[:, 1]


def seeded_tiny_rbm(seed: int) -> tuple[np.ndarray, ...]:
    """W (4, 3), b, alpha and the 5 test points v (5, 3): float64 normals drawn in this order from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
                 for shape in ((4, 3), (3,), (4,), (5, 3)))


def normal_pdf(x, mean, sd):
    return np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


def by_hand_errors_of_forgotten_sigma(seed: int) -> list[float]:
    """The largest errors of the sigma-forgotten formulas, by brute force over the 16 hidden states (p(h|v),
    FE) and on the grid against the exact conditional N(x; b_i + sigma_i (W^T h)_i, sigma_i^2) (p(v|h))."""
    W, b, alpha, v = seeded_tiny_rbm(seed)
    energy = -((ALL_H @ W) @ (v / SIGMA).T - (((v - b) / SIGMA) ** 2).sum(1) / 2 + (ALL_H @ alpha)[:, None])  # (16, 5)
    weights = np.exp(-energy)
    p_h = np.abs(1 / (1 + np.exp(-(alpha + v @ W.T))) - (weights.T @ ALL_H) / weights.sum(0)[:, None]).max()
    fe = np.abs(((v - b) ** 2).sum(1) / 2 - np.logaddexp(0, alpha + v @ W.T).sum(1) + np.log(weights.sum(0))).max()
    p_v = max(np.abs(normal_pdf(GRID[:, None], b[i] + SIGMA[i] * (ALL_H @ W)[:, i], SIGMA[i])
                     - normal_pdf(GRID[:, None], b[i] + (ALL_H @ W)[:, i], SIGMA[i])).max() for i in range(3))
    return [p_h, p_v, fe]


def test_derivation_checks_report_the_brute_force_size_of_a_forgotten_sigma(monkeypatch):
    monkeypatch.setattr(metrics, "RBM", SigmaForgottenRBM)
    torch.manual_seed(123)  # the checks draw from their own seeded generator, not the global one
    # seed 2: a 6th test point would have larger p(h|v) and FE errors than the first 5
    for got, seed in ((metrics.derivation_checks(), 0), (metrics.derivation_checks(seed=2), 2)):
        expected = by_hand_errors_of_forgotten_sigma(seed)
        assert list(got.values()) == pytest.approx(expected, rel=1e-12)
        assert min(expected) > 0.1  # each planted mistake is caught


def test_the_p_v_check_holds_the_other_visibles_at_the_first_test_point(monkeypatch):
    monkeypatch.setattr(metrics, "RBM", CoupledVisiblesRBM)
    got = list(metrics.derivation_checks(seed=1).values())
    W, b, alpha, v = seeded_tiny_rbm(1)
    c = CoupledVisiblesRBM.COUPLING
    mean = b + SIGMA * (ALL_H @ W)  # (16, 3): the formula's conditional means
    # with the other visible fixed at v[0], the true p(v_i | h) is the formula's normal shifted by
    # -c sigma_i^2 v[0, other] for i = 0, 1 (v_2 is not coupled)
    p_v = max(np.abs(normal_pdf(GRID[:, None], mean[:, i] - c * SIGMA[i] ** 2 * v[0, 1 - i], SIGMA[i])
                     - normal_pdf(GRID[:, None], mean[:, i], SIGMA[i])).max() for i in (0, 1))
    assert got[1] == pytest.approx(p_v, rel=1e-12)
    assert got[2] == pytest.approx(np.abs(c * v[:, 0] * v[:, 1]).max(), rel=1e-12)  # FE misses the coupling
    assert got[0] < 1e-12  # p(h | v) is unaffected: the coupling does not involve h


def test_reconstruction_mse_defaults_to_batches_of_128_and_seed_0():
    """The pixel MSE of the parts by hand: batches of 128 and 2, each standardised on its own, chain draws
    from one generator seeded 0."""
    model, x = tiny_rbm(), images(130)
    flat = x.flatten(1).double().numpy()
    gen = torch.Generator().manual_seed(0)
    squared = {"chain": 0.0, "meanfield": 0.0}
    for start in (0, 128):
        batch = flat[start:start + 128]
        squared["meanfield"] += ((by_hand_meanfield(model, batch) - batch) ** 2).sum()
        squared["chain"] += ((by_hand_chain_k1(model, batch, gen) - batch) ** 2).sum()
    got = metrics.reconstruction_mse(model, x)
    assert got == pytest.approx({name: total / flat.size for name, total in squared.items()}, rel=1e-6)
