"""Sample-quality metrics for the DCGAN, judged by hw5's own MNIST classifier.

Inception-v3 metrics are meaningless on 28x28 digits (and its weights cannot be downloaded offline), so the
judge is :class:`hw5.models.classifier.Classifier` trained on MNIST:

* classifier Inception Score  IS = exp( E_x KL(p(y | x) || p(y)) ),  p(y) = E_x p(y | x), computed over
  ``splits`` disjoint chunks (mean and standard deviation). It is high when every sample is confidently one
  digit and all digits are equally frequent; its maximum is 10.
* FD-classifier: the Frechet distance between Gaussians fitted to the classifier's penultimate features of
  samples and of real test images,  ||m_1 - m_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}),  computed by
  torchmetrics' ``FrechetInceptionDistance`` with the classifier as its feature module. Lower is better;
  0 for identical feature distributions. Named "FD-classifier", not FID: the features are not Inception's.
* class fractions: how often each digit is predicted among the samples (uniform = 0.1 each: no mode dropped).
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from ..data import to_unit


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


class ClassifierFeatures(nn.Module):
    """torchmetrics feature module: images in [0, 1] (N, 1, 28, 28) -> penultimate features (N, d)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = int(classifier.hparams["feature_dim"])

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float())


def _as_unit(images: torch.Tensor) -> torch.Tensor:
    return to_unit(images) if images.dtype == torch.uint8 else images


def fd_classifier(classifier: nn.Module, samples: torch.Tensor, real: torch.Tensor, batch_size: int = 1000
                  ) -> float:
    """Frechet distance between classifier features of ``samples`` and ``real`` (both images in [0, 1]
    (N, 1, 28, 28), or uint8 (N, 28, 28))."""
    metric = FrechetInceptionDistance(feature=ClassifierFeatures(classifier), reset_real_features=True,
                                      input_img_size=(1, 28, 28)).to(samples.device)
    for images, is_real in ((real, True), (samples, False)):
        images = _as_unit(images)
        for i in range(0, images.shape[0], batch_size):
            metric.update(images[i:i + batch_size], real=is_real)
    return float(metric.compute())


@torch.inference_mode()
def class_probabilities(classifier: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """softmax of the classifier's logits, (N, classes), for images in [0, 1] or uint8."""
    classifier.eval()
    images = _as_unit(images)
    return torch.cat([classifier(images[i:i + batch_size]).softmax(1) for i in range(0, images.shape[0], batch_size)])


def class_fractions(probs: torch.Tensor) -> list[float]:
    """Fraction of samples whose most probable class is c, for every class c."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double()
    return (counts / counts.sum()).tolist()


def sample_report(classifier: nn.Module, samples: torch.Tensor, real: torch.Tensor, splits: int = 10
                  ) -> dict[str, float | list[float]]:
    """IS (mean, std), FD-classifier and class fractions of ``samples`` against ``real`` images."""
    probs = class_probabilities(classifier, samples)
    is_mean, is_std = inception_score(probs, splits)
    return {"classifier_is": is_mean, "classifier_is_std": is_std,
            "fd_classifier": fd_classifier(classifier, samples, real), "class_fractions": class_fractions(probs)}


@torch.inference_mode()
def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 10000
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query image, the index of and L2 distance to its nearest reference image.

    Both are compared in [0, 1] pixel units; ``reference`` may be uint8 (N, 28, 28). Distances are exact
    (``torch.cdist`` in chunks of the reference set). A sample whose nearest training image is much closer
    than typical test-to-train distances would suggest memorisation.
    """
    q = _as_unit(queries).flatten(1).float()
    best_d = torch.full((q.shape[0],), float("inf"), device=q.device)
    best_i = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    for start in range(0, reference.shape[0], chunk):
        ref = _as_unit(reference[start:start + chunk]).flatten(1).float()
        d, i = torch.cdist(q, ref, compute_mode="donot_use_mm_for_euclid_dist").min(1)
        better = d < best_d
        best_d = torch.where(better, d, best_d)
        best_i = torch.where(better, i + start, best_i)
    return best_i, best_d
