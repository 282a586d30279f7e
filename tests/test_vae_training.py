"""VAE training loop and Problem 3's evaluation helpers, on small real Fashion-MNIST subsets: the loss
falls, resume == uninterrupted, the best-validation weights are returned, configs are validated, and the
samples' verdict, snapshot rows, reconstructions and interpolations behave (the latent-space statistics are
tested in test_latent.py, the tables and the record in test_reports_vae.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hw5 import data
from hw5.checkpoint import CheckpointError
from hw5.metrics.latent import class_variance_share, knn_accuracy, logistic_readout_accuracy
from hw5.metrics.vae import elbo_terms, encode_mean, negative_elbo
from hw5.metrics import vae as m3
from hw5.models.vae import VAE, VAEConfig, vae_loss
from hw5.reports.vae import snapshot_table
from hw5.training.vae import VALIDATION_BATCH, VAETraining, kl_weight, train_vae


@pytest.fixture(scope="module")
def fashion():
    """512 training and 256 validation images of Fashion-MNIST's train split (disjoint)."""
    x, y = data.load("FashionMNIST", "train")
    return x[:512], y[:512], x[1000:1256], y[1000:1256]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(fashion):
    x, y = data.to_unit(fashion[0][:128]), fashion[1][:128]
    for cfg in (VAETraining(), VAETraining(VAEConfig(conditional=True))):
        torch.manual_seed(0)
        model = cfg.model.build()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(25):
            logits, mu, logvar = model(x, y, generator=gen)
            out = vae_loss(logits, x, mu, logvar)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.append(out["loss"].item())
        assert losses[-1] < 0.7 * losses[0]  # ~545 nats at initialisation (all pixels at p = 1/2)


def _strip_times(history):
    return {k: v for k, v in history.items() if k not in ("epoch_seconds", "epoch_cpu_seconds")}


@pytest.mark.parametrize("cfg", [VAETraining(VAEConfig(conditional=True), kl_warmup_epochs=2),
                                 VAETraining(ema_decay=0.9)],
                         ids=["cvae-warmup", "vae-ema"])
def test_resume_after_interruption_reproduces_an_uninterrupted_run(fashion, tmp_path, cfg):
    straight, h_straight = train_vae(*fashion, cfg, epochs=3, show_progress=False)
    train_vae(*fashion, cfg, epochs=2, run_dir=tmp_path, show_progress=False)  # "interrupted" after epoch 2
    resumed, h_resumed = train_vae(*fashion, cfg, epochs=3, run_dir=tmp_path, show_progress=False)
    assert _strip_times(h_resumed) == _strip_times(h_straight)
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    # a finished run answers at once from its checkpoint; another config is refused
    again, h_again = train_vae(*fashion, cfg, epochs=3, run_dir=tmp_path, show_progress=False)
    assert h_again["epoch_seconds"] == h_resumed["epoch_seconds"]
    with pytest.raises(CheckpointError, match="was saved with config"):
        train_vae(*fashion, cfg.with_model(activation="elu"), epochs=3, run_dir=tmp_path,
                  show_progress=False)


def test_returns_best_validation_weights(fashion):
    cfg = VAETraining()
    model, h = train_vae(*fashion, cfg, epochs=4, patience=10, show_progress=False)
    assert len(h["val_neg_elbo"]) == len(h["train_neg_elbo"]) == len(h["kl_weight"]) == 4
    assert h["best_val_loss"] == min(h["val_neg_elbo"]) and not h["stopped_early"]
    assert h["best_epoch"] == 1 + int(np.argmin(h["val_neg_elbo"]))
    xv, yv = data.to_unit(fashion[2]), fashion[3]
    again = elbo_terms(model, xv, yv, seed=cfg.seed, batch_size=VALIDATION_BATCH)[0].item()  # the loop's, redone
    assert again == pytest.approx(h["best_val_loss"], abs=1e-3)
    np.testing.assert_allclose(np.add(h["val_recon"], h["val_kl"]), h["val_neg_elbo"], rtol=1e-5)


