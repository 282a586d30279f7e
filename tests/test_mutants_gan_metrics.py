"""Problem 1's sample metrics assembled from their parts, and the top-1 readings (fast: these are the tests
``scripts/mutation.sh`` runs against the mutants of ``hw5/metrics/gan.py`` and ``hw5/metrics/common.py`` that
the suite reaches only through slow tests)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from hw5.metrics.common import correct
from hw5.metrics.gan import class_fractions, frechet_distance, inception_score, judge, readings, sample_quality
from hw5.models.classifier import Classifier, ClassifierConfig


class NoiseGAN(nn.Module):
    """A 'GAN' whose samples are uniform noise images drawn from the generator it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=generator)


def small_classifier() -> Classifier:
    torch.manual_seed(0)
    return Classifier(ClassifierConfig(width=4, feature_dim=8)).eval()


def test_sample_quality_is_the_sample_report_of_seeded_chunks_beside_the_real_data_scale():
    clf = small_classifier()
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (1100, 28, 28), dtype=torch.uint8, generator=gen)
    test = torch.rand(40, 1, 28, 28, generator=gen)
    got = sample_quality(clf, NoiseGAN(), train, test, n_samples=2000, seed=3)
    # chunk i of 1,000 samples is drawn from a generator seeded seed + 1 + i
    fakes = torch.cat([torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(3 + 1 + i))
                       for i in range(2)])
    fake_features, fake_probs = judge(clf, fakes)
    test_features, test_probs = judge(clf, test)
    is_mean, is_std = inception_score(fake_probs, 10)
    assert got["classifier_is"] == pytest.approx(is_mean, rel=1e-6)
    assert got["classifier_is_std"] == pytest.approx(is_std, rel=1e-6)
    assert got["fd_classifier"] == pytest.approx(frechet_distance(fake_features, test_features), rel=1e-5)
    assert got["class_fractions"] == pytest.approx(class_fractions(fake_probs))
    assert got["n_samples"] == 2000
    assert got["real_test_is"] == pytest.approx(inception_score(test_probs)[0], rel=1e-6)
    # the real scale uses the last n_samples training images (1,000 of the 1,100), not the first
    last = judge(clf, train[-1000:])[0]
    with pytest.raises(ValueError):
        sample_quality(clf, NoiseGAN(), train, test, n_samples=1000 + 500)
    one = sample_quality(clf, NoiseGAN(), train, test, n_samples=1000, seed=3)
    assert one["real_train_vs_test_fd_classifier"] == pytest.approx(frechet_distance(last, test_features), rel=1e-5)
    assert one["real_train_vs_test_fd_classifier"] != pytest.approx(
        frechet_distance(judge(clf, train[:1000])[0], test_features), rel=1e-3)
    assert got["test_class_fractions"] == pytest.approx(class_fractions(test_probs))
    for bad in (0, 999):
        with pytest.raises(ValueError):
            sample_quality(clf, NoiseGAN(), train, test, n_samples=bad)


def test_readings_are_the_most_probable_digit_and_its_softmax_probability():
    clf = small_classifier()
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probs = clf(x).softmax(1)
    got = readings(clf, x)
    assert [digit for digit, _ in got] == probs.argmax(1).tolist()
    assert [p for _, p in got] == pytest.approx(probs.max(1).values.tolist(), rel=1e-5)
    assert all(isinstance(d, int) and isinstance(p, float) for d, p in got)


def test_correct_counts_the_items_whose_top_class_is_their_label():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert correct(scores, torch.tensor([1, 0, 0, 1])) == 2
    assert correct(scores, torch.tensor([1, 0, 1, 0])) == 4
    assert correct(torch.tensor([2, 1, 0]), torch.tensor([2, 2, 2])) == 1
    assert isinstance(correct(scores, torch.tensor([0, 0, 0, 0])), int)


class Drawn(Exception):
    """Raised by :class:`SeedRecordingGAN` after its first draw: the samples are not needed."""


class SeedRecordingGAN(NoiseGAN):
    """A 'GAN' that records the seed of the generator it is asked to draw from, then stops the caller."""

    def __init__(self) -> None:
        super().__init__()
        self.seeds: list[int] = []

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        self.seeds.append(generator.initial_seed())
        raise Drawn


def test_sample_quality_draws_its_first_chunk_from_seed_1_by_default():
    real = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    gan = SeedRecordingGAN()
    with pytest.raises(Drawn):
        sample_quality(small_classifier(), gan, real, real, n_samples=1000)
    assert gan.seeds == [0 + 1 + 0]  # seed + 1 + chunk index, seed 0 by default


@pytest.mark.parametrize("n_samples, message", [
    (0, "n_samples must be an integer >= 1, got 0"),
    (-1000, "n_samples must be an integer >= 1, got -1000"),
    (True, "n_samples must be an integer >= 1, got True"),
    (1000.0, "n_samples must be an integer >= 1, got 1000.0"),
    (1, "n_samples must be a positive multiple of 1000, got 1"),
])
def test_sample_quality_names_a_bad_number_of_samples_before_any_work(n_samples, message):
    gan = SeedRecordingGAN()
    with pytest.raises(ValueError) as error:
        sample_quality(small_classifier(), gan, torch.zeros(0), torch.zeros(0), n_samples=n_samples)
    assert str(error.value) == message
    assert gan.seeds == []
