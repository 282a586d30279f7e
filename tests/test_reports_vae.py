"""Problem 3's tables and ``metrics.json`` record (:mod:`hw5.reports.vae`): the numbers at their stated
precision, every section gathered, and the sweep's winner chosen once (:func:`hw5.metrics.vae.sweep_winner`)
and marked by the table and the record."""

from __future__ import annotations

import pytest

from hw5.metrics.vae import sweep_winner
from hw5.reports import vae as R
from hw5.training.vae import VAETraining


def test_tables_print_the_numbers_at_their_stated_precision():
    lik = {"vae": {"val_neg_elbo": 236.744, "test_neg_elbo": 238.626, "test_recon": 222.745, "test_kl": 15.881,
                   "test_iwae_bound": 236.328, "iwae_samples": 1000, "iwae_images": 10000}}
    assert "  VAE   validation 236.74   test 238.63 = reconstruction 222.75 + KL 15.88" in R.elbo_table(lik, 10)
    assert "  VAE   236.33, 2.30 below the negative ELBO" in R.iwae_table(lik)
    marginal = {"marginal_bound": 235.0787, "marginal_samples": 100, "marginal_images": 10000, "bayes_accuracy": 0.8715}
    assert R.marginal_table(marginal, 236.328).splitlines() == [
        "C-VAE: -log p(x) <= 235.08 nats (k = 100 per class, 10000 test images); VAE: <= 236.33",
        "its Bayes classifier argmax_c p(x | c): 87% test accuracy"]
    stats = {"cvae": {"linear_probe_mu": 0.1315, "knn_acc_mu": 0.604, "silhouette_mu": -0.0496,
                      "class_variance_share_mu": 0.00157, "active_units": 13, "knn_acc_2d": 0.5626,
                      "silhouette_2d": -0.0678}}
    assert ("C-VAE linear probe 13%, 5-NN 60%, silhouette -0.05, class share of Var(mu) 0.2%, active units 13/20"
            in R.manifold_table(stats, 10000))
    assert "C-VAE 5-NN class accuracy 56.3%, silhouette -0.068" in R.map_table(stats)
    surgery = {"vae": {"kl": 15.881, "mutual_information": 9.033, "aggregate_kl": 6.848, "log_n": 9.2103}}
    assert R.surgery_table(surgery, 10000).endswith("  VAE   15.88 = 9.03 + 6.85")
    assert "  relu      last  240.10   best  240.01   <- chosen" in R.sweep_table(
        {"relu": [241.0, 240.01, 240.1], "elu": [243.0, 242.0, 242.5]}, 3)
    assert "  brightness               VAE 0.93   C-VAE 0.48" in R.style_table(
        {"vae": {"brightness": 0.929}, "cvae": {"brightness": 0.484}})


def _record(sweep: dict[str, list[float]], **sections: object) -> tuple[dict, VAETraining, dict]:
    """:func:`R.problem3_metrics` of two models with the same small made-up sections, and ``sweep``."""
    cfg = VAETraining(ema_decay=0.999)
    hist = {"val_neg_elbo": [250.0, 240.0], "best_epoch": 2, "epoch_seconds": [1.0, 2.0], "best_val_loss": 240.0}
    lik = {"test_neg_elbo": 238.6, "test_iwae_bound": 236.3}
    stats = {"linear_probe_mu": 0.8}
    surgery = {"mutual_information": 9.0, "aggregate_kl": 6.8, "kl": 15.8, "log_n": 9.2}
    metrics = R.problem3_metrics(
        {"vae": cfg, "cvae": cfg}, {"vae": hist, "cvae": hist}, {"vae": lik, "cvae": lik},
        {"vae": stats, "cvae": stats},
        {"vae": {"brightness": 0.9}, "cvae": {"brightness": 0.5}}, {"vae": surgery, "cvae": surgery},
        {"marginal_bound": 235.1, "bayes_accuracy": 0.87}, {"accuracy": 0.82, "per_class": [0.8] * 10},
        sweep, {"vae": {"plain": [239.0], "averaged": [238.0]}}, [], **sections)
    return metrics, cfg, hist


