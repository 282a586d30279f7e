"""Sample-quality metrics for the DCGAN, judged by hw5's own MNIST classifier.

Inception-v3 metrics are meaningless on 28x28 digits (and its weights cannot be downloaded offline), so the
judge is :class:`hw5.models.classifier.Classifier` trained on MNIST:

* classifier Inception Score  IS = exp( E_x KL(p(y | x) || p(y)) ),  p(y) = E_x p(y | x), computed over
  ``splits`` disjoint chunks (mean and standard deviation). It is high when every sample is confidently one
  digit and all digits are equally frequent; its maximum is 10.
* FD-classifier: the Frechet distance between Gaussians fitted to the classifier's penultimate features of
  samples and of real test images,  ||m_1 - m_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}),  computed by
  torchmetrics' ``FrechetInceptionDistance``. Lower is better; 0 for identical feature distributions. Named
  "FD-classifier", not FID: the features are not Inception's.
* class fractions: how often each digit is predicted among the samples (uniform = 0.1 each: no mode dropped).

Each image set goes through the classifier once (:func:`judge`): the real test set's features are computed
one time and reused for every comparison. :func:`fd_estimate` is the DCGAN loop's cheap per-epoch version: a
generator's samples on a fixed noise draw against features of held-out *training* images (never the test set).
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from .. import checks
from ..data import to_unit
from ..models.base import randn
from ..utils import eval_mode, model_device


def inception_score(probs: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over ``splits`` chunks of ``probs`` (N, classes); returns (mean, std)."""
    if probs.ndim != 2 or probs.shape[0] < splits:
        raise ValueError(f"need class probabilities of shape (N >= {splits}, classes), got {tuple(probs.shape)}")
    scores = []
    for chunk in probs.double().chunk(splits):
        marginal = chunk.mean(0, keepdim=True)
        kl = (chunk * (chunk.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
        scores.append(kl.mean().exp())
    scores_t = torch.stack(scores)
    return scores_t.mean().item(), scores_t.std().item() if splits > 1 else 0.0


class _Identity(nn.Module):
    """torchmetrics' FID feature module for features computed beforehand: it passes them through."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """||m_a - m_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}) of Gaussians fitted to two feature sets (N, d),
    computed on ``features_a``'s device (``features_b`` is moved there).

    torchmetrics' ``FrechetInceptionDistance`` does the statistics (in float64) and the matrix square root;
    the features are computed once by :func:`judge` and handed to it through an identity feature module.
    """
    metric = FrechetInceptionDistance(feature=_Identity(features_a.shape[1]), reset_real_features=True)
    metric = metric.to(features_a.device)
    metric.update(features_b.to(features_a.device), real=True)
    metric.update(features_a, real=False)
    return float(metric.compute())


@torch.inference_mode()
def judge(classifier: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of the classifier (in eval mode) over ``images`` (uint8 or [0, 1] floats, any device):
    penultimate features (N, d) and class probabilities softmax(logits) (N, classes), on the classifier's
    device."""
    images = to_unit(images, model_device(classifier))
    feats, probs = [], []
    with eval_mode(classifier):
        for i in range(0, images.shape[0], batch_size):
            f = classifier.features(images[i:i + batch_size])
            feats.append(f.float())
            probs.append(classifier.head(f).float().softmax(1))
    return torch.cat(feats), torch.cat(probs)


