"""Problem 2: the Gaussian-Bernoulli RBM's maths against brute force, and its training loop.

The derivations of Problem 2.1 are checked on a tiny GB-RBM (D = 3 visible, F = 4 hidden units,
random W and biases, sigma != 1, float64), where every sum over h can be enumerated (2^4 states) and
every integral over a visible unit done numerically:

* p(h_j = 1 | v) equals the marginal of exp(-E(v, h)) over all 2^F hidden states;
* p(v_i = x | h) equals exp(-E) normalised by numerical integration over v_i, and is the Gaussian
  N(b_i + sigma_i sum_j W_ij h_j, sigma_i^2);
* exp(-F(v)) equals sum_h exp(-E(v, h));
* the gradient of the CD loss is the analytic CD update (data statistics minus model statistics).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import hw5
from hw5 import data
from hw5.checkpoint import CheckpointError
from hw5.metrics import rbm as rbm_metrics
from hw5.metrics.rbm import mse_table, pca_fit, pca_reconstruction_mse, reconstruct, reconstruction_mse
from hw5.models.rbm import RBM, RBMConfig, standardize, to_pixels
from hw5.pretrained import export_pretrained
from hw5.training.rbm import RBMTraining, cd_step, train_rbm

D, F = 3, 4


@pytest.fixture()
def tiny() -> RBM:
    """A tiny GB-RBM in float64 with random parameters and unequal sigmas."""
    gen = torch.Generator().manual_seed(0)
    model = RBM(RBMConfig(visible=D, hidden=F, gibbs_steps=2, sigma=(0.5, 1.3, 2.0))).double()
    with torch.no_grad():
        model.W.copy_(torch.randn(F, D, generator=gen, dtype=torch.float64) * 0.8)
        model.b.copy_(torch.randn(D, generator=gen, dtype=torch.float64))
        model.alpha.copy_(torch.randn(F, generator=gen, dtype=torch.float64))
    return model


def all_hidden_states(f: int = F) -> torch.Tensor:
    """Every h in {0, 1}^f, shape (2^f, f), float64."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=f)), dtype=torch.float64)


def energy_by_hand(model: RBM, v: torch.Tensor, h: torch.Tensor) -> float:
    """The homework's E(v, h), written with explicit sums over i and j (W_ij = model.W[j, i])."""
    W, b, a, s = model.W, model.b, model.alpha, model.sigma
    e = 0.0
    for i in range(v.shape[0]):
        for j in range(h.shape[0]):
            e += W[j, i].item() * h[j].item() * v[i].item() / s[i].item()
        e -= (v[i].item() - b[i].item()) ** 2 / (2 * s[i].item() ** 2)
    for j in range(h.shape[0]):
        e += a[j].item() * h[j].item()
    return -e


# --- 2.1: the derivations against brute force ------------------------------------------------------------


def test_energy_matches_the_homework_formula(tiny):
    v = torch.randn(5, D, dtype=torch.float64)
    h = all_hidden_states()[torch.tensor([0, 3, 7, 12, 15])]
    got = tiny.energy(v, h)
    for n in range(5):
        assert got[n].item() == pytest.approx(energy_by_hand(tiny, v[n], h[n]), rel=1e-12, abs=1e-12)


def test_p_h_given_v_equals_enumerated_marginal(tiny):
    v = torch.randn(6, D, dtype=torch.float64) * 2
    hs = all_hidden_states()  # (16, F)
    for n in range(v.shape[0]):
        weights = torch.exp(-tiny.energy(v[n].expand(len(hs), D), hs))  # unnormalised p(v, h), (16,)
        marginal = (weights[:, None] * hs).sum(0) / weights.sum()  # sum over h with h_j = 1
        torch.testing.assert_close(tiny.p_h_given_v(v[n:n + 1])[0], marginal, rtol=1e-12, atol=1e-14)


def test_p_v_given_h_equals_numerically_normalised_exp_minus_energy(tiny):
    """p(v_i = x | h) = exp(-E(v, h)) / int exp(-E(v, h)) dv_i: it neither depends on the other visibles
    (they factor out of the ratio) nor differs from N(b_i + sigma_i sum_j W_ij h_j, sigma_i^2)."""
    for h in all_hidden_states():
        mean = tiny.mean_v_given_h(h[None])[0]
        for i in range(D):
            s = tiny.sigma[i].item()
            x = torch.linspace(mean[i].item() - 12 * s, mean[i].item() + 12 * s, 4001, dtype=torch.float64)
            for rest in (torch.zeros(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64) * 3):
                v = rest.expand(len(x), D).clone()
                v[:, i] = x
                log_w = -tiny.energy(v, h.expand(len(x), F))
                w = torch.exp(log_w - log_w.max())
                density = w / torch.trapezoid(w, x)  # the "integral form" of the homework
                gaussian = torch.distributions.Normal(mean[i], s).log_prob(x).exp()
                torch.testing.assert_close(density, gaussian, rtol=1e-8, atol=1e-10)


