"""Every evaluation and report function the notebooks call gives, on each device, the all-CPU result.

Parametrised over the devices present (the CPU always, CUDA when torch sees a GPU). Each test builds a tiny
model, puts the same weights on the CPU and on the device, keeps the images and labels on the CPU (as
``hw5.data.load`` returns them) and compares like with like:

* the evaluation noise comes from CPU generators and is moved to the device (:func:`hw5.models.base.randn`),
  so both legs draw the SAME numbers, and :func:`hw5.utils.eval_mode` runs every evaluation in exact fp32
  (TF32 and autocast off). Sums of fp32 terms are therefore compared at ``rtol=1e-4`` (measured on a CPU:
  perturbing every weight by 1e-6 relative moves the ELBO, IWAE, aggregate KL and FD-classifier by <= 2e-6
  relative, so 1e-4 leaves a 50x margin for a GPU's other summation order);
* a decision taken on a float (an argmax, a Bernoulli draw u < p, a threshold) can flip when the float lands
  within rounding of the boundary: accuracies and class fractions may differ by one decision (``_flips``), and
  the RBM's sampled chain, where a flipped hidden unit changes that image's later steps (and no other image's),
  is compared image by image (all but at most one equal to 1e-4) and by its mean squared error at
  ``rtol=2e-2`` (its mean-field reconstruction, deterministic, at ``1e-4``);
* the results land where the docstrings say (the device, or the CPU for NumPy and display tensors).

On a CPU-only machine these compare the CPU with itself (the CUDA legs are not collected), so they check the
calls and the placement there, and the cross-device numbers only where a GPU runs them. The training entry
points and their resumes on each device: ``tests/test_devices_training.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hw5.metrics import classifier as C
from hw5.metrics import gan as G
from hw5.metrics import latent as L
from hw5.metrics import rbm as R
from hw5.metrics import vae as V
from hw5.metrics.probe import evaluate_probe
from hw5.models.base import randn
from hw5.models.classifier import Classifier, ClassifierConfig
from hw5.models.dcgan import DCGAN
from hw5.models.rbm import RBM, RBMConfig
from hw5.models.vae import CVAE, VAE
from hw5.utils import device_description, get_device, layer_shapes

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = {"rtol": 1e-4, "atol": 1e-5}  # fp32 results of the same draws in exact fp32 (module docstring)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def _images(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=gen))


def _twins(model: torch.nn.Module, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``model`` on the CPU (eval mode) and a copy with the same weights on ``device``."""
    there = type(model)(model.config)
    there.load_state_dict(model.state_dict())
    return model.eval(), there.to(device).eval()


def _on(tensor: torch.Tensor, device: str) -> None:
    assert tensor.device.type == device, (tensor.device, device)


def _close(cpu, there, **tol) -> None:
    """The device's result equals the CPU's: tensors and arrays elementwise, floats relatively, the rest exactly."""
    tol = tol or TOL
    if isinstance(cpu, torch.Tensor):
        torch.testing.assert_close(there.cpu(), cpu, **tol)
    elif isinstance(cpu, np.ndarray):
        np.testing.assert_allclose(there, cpu, **tol)
    elif isinstance(cpu, dict):
        assert cpu.keys() == there.keys()
        for key in cpu:
            _close(cpu[key], there[key], **tol)
    elif isinstance(cpu, (list, tuple)):
        assert len(cpu) == len(there)
        for a, b in zip(cpu, there):
            _close(a, b, **tol)
    elif isinstance(cpu, float):
        assert there == pytest.approx(cpu, rel=tol["rtol"], abs=tol["atol"])
    else:
        assert there == cpu


def _rows_apart(cpu: torch.Tensor, there: torch.Tensor, atol: float = 1e-4) -> int:
    """How many rows (images, chains) of the device's result differ from the CPU's by more than ``atol``."""
    return int(((there.cpu() - cpu).abs().flatten(1).amax(1) > atol).sum())