def test_moving_average_is_what_is_validated_and_returned(fashion, tmp_path):
    from hw5.checkpoint import load_checkpoint

    cfg = VAETraining(ema_decay=0.99)
    model, h = train_vae(*fashion, cfg, epochs=2, run_dir=tmp_path, show_progress=False)
    raw, avg, best = cfg.model.build(), cfg.model.build(), cfg.model.build()
    load_checkpoint(tmp_path, {"model": raw, "ema": avg, "best": best}, cfg)
    xv, yv = data.to_unit(fashion[2]), fashion[3]
    assert elbo_terms(avg, xv, yv, seed=0, batch_size=VALIDATION_BATCH)[0].item() == pytest.approx(h["val_neg_elbo"][-1], abs=1e-3)
    assert not torch.equal(raw.fc1.weight, avg.fc1.weight)  # the average lags the iterates
    best_epoch_weights = avg if h["best_epoch"] == 2 else best
    assert torch.equal(model.fc4.weight, best_epoch_weights.fc4.weight)


def test_early_stopping_keeps_the_best_epoch(fashion):
    """Validated on uniform noise, a model that learns clothes gets worse on the validation split from
    epoch 2 on: with patience 2 the run stops after epoch 3 and returns epoch 1's weights."""
    noise = torch.randint(0, 256, (256, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cfg = VAETraining()
    model, h = train_vae(fashion[0], fashion[1], noise, fashion[3], cfg, epochs=12, patience=2,
                         show_progress=False)
    assert h["best_epoch"] == 1 and len(h["val_neg_elbo"]) == 3 and h["stopped_early"]
    assert min(h["val_neg_elbo"][1:]) > h["val_neg_elbo"][0]
    again = elbo_terms(model, noise, fashion[3], seed=cfg.seed, batch_size=VALIDATION_BATCH)[0].item()
    assert again == pytest.approx(h["val_neg_elbo"][0], abs=1e-3)


def test_kl_warmup_schedule_and_config_validation():
    cfg = VAETraining(kl_warmup_epochs=2)
    assert kl_weight(cfg, 1, 0, 10) == pytest.approx(0.05)
    assert kl_weight(cfg, 2, 9, 10) == 1.0 and kl_weight(cfg, 5, 0, 10) == 1.0
    assert kl_weight(VAETraining(), 1, 0, 10) == 1.0
    with pytest.raises(ValueError, match="activation must be one of"):
        VAEConfig(activation="swish")
    with pytest.raises(ValueError, match=r"beta2 must be a finite number in \[0, 1\)"):
        VAETraining(beta2=1.0)
    with pytest.raises(ValueError, match="kl_warmup_epochs must be an integer >= 0"):
        VAETraining(kl_warmup_epochs=-1)
    images, labels = torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train_vae(images, labels, images, labels, VAETraining(), epochs=0)


def test_negative_elbo_evaluation_matches_the_loss_and_samples_average(fashion):
    torch.manual_seed(0)
    model = VAE().eval()
    x, y = fashion[2][:64], fashion[3][:64]
    one = negative_elbo(model, x, y, samples=1, seed=3)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        logits, mu, logvar = model(data.to_unit(x), y, generator=gen)
        out = vae_loss(logits, data.to_unit(x), mu, logvar)
    assert one["neg_elbo"] == pytest.approx(out["neg_elbo"].item(), rel=1e-5)
    assert one["kl"] == pytest.approx(negative_elbo(model, x, y, samples=7)["kl"], rel=1e-6)  # exact term


def test_encoder_means_and_conditional_samples(fashion):
    torch.manual_seed(0)
    model = VAEConfig(conditional=True).build()
    mu = encode_mean(model, fashion[2][:50], fashion[3][:50], batch_size=16)
    assert mu.shape == (50, 20) and mu.dtype == np.float32
    images, classes = model.class_samples(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (30, 1, 28, 28) and classes.tolist() == [c for c in range(10) for _ in range(3)]
    assert not hasattr(VAE(), "class_samples"), "class-conditional samples are the C-VAE's alone"


# -- Problem 3's evaluations and figures ------------------------------------------------------------------------
class _AlwaysClass(torch.nn.Module):
    """A stand-in classifier that sees class ``c`` in every image."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.c = c
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((x.shape[0],), self.c), 10).float() + 0 * self.anchor


def test_conditional_sample_report_and_prior_class_shares():
    torch.manual_seed(0)
    cvae = VAEConfig(conditional=True).build().eval()
    report = m3.conditional_sample_report(cvae, _AlwaysClass(3), n_per_class=4, seed=0)
    assert report["accuracy"] == pytest.approx(0.1)
    assert report["per_class"] == [0.0, 0.0, 0.0, 1.0] + [0.0] * 6
    assert report["confusion"].shape == (10, 10) and (report["confusion"][:, 3] == 4).all()
    assert report["confusion"].sum() == 40
    shares = m3.prior_class_shares(VAE().eval(), _AlwaysClass(7), n=25, seed=0)
    assert shares == [0.0] * 7 + [1.0, 0.0, 0.0]


def test_snapshot_statistics(fashion):
    x, y, xv, yv = fashion
    torch.manual_seed(0)
    model = VAEConfig(conditional=True).build().eval()
    mu, mu_val = encode_mean(model, x, y), encode_mean(model, xv, yv)
    history = {"val_neg_elbo": [300.0, 290.0, 295.0], "val_kl": [5.0, 6.0, 7.0], "best_epoch": 2,
               "best_val_loss": 290.0}
    row = m3.snapshot_statistics(model, history, x, y, xv, yv, seed=0)
    assert (row["epochs"], row["best_val_neg_elbo"], row["val_kl"]) == (3, 290.0, 6.0)
    assert row["linear_probe_mu"] == logistic_readout_accuracy(mu, y.numpy(), mu_val, yv.numpy(), seed=0)
    assert row["knn_acc_mu"] == knn_accuracy(mu_val, yv.numpy())
    assert row["class_variance_share_mu"] == pytest.approx(class_variance_share(mu_val, yv.numpy()))
    assert "   3     290.00    6.00" in snapshot_table([row])


def test_reconstructions_and_interpolation_rows(fashion):
    torch.manual_seed(0)
    models = {"VAE": VAE().eval(), "C-VAE": VAEConfig(conditional=True).build().eval()}
    x, y = fashion[0][:4], fashion[1][:4]
    recon = m3.reconstructions(models["C-VAE"], x, y)
    mu, _ = models["C-VAE"].encode(data.to_unit(x), y)
    torch.testing.assert_close(recon, torch.sigmoid(models["C-VAE"].decode(mu, y)).view(4, 1, 28, 28))
    assert torch.equal(recon, models["C-VAE"].reconstruct(data.to_unit(x), y))  # the model's, on uint8 input
    assert torch.equal(m3.reconstructions(models["VAE"], x, y), models["VAE"].reconstruct(data.to_unit(x)))
    names = [f"class {i}" for i in range(10)]
    rows = m3.interpolation_rows(models, x, y, [(0, 1)], names, steps=5)
    key = f"C-VAE: class {int(y[0])} -> class {int(y[1])}"
    assert list(rows) == [f"VAE: class {int(y[0])} -> class {int(y[1])}", key]
    assert rows[key].shape == (7, 1, 28, 28)
    torch.testing.assert_close(rows[key][0], data.to_unit(x[:1])[0])
    torch.testing.assert_close(rows[key][-1], data.to_unit(x[1:2])[0])


def test_problem3_figures_label_the_models():
    import matplotlib.pyplot as plt

    from hw5.plotting import vae as P

    fig = P.averaging_figure({"VAE": {"plain": [241.0, 240.0], "averaged": [240.5, 239.0]},
                              "C-VAE": {"plain": [238.0, 237.0], "averaged": [237.5, 236.0]}})
    assert [ax.get_title() for ax in fig.axes] == ["VAE: plain vs averaged Adam iterates",
                                                   "C-VAE: plain vs averaged Adam iterates"]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["C-VAE, plain iterates",
                                                                            "C-VAE, averaged iterates"]
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 10
    fig2 = P.tsne_side_by_side({"VAE": rng.normal(size=(40, 2))}, labels, [f"c{i}" for i in range(10)])
    colours = [tuple(c.get_facecolor()[0][:3]) for c in fig2.axes[0].collections]
    assert len(set(colours)) == 10  # one distinct colour per class
    assert len(set(P.CLASS_COLOURS)) == 10
    fig3 = P.tsne_by_value({"VAE": rng.normal(size=(40, 2))}, rng.normal(size=40), "value", {"VAE": "R^2 0.5"},
                           centred=True, title="coloured by value")
    assert fig3._suptitle.get_text() == "coloured by value" and fig3.axes[0].get_title() == "VAE\nR^2 0.5"
    plt.close("all")


def _separately(fashion, config, decay, epochs, patience):
    """What the two variants give as two separate train_vae runs (the reference for the one-trajectory run)."""
    return {v: train_vae(*fashion, dataclasses.replace(config, ema_decay=d), epochs, patience=patience,
                         show_progress=False)
            for v, d in (("plain", 0.0), ("averaged", decay))}


@pytest.mark.parametrize("epochs, kept", [(12, "averaged"), (2, "plain")])
def test_one_trajectory_gives_exactly_the_two_separate_runs(fashion, tmp_path, epochs, kept):
    """lr 1e-2 and patience 1: the plain iterates stop improving after epoch 1 (their run ends after epoch 2),
    the averaged ones keep improving to epoch 12; with 2 epochs the plain variant is the better one."""
    from hw5.training.vae import train_plain_and_averaged

    config = VAETraining(lr=1e-2)
    reference = _separately(fashion, config, 0.5, epochs, 1)
    assert len(reference["plain"][1]["val_neg_elbo"]) == 2  # a variant that stops long before the other
    result = train_plain_and_averaged(*fashion, config, epochs, ema_decay=0.5, patience=1, run_dir=tmp_path / "vae")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae"]  # one run folder, one trajectory
    assert result.curves == {v: h["val_neg_elbo"] for v, (_, h) in reference.items()}
    assert result.kept == kept
    assert result.training == dataclasses.replace(config, ema_decay=0.5 if kept == "averaged" else 0.0)
    assert _strip_times(result.history) == _strip_times(reference[kept][1])
    assert all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(),
                                                 reference[kept][0].state_dict().values()))


def test_one_trajectory_resumes_and_refuses_a_bad_decay(fashion, tmp_path):
    from hw5.training.vae import train_plain_and_averaged

    config = VAETraining(lr=1e-2)
    straight = train_plain_and_averaged(*fashion, config, 6, ema_decay=0.5, patience=1, run_dir=tmp_path / "a")
    train_plain_and_averaged(*fashion, config, 3, ema_decay=0.5, patience=1, run_dir=tmp_path / "b")  # interrupted
    resumed = train_plain_and_averaged(*fashion, config, 6, ema_decay=0.5, patience=1, run_dir=tmp_path / "b")
    assert resumed.curves == straight.curves and _strip_times(resumed.history) == _strip_times(straight.history)
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                 straight.model.state_dict().values()))
    with pytest.raises(ValueError, match=r"ema_decay must be a finite number in \(0, 1\)"):
        train_plain_and_averaged(*fashion, config, 2, ema_decay=0.0, patience=1, run_dir=tmp_path / "c")


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_snapshots_of_one_trajectory_are_exactly_the_separate_runs(fashion, tmp_path, decay):
    """lr 1e-2: the validation loss is not monotone, so some budget's best epoch is not its last one."""
    from hw5.training.vae import train_snapshots

    config = VAETraining(lr=1e-2, ema_decay=decay)
    budgets = (1, 2, 5)
    snapshots = train_snapshots(*fashion, config, budgets, run_dir=tmp_path / "one", show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]
    best_epochs = []
    for b, snapshot in zip(budgets, snapshots):
        model, history = snapshot.model, snapshot.history
        assert snapshot.epochs == b
        separate_model, separate = train_vae(*fashion, config, b, show_progress=False)
        assert _strip_times(history) == _strip_times(separate)
        assert len(history["epoch_seconds"]) == b and not model.training
        assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(),
                                                      separate_model.state_dict().values()))
        best_epochs.append(history["best_epoch"])
    if decay == 0.0:  # the case where a budget's best epoch is not its last one is covered
        assert any(best < b for best, b in zip(best_epochs, budgets)), best_epochs


def test_snapshots_resume_after_an_interruption_and_check_their_budgets(fashion, tmp_path, monkeypatch):
    import hw5.training.vae as training

    config = VAETraining(lr=1e-2)
    straight = training.train_snapshots(*fashion, config, (2, 4), run_dir=tmp_path / "a", show_progress=False)
    calls, original = [], training.elbo_terms

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # the validation at the end of epoch 4: epochs 1-3 are committed
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "elbo_terms", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.train_snapshots(*fashion, config, (2, 4), run_dir=tmp_path / "b", show_progress=False)
    monkeypatch.setattr(training, "elbo_terms", original)
    resumed = training.train_snapshots(*fashion, config, (2, 4), run_dir=tmp_path / "b", show_progress=False)
    for a, b in zip(straight, resumed):
        assert _strip_times(a.history) == _strip_times(b.history)
        assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    for bad in [(), (3, 3), (5, 2), (0, 4), (2.0, 4)]:
        with pytest.raises(ValueError, match=r"budgets must be increasing positive numbers of epochs, e\.g\."):
            training.train_snapshots(*fashion, config, bad, show_progress=False)