def test_free_energy_equals_minus_log_sum_over_hidden_states(tiny):
    v = torch.randn(7, D, dtype=torch.float64) * 2
    hs = all_hidden_states()
    for n in range(v.shape[0]):
        brute = -torch.logsumexp(-tiny.energy(v[n].expand(len(hs), D), hs), dim=0)
        assert tiny.free_energy(v[n:n + 1], reduction="none")[0].item() == pytest.approx(brute.item(), rel=1e-12)
    per_sample = tiny.free_energy(v, reduction="none")
    assert tiny.free_energy(v).item() == pytest.approx(per_sample.mean().item(), rel=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        tiny.free_energy(v, reduction="sum")


def test_cd_loss_gradient_is_the_analytic_cd_update(tiny):
    """d/dtheta [mean F(v_data) - mean F(v_k)] (autograd, v_k constant) = model statistics - data
    statistics, written here independently with explicit sums over the batch."""
    v0 = torch.randn(9, D, dtype=torch.float64)
    vk = torch.randn(11, D, dtype=torch.float64) * 1.5  # the two batches may differ in size
    vk.requires_grad_(True)
    tiny.zero_grad()
    loss = tiny.cd_loss(v0, vk)["loss"]
    loss.backward()
    assert vk.grad is None  # v_k is a constant of the CD loss
    vk = vk.detach()

    def stats(v: torch.Tensor) -> dict[str, torch.Tensor]:
        u = v / tiny.sigma
        p = tiny.p_h_given_v(v).detach()
        return {"W": sum(torch.outer(p[n], u[n]) for n in range(len(v))) / len(v),
                "b": sum((v[n] - tiny.b.detach()) / tiny.sigma ** 2 for n in range(len(v))) / len(v),
                "alpha": p.mean(0)}

    data_stats, model_stats = stats(v0), stats(vk)
    expected = {k: model_stats[k] - data_stats[k] for k in data_stats}
    analytic = tiny.cd_gradients(v0, vk)
    for name, param in (("W", tiny.W), ("b", tiny.b), ("alpha", tiny.alpha)):
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(analytic[name], expected[name], rtol=1e-10, atol=1e-12)
    assert analytic["loss"].item() == pytest.approx(loss.item(), rel=1e-12)
    # the logits the chain already computed give the same answer
    chain = tiny.gibbs_chain(v0)
    torch.testing.assert_close(tiny.cd_gradients(v0, vk, chain.logits_0)["W"], expected["W"])


def test_free_energy_gradient_matches_finite_differences(tiny):
    v = torch.randn(4, D, dtype=torch.float64)
    tiny.zero_grad()
    tiny.free_energy(v).backward()
    eps = 1e-6
    with torch.no_grad():
        for j, i in [(0, 0), (2, 1), (3, 2)]:
            old = tiny.W[j, i].item()
            tiny.W[j, i] = old + eps
            up = tiny.free_energy(v).item()
            tiny.W[j, i] = old - eps
            down = tiny.free_energy(v).item()
            tiny.W[j, i] = old
            assert tiny.W.grad[j, i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-9)


# --- sampling -------------------------------------------------------------------------------------------


def test_samplers_have_the_right_moments(tiny):
    gen = torch.Generator().manual_seed(1)
    p = torch.tensor([[0.05, 0.5, 0.9, 1.0]], dtype=torch.float64).expand(200_000, F)
    h = tiny.sample_bernoulli(p, gen)
    assert set(h.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(h.mean(0), p[0], atol=4e-3, rtol=0)
    mean = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64).expand(200_000, D)
    v = tiny.sample_gaussian(mean, gen)
    torch.testing.assert_close(v.mean(0), mean[0], atol=0.02, rtol=0)
    torch.testing.assert_close(v.std(0), tiny.sigma, rtol=0.01, atol=0)


def test_one_step_chain_matches_the_exact_mixture(tiny):
    """v_1 | v_0 is a mixture over h of N(b + sigma W^T h, sigma^2): mean b + sigma W^T p and
    covariance diag(sigma^2) + S W^T diag(p (1 - p)) W S, with p = p(h = 1 | v_0), S = diag(sigma)."""
    n = 200_000
    v0 = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    chain = tiny.gibbs_chain(v0.expand(n, D), k=1, generator=torch.Generator().manual_seed(2))
    p = tiny.p_h_given_v(v0)[0].detach()
    ws = (tiny.W * tiny.sigma).detach()  # (F, D): column i scaled by sigma_i
    mean = tiny.b.detach() + p @ ws
    cov = torch.diag(tiny.sigma ** 2) + ws.t() @ torch.diag(p * (1 - p)) @ ws
    torch.testing.assert_close(chain.v_k.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(chain.v_k.t()), cov, atol=0.05, rtol=0.02)
    torch.testing.assert_close(chain.mean_k.mean(0), mean, atol=0.01, rtol=0)


def test_collapsed_chain_has_the_plain_chains_law():
    """The collapsed sampler (intermediate visibles integrated out) and the literal Gibbs chain give the
    same distribution of (E[v | h_{k-1}], v_k): compare means and covariances over 400k chains (the
    tolerances are about 5 standard errors of the difference)."""
    gen = torch.Generator().manual_seed(3)
    model = RBM(RBMConfig(visible=6, hidden=3, gibbs_steps=4, sigma=(0.7, 1.0, 1.5, 0.9, 1.2, 2.0))).double()
    with torch.no_grad():
        model.W.copy_(torch.randn(3, 6, generator=gen, dtype=torch.float64) * 0.6)
        model.b.copy_(torch.randn(6, generator=gen, dtype=torch.float64) * 0.5)
        model.alpha.copy_(torch.randn(3, generator=gen, dtype=torch.float64) * 0.5)
    n = 400_000
    v0 = torch.randn(1, 6, generator=gen, dtype=torch.float64).expand(n, 6)
    plain = model.gibbs_chain(v0, generator=torch.Generator().manual_seed(4), collapsed=False)
    fast = model.gibbs_chain(v0, generator=torch.Generator().manual_seed(5), collapsed=True)
    assert not torch.equal(plain.mean_k, fast.mean_k)  # different draws, same law
    for a, b in ((plain.mean_k, fast.mean_k), (plain.v_k, fast.v_k)):
        torch.testing.assert_close(a.mean(0), b.mean(0), atol=0.025, rtol=0)
        torch.testing.assert_close(torch.cov(a.t()), torch.cov(b.t()), atol=0.04, rtol=0)
    # the h_{k-1} patterns: E[v | h] is one of 2^3 points, hit with the same frequencies
    patterns_plain = (plain.mean_k * 1e6).round().unique(dim=0, return_counts=True)
    patterns_fast = (fast.mean_k * 1e6).round().unique(dim=0, return_counts=True)
    torch.testing.assert_close(patterns_plain[0], patterns_fast[0])
    torch.testing.assert_close(patterns_plain[1] / n, patterns_fast[1] / n, atol=4e-3, rtol=0)


def test_collapsed_chain_falls_back_when_w_w_transpose_is_singular(tiny):
    """A hidden unit with an all-zero weight row makes W W^T singular: Cholesky fails and the chain runs
    the plain sampler (same draws from the same seed)."""
    with torch.no_grad():
        tiny.W[3] = 0.0
    v0 = torch.randn(5, D, dtype=torch.float64)
    a = tiny.gibbs_chain(v0, generator=torch.Generator().manual_seed(6), collapsed=True)
    b = tiny.gibbs_chain(v0, generator=torch.Generator().manual_seed(6), collapsed=False)
    torch.testing.assert_close(a.v_k, b.v_k, rtol=0, atol=0)


def test_forward_is_the_templates_chain(tiny):
    v0 = torch.randn(8, D, dtype=torch.float64)
    v_k, mean_k = tiny(v0, generator=torch.Generator().manual_seed(7))
    chain = tiny.gibbs_chain(v0, generator=torch.Generator().manual_seed(7))
    assert v_k.shape == mean_k.shape == (8, D)
    assert not v_k.requires_grad and not mean_k.requires_grad
    torch.testing.assert_close(v_k, chain.v_k, rtol=0, atol=0)
    torch.testing.assert_close(chain.logits_0, tiny.hidden_logits(v0).detach())
    with pytest.raises(ValueError, match="k \\(Gibbs steps\\) must be >= 1"):
        tiny.gibbs_chain(v0, k=0)


# --- construction, pre-processing, errors ----------------------------------------------------------------


def test_template_initialisation_and_config():
    torch.manual_seed(0)
    model = RBM(RBMConfig(hidden=256))
    assert model.W.shape == (256, 784) and model.b.shape == (784,) and model.alpha.shape == (256,)
    assert model.W.std().item() == pytest.approx(1e-2, rel=0.02)
    assert model.b.abs().sum().item() == 0 and model.alpha.abs().sum().item() == 0
    assert torch.equal(model.sigma, torch.ones(784)) and "sigma" in dict(model.named_buffers())
    assert [n for n, _ in model.named_parameters()] == ["W", "b", "alpha"]
    assert model.config == RBMConfig(visible=784, hidden=256, gibbs_steps=5, sigma=1.0)
    assert torch.equal(RBM(RBMConfig(visible=3, sigma=[0.5, 1.0, 2.0])).sigma, torch.tensor([0.5, 1.0, 2.0]))


def test_standardize_is_the_templates_and_to_pixels_inverts_it():
    x = torch.rand(128, 784)
    v, m, s = standardize(x)
    torch.testing.assert_close(v, (x - x.mean()) / x.std())
    torch.testing.assert_close(to_pixels(v, m, s), x)
    assert to_pixels(v * 10, m, s).min() >= 0 and to_pixels(v * 10, m, s).max() <= 1
    assert torch.isfinite(standardize(torch.zeros(4, 784))[0]).all()  # a blank batch gives zeros, not NaN


# --- training and metrics on real KMNIST subsets ---------------------------------------------------------


@pytest.fixture(scope="module")
def kmnist() -> tuple[torch.Tensor, torch.Tensor]:
    x, _ = data.load("KMNIST", "train")
    xt, _ = data.load("KMNIST", "test")
    return x[:4096], xt[:512]


def test_analytic_and_autograd_updates_agree(kmnist):
    x = data.to_unit(kmnist[0][:256]).flatten(1)
    params = []
    for gradient in ("analytic", "autograd"):
        torch.manual_seed(0)
        model = RBM(RBMConfig(hidden=16))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for start in (0, 128):
            out = cd_step(model, opt, x[start:start + 128], gradient)
        params.append([p.detach().clone() for p in model.parameters()])
        assert set(out) == {"loss", "train_mse", "cholesky_fallbacks"} and all(v.shape == () for v in out.values())
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_training_lowers_reconstruction_error_and_is_deterministic(kmnist):
    x, xt = kmnist
    config = RBMTraining(RBMConfig(hidden=64))
    before = reconstruction_mse(RBM(RBMConfig(hidden=64)), xt)  # ~0.116: the untrained RBM returns the batch mean
    model, hist = train_rbm(x, config, epochs=6, eval_images=xt, show_progress=False)
    after = reconstruction_mse(model, xt)
    assert after["chain"] < 0.85 * before["chain"] and after["meanfield"] < 0.85 * before["meanfield"]
    assert hist["train_mse"][-1] < hist["train_mse"][0]
    assert hist["eval_mse"][-1] == pytest.approx(after["chain"]) and hist["steps_per_epoch"] == 32
    assert len(hist["loss"]) == len(hist["epoch_seconds"]) == 6
    again, _ = train_rbm(x, config, epochs=6, show_progress=False)  # same seed, same run
    torch.testing.assert_close(model.W, again.W, rtol=0, atol=0)


@pytest.mark.slow
def test_resume_replays_the_uninterrupted_run(kmnist, tmp_path):
    x = kmnist[0][:512]
    config = RBMTraining(RBMConfig(hidden=16, gibbs_steps=2))  # k = 2: a resumed run also replays the collapsed chain
    full, full_hist = train_rbm(x, config, epochs=2, run_dir=tmp_path / "a", show_progress=False)
    train_rbm(x, config, epochs=1, run_dir=tmp_path / "b", show_progress=False)
    resumed, resumed_hist = train_rbm(x, config, epochs=2, run_dir=tmp_path / "b", show_progress=False)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):  # W, b, alpha and sigma
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert full_hist["loss"] == resumed_hist["loss"] and full_hist["train_mse"] == resumed_hist["train_mse"]
    with pytest.raises(CheckpointError, match="config"):
        train_rbm(x, RBMTraining(RBMConfig(hidden=32, gibbs_steps=2)), epochs=2, run_dir=tmp_path / "b",
                  show_progress=False)


