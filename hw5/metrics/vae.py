"""Problem 3's evaluation of a VAE or C-VAE: ELBO and importance-weighted likelihood bounds, the C-VAE's
marginal and Bayes classifier, the KL term's split (ELBO surgery), posterior means, a classifier's verdict on
samples, and the images shown beside them (reconstructions, interpolations).

Likelihood bounds are per image, in nats, on the same Bernoulli likelihood the models are trained with
(pixel values in [0, 1] as targets). For the C-VAE they bound the class-conditional log p(x | c).
Statistics of the codes that any model family can use (k-NN accuracy, silhouette, the logistic read-out,
active units, t-SNE) are in :mod:`hw5.metrics.latent`.
Nothing here trains a generative model or writes a file. Every function takes images and labels on any
device and computes on the model's; results meant for sklearn and plots are NumPy arrays on the CPU.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..data import to_unit
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
    KL(q(z | x[, c]) || p(z)) in closed form; neg_elbo = recon + kl. The draws come from a generator on the
    model's device seeded with ``seed``, so every call with the same arguments sees the same eps (epochs are
    compared on the same draw). ``images`` (uint8 or [0, 1] floats) and ``labels`` may be on any device.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    if c_all.shape[0] != x_all.shape[0]:
        raise ValueError(f"{x_all.shape[0]} images but {c_all.shape[0]} labels")
    gen = torch.Generator(device=device).manual_seed(seed)
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
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples (importance samples per image) must be a positive integer, got {samples!r}")
    device = model_device(model)
    x_all, c_all = to_unit(images, device), labels.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
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


# -- reports: the numbers a notebook prints and writes, one call each ------------------------------------------
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
    gen = torch.Generator(device=device).manual_seed(seed)
    eps = torch.randn(mu.shape, device=device, generator=gen, dtype=torch.float32).double()
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
    generator seeded ``seed`` on the model's device): ``accuracy`` (the fraction judged to be the class asked
    for), ``per_class`` (that fraction per class) and ``confusion`` (class asked for x class seen, NumPy)."""
    from .classifier import predict_logits

    images, asked = model.class_samples(n_per_class, torch.Generator(model_device(model)).manual_seed(seed))
    logits = predict_logits(classifier, images)
    seen = logits.argmax(1).to(asked.device)
    c = model.n_classes
    confusion = torch.bincount(asked * c + seen, minlength=c * c).view(c, c).cpu().numpy()
    return {"accuracy": accuracy(logits, asked), "per_class": (confusion.diagonal() / confusion.sum(1)).tolist(),
            "confusion": confusion}


def prior_class_shares(model: VAE, classifier: torch.nn.Module, n: int, seed: int = 0) -> list[float]:
    """The share of each class among ``n`` unconditional prior samples of a VAE, by the classifier."""
    from .classifier import predict_logits

    images = model.sample(n, generator=torch.Generator(model_device(model)).manual_seed(seed))
    seen = predict_logits(classifier, images).argmax(1)
    return (torch.bincount(seen, minlength=model.n_classes).double() / n).tolist()


def model_record(config: object, history: dict, likelihood: dict, manifold: dict, style: dict,
                 surgery: dict) -> dict[str, object]:
    """One model's section of ``metrics.json``: its setting and training length, the likelihood report, the
    manifold statistics, the style R^2 and the split of its KL term."""
    return {**likelihood, "epochs": len(history["val_neg_elbo"]), "best_epoch": history["best_epoch"],
            "activation": config.model.activation, "kl_warmup_epochs": config.kl_warmup_epochs,
            "ema_decay": config.ema_decay, **manifold, "style_r2_mu": style,
            "mutual_information": surgery["mutual_information"], "aggregate_kl": surgery["aggregate_kl"]}


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


# -- the printed tables: one string per report, the numbers rounded to what reproduces across machines ------
LABELS = {"vae": "VAE", "cvae": "C-VAE"}


def _label(key: str) -> str:
    return LABELS.get(key, key)