def class_fractions(probs: torch.Tensor) -> list[float]:
    """Fraction of samples whose most probable class is c, for every class c."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double()
    return (counts / counts.sum()).tolist()


def sample_report(classifier: nn.Module, samples: torch.Tensor, real_features: torch.Tensor, splits: int = 10
                  ) -> dict[str, float | list[float]]:
    """IS (mean, std), FD-classifier against ``real_features`` (from :func:`judge`) and class fractions, as
    Python numbers; ``samples`` in [0, 1] on any device."""
    features, probs = judge(classifier, samples)
    is_mean, is_std = inception_score(probs, splits)
    return {"classifier_is": is_mean, "classifier_is_std": is_std,
            "fd_classifier": frechet_distance(features, real_features), "class_fractions": class_fractions(probs)}


@torch.inference_mode()
def fd_estimate(classifier: nn.Module, generator: nn.Module, reference_features: torch.Tensor, n: int = 1000,
                seed: int = 0, batch_size: int = 500) -> float:
    """FD-classifier of ``n`` samples of ``generator`` (a :class:`hw5.models.dcgan.Generator`) against
    ``reference_features`` (:func:`judge`'s features of real images), as a Python float.

    The noise z (n, latent_dim) is drawn at once from a CPU torch.Generator seeded with ``seed`` and moved to
    the generator's device: the same z on every call and every device, so that successive epochs, or a raw and
    an averaged generator, are compared on one draw and differ only by their weights. G runs in eval mode
    (running batch-norm statistics, as :meth:`hw5.models.dcgan.DCGAN.sample` draws), in chunks of
    ``batch_size``, and its mode is restored. A training loop's cheap per-epoch estimate: with reference features of training images it
    never looks at the test set.
    """
    checks.count("n", n, 2, why=" (a covariance needs two samples)")
    device = model_device(generator)
    z = randn((n, generator.latent_dim), device=device, generator=torch.Generator().manual_seed(seed))
    with eval_mode(generator):
        images = torch.cat([generator(chunk).float() for chunk in z.split(batch_size)])
    return frechet_distance(judge(classifier, images.add_(1.0).div_(2.0).clamp_(0.0, 1.0))[0], reference_features)


@torch.inference_mode()
def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 10000
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query image, the index of and L2 distance to its nearest reference image.

    Both are compared in [0, 1] pixel units (uint8 or [0, 1] floats, any devices), on ``queries``' device,
    where the results are. Squared distances are
    expanded as ||q||^2 + ||r||^2 - 2 q.r in float64 (one matmul per chunk of the reference set), exact to
    ~1e-12 relative. A sample whose nearest training image is much closer than typical test-to-train
    distances would suggest memorisation.
    """
    q = to_unit(queries, name="queries").flatten(1).double()
    q_sq = q.pow(2).sum(1, keepdim=True)
    best_d = torch.full((q.shape[0],), float("inf"), dtype=torch.float64, device=q.device)
    best_i = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for start in range(0, reference.shape[0], chunk):
        ref = to_unit(reference[start:start + chunk], q.device, name="reference").flatten(1).double()
        d2 = (q_sq + ref.pow(2).sum(1) - 2 * q @ ref.T).clamp_min(0)
        d, i = d2.min(1)
        better = d < best_d
        best_d = torch.where(better, d, best_d)
        best_i = torch.where(better, i + start, best_i)
    return best_i, best_d.sqrt().float()


def sample_quality(classifier: nn.Module, gan: nn.Module, train_images: torch.Tensor, test_images: torch.Tensor,
                   n_samples: int, seed: int = 0) -> dict[str, float | list[float]]:
    """Problem 1's sample metrics with their real-data scale, as Python numbers.

    ``n_samples`` samples G(z) in chunks of 1,000, chunk i drawn from a CPU generator seeded with
    ``seed + 1 + i`` (the same samples on every device); their :func:`sample_report` against the test set's classifier features; and the same
    numbers for real images: the IS of the test set (``real_test_is``), the FD-classifier between the last
    ``n_samples`` training images and the test set (``real_train_vs_test_fd_classifier``) and the test set's
    class fractions. Images (uint8 or [0, 1]) may be on any device.
    """
    checks.count("n_samples", n_samples, 1)
    if n_samples < 1000 or n_samples % 1000:
        raise ValueError(f"n_samples must be a positive multiple of 1000, got {n_samples}")
    test_features, test_probs = judge(classifier, test_images)
    fakes = torch.cat([gan.sample(1000, generator=torch.Generator().manual_seed(seed + 1 + i))
                       for i in range(n_samples // 1000)])
    return {**sample_report(classifier, fakes, test_features), "n_samples": n_samples,
            "real_test_is": inception_score(test_probs)[0],
            "real_train_vs_test_fd_classifier": frechet_distance(judge(classifier, train_images[-n_samples:])[0],
                                                                 test_features),
            "test_class_fractions": class_fractions(test_probs)}


def readings(classifier: nn.Module, images: torch.Tensor) -> list[tuple[int, float]]:
    """The classifier's most probable digit for each image and its probability, as Python numbers."""
    _, probs = judge(classifier, images)
    best, digit = probs.max(1)
    return list(zip(digit.tolist(), best.tolist()))


def curve_means(history: dict, epochs: tuple[int, int]) -> dict[str, float]:
    """Means of the per-step ``d_loss``, ``g_loss``, ``d_real``, ``d_fake`` over epochs ``epochs[0]`` to
    ``epochs[1]`` (1-based, inclusive) of a DCGAN history."""
    first, last = epochs
    steps = history["steps_per_epoch"]
    if not 1 <= first <= last or last * steps > len(history["d_loss"]):
        raise ValueError(f"epochs {epochs} are not within the {len(history['d_loss']) // steps} recorded")
    window = slice((first - 1) * steps, last * steps)
    return {k: sum(history[k][window]) / (window.stop - window.start) for k in ("d_loss", "g_loss", "d_real", "d_fake")}


def fooling_means(history: dict, window: int) -> dict[str, float]:
    """How much a DCGAN run fooled D early and late: the means of the per-step D(G(z)) over its first
    ``window`` steps (``d_fake_first``) and its last ``window`` steps (``d_fake_last``), and of L_D over its
    last ``window`` steps (``d_loss_last``); a history shorter than ``window`` is averaged whole."""
    checks.count("window", window, 1)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    return {"d_fake_first": mean(history["d_fake"][:window]), "d_fake_last": mean(history["d_fake"][-window:]),
            "d_loss_last": mean(history["d_loss"][-window:])}