def test_resume_and_batch_counts_on_a_tiny_run(kmnist, tmp_path):
    """The fast variant of the two slow tests above: 300 images in batches of 128 are 3 steps per epoch (the
    last, partial batch of 44 kept), every history list has one entry per epoch, the recorded evaluation MSE
    is that of the returned model, and a run interrupted after epoch 1 and resumed equals the straight run
    bit for bit (k = 2, so the resumed run replays the collapsed chain's draws too)."""
    x, xt = kmnist[0][:300], kmnist[1][:64]
    config = RBMTraining(RBMConfig(hidden=8, gibbs_steps=2))
    full, hist = train_rbm(x, config, epochs=2, run_dir=tmp_path / "a", eval_images=xt, show_progress=False)
    assert hist["steps_per_epoch"] == math.ceil(300 / 128) == 3
    for key in ("loss", "train_mse", "epoch_seconds", "eval_mse", "eval_mse_meanfield"):
        assert len(hist[key]) == 2, key
    scores = reconstruction_mse(full, xt, batch_size=config.batch_size)
    assert (hist["eval_mse"][-1], hist["eval_mse_meanfield"][-1]) == (scores["chain"], scores["meanfield"])
    train_rbm(x, config, epochs=1, run_dir=tmp_path / "b", eval_images=xt, show_progress=False)
    resumed, resumed_hist = train_rbm(x, config, epochs=2, run_dir=tmp_path / "b", eval_images=xt,
                                      show_progress=False)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    for key in ("loss", "train_mse", "eval_mse"):
        assert hist[key] == resumed_hist[key], key
    assert resumed_hist["steps_per_epoch"] == 3