def _flips(cpu: float, there: float, n: int, flips: int = 1) -> None:
    """A fraction of ``n`` decisions: equal up to ``flips`` decisions taken within rounding of their boundary."""
    assert abs(cpu - there) <= flips / n + 1e-12, (cpu, there, n)


def _judge() -> Classifier:
    """A small random classifier whose softmax is not flat (its last layer scaled up): an informative IS."""
    torch.manual_seed(1)
    judge = Classifier(ClassifierConfig(width=4, feature_dim=16))
    with torch.no_grad():
        judge.head[-1].weight.mul_(10.0)
    return judge


def test_the_default_device_is_the_gpu_when_there_is_one():
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_notebooks_header_names_the_device(device):
    assert device_description(torch.device(device)).startswith(f"{device} (")


# -- Problem 3: the VAE and the C-VAE -------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [VAE, CVAE])
def test_vae_likelihoods(device, cls):
    x, y = _images()
    torch.manual_seed(0)
    cpu, there = _twins(cls(), device)
    _close(V.negative_elbo(cpu, x, y, samples=2), V.negative_elbo(there, x, y, samples=2))
    terms = V.elbo_terms(there, x, y)
    _on(terms, device)
    _close(V.elbo_terms(cpu, x, y), terms)
    bounds = V.iwae_log_likelihoods(there, x, y, samples=4)
    _on(bounds, device)
    _close(V.iwae_log_likelihoods(cpu, x, y, samples=4), bounds)
    report = {k: v for k, v in V.likelihood_report(there, x[:20], y[:20], x[20:], y[20:], elbo_samples=2,
                                                   iwae_samples=3, iwae_images=10).items() if k != "iwae_seconds"}
    _close({k: v for k, v in V.likelihood_report(cpu, x[:20], y[:20], x[20:], y[20:], elbo_samples=2,
                                                 iwae_samples=3, iwae_images=10).items() if k != "iwae_seconds"},
           report)
    surgery = V.aggregate_posterior_kl(there, x, y)
    _close(V.aggregate_posterior_kl(cpu, x, y), surgery)
    # the notebooks' data are on the settings' device (Settings.load): the same numbers as from CPU inputs
    assert V.aggregate_posterior_kl(there, x.to(device), y.to(device)) == surgery
    assert torch.equal(V.elbo_terms(there, x.to(device), y.to(device)), terms)
    mu = V.encode_mean(there, x, y)
    assert isinstance(mu, np.ndarray) and mu.shape == (40, 20)  # NumPy on the CPU, for sklearn
    _close(V.encode_mean(cpu, x, y), mu)


def test_snapshot_and_latent_statistics(device):
    x, y = _images(80)
    torch.manual_seed(0)
    cpu, there = _twins(VAE(), device)
    history = {"val_neg_elbo": [3.0, 2.0, 2.5], "val_kl": [1.0, 1.5, 2.0], "best_epoch": 2, "best_val_loss": 2.0}
    a = V.snapshot_statistics(cpu, history, x[:40], y[:40], x[40:], y[40:])
    b = V.snapshot_statistics(there, history, x[:40], y[:40], x[40:], y[40:])
    assert (b["epochs"], b["best_val_neg_elbo"], b["val_kl"]) == (3, 2.0, 1.5)
    for key in ("linear_probe_mu", "knn_acc_mu"):  # classifications of the 40 test codes
        _flips(a[key], b[key], 40)
    assert b["class_variance_share_mu"] == pytest.approx(a["class_variance_share_mu"], rel=1e-4)
    # the notebook's style statistics take the images and labels wherever they are
    moved = L.style_properties(x.to(device), y.to(device))
    for key, values in L.style_properties(x, y).items():
        np.testing.assert_array_equal(moved[key], values)


