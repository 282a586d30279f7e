"""Problem 3's presentation: the printed tables and the ``metrics.json`` record, from the numbers that
:mod:`hw5.metrics.vae` and :mod:`hw5.metrics.latent` compute.

Each table is one string, the numbers rounded to what reproduces across machines (2 decimals for nats,
whole percent or one decimal for accuracies). Nothing here trains, evaluates a model or writes a file
(:func:`hw5.output.write_metrics` writes the record).
"""

from __future__ import annotations

from ..metrics.vae import sweep_winner

LABELS = {"vae": "VAE", "cvae": "C-VAE"}  # display names of the models, the notebook's included


def _label(key: str) -> str:
    return LABELS.get(key, key)


# -- the printed tables ----------------------------------------------------------------------------------------
def sweep_table(sweep: dict[str, list[float]], epochs: int) -> str:
    """The validation curves of the candidate settings, best first, the chosen one (:func:`sweep_winner`)
    marked."""
    chosen = sweep_winner(sweep)
    lines = [f"validation negative ELBO of the VAE (nats / image) after {epochs} epochs:"]
    for name, curve in sorted(sweep.items(), key=lambda item: min(item[1])):
        lines.append(f"  {name:9s} last {curve[-1]:7.2f}   best {min(curve):7.2f}"
                     + ("   <- chosen" if name == chosen else ""))
    return "\n".join(lines)


def elbo_table(reports: dict[str, dict[str, float]], samples: int) -> str:
    """Validation and test negative ELBO of each model (:func:`hw5.metrics.vae.likelihood_report`), 2 decimals."""
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
    """The class information in mu (:func:`hw5.metrics.latent.manifold_statistics`), at a precision that reproduces."""
    lines = [f"class information in mu ({n_images} test images; chance accuracy 10%):"]
    lines += [f"  {_label(k):5s} linear probe {s['linear_probe_mu']:.0%}, 5-NN {s['knn_acc_mu']:.0%}, silhouette "
              f"{s['silhouette_mu']:.2f}, class share of Var(mu) {s['class_variance_share_mu']:.1%}, "
              f"active units {s['active_units']}/20" for k, s in stats.items()]
    return "\n".join(lines)


def surgery_table(surgery: dict[str, dict[str, float]], n_images: int) -> str:
    """:func:`hw5.metrics.vae.aggregate_posterior_kl` of each model: mean KL = I(x; z) + KL(q(z) || p(z))."""
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
    """:func:`hw5.metrics.vae.snapshot_statistics` rows as a table."""
    lines = [f"{'epochs':>6s} {'val -ELBO':>10s} {'val KL':>7s} {'linear probe mu':>16s} {'5-NN mu':>8s} "
             f"{'class share of Var(mu)':>23s}"]
    lines += [f"{r['epochs']:6d} {r['best_val_neg_elbo']:10.2f} {r['val_kl']:7.2f} {r['linear_probe_mu']:16.1%} "
              f"{r['knn_acc_mu']:8.1%} {r['class_variance_share_mu']:23.1%}" for r in rows]
    return "\n".join(lines)


def style_table(r2: dict[str, dict[str, float]]) -> str:
    """:func:`hw5.metrics.latent.style_r2` of each model, one line per property."""
    props = next(iter(r2.values()))
    lines = ["R^2 of a linear map mu -> property (2-fold cross-validated, test images):"]
    lines += [f"  {p:24s} " + "   ".join(f"{_label(k)} {r[p]:.2f}" for k, r in r2.items()) for p in props]
    return "\n".join(lines)


def training_table(configs: dict, histories: dict, variants: dict[str, dict[str, list[float]]], clock: str) -> str:
    """One line per model: the kept variant, epochs, best validation loss and epoch, training minutes (marked
    with ``clock``, whose wall clock they are: :attr:`hw5.settings.Settings.training_clock`), and the best
    validation loss of each variant."""
    lines = []
    for k, h in histories.items():
        lines.append(f"{_label(k):5s} kept the {'averaged' if configs[k].ema_decay else 'plain'} iterates: "
                     f"{len(h['val_neg_elbo'])} epochs, best validation {h['best_val_loss']:.2f} nats at epoch "
                     f"{h['best_epoch']}, {sum(h['epoch_seconds']) / 60:.0f} min of training ({clock}); best validation of "
                     "each variant: " + ", ".join(f"{v} {min(c):.2f}" for v, c in variants[k].items()))
    return "\n".join(lines)


# -- the record: ``metrics.json`` -----------------------------------------------------------------------------
def model_record(config: object, history: dict, likelihood: dict, manifold: dict, style: dict,
                 surgery: dict) -> dict[str, object]:
    """One model's section of ``metrics.json``: its setting and training length, the likelihood report, the
    manifold statistics, the style R^2 and the split of its KL term."""
    return {**likelihood, "epochs": len(history["val_neg_elbo"]), "best_epoch": history["best_epoch"],
            "activation": config.model.activation, "kl_warmup_epochs": config.kl_warmup_epochs,
            "ema_decay": config.ema_decay, **manifold, "style_r2_mu": style,
            "mutual_information": surgery["mutual_information"], "aggregate_kl": surgery["aggregate_kl"]}


def problem3_metrics(configs: dict, histories: dict, likelihood: dict, manifold: dict, style: dict, surgery: dict,
                     marginal: dict, verdict: dict, sweep: dict[str, list[float]],
                     variants: dict[str, dict[str, list[float]]], snapshots: list[dict], **sections: object
                     ) -> dict[str, object]:
    """``metrics.json`` of Problem 3: one :func:`model_record` per model, the C-VAE's marginal and
    conditional-sample accuracy added to its record; the sweep's and the variants' best validation losses and
    the sweep's choice (:func:`hw5.metrics.vae.sweep_winner`), the snapshot rows, and any further ``sections``
    as they are."""
    out = {k: model_record(configs[k], histories[k], likelihood[k], manifold[k], style[k], surgery[k])
           for k in configs}
    out["cvae"].update({**marginal, "conditional_sample_acc": verdict["accuracy"],
                        "conditional_sample_acc_per_class": verdict["per_class"]})
    out["sweep"] = {"epochs": min(len(c) for c in sweep.values()), "best_val": {n: min(c) for n, c in sweep.items()},
                    "chosen": sweep_winner(sweep)}
    out["variants_best_val"] = {k: {v: min(c) for v, c in curves.items()} for k, curves in variants.items()}
    out["snapshots"] = snapshots
    out["train_seconds"] = {k: sum(h["epoch_seconds"]) for k, h in histories.items()}
    return {**out, **sections}