def test_a_non_positive_budget_is_refused(kmnist):
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train_rbm(kmnist[0], RBMTraining(RBMConfig(hidden=16)), epochs=0)


def test_reconstruction_metrics_follow_their_definition(kmnist):
    torch.manual_seed(0)
    model = RBM(RBMConfig(hidden=16))
    xt = kmnist[1][:300]
    scores = reconstruction_mse(model, xt, seed=3)
    assert scores == reconstruction_mse(model, xt, seed=3)  # seeded: reproducible
    assert scores["chain"] != reconstruction_mse(model, xt, seed=4)["chain"]
    assert reconstruction_mse(model, xt, seed=3, gibbs_steps=5) == scores  # the model's k by default
    one_step = reconstruction_mse(model, xt, seed=3, gibbs_steps=1)
    assert one_step["chain"] != scores["chain"] and one_step["meanfield"] == scores["meanfield"]
    # mean-field, by hand: batches of 128 in order, each standardised with its own mean and std
    x = data.to_unit(xt).flatten(1)
    total = 0.0
    for start in range(0, 300, 128):
        xb = x[start:start + 128]
        m, s = xb.mean(), xb.std()
        v = (xb - m) / s
        recon = (model.b + torch.sigmoid(model.alpha + v @ model.W.t()) @ model.W).detach()
        total += ((recon * s + m).clamp(0, 1) - xb).pow(2).sum().item()
    assert scores["meanfield"] == pytest.approx(total / x.numel(), rel=1e-5)
    shown = reconstruct(model, xt, seed=3)
    assert shown["chain"].shape == (300, 1, 28, 28) and 0 <= shown["chain"].min() <= shown["chain"].max() <= 1
    assert ((shown["chain"] - shown["original"]) ** 2).mean().item() == pytest.approx(scores["chain"], rel=1e-5)