def test_vae_images_and_conditional_samples(device):
    x, y = _images(20)
    torch.manual_seed(0)
    vae_cpu, vae = _twins(VAE(), device)
    cvae_cpu, cvae = _twins(CVAE(), device)
    shown = V.reconstructions(cvae, x, y)
    _on(shown, device)
    _close(V.reconstructions(cvae_cpu, x, y), shown)
    rows = V.interpolation_rows({"VAE": vae, "C-VAE": cvae}, x, y, [(0, 1), (2, 3)], [str(c) for c in range(10)],
                                steps=4)
    expected = V.interpolation_rows({"VAE": vae_cpu, "C-VAE": cvae_cpu}, x, y, [(0, 1), (2, 3)],
                                    [str(c) for c in range(10)], steps=4)
    assert all(r.device.type == "cpu" and r.shape == (6, 1, 28, 28) for r in rows.values())
    _close(expected, rows)
    # a CPU generator draws the same z on every device (the notebooks' sample grids)
    for cpu_model, model, c in ((vae_cpu, vae, None), (cvae_cpu, cvae, 3)):
        grid = model.sample(6, c, generator=torch.Generator().manual_seed(4))
        _on(grid, device)
        _close(cpu_model.sample(6, c, generator=torch.Generator().manual_seed(4)), grid)
    images, classes = cvae.class_samples(2, generator=torch.Generator().manual_seed(5))
    _on(images, device), _on(classes, device)
    _close(cvae_cpu.class_samples(2, generator=torch.Generator().manual_seed(5)), (images, classes))
    z = randn((3, 20), device=device, generator=torch.Generator().manual_seed(6))
    _close(cvae_cpu.decode_under_all_classes(z.cpu()), cvae.decode_under_all_classes(z))
    judge_cpu, judge = _twins(_judge(), device)
    verdict = V.conditional_sample_report(cvae, judge, n_per_class=3)
    expected = V.conditional_sample_report(cvae_cpu, judge_cpu, n_per_class=3)
    _flips(expected["accuracy"], verdict["accuracy"], 30)
    assert isinstance(verdict["confusion"], np.ndarray) and verdict["confusion"].sum(1).tolist() == [3] * 10
    assert np.abs(verdict["confusion"] - expected["confusion"]).sum() <= 2  # one flipped verdict moves two cells
    shares = V.prior_class_shares(vae, judge, n=30)
    _close(sum(shares), 1.0)
    for a, b in zip(V.prior_class_shares(vae_cpu, judge_cpu, n=30), shares):
        _flips(a, b, 30)


def test_class_likelihoods_and_the_marginal(device):
    x, y = _images(8)
    torch.manual_seed(0)
    cpu, there = _twins(CVAE(), device)
    ll = V.class_log_likelihoods(there, x, samples=3)
    _on(ll, device)
    _close(V.class_log_likelihoods(cpu, x, samples=3), ll)
    report = V.marginal_likelihood_report(there, x, y, samples=3)  # labels on the CPU, scores on the device
    expected = V.marginal_likelihood_report(cpu, x, y, samples=3)
    assert report["marginal_bound"] == pytest.approx(expected["marginal_bound"], rel=1e-4)
    _flips(expected["bayes_accuracy"], report["bayes_accuracy"], 8)


