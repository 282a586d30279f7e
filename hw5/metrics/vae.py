"""Problem 3's evaluation of a VAE or C-VAE: ELBO and importance-weighted likelihood bounds, the C-VAE's
marginal and Bayes classifier, the KL term's split (ELBO surgery), posterior means, a classifier's verdict on
samples, and the images shown beside them (reconstructions, interpolations).

Likelihood bounds are per image, in nats, on the same Bernoulli likelihood the models are trained with
(pixel values in [0, 1] as targets). For the C-VAE they bound the class-conditional log p(x | c).
Statistics of the codes that any model family can use (k-NN accuracy, silhouette, the logistic read-out,
active units, t-SNE) are in :mod:`hw5.metrics.latent`; the tables and the record in :mod:`hw5.reports.vae`.
Nothing here trains a generative model or writes a file. Every function takes images and labels on any
device and computes on the model's; results meant for sklearn and plots are NumPy arrays on the CPU.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .. import checks
from ..data import to_unit
from ..models.base import randn
from ..models.vae import LOG_2PI, VAE, bernoulli_nll, gaussian_kl, log_normal
from ..utils import eval_mode, model_device
from .common import accuracy
from .latent import class_variance_share, knn_accuracy, logistic_readout_accuracy


@torch.inference_mode()
def elbo_terms(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int = 1, seed: int = 0,
               batch_size: int = 1000) -> torch.Tensor:
    """Mean per-image (neg_elbo, recon, kl) in nats, a float64 tensor of 3 values on the model's device (no
    host synchronisation: the training loop validates with it every epoch).

    recon = -E_q[log p(x | z[, c])] averaged over ``samples`` draws z = mu + sigma * eps per image; kl =
    KL(q(z | x[, c]) || p(z)) in closed form; neg_elbo = recon + kl. The draws come from a CPU generator seeded
    with ``seed`` and move to the model's device (:func:`hw5.models.base.randn`), so every call with the same
    arguments sees the same eps on every device (epochs are compared on the same draw; a GPU reproduces the
    CPU's numbers to float rounding). On a GPU each batch's eps is one small host-to-device copy. ``images`` (uint8 or [0, 1] floats) and ``labels`` may be on any device.
    """
    checks.count("samples", samples, 1)
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    if c_all.shape[0] != x_all.shape[0]:
        raise ValueError(f"{x_all.shape[0]} images but {c_all.shape[0]} labels")
    gen = torch.Generator().manual_seed(seed)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with eval_mode(model):
        for i in range(0, x_all.shape[0], batch_size):
            x, c = x_all[i:i + batch_size], c_all[i:i + batch_size]
            mu, logvar = model.encode(x, c)
            recon = sum(bernoulli_nll(model.decode(model.reparameterize(mu, logvar, gen), c), x).sum()
                        for _ in range(samples)) / samples
            sums += torch.stack([recon, gaussian_kl(mu, logvar).sum()]).double()
    recon, kl = sums / x_all.shape[0]
    return torch.stack([recon + kl, recon, kl])


def negative_elbo(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int = 1, seed: int = 0,
                  batch_size: int = 1000) -> dict[str, float]:
    """:func:`elbo_terms` as Python floats: ``neg_elbo`` = ``recon`` + ``kl`` (nats per image)."""
    return dict(zip(("neg_elbo", "recon", "kl"), elbo_terms(model, images, labels, samples, seed,
                                                            batch_size).tolist()))


@torch.inference_mode()
def importance_log_weights(model: VAE, x: torch.Tensor, c: torch.Tensor | None, samples: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """log w_i = log p(x | z_i[, c]) + log p(z_i) - log q(z_i | x[, c]) for ``samples`` draws z_i ~ q:
    (samples, B), on the device of ``x`` (which must be the model's; [0, 1] floats (B, 1, 28, 28)).

    log p(x | z) = sum_j [x_j l_j - softplus(l_j)], with the x.l term done as one batched product.
    """
    k, b = samples, x.shape[0]
    x = x.reshape(b, -1)  # (B, 1, 28, 28) -> (B, 784)
    mu, logvar = model.encode(x, c)
    eps = torch.randn((k, b, mu.shape[1]), device=x.device, generator=generator)
    z = mu + eps * torch.exp(0.5 * logvar)  # (k, B, M)
    c_rep = None if c is None else c.repeat(k)  # row i * B + j is image j's class, matching z's flattening
    logits = model.decode(z.reshape(k * b, -1), c_rep).view(k, b, -1)  # (k*B, 784) -> (k, B, 784)
    log_px = (logits * x).sum(-1) - F.softplus(logits).sum(-1)  # (k, B)
    return log_px + log_normal(z) - log_normal(z, mu, logvar)


@torch.inference_mode()
def iwae_log_likelihoods(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int, seed: int = 0,
                         rows_per_chunk: int = 16384) -> torch.Tensor:
    """Per-image importance-weighted lower bounds L_k on log p(x[| c]) (Burda et al., 2016), k = ``samples``:

        log p(x) >= L_k = E[log (1/k) sum_i w_i],   w_i = p(x, z_i) / q(z_i | x),  z_i ~ q(z | x),

    computed as logsumexp_i(log w_i) - log k; (N,) on the model's device. L_1 is the ELBO, L_k grows with k
    and tends to log p(x). Images are processed in chunks of about ``rows_per_chunk`` decoder rows
    (k * images), so k = 1000 on 10,000 images fits in memory. Inputs may be on any device.
    """
    checks.count("samples (importance samples per image)", samples, 1)
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    gen = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device: the same bound on every device
    per_chunk = max(1, rows_per_chunk // samples)
    part = min(samples, rows_per_chunk)  # for k > rows_per_chunk, draw one image's samples in parts
    out = []
    with eval_mode(model):
        for i in range(0, x_all.shape[0], per_chunk):
            x, c = x_all[i:i + per_chunk], c_all[i:i + per_chunk]
            logw = torch.cat([importance_log_weights(model, x, c, min(part, samples - j), gen)
                              for j in range(0, samples, part)])
            out.append(torch.logsumexp(logw, dim=0) - math.log(samples))  # (B,)
    return torch.cat(out)


def iwae_bound(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int, seed: int = 0,
               rows_per_chunk: int = 16384) -> float:
    """The mean of -L_k over ``images`` (:func:`iwae_log_likelihoods`), nats per image: an upper bound on
    -log p(x[| c]) under the model's Bernoulli loss that tightens as ``samples`` grows.

    With grey-level pixels as Bernoulli targets this loss is not a normalised likelihood of the images, so
    the number is a bound under that loss, not an NLL comparable with binarised-MNIST figures."""
    return -iwae_log_likelihoods(model, images, labels, samples, seed, rows_per_chunk).mean().item()


def class_log_likelihoods(model: VAE, images: torch.Tensor, samples: int, seed: int = 0,
                          rows_per_chunk: int = 16384) -> torch.Tensor:
    """IWAE estimates of log p(x | c) for every image and every class c of a C-VAE: (N, n_classes) on the
    model's device.

    With a uniform p(c) they give the C-VAE's own marginal  log p(x) = logsumexp_c log p(x | c) - log 10
    (comparable with the VAE's log p(x), unlike log p(x | c)) and its Bayes classifier
    argmax_c p(c | x) = argmax_c log p(x | c) (:func:`marginal_report`).
    """
    if not model.conditional:
        raise ValueError("class-conditional likelihoods need a C-VAE (model.conditional is False)")
    columns = [iwae_log_likelihoods(model, images, torch.full((images.shape[0],), c, dtype=torch.long), samples,
                                    seed=seed + c, rows_per_chunk=rows_per_chunk) for c in range(model.n_classes)]
    return torch.stack(columns, dim=1)  # (N, 10)


def marginal_report(class_ll: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """From :func:`class_log_likelihoods` (N, C): ``marginal_bound`` = -mean_x [logsumexp_c L_k(x | c) -
    log C] (uniform p(c)), an upper bound on -log p(x) under the Bernoulli loss (each L_k(x | c) is a lower
    bound on log p(x | c), and so is the log of their mean on log p(x)), and ``bayes_accuracy`` of
    argmax_c log p(x | c) against ``labels`` (any device)."""
    log_px = torch.logsumexp(class_ll, dim=1) - math.log(class_ll.shape[1])
    return {"marginal_bound": -log_px.mean().item(), "bayes_accuracy": accuracy(class_ll, labels)}


@torch.inference_mode()
def encode_mean(model: VAE, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> np.ndarray:
    """The posterior means mu(x[, c]) of ``images`` (any device), as (N, z_dim) float32 NumPy on the CPU
    (for sklearn and plots)."""
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    with eval_mode(model):
        means = [model.encode(x_all[i:i + batch_size], c_all[i:i + batch_size])[0]
                 for i in range(0, x_all.shape[0], batch_size)]
    return torch.cat(means).cpu().numpy()


# -- one call per notebook result (the numbers; hw5.reports.vae prints and records them) ----------------------
def likelihood_report(model: VAE, val_images: torch.Tensor, val_labels: torch.Tensor, test_images: torch.Tensor,
                      test_labels: torch.Tensor, elbo_samples: int, iwae_samples: int, iwae_images: int,
                      seed: int = 0) -> dict[str, float]:
    """Validation and test negative ELBO (``elbo_samples`` draws of z per image; test split into recon + KL)
    and the IWAE bound with ``iwae_samples`` importance samples on the first ``iwae_images`` test images, all
    nats per image: keys ``val_neg_elbo``, ``test_neg_elbo``, ``test_recon``, ``test_kl``,
    ``test_iwae_bound``, ``iwae_samples``, ``iwae_images``, ``iwae_seconds`` (the IWAE's wall-clock time)."""
    val = negative_elbo(model, val_images, val_labels, samples=elbo_samples, seed=seed)
    test = negative_elbo(model, test_images, test_labels, samples=elbo_samples, seed=seed)
    n = min(iwae_images, test_images.shape[0])
    start = time.perf_counter()
    bound = iwae_bound(model, test_images[:n], test_labels[:n], samples=iwae_samples, seed=seed)
    return {"val_neg_elbo": val["neg_elbo"], "test_neg_elbo": test["neg_elbo"], "test_recon": test["recon"],
            "test_kl": test["kl"], "test_iwae_bound": bound, "iwae_samples": iwae_samples, "iwae_images": n,
            "iwae_seconds": time.perf_counter() - start}


def marginal_likelihood_report(model: VAE, images: torch.Tensor, labels: torch.Tensor, samples: int,
                               seed: int = 0) -> dict[str, float]:
    """The C-VAE's own marginal: :func:`class_log_likelihoods` (``samples`` per image and class) summarised
    by :func:`marginal_report` (``marginal_bound``, ``bayes_accuracy``), with ``marginal_samples``,
    ``marginal_images`` and ``marginal_seconds``."""
    start = time.perf_counter()
    class_ll = class_log_likelihoods(model, images, samples=samples, seed=seed)
    return {**marginal_report(class_ll, labels), "marginal_samples": samples, "marginal_images": images.shape[0],
            "marginal_seconds": time.perf_counter() - start}


@torch.inference_mode()
def aggregate_posterior_kl(model: VAE, images: torch.Tensor, labels: torch.Tensor, seed: int = 0,
                           rows_per_chunk: int = 256) -> dict[str, float]:
    """The KL term split as in Hoffman and Johnson's "ELBO surgery" (2016), with x uniform on the N images:

        mean_n KL(q(z | x_n) || p(z))  =  I_q(x; z)  +  KL(q(z) || p(z)),   q(z) = (1/N) sum_n q(z | x_n),

    the mutual information between an image and its code under q (at most log N) plus the divergence of the
    aggregate posterior q(z) from the prior. I_q is estimated with one draw z_n ~ q(z | x_n) per image,
    I = mean_n [log q(z_n | x_n) - log q(z_n)], log q(z_n) summing over all N components (float64); the
    second term is the difference. For a C-VAE, x stands for the pair (x, c). Returns nats per image: ``kl``,
    ``mutual_information``, ``aggregate_kl`` and ``log_n``.
    """
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    with eval_mode(model):
        mu, logvar = (torch.cat(t).double() for t in zip(*(model.encode(x_all[i:i + 2000], c_all[i:i + 2000])
                                                               for i in range(0, x_all.shape[0], 2000))))
    n = mu.shape[0]
    eps = randn(mu.shape, device=device, generator=torch.Generator().manual_seed(seed)).double()  # CPU draws
    z = mu + eps * torch.exp(0.5 * logvar)  # (N, M), one draw per image
    precision = torch.exp(-logvar)  # (N, M)
    # log N(z_i; mu_m, var_m) = -1/2 [M log 2 pi + sum_d logvar_md + sum_d (z_id - mu_md)^2 / var_md], expanded
    # as z^2 . prec - 2 z . (mu prec) + sum mu^2 prec so that all pairs (i, m) are two matrix products
    const = -0.5 * (mu.shape[1] * LOG_2PI + logvar.sum(1) + (mu.pow(2) * precision).sum(1))  # (N,)
    log_q_aggregate = []
    for i in range(0, n, rows_per_chunk):
        zi = z[i:i + rows_per_chunk]
        log_pairs = const - 0.5 * (zi.pow(2) @ precision.T) + zi @ (mu * precision).T  # (B, N)
        log_q_aggregate.append(torch.logsumexp(log_pairs, dim=1) - math.log(n))
    log_q_own = log_normal(z, mu, logvar)  # (N,)
    kl = gaussian_kl(mu, logvar).mean().item()
    info = (log_q_own - torch.cat(log_q_aggregate)).mean().item()
    return {"kl": kl, "mutual_information": info, "aggregate_kl": kl - info, "log_n": math.log(n)}


def snapshot_statistics(model: VAE, history: dict, train_images: torch.Tensor, train_labels: torch.Tensor,
                        test_images: torch.Tensor, test_labels: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """One row of the "class leaves the latent" table: the run's epochs, best validation negative ELBO and
    the validation KL at that epoch, and the class content of mu on the test images (the logistic read-out
    fit on the training images' mu, 5-NN accuracy, class share of the variance: :mod:`hw5.metrics.latent`)."""
    mu = encode_mean(model, test_images, test_labels)
    y = test_labels.cpu().numpy()  # sklearn's input
    best = history["best_epoch"]
    return {"epochs": len(history["val_neg_elbo"]), "best_val_neg_elbo": history["best_val_loss"],
            "val_kl": history["val_kl"][best - 1],
            "linear_probe_mu": logistic_readout_accuracy(encode_mean(model, train_images, train_labels),
                                                         train_labels.cpu().numpy(), mu, y, seed=seed),
            "knn_acc_mu": knn_accuracy(mu, y), "class_variance_share_mu": class_variance_share(mu, y)}


def conditional_sample_report(model: VAE, classifier: torch.nn.Module, n_per_class: int,
                              seed: int = 0) -> dict[str, object]:
    """A classifier's verdict on ``n_per_class`` prior samples of every class of a C-VAE (drawn with a
    CPU generator seeded ``seed``: the same samples on every device): ``accuracy`` (the fraction judged to be the class asked
    for), ``per_class`` (that fraction per class) and ``confusion`` (class asked for x class seen, NumPy)."""
    from .classifier import predict_logits

    checks.count("n_per_class", n_per_class, 1)
    images, asked = model.class_samples(n_per_class, torch.Generator().manual_seed(seed))
    logits = predict_logits(classifier, images)
    seen = logits.argmax(1).to(asked.device)
    c = model.n_classes
    confusion = torch.bincount(asked * c + seen, minlength=c * c).view(c, c).cpu().numpy()
    return {"accuracy": accuracy(logits, asked), "per_class": (confusion.diagonal() / confusion.sum(1)).tolist(),
            "confusion": confusion}


def prior_class_shares(model: VAE, classifier: torch.nn.Module, n: int, seed: int = 0) -> list[float]:
    """The share of each class among ``n`` unconditional prior samples of a VAE, by the classifier."""
    from .classifier import predict_logits

    checks.count("n", n, 1)
    images = model.sample(n, generator=torch.Generator().manual_seed(seed))  # CPU draws: device-independent
    seen = predict_logits(classifier, images).argmax(1)
    return (torch.bincount(seen, minlength=model.n_classes).double() / n).tolist()


def sweep_winner(sweep: dict[str, list[float]]) -> str:
    """The candidate setting a sweep chooses: the one whose validation curve reaches the lowest value,

        argmin_n min_t curve_n[t]   (the first such candidate in ``sweep``'s order on a tie);

    ``sweep`` maps each candidate's name to its validation negative ELBO per epoch. The notebook trains
    with it, and :func:`hw5.reports.vae.sweep_table` and the record mark it."""
    if not sweep or not all(len(curve) for curve in sweep.values()):
        raise ValueError("a sweep needs at least one candidate, each with at least one validation value")
    return min(sweep, key=lambda n: min(sweep[n]))


# -- images for display: decoded means, on the model's device ------------------------------------------------
@torch.inference_mode()
def reconstructions(model: VAE, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:meth:`VAE.reconstruct` of ``images`` (uint8 or [0, 1] floats) and ``labels``, both on any device, in
    eval mode: E[x | z = mu(x[, c])], (N, 1, 28, 28) in [0, 1] on the model's device."""
    device = model_device(model)
    with eval_mode(model):
        return model.reconstruct(to_unit(images, device), labels.to(device))


def interpolation_rows(models: dict[str, VAE], images: torch.Tensor, labels: torch.Tensor,
                       pairs: list[tuple[int, int]], class_names: list[str], steps: int = 10
                       ) -> dict[str, torch.Tensor]:
    """For every pair (i, j) of indices into ``images`` and every model: the two test images with the
    ``steps`` decoded points of :meth:`VAE.interpolate` between them, (steps + 2, 1, 28, 28) on the CPU
    (for plotting), keyed "<model>: <class i> -> <class j>"."""
    x = to_unit(images)
    rows = {}
    for i, j in pairs:
        for label, model in models.items():
            path = model.interpolate(x[i], x[j], int(labels[i]), int(labels[j]), steps=steps).cpu()
            rows[f"{label}: {class_names[int(labels[i])]} -> {class_names[int(labels[j])]}"] = torch.cat(
                [x[i:i + 1].cpu(), path, x[j:j + 1].cpu()])
    return rows