def sweep_table(sweep: dict[str, list[float]], epochs: int) -> str:
    """The validation curves of the candidate settings, best first, the chosen (lowest) one marked."""
    chosen = min(sweep, key=lambda n: min(sweep[n]))
    lines = [f"validation negative ELBO of the VAE (nats / image) after {epochs} epochs:"]
    for name, curve in sorted(sweep.items(), key=lambda item: min(item[1])):
        lines.append(f"  {name:9s} last {curve[-1]:7.2f}   best {min(curve):7.2f}"
                     + ("   <- chosen" if name == chosen else ""))
    return "\n".join(lines)


def elbo_table(reports: dict[str, dict[str, float]], samples: int) -> str:
    """Validation and test negative ELBO of each model (:func:`likelihood_report`), 2 decimals."""
    lines = [f"negative ELBO, nats per image ({samples} draws of z per image):"]
    lines += [f"  {_label(k):5s} validation {r['val_neg_elbo']:.2f}   test {r['test_neg_elbo']:.2f} = reconstruction "
              f"{r['test_recon']:.2f} + KL {r['test_kl']:.2f}" for k, r in reports.items()]
    return "\n".join(lines)


def iwae_table(reports: dict[str, dict[str, float]]) -> str:
    """The IWAE bound of each model and how far below its test negative ELBO it lies, 2 decimals."""
    first = next(iter(reports.values()))
    lines = [f"-L_k, k = {first['iwae_samples']} importance samples, first {first['iwae_images']} test images "
             "(nats per image):"]
    lines += [f"  {_label(k):5s} {r['test_iwae_bound']:.2f}, {r['test_neg_elbo'] - r['test_iwae_bound']:.2f} below "
              "the negative ELBO" for k, r in reports.items()]
    return "\n".join(lines)


def marginal_table(marginal: dict[str, float], vae_bound: float) -> str:
    """The C-VAE's marginal bound beside the VAE's IWAE bound, and its Bayes classifier (integer percent)."""
    return (f"C-VAE: -log p(x) <= {marginal['marginal_bound']:.2f} nats (k = {marginal['marginal_samples']} per "
            f"class, {marginal['marginal_images']} test images); VAE: <= {vae_bound:.2f}\n"
            f"its Bayes classifier argmax_c p(x | c): {marginal['bayes_accuracy']:.0%} test accuracy")


def map_table(stats: dict[str, dict[str, float]]) -> str:
    """The t-SNE maps' class statistics (they move by up to half a point between machines)."""
    lines = ["on the 2-D maps:"]
    lines += [f"  {_label(k):5s} 5-NN class accuracy {s['knn_acc_2d']:.1%}, silhouette {s['silhouette_2d']:.3f}"
              for k, s in stats.items()]
    return "\n".join(lines)


def manifold_table(stats: dict[str, dict[str, float]], n_images: int) -> str:
    """The class information in mu (:func:`manifold_statistics`), at a precision that reproduces."""
    lines = [f"class information in mu ({n_images} test images; chance accuracy 10%):"]
    lines += [f"  {_label(k):5s} linear probe {s['linear_probe_mu']:.0%}, 5-NN {s['knn_acc_mu']:.0%}, silhouette "
              f"{s['silhouette_mu']:.2f}, class share of Var(mu) {s['class_variance_share_mu']:.1%}, "
              f"active units {s['active_units']}/20" for k, s in stats.items()]
    return "\n".join(lines)


def surgery_table(surgery: dict[str, dict[str, float]], n_images: int) -> str:
    """:func:`aggregate_posterior_kl` of each model: mean KL = I(x; z) + KL(q(z) || p(z))."""
    log_n = next(iter(surgery.values()))["log_n"]
    lines = [f"mean KL of the {n_images} test images = I(x; z) + KL(q(z) || p(z)), nats; I is at most "
             f"log N = {log_n:.2f}"]
    lines += [f"  {_label(k):5s} {r['kl']:.2f} = {r['mutual_information']:.2f} + {r['aggregate_kl']:.2f}"
              for k, r in surgery.items()]
    return "\n".join(lines)