# -- Problem 2: the RBM ----------------------------------------------------------------------------------------
def test_rbm_evaluation(device):
    x, _ = _images(200)
    torch.manual_seed(0)
    cpu, there = _twins(RBM(RBMConfig(hidden=16, gibbs_steps=3)), device)
    scores, expected = R.reconstruction_mse(there, x), R.reconstruction_mse(cpu, x)
    assert R.reconstruction_mse(there, x.to(device)) == scores  # images on the device: the same numbers
    assert scores["meanfield"] == pytest.approx(expected["meanfield"], rel=1e-4)
    assert scores["chain"] == pytest.approx(expected["chain"], rel=2e-2)  # Bernoulli draws may flip: docstring
    by_steps = R.mse_by_gibbs_steps(there, x, [1, 3])
    assert by_steps[3] == scores["chain"]  # the model's own k is reconstruction_mse's chain, on one device
    for k, value in R.mse_by_gibbs_steps(cpu, x, [1, 3]).items():
        assert by_steps[k] == pytest.approx(value, rel=2e-2)
    table = R.mse_table({16: there}, x.to(device), x)  # both splits the same images, the train split on the device
    assert table.rows[16] == {"train_mse": scores["chain"], "test_mse": scores["chain"],
                              "train_mse_meanfield": scores["meanfield"], "test_mse_meanfield": scores["meanfield"]}
    assert table.pca_train == table.pca_test  # PCA on the CPU in float64, whichever device the train split is on
    shown = R.reconstruct(there, x[:10])
    expected_shown = R.reconstruct(cpu, x[:10])
    assert all(v.device.type == "cpu" and v.shape == (10, 1, 28, 28) for v in shown.values())
    assert torch.equal(shown["original"], expected_shown["original"])
    _close(expected_shown["meanfield"], shown["meanfield"])
    # the chains of different images share no numbers: a flipped hidden unit changes its own image's chain only
    assert _rows_apart(expected_shown["chain"], shown["chain"]) <= 1
    units, expected_units = R.hidden_unit_statistics(there, x), R.hidden_unit_statistics(cpu, x)
    assert units["filter_norm"] == pytest.approx(expected_units["filter_norm"], rel=1e-5)
    _flips(expected_units["undecided"], units["undecided"], 200 * 16, flips=3)  # p near 0.1 or 0.9
    drawn = there.sample(5, steps=4, generator=torch.Generator().manual_seed(2))
    _on(drawn, device)
    assert _rows_apart(cpu.sample(5, steps=4, generator=torch.Generator().manual_seed(2)), drawn) <= 1
    assert R.chain_seconds(there, x[:32], collapsed=True, repeats=2) > 0