def test_pca_baseline_is_the_best_linear_reconstruction():
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(5, 784, generator=gen)
    train = (torch.randn(400, 5, generator=gen) @ basis * 0.05 + 0.5 + 0.01 * torch.randn(400, 784, generator=gen))
    test = (torch.randn(100, 5, generator=gen) @ basis * 0.05 + 0.5 + 0.01 * torch.randn(100, 784, generator=gen))
    train, test = train.clamp(0, 1), test.clamp(0, 1)
    mean, vectors = pca_fit(train, 5)
    torch.testing.assert_close(vectors.t() @ vectors, torch.eye(5, dtype=torch.float64), atol=1e-6, rtol=0)
    scores = pca_reconstruction_mse(train, test, [1, 5])
    centred = test.double() - mean
    for m in (1, 5):
        v = vectors[:, :m]
        direct = (centred - centred @ v @ v.t()).pow(2).mean().item()
        assert scores[m] == pytest.approx(direct, rel=1e-6)
    # on the train split it is the sum of the discarded covariance eigenvalues, per pixel
    eig = torch.linalg.eigvalsh(torch.cov(train.double().t(), correction=0)).flip(0)
    assert pca_reconstruction_mse(train, train, [5])[5] == pytest.approx(eig[5:].sum().item() / 784, rel=1e-4)
    assert scores[5] < scores[1]
    with pytest.raises(ValueError, match="max_components"):
        pca_fit(train, 0)