def test_problem3_metrics_gathers_every_section():
    metrics, cfg, hist = _record({"relu": [241.0, 240.0], "elu": [242.0, 243.0]}, classifier={"test_acc": 0.92})
    assert metrics["vae"]["test_iwae_bound"] == 236.3 and metrics["vae"]["epochs"] == 2
    assert metrics["vae"]["ema_decay"] == 0.999 and metrics["vae"]["aggregate_kl"] == 6.8
    assert metrics["cvae"]["marginal_bound"] == 235.1 and metrics["cvae"]["conditional_sample_acc"] == 0.82
    assert "marginal_bound" not in metrics["vae"]
    assert metrics["sweep"] == {"epochs": 2, "best_val": {"relu": 240.0, "elu": 242.0}, "chosen": "relu"}
    assert metrics["variants_best_val"] == {"vae": {"plain": 239.0, "averaged": 238.0}}
    assert metrics["train_seconds"] == {"vae": 3.0, "cvae": 3.0} and metrics["classifier"] == {"test_acc": 0.92}
    summary = R.training_table({"vae": cfg}, {"vae": hist}, {"vae": {"plain": [239.0], "averaged": [238.0]}},
                               clock="this machine")
    assert summary == ("VAE   kept the averaged iterates: 2 epochs, best validation 240.00 nats at epoch 2, 0 min of "
                       "training (this machine); best validation of each variant: plain 239.00, averaged 238.00")


def test_the_sweep_winner_is_chosen_once_and_marked_by_the_table_and_the_record():
    sweep = {"relu": [245.0, 240.5, 241.0], "elu": [244.0, 240.2, 240.9], "tanh": [243.0, 241.0, 240.3]}
    assert sweep_winner(sweep) == "elu"  # the lowest value anywhere on a curve, not the last or the first
    assert sweep_winner({"a": [2.0, 1.0], "b": [1.0, 3.0]}) == "a"  # a tie: the first in the sweep's order
    table = R.sweep_table(sweep, 3).splitlines()
    assert table[1:] == ["  elu       last  240.90   best  240.20   <- chosen",
                         "  tanh      last  240.30   best  240.30",
                         "  relu      last  241.00   best  240.50"]
    assert _record(sweep)[0]["sweep"] == {"epochs": 3, "best_val": {"relu": 240.5, "elu": 240.2, "tanh": 240.3},
                                          "chosen": "elu"}
    tie = {"a": [2.0, 1.0], "b": [1.0, 3.0]}
    assert R.sweep_table(tie, 2).count("<- chosen") == 1
    assert "  a         last    1.00   best    1.00   <- chosen" in R.sweep_table(tie, 2)
    assert _record(tie)[0]["sweep"]["chosen"] == "a"
    for bad in ({}, {"relu": []}):
        with pytest.raises(ValueError, match="a sweep needs at least one candidate"):
            sweep_winner(bad)


def test_the_display_names_are_defined_once():
    assert R.LABELS == {"vae": "VAE", "cvae": "C-VAE"}
    assert list(R.LABELS) == ["vae", "cvae"]  # the notebook trains and reports the models in this order
    surgery = {"cvae": {"kl": 1.0, "mutual_information": 0.5, "aggregate_kl": 0.5, "log_n": 2.0},
               "other": {"kl": 1.0, "mutual_information": 0.5, "aggregate_kl": 0.5, "log_n": 2.0}}
    assert R.surgery_table(surgery, 10).splitlines()[1:] == ["  C-VAE 1.00 = 0.50 + 0.50", "  other 1.00 = 0.50 + 0.50"]


def test_snapshot_table_prints_one_row_per_snapshot():
    rows = [{"epochs": 3, "best_val_neg_elbo": 290.0, "val_kl": 6.0, "linear_probe_mu": 0.1234, "knn_acc_mu": 0.5,
             "class_variance_share_mu": 0.0123},
            {"epochs": 300, "best_val_neg_elbo": 233.361, "val_kl": 13.016, "linear_probe_mu": 0.158,
             "knn_acc_mu": 0.326, "class_variance_share_mu": 0.0212}]
    lines = R.snapshot_table(rows).splitlines()
    assert lines[0] == "epochs  val -ELBO  val KL  linear probe mu  5-NN mu  class share of Var(mu)"
    assert lines[1:] == ["     3     290.00    6.00            12.3%    50.0%                    1.2%",
                         "   300     233.36   13.02            15.8%    32.6%                    2.1%"]
