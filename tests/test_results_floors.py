"""The headline numbers of the committed full runs (``figures/problem{1,2,3}/metrics.json``) against absolute
bounds that do not come from the record itself.

``tests/test_results_p{1,2,3}.py`` check that the shipped weights reproduce ``metrics.json``: a worse run that
rewrote both the weights and the record would still pass them. The tests here hold the numbers to a floor: each
bound names its source (the homework text or ``SPEC.md``'s reference figures, a published figure, a baseline
measured in the same record, chance level, or an identity of the maths), so that a regression of the solution,
or a record written by a broken evaluation, fails even when weights and record agree. They only read JSON
files (well under a second).

Where a bound is a judgement rather than a reference, its comment says so and why it is set where it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

FIGURES = Path(__file__).resolve().parents[1] / "figures"
CHANCE = 0.1  # ten classes in MNIST and in Fashion-MNIST, balanced test splits

pytestmark = pytest.mark.skipif(not FIGURES.is_dir(), reason="needs a source checkout (figures/)")


def _record(problem: int) -> dict:
    return json.loads((FIGURES / f"problem{problem}" / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def p1() -> dict:
    return _record(1)


@pytest.fixture(scope="module")
def p2() -> dict:
    return _record(2)


@pytest.fixture(scope="module")
def p3() -> dict:
    return _record(3)


# --- Problem 1: DCGAN on MNIST -----------------------------------------------------------------------------


def test_p1_probe_on_the_discriminator_reaches_the_published_range_and_beats_its_baselines(p1):
    probe = p1["probe"]
    d, untrained, pixels = probe["GAN discriminator"], probe["untrained D"], probe["raw pixels"]
    # SPEC.md, Problem 1.2: public solutions of this homework report about 100% train / 97.9-98.2% test
    assert d["test_acc"] >= 0.979
    assert d["train_acc"] >= 0.99
    # the homework's question is whether GAN training makes D's features better: they must beat the same probe
    # on the same 6,000 images read from the untrained D's features and from the raw pixels
    assert d["test_acc"] > untrained["test_acc"] > CHANCE and d["test_acc"] > pixels["test_acc"]
    # the pixel baseline itself must be a fair one: a linear classifier on MNIST pixels has 12% test error with
    # all 60,000 images (LeCun et al. 1998, the MNIST page's "linear classifier (1-layer NN)"); on a tenth of
    # them, 85% is a floor that a broken baseline (wrong scaling, labels shuffled) would miss
    assert pixels["test_acc"] >= 0.85
    # the homework's protocol: features of 10% of the training set (600 per digit)
    assert d["n_train_images"] == 6000 and d["feature_dim"] == 512 * 4 * 4


def test_p1_extension_probe_is_at_least_as_good_as_the_homeworks_protocol(p1):
    ext, d = p1["extension_probe"], p1["probe"]["GAN discriminator"]
    # its cross-validation grid contains the protocol's point (no copies, no shifts, the same penalties), so the
    # chosen point's CV accuracy can be no lower than the protocol's
    protocol = "copies=0,penalty=0.01,radius=0"
    assert ext["cv_scores"][protocol] == pytest.approx(d["cv_scores"][protocol])
    assert ext["cv_acc"] == max(ext["cv_scores"].values()) >= d["cv_acc"]
    # and on the test split it must not fall below the published range of the protocol either
    assert ext["test_acc"] >= max(0.979, d["test_acc"])


def test_p1_judging_classifier_is_a_good_mnist_classifier(p1):
    # the Inception Score and FD-classifier are only as good as their classifier: small convnets reach
    # 99-99.3% on MNIST's test split (LeCun et al. 1998, the MNIST page's convolutional nets)
    assert p1["classifier_test_acc"] >= 0.99


def test_p1_sample_quality_is_close_to_real_images(p1):
    s = p1["samples"]
    assert s["n_samples"] == 10_000
    # IS is at most the number of classes (10); real test images, judged by the same classifier in the same
    # record, score close to it
    assert 1.0 <= s["classifier_is"] <= 10.0 and 9.5 <= s["real_test_is"] <= 10.0
    # floor: 8 (four fifths of the maximum) and within one point of real images under the same classifier
    assert s["classifier_is"] >= max(8.0, s["real_test_is"] - 1.0)
    # FD-classifier: the distance between the real train and test splits (4.8) is the statistic's floor for
    # 10,000 images. A judgement bound: samples within 4x that floor (an order of magnitude below what a
    # generator missing whole digits scores; no published value exists for this classifier's features)
    real_fd = s["real_train_vs_test_fd_classifier"]
    assert 0.0 <= real_fd < s["fd_classifier"] <= 4 * real_fd
    # no digit dropped or halved: every class between half and one and a half times chance (the real test
    # split's own fractions range from 8.9% to 11.5%)
    fractions = s["class_fractions"]
    assert len(fractions) == 10 and math.isclose(sum(fractions), 1.0, abs_tol=1e-9)
    assert all(0.5 * CHANCE <= f <= 1.5 * CHANCE for f in fractions)


def test_p1_samples_are_not_copies_of_training_images(p1):
    # a generator that memorised its training set puts samples at distance ~0 from their nearest training image;
    # the record's baseline is the same median for real test images, which were never trained on
    assert p1["nearest_train_l2_median"] >= 0.5 * p1["test_to_train_l2_median"] > 0


# --- Problem 2: Gaussian-Bernoulli RBM on KMNIST ----------------------------------------------------------

# SPEC.md, Problem 2: test MSE per pixel in [0, 1] units measured by an independent implementation of the same
# recipe (CD-5, lr 1e-3, batch 128, 25 epochs, seed 42): the CD-5 chain's reconstruction / the mean-field one
REFERENCE_CHAIN = {16: 0.0744, 64: 0.0574, 256: 0.0574}
REFERENCE_MEANFIELD = {16: 0.0727, 64: 0.0453, 256: 0.0215}
REFERENCE_PCA = {16: 0.0604, 64: 0.0277, 256: 0.0054}  # "the optimal linear reconstruction", ibid.
# the recipe is fixed by the homework, so a correct solution lands on the reference: 5% above it is a worse
# run, 5% below it a different recipe or a different MSE scale (the record agrees with it to 0.4%)
BAND = 0.05


@pytest.mark.parametrize("m", [16, 64, 256])
def test_p2_reconstruction_mse_reaches_the_homeworks_reference(p2, m):
    row = p2[f"M{m}"]
    assert row["test_mse"] == pytest.approx(REFERENCE_CHAIN[m], rel=BAND)
    assert row["test_mse_meanfield"] == pytest.approx(REFERENCE_MEANFIELD[m], rel=BAND)
    # ibid.: "train within 0.002 of test" (an RBM of at most 256 units on 60,000 images does not overfit); the
    # reference's 0.002 is rounded: the record's largest gap is 0.0022 (M = 64 and 256, chain), hence 0.0025
    assert abs(row["train_mse"] - row["test_mse"]) <= 0.0025
    assert abs(row["train_mse_meanfield"] - row["test_mse_meanfield"]) <= 0.0025
    # PCA is an exact computation: the record must agree with the reference to its printed 4 decimals
    assert p2["pca"][f"M{m}"] == pytest.approx(REFERENCE_PCA[m], abs=5e-5)


def test_p2_more_hidden_units_reconstruct_visibly_better(p2):
    # the homework: "you should expect visibly better results for M = 256" (than for M = 16); SPEC.md: a
    # statement about the mean-field reconstruction, which must improve with every step of M
    meanfield = [p2[f"M{m}"]["test_mse_meanfield"] for m in (16, 64, 256)]
    assert meanfield[0] > meanfield[1] > meanfield[2]
    # and the PCA baseline, a nested family of subspaces, can only improve with M
    assert p2["pca"]["M16"] > p2["pca"]["M64"] > p2["pca"]["M256"]


def test_p2_the_chain_statistics_include_the_recorded_cd5_chain(p2):
    # the MSE of the 5-step chain is the CD-5 column of the chain-length study, on the same draws
    for m in (16, 64, 256):
        assert p2["chain_steps_test_mse"][f"M{m}"]["5"] == p2[f"M{m}"]["test_mse"]


# --- Problem 3: VAE and C-VAE on Fashion-MNIST -----------------------------------------------------------

# SPEC.md, Problem 3: public solutions report the per-sample negative ELBO (nats) after 25 epochs of the same
# template: VAE val 241.0 / test 242.3, C-VAE val 237.7 / test 239.1. The record's models trained 300 epochs
# with the number of epochs chosen on validation: they may not be worse.
PUBLISHED = {"vae": {"val": 241.0, "test": 242.3}, "cvae": {"val": 237.7, "test": 239.1}}
# below: a judgement lower bound. Those published figures and this project's own snapshots (237.0 after 25
# epochs, 233.4 after 300, both validation) move by a few nats with 12x the training; a number more than ~15
# nats below the published range points at a changed loss (a mean instead of a sum over pixels, binarised
# images, a missing KL term), not at a better model
LOWEST_PLAUSIBLE = 220.0


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_p3_negative_elbo_is_no_worse_than_published_solutions(p3, name):
    r = p3[name]
    assert LOWEST_PLAUSIBLE < r["test_neg_elbo"] <= PUBLISHED[name]["test"]
    assert LOWEST_PLAUSIBLE < r["val_neg_elbo"] <= PUBLISHED[name]["val"]
    # the ELBO's two terms: a negative ELBO is reconstruction plus a KL divergence, which is >= 0
    assert r["test_recon"] + r["test_kl"] == pytest.approx(r["test_neg_elbo"], abs=1e-6) and r["test_kl"] > 0
    # the importance-weighted bound with k samples is at least as tight as the ELBO (Burda et al. 2016, Thm 1).
    # A judgement bound on the gap: Burda et al.'s VAEs gain a few nats from k = 1 to k = 5000; more than 5 nats
    # here (where the record's gap is about 2) means a broken estimate, not a good model
    assert 0 < r["test_neg_elbo"] - r["test_iwae_bound"] <= 5.0
    # the latent has 20 units (the template's z_dim)
    assert 1 <= r["active_units"] <= 20


def test_p3_the_label_helps_and_costs_at_most_log_10(p3):
    vae, cvae = p3["vae"], p3["cvae"]
    # conditioning on the class: on average -log p(x | c) = -log p(x) - I(X; C) <= -log p(x)
    assert cvae["test_neg_elbo"] < vae["test_neg_elbo"] and cvae["test_iwae_bound"] < vae["test_iwae_bound"]
    # the C-VAE's marginal p(x) = (1/10) sum_c p(x | c) >= p(x | y) / 10, so its bound on -log p(x) is at most
    # its bound on -log p(x | y) plus log 10 (its 100 importance samples per class are tighter than an ELBO)
    assert cvae["marginal_bound"] <= cvae["test_neg_elbo"] + math.log(10)


def test_p3_conditional_samples_are_recognised_far_above_chance(p3):
    cvae = p3["cvae"]
    # the judging classifier: small convnets reach 90-93% on Fashion-MNIST's test split (Xiao et al. 2017's
    # benchmark puts even the best non-convolutional classifiers near 89%)
    assert p3["classifier"]["test_acc"] >= 0.89
    # samples asked for class c are recognised as c: chance is 10%. Floor: 70%, seven times chance and within
    # a quarter of the classifier's own accuracy on real images
    assert cvae["conditional_sample_acc"] >= 0.70
    per_class = cvae["conditional_sample_acc_per_class"]
    assert len(per_class) == 10 and sum(per_class) / 10 == pytest.approx(cvae["conditional_sample_acc"], abs=1e-6)
    # every class at least three times chance, shirts included (the class the classifier confuses most on
    # real images, with T-shirts, pullovers and coats)
    assert min(per_class) >= 3 * CHANCE
    # the C-VAE as a Bayes classifier, argmax_c p(x | c): far above chance too
    assert cvae["bayes_accuracy"] >= 0.70


def test_p3_the_vae_latent_holds_the_class_and_the_cvae_latent_does_not(p3):
    vae, cvae = p3["vae"], p3["cvae"]
    # the VAE's 20-d mean: 5-NN on raw Fashion-MNIST pixels scores about 85% (Xiao et al. 2017); a useful
    # 20-d code keeps most of that, and a linear read-out of it is far above chance
    assert vae["knn_acc_mu"] >= 0.75 and vae["linear_probe_mu"] >= 0.70 and vae["knn_acc_2d"] >= 0.70
    # Problem 3.3's hypothesis (SPEC.md): the C-VAE is given the class, so its latent need not encode it
    assert cvae["knn_acc_2d"] < vae["knn_acc_2d"] and cvae["linear_probe_mu"] < vae["linear_probe_mu"]
    assert cvae["class_variance_share_mu"] < vae["class_variance_share_mu"]


# --- the floors can fail: a worse record (weights and metrics.json rewritten together) is caught ----------------


def _worse(problem: int, path: tuple, value) -> dict:
    record = _record(problem)
    node = record
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return record


@pytest.mark.parametrize("problem, path, value, check, extra", [
    (1, ("probe", "GAN discriminator", "test_acc"), 0.975,
     test_p1_probe_on_the_discriminator_reaches_the_published_range_and_beats_its_baselines, {}),
    (1, ("samples", "classifier_is"), 7.9, test_p1_sample_quality_is_close_to_real_images, {}),
    (1, ("samples", "class_fractions", 0), 0.0, test_p1_sample_quality_is_close_to_real_images, {}),
    (1, ("nearest_train_l2_median",), 0.1, test_p1_samples_are_not_copies_of_training_images, {}),
    (2, ("M16", "test_mse"), 0.08, test_p2_reconstruction_mse_reaches_the_homeworks_reference, {"m": 16}),
    (2, ("M256", "test_mse_meanfield"), 0.05, test_p2_more_hidden_units_reconstruct_visibly_better, {}),
    (3, ("vae", "test_neg_elbo"), 245.0, test_p3_negative_elbo_is_no_worse_than_published_solutions,
     {"name": "vae"}),
    (3, ("cvae", "conditional_sample_acc"), 0.6, test_p3_conditional_samples_are_recognised_far_above_chance, {}),
    (3, ("cvae", "marginal_bound"), 240.0, test_p3_the_label_helps_and_costs_at_most_log_10, {}),
    (3, ("cvae", "knn_acc_2d"), 0.85, test_p3_the_vae_latent_holds_the_class_and_the_cvae_latent_does_not, {}),
])
def test_a_worse_record_fails_its_floor(problem, path, value, check, extra):
    with pytest.raises(AssertionError):
        check(_worse(problem, path, value), **extra)