def verdict_table(verdict: dict, vae_shares: list[float], class_names: list[str], test_accuracy: float) -> str:
    """The classifier's verdict on the C-VAE's conditional samples and the VAE's prior samples."""
    n = int(verdict["confusion"].sum())
    return "\n".join([
        f"classifier's test accuracy: {test_accuracy:.1%}",
        f"C-VAE samples recognised as the class asked for: {verdict['accuracy']:.0%} of {n}",
        "per class: " + ", ".join(f"{c} {a:.0%}" for c, a in zip(class_names, verdict["per_class"])),
        "VAE prior samples, class shares: " + ", ".join(f"{c} {s:.0%}" for c, s in zip(class_names, vae_shares))])


def snapshot_table(rows: list[dict[str, float]]) -> str:
    """:func:`snapshot_statistics` rows as a table."""
    lines = [f"{'epochs':>6s} {'val -ELBO':>10s} {'val KL':>7s} {'linear probe mu':>16s} {'5-NN mu':>8s} "
             f"{'class share of Var(mu)':>23s}"]
    lines += [f"{r['epochs']:6d} {r['best_val_neg_elbo']:10.2f} {r['val_kl']:7.2f} {r['linear_probe_mu']:16.1%} "
              f"{r['knn_acc_mu']:8.1%} {r['class_variance_share_mu']:23.1%}" for r in rows]
    return "\n".join(lines)


def style_table(r2: dict[str, dict[str, float]]) -> str:
    """:func:`style_r2` of each model, one line per property."""
    props = next(iter(r2.values()))
    lines = ["R^2 of a linear map mu -> property (2-fold cross-validated, test images):"]
    lines += [f"  {p:24s} " + "   ".join(f"{_label(k)} {r[p]:.2f}" for k, r in r2.items()) for p in props]
    return "\n".join(lines)


def problem3_metrics(configs: dict, histories: dict, likelihood: dict, manifold: dict, style: dict, surgery: dict,
                     marginal: dict, verdict: dict, sweep: dict[str, list[float]],
                     variants: dict[str, dict[str, list[float]]], snapshots: list[dict], **sections: object
                     ) -> dict[str, object]:
    """``metrics.json`` of Problem 3: one :func:`model_record` per model, the C-VAE's marginal and
    conditional-sample accuracy added to its record; the sweep's and the variants' best validation losses,
    the snapshot rows, and any further ``sections`` as they are."""
    out = {k: model_record(configs[k], histories[k], likelihood[k], manifold[k], style[k], surgery[k])
           for k in configs}
    out["cvae"].update({**marginal, "conditional_sample_acc": verdict["accuracy"],
                        "conditional_sample_acc_per_class": verdict["per_class"]})
    out["sweep"] = {"epochs": min(len(c) for c in sweep.values()), "best_val": {n: min(c) for n, c in sweep.items()},
                    "chosen": min(sweep, key=lambda n: min(sweep[n]))}
    out["variants_best_val"] = {k: {v: min(c) for v, c in curves.items()} for k, curves in variants.items()}
    out["snapshots"] = snapshots
    out["train_seconds"] = {k: sum(h["epoch_seconds"]) for k, h in histories.items()}
    return {**out, **sections}


def training_summary(configs: dict, histories: dict, variants: dict[str, dict[str, list[float]]]) -> str:
    """One line per model: the kept variant, epochs, best validation loss and epoch, training minutes, and
    the best validation loss of each variant."""
    lines = []
    for k, h in histories.items():
        lines.append(f"{_label(k):5s} kept the {'averaged' if configs[k].ema_decay else 'plain'} iterates: "
                     f"{len(h['val_neg_elbo'])} epochs, best validation {h['best_val_loss']:.2f} nats at epoch "
                     f"{h['best_epoch']}, {sum(h['epoch_seconds']) / 60:.0f} min of training; best validation of "
                     "each variant: " + ", ".join(f"{v} {min(c):.2f}" for v, c in variants[k].items()))
    return "\n".join(lines)