def test_export_and_one_call_loader_round_trip(tmp_path):
    model = RBM(RBMConfig(hidden=16, sigma=0.8))
    path = export_pretrained("rbm_test", model, RBMTraining(RBMConfig(hidden=16, sigma=0.8)), {"epoch": 1}, tmp_path)
    loaded = hw5.pretrained("rbm_test", device="cpu", directory=path.parent.parent)
    assert isinstance(loaded, RBM) and loaded.config == model.config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert math.isclose(loaded.sigma[0].item(), 0.8, rel_tol=1e-7)


def test_figures_draw_what_they_are_given():
    import matplotlib.pyplot as plt

    from hw5.plotting import rbm as P

    images = torch.rand(70, 1, 28, 28)
    fig = P.reconstruction_figure({"original": images, "chain": images, "mean-field": images}, n=64)
    assert [ax.get_title() for ax in fig.axes] == ["original", "chain", "mean-field"]
    assert fig.axes[0].images[0].get_array().shape == (8 * 30 - 2, 8 * 30 - 2)  # 64 images, 8 per row
    w = torch.zeros(16, 784)
    w[0, 0], w[1, 5] = 2.0, -3.0
    fig = P.filters_figure(w, ncol=8)
    grid = fig.axes[0].images[0].get_array()
    assert grid[0, 0] == 1.0 and grid[0, 30 + 5] == 0.0 and grid[0, 1] == 0.5  # own symmetric scale per filter
    assert grid.mask[0, 28] and grid.mask[28, 0] and not grid.mask[0, 27]  # a gap (drawn grey) between neighbouring filters
    assert len(fig.axes) == 2 and "own scale" in fig.axes[1].get_ylabel()  # the colour bar says so
    assert "from 0.00 to 3.00" in fig.axes[1].get_ylabel()  # the range of the per-filter scales
    results = {m: {"train_mse": 0.1, "test_mse": 0.1, "train_mse_meanfield": 0.05, "test_mse_meanfield": 0.05}
               for m in (16, 64, 256)}
    fig = P.mse_vs_hidden_figure(results, {16: 0.06, 64: 0.03, 256: 0.005}, {16: 0.05, 64: 0.02, 256: 0.004})
    assert len(fig.axes[0].lines) == 6
    hist = {"loss": [1.0, 0.5], "train_mse": [0.1, 0.09], "eval_mse": [0.1, 0.08], "eval_mse_meanfield": [0.1, 0.07]}
    fig = P.learning_curves_figure({16: hist, 64: {k: v for k, v in hist.items() if not k.startswith("eval")}})
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 4
    fig = P.mse_vs_steps_figure({16: {1: 0.07, 5: 0.075}, 64: {1: 0.05, 5: 0.06}}, {16: 0.07, 64: 0.045})
    assert len(fig.axes[0].lines) == 4  # one curve and one mean-field line per M
    assert list(fig.axes[0].get_xticks()) == [1, 5]  # integer ticks at the measured k
    shown = {"original": images, "chain": images, "meanfield": images}
    fig = P.figure2(shown, "M = 16, test")
    assert [ax.get_title() for ax in fig.axes] == ["original", "CD-5 chain reconstruction", "mean-field reconstruction"]
    width, height = fig.get_size_inches()
    assert width * 100 / 3 / 8 >= 28  # at 100 dpi at least ~28 screen pixels per 30-pixel cell of a panel
    fig = P.reconstructions_by_hidden_figure({16: shown, 64: shown}, "meanfield", "test")
    assert [ax.get_title() for ax in fig.axes] == ["original", "M = 16", "M = 64"]
    plt.close("all")