# -- Problem 1: the DCGAN, the judge and the probe --------------------------------------------------------------
class _TinySampler(torch.nn.Module):
    """A stand-in for the DCGAN in :func:`hw5.metrics.gan.sample_quality`, which calls only ``sample``: z drawn
    like :meth:`DCGAN.sample` (from the generator's device, then moved), decoded by one linear layer. The
    DCGAN's own ``sample`` is compared in :func:`test_gan_samples_and_neighbours` (1,000 of its samples would
    take this CPU half a minute)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.decode = torch.nn.Linear(8, 784)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = randn((n, 8), device=self.decode.weight.device, generator=generator)
        return torch.sigmoid(3 * self.decode(z)).view(n, 1, 28, 28)


def test_classifier_judge_and_sample_quality(device):
    x, y = _images(120)
    cpu, there = _twins(_judge(), device)
    logits = C.predict_logits(there, x)
    _on(logits, device)
    _close(C.predict_logits(cpu, x), logits, rtol=1e-4, atol=1e-4)
    _flips(C.classifier_accuracy(cpu, x, y), C.classifier_accuracy(there, x, y), 120)
    feats, probs = G.judge(there, x)
    _on(feats, device), _on(probs, device)
    assert all(torch.equal(a, b) for a, b in zip(G.judge(there, x.to(device)), (feats, probs)))
    _close(G.judge(cpu, x), (feats, probs))
    digits, expected = G.readings(there, x[:10]), G.readings(cpu, x[:10])
    assert sum(a[0] != b[0] for a, b in zip(digits, expected)) <= 1
    _close([p for _, p in expected], [p for _, p in digits])
    sampler = _TinySampler()
    quality = G.sample_quality(there, sampler.to(device), x, x[60:], n_samples=1000)
    expected = G.sample_quality(cpu, sampler.cpu(), x, x[60:], n_samples=1000)
    assert quality.keys() == expected.keys()
    for key in ("classifier_is", "classifier_is_std", "fd_classifier", "real_test_is",
                "real_train_vs_test_fd_classifier"):
        assert quality[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-9), key
    for key, n in (("class_fractions", 1000), ("test_class_fractions", 60)):
        for a, b in zip(expected[key], quality[key]):
            _flips(a, b, n)


def test_gan_samples_and_neighbours(device):
    x, _ = _images(50)
    torch.manual_seed(0)
    cpu, gan = _twins(DCGAN(), device)
    gan.generator.train()  # sample draws with the running batch-norm statistics and gives G its mode back
    samples = gan.sample(4, generator=torch.Generator().manual_seed(0))
    _on(samples, device)
    assert gan.generator.training
    _close(cpu.sample(4, generator=torch.Generator().manual_seed(0)), samples)
    judge_cpu, judge = _twins(_judge(), device)
    reference = G.judge(judge, x)[0]
    estimate = G.fd_estimate(judge, gan.generator, reference, n=20)
    expected = G.fd_estimate(judge_cpu, cpu.generator, reference.cpu(), n=20)
    assert estimate == pytest.approx(expected, rel=1e-4, abs=1e-9)
    idx, dist = G.nearest_neighbours(samples, x)  # the reference images on the CPU
    _on(idx, device), _on(dist, device)
    expected_idx, expected_dist = G.nearest_neighbours(samples.cpu(), x)
    assert torch.equal(idx.cpu(), expected_idx)  # float64 distances: no near-ties among random images
    _close(expected_dist, dist)
    features = gan.discriminator.features(torch.zeros(2, 1, 28, 28, device=device))
    _on(features, device)
    shapes = layer_shapes(gan.discriminator, torch.zeros(1, 1, 28, 28))  # input on the CPU
    assert shapes == layer_shapes(cpu.discriminator, torch.zeros(1, 1, 28, 28)) and shapes[-1] == ("final", (1,))


def test_probe_fit_and_shipped_evaluation(device, tiny_extractor, tmp_path, monkeypatch):
    """The notebook's probe call (``fit_or_load_probe``) fits on the settings' device and, in shipped mode,
    loads the probe there and measures its test accuracy again; the fitted probe matches the CPU's (one grid
    point, a strongly convex problem: both L-BFGS runs end at its one minimum to within ~1e-5)."""
    from hw5 import locations
    from hw5.pretrained import fit_or_load_probe
    from hw5.settings import Settings
    from hw5.training.probe import ProbeConfig

    x, y = _images(60)
    test_x, test_y = _images(30, seed=1)
    config = ProbeConfig(penalties=1e-1, copies=1, radii=1, folds=2, max_iter=100)
    fits = {}
    for where in dict.fromkeys(["cpu", device]):
        settings = Settings(out=tmp_path / where, device=where)
        fits[where] = fit_or_load_probe("p", settings, tiny_extractor().to(where), x, y, test_x, test_y, config)
    probe, report = fits[device]
    _on(probe.weight, device)
    expected_probe, expected = fits["cpu"]
    assert (report.point, report.feature_dim, report.n_train_images) == (expected.point, 12, 60)
    for key, n in (("cv_acc", 60), ("train_acc", 60), ("test_acc", 30), ("test_acc_single_view", 30)):
        _flips(getattr(expected, key), getattr(report, key), n, flips=2)
    features = torch.randn(20, 12, generator=torch.Generator().manual_seed(0))
    _close(expected_probe(features), probe(features.to(device)), rtol=1e-3, atol=2e-3)
    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", tmp_path / device / "weights")
    shipped = Settings(out=tmp_path / device, device=device, use_shipped=True)
    again, measured = fit_or_load_probe("p", shipped, tiny_extractor().to(device), x, y, test_x, test_y, config)
    _on(again.weight, device)
    assert torch.equal(again.weight, probe.weight) and measured == report  # measured again: the same numbers
    assert evaluate_probe(again, tiny_extractor().to(device), test_x, test_y, 0, device) == report.test_acc_single_view