@pytest.fixture(scope="module")
def two_models() -> dict[int, RBM]:
    """Two untrained RBMs with random filters (seeded): enough to check bookkeeping, not quality."""
    torch.manual_seed(1)
    return {8: RBM(RBMConfig(hidden=8, gibbs_steps=3)), 4: RBM(RBMConfig(hidden=4, gibbs_steps=3))}


def test_mse_table_is_made_of_its_parts(kmnist, two_models):
    x, xt = kmnist[0][:500], kmnist[1][:300]
    table = mse_table(two_models, x, xt, seed=2)
    assert sorted(table.rows) == [4, 8]
    for m, model in two_models.items():
        train, test = reconstruction_mse(model, x, seed=2), reconstruction_mse(model, xt, seed=2)
        assert table.rows[m] == {"train_mse": train["chain"], "test_mse": test["chain"],
                                 "train_mse_meanfield": train["meanfield"], "test_mse_meanfield": test["meanfield"]}
    assert table.pca_test == pca_reconstruction_mse(x, xt, [4, 8])
    assert table.pca_train == pca_reconstruction_mse(x, x, [4, 8])
    assert table.meanfield_over_pca()[8] == pytest.approx(table.rows[8]["test_mse_meanfield"] / table.pca_test[8])
    gap = table.train_test_gaps()[4]
    assert gap["chain"] == pytest.approx(table.rows[4]["test_mse"] - table.rows[4]["train_mse"])
    assert gap["pca"] == pytest.approx(table.pca_test[4] - table.pca_train[4])
    assert gap["meanfield"] == pytest.approx(table.rows[4]["test_mse_meanfield"] - table.rows[4]["train_mse_meanfield"])


def test_gibbs_steps_hidden_statistics_and_timing_helpers(kmnist, two_models):
    model, xt = two_models[8], kmnist[1][:300]
    curve = rbm_metrics.mse_by_gibbs_steps(model, xt, (1, 3), seed=5)
    assert curve[3] == reconstruction_mse(model, xt, seed=5)["chain"]  # k = the model's own k
    assert curve[1] == reconstruction_mse(model, xt, seed=5, gibbs_steps=1)["chain"]
    stats = rbm_metrics.hidden_unit_statistics(model, xt, batch_size=128)
    x = data.to_unit(xt).flatten(1)
    p = torch.cat([model.p_h_given_v(standardize(x[i:i + 128])[0]) for i in range(0, 300, 128)]).detach()
    assert stats["undecided"] == pytest.approx(((p > 0.1) & (p < 0.9)).float().mean().item())
    assert stats["filter_norm"] == pytest.approx(model.W.norm(dim=1).mean().item())
    assert rbm_metrics.chain_seconds(model, xt[:64], collapsed=True, repeats=2) > 0
    hist = {"loss": [1.0, 0.5], "epoch_seconds": [2.0, 3.0], "epoch_cpu_seconds": [1.0, 1.5]}
    assert rbm_metrics.training_times({8: hist})[8] == {"epochs": 2, "train_seconds": 5.0, "train_cpu_seconds": 2.5,
                                                         "eval_seconds": 0}


def test_the_plain_and_collapsed_samplers_give_the_same_mse_up_to_noise(kmnist, two_models):
    model, xt = two_models[8], kmnist[1][:300]
    collapsed = reconstruction_mse(model, xt, seed=0, collapsed=True)
    assert collapsed == reconstruction_mse(model, xt, seed=0)  # the default sampler for k > 1, M < 784
    plain = reconstruction_mse(model, xt, seed=0, collapsed=False)
    assert plain["meanfield"] == collapsed["meanfield"] and plain["chain"] != collapsed["chain"]
    assert plain["chain"] == pytest.approx(collapsed["chain"], rel=0.02)  # different draws, same law


def test_derivation_checks_agree_and_would_catch_a_wrong_formula(monkeypatch):
    checks = rbm_metrics.derivation_checks()
    assert len(checks) == 3 and max(checks.values()) < 1e-9
    monkeypatch.setattr(RBM, "p_h_given_v", lambda self, v: torch.sigmoid(2 * self.hidden_logits(v)))
    monkeypatch.setattr(RBM, "mean_v_given_h", lambda self, h: self.b + h @ self.W)  # sigma_i forgotten
    wrong = list(rbm_metrics.derivation_checks().values())
    assert wrong[0] > 1e-3 and wrong[1] > 1e-3 and wrong[2] < 1e-9  # the free energy does not use them
