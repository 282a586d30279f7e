"""DCGAN: Figure 1's shapes, the two generator losses, training dynamics, resume, and the NaN guard."""

from __future__ import annotations

import math

import hw5.metrics.gan
import pytest
import torch
from hw5 import data
from hw5.checkpoint import load_checkpoint
from hw5.metrics.gan import fd_estimate, frechet_distance, judge
from hw5.models.classifier import Classifier, ClassifierConfig
from hw5.models.dcgan import DCGAN, Discriminator, Generator, discriminator_loss, generator_loss
from hw5.training import gan as gan_loop
from hw5.training import policies
from hw5.training.loop import TrainingDiverged
from hw5.training.optim import autocast, resolve_precision
from hw5.training.policies import update_average
from hw5.training.gan import GANTraining, train_gan
from hw5.utils import epoch_seed, layer_shapes, seed_everything


def test_discriminator_shapes_follow_figure_1():
    d = Discriminator().eval()
    x = torch.randn(3, 1, 28, 28)
    assert [shape for _, shape in layer_shapes(d, x)] == [(64, 14, 14), (128, 7, 7), (256, 4, 4), (512, 4, 4), (1,)]
    assert d.features(x).shape == (3, 8192)
    assert d.final.in_features == 8192 and d.final.out_features == 1
    assert d(x).shape == (3,)


def test_generator_shapes_follow_figure_1():
    g = Generator(100).eval()
    z = torch.randn(3, 100)
    layers = [shape for _, shape in layer_shapes(g, z)]
    assert layers == [(256 * 7 * 7,), (128, 14, 14), (64, 28, 28), (32, 28, 28), (1, 28, 28)]
    x = g(z)
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1, got 0"):
        Generator(0)


def test_sample_is_display_ready_and_seeded():
    model = DCGAN()
    a = model.sample(5, generator=torch.Generator().manual_seed(1))
    b = model.sample(5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 1, 28, 28) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and model.generator.training, "training mode is restored"


def test_losses_match_a_hand_computation():
    real = torch.tensor([2.0, -0.5, 0.3], dtype=torch.float64)
    fake = torch.tensor([-1.5, 0.2, -3.0, 4.0], dtype=torch.float64)
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    d_hand = (-sum(math.log(sig(r)) for r in real.tolist()) / 3
              - sum(math.log(1 - sig(f)) for f in fake.tolist()) / 4)
    out = discriminator_loss(real, fake)
    assert out["loss"].item() == pytest.approx(d_hand, rel=1e-6)
    assert out["d_real"].item() == pytest.approx(sum(map(sig, real.tolist())) / 3, rel=1e-6)
    assert out["d_fake"].item() == pytest.approx(sum(map(sig, fake.tolist())) / 4, rel=1e-6)
    ns = -sum(math.log(sig(f)) for f in fake.tolist()) / 4
    mm = sum(math.log(1 - sig(f)) for f in fake.tolist()) / 4
    assert generator_loss(fake)["loss"].item() == pytest.approx(ns, rel=1e-6)
    assert generator_loss(fake, "minimax")["loss"].item() == pytest.approx(mm, rel=1e-6)
    with pytest.raises(ValueError, match="generator loss must be one of"):
        generator_loss(fake, "wasserstein")


def test_minimax_loss_saturates_where_non_saturating_does_not():
    """At a confidently rejected sample (logit -8, D = 3e-4) the min-max gradient vanishes."""
    logit = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(generator_loss(logit, "minimax")["loss"], logit)
    (g_ns,) = torch.autograd.grad(generator_loss(logit, "non_saturating")["loss"], logit)
    assert abs(g_mm.item()) == pytest.approx(torch.sigmoid(torch.tensor(-8.0)).item(), rel=1e-4)
    assert abs(g_ns.item()) == pytest.approx(1 - torch.sigmoid(torch.tensor(-8.0)).item(), rel=1e-4)
    assert abs(g_ns.item()) > 1000 * abs(g_mm.item())


def test_discriminator_steps_separate_real_from_fake():
    torch.manual_seed(0)
    model = DCGAN()
    x = data.to_signed(data.load("MNIST", "train")[0][:64])
    z = torch.randn(64, 100)
    opt = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    with torch.no_grad():
        fake = model.generator(z)

    def d_out():  # as the training step sees D: batch statistics, real and fake batches separately
        with torch.no_grad():
            return discriminator_loss(model.discriminator(x), model.discriminator(fake))

    before = d_out()
    for _ in range(5):
        loss = discriminator_loss(model.discriminator(x), model.discriminator(fake))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = d_out()
    assert after["d_real"] > before["d_real"] and after["d_fake"] < before["d_fake"]
    assert after["loss"] < before["loss"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="generator_loss must be one of"):
        GANTraining(generator_loss="hinge")
    with pytest.raises(ValueError, match=r"GANTraining.lr must be a finite number in \(0, inf\)"):
        GANTraining(lr=0.0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train_gan(torch.zeros(4, 28, 28, dtype=torch.uint8), GANTraining(batch_size=2), 0)
    with pytest.raises(ValueError, match="precision must be one of"):
        GANTraining(batch_size=2, precision="fp16")


def test_auto_precision_is_bf16_on_gpus_and_fp32_on_cpus():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", cpu)
    x = torch.randn(4, 4)
    with autocast(cpu, "auto"):
        assert (x @ x).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert (x @ x).dtype == torch.bfloat16


@pytest.fixture(scope="module")
def few_digits() -> torch.Tensor:
    return data.load("MNIST", "train")[0][:150]  # 3 steps of 50: the loop's bookkeeping, not learning


def test_resume_after_interruption_equals_uninterrupted_run(few_digits, tmp_path):
    config, images = GANTraining(batch_size=25), few_digits[:75]  # 3 steps an epoch, 4 epochs in all
    straight, hist = train_gan(images, config, 2, run_dir=tmp_path / "a", device="cpu", show_progress=False)
    train_gan(images, config, 1, run_dir=tmp_path / "b", device="cpu", show_progress=False)  # "interrupted" here
    resumed, hist_b = train_gan(images, config, 2, run_dir=tmp_path / "b", device="cpu", show_progress=False)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k
    assert hist["d_loss"] == hist_b["d_loss"] and len(hist["d_loss"]) == 2 * 3
    assert hist["steps_per_epoch"] == 3 and len(hist_b["epoch_seconds"]) == 2
    for key in ("g_loss", "d_real", "d_fake"):
        assert len(hist[key]) == 6 and all(math.isfinite(v) for v in hist[key])


def test_checkpoint_of_another_config_is_refused(few_digits, tmp_path):
    train_gan(few_digits, GANTraining(batch_size=50), 1, run_dir=tmp_path, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match="(?s)saved with config.*'batch_size': 50.*loaded with config.*'batch_size': 75"):
        train_gan(few_digits, GANTraining(batch_size=75), 2, run_dir=tmp_path, device="cpu", show_progress=False)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(few_digits, tmp_path, monkeypatch):
    config = GANTraining(batch_size=50)
    train_gan(few_digits, config, 1, run_dir=tmp_path, device="cpu", show_progress=False)
    good = load_checkpoint(tmp_path, {"generator": Generator(), "discriminator": Discriminator()})

    def exploding(real_logits, fake_logits):
        out = discriminator_loss(real_logits, fake_logits)
        return {**out, "loss": out["loss"] * float("nan")}

    monkeypatch.setattr(gan_loop, "discriminator_loss", exploding)
    with pytest.raises(TrainingDiverged) as err:
        train_gan(few_digits, config, 3, run_dir=tmp_path, device="cpu", show_progress=False, check_every=2)
    msg = str(err.value)
    assert "d_loss" in msg and "became NaN/inf in epoch 2 by step 2" in msg
    assert f"the last good checkpoint (end of epoch 1) is kept in {tmp_path}" in msg
    kept = load_checkpoint(tmp_path, {"generator": Generator(), "discriminator": Discriminator()})
    assert kept["epoch"] == 1 and kept["files"] == good["files"]


# --- averaging G, its batch-norm statistics, per-epoch estimates on the train split, keep-by-train ----------------

def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _equal_states(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_config_validates_averaging_and_selection(few_digits):
    for bad in (1.0, -0.1, math.nan, True):
        with pytest.raises(ValueError, match=r"GANTraining.ema_decay must be a finite number in \[0, 1\)"):
            GANTraining(ema_decay=bad)
    with pytest.raises(ValueError, match="GANTraining.keep_best must be True or False, got 1"):
        GANTraining(keep_best=1)
    assert "ema_decay" not in GANTraining().identity() and "keep_best" not in GANTraining().identity()
    assert GANTraining(ema_decay=0.99, keep_best=True).identity()["ema_decay"] == 0.99
    with pytest.raises(ValueError, match="keep_best=True selects an epoch"):
        train_gan(few_digits, GANTraining(batch_size=50, keep_best=True), 1, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match="judge and held_out go together"):
        train_gan(few_digits, GANTraining(batch_size=50), 1, device="cpu", show_progress=False, judge=Classifier())


@pytest.fixture(scope="module")
def ema_run(few_digits, tmp_path_factory):
    """One epoch of 3 steps with averaging (d = 0.5), the raw iterates handed to the average captured per step,
    and the same epoch with the default config (checkpointed)."""
    captured = []

    def capturing(average, model, decay):
        captured.append((model, decay, _params(model)))
        update_average(average, model, decay)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(policies, "update_average", capturing)
        averaged, _ = train_gan(few_digits, GANTraining(batch_size=50, ema_decay=0.5), 1, device="cpu",
                                show_progress=False)
    folder = tmp_path_factory.mktemp("default")
    plain, _ = train_gan(few_digits, GANTraining(batch_size=50), 1, run_dir=folder, device="cpu", show_progress=False)
    return averaged, captured, plain, folder


def test_averaged_generator_is_the_moving_average_of_the_iterates(ema_run):
    averaged, captured, _, _ = ema_run
    assert len(captured) == 3, "one update after each of the 3 generator steps"
    assert all(model is averaged.raw_generator and decay == 0.5 for model, decay, _ in captured)
    seed_everything(0)
    ema = [p.double() for p in _params(DCGAN().generator)]  # the average starts at the initial G
    for _, decay, theta in captured:
        ema = [decay * a + (1 - decay) * t.double() for a, t in zip(ema, theta)]
    for hand, kept, last, theta in zip(ema, averaged.generator.parameters(), averaged.raw_generator.parameters(),
                                       captured[-1][2]):
        assert torch.allclose(kept.double(), hand, rtol=1e-5, atol=1e-7)
        assert torch.equal(last, theta), "the last captured iterate is the returned raw G"
    assert not all(torch.equal(a, b) for a, b in zip(averaged.generator.parameters(),
                                                    averaged.raw_generator.parameters()))


def test_averaging_leaves_the_training_trajectory_and_default_checkpoint_unchanged(ema_run):
    averaged, _, plain, folder = ema_run
    assert not hasattr(plain, "raw_generator") and sorted(n for n, _ in plain.named_children()) == [
        "discriminator", "generator"]
    assert _equal_states(averaged.raw_generator, plain.generator)
    assert _equal_states(averaged.discriminator, plain.discriminator)
    saved = load_checkpoint(folder, {"generator": Generator(), "discriminator": Discriminator()})
    assert saved["modules"] == ["discriminator", "generator"]
    assert saved["config"] == GANTraining(batch_size=50).identity() and "model" not in saved["config"]


def test_averaged_generator_batch_norm_statistics_are_recomputed_for_its_weights(ema_run):
    averaged, *_ = ema_run
    copy = Generator(100)
    copy.load_state_dict(averaged.generator.state_dict())
    norms = [m for m in copy.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    inputs: dict[torch.nn.Module, list[torch.Tensor]] = {m: [] for m in norms}
    hooks = [m.register_forward_hook(lambda m, args, out: inputs[m].append(args[0].detach())) for m in norms]
    noise = torch.Generator().manual_seed(epoch_seed(0, 1) + gan_loop.BN_NOISE_OFFSET)
    with torch.no_grad():
        copy.train()
        for _ in range(gan_loop.BN_BATCHES):
            copy(torch.randn(50, 100, generator=noise))  # batches of the config's batch_size
    for hook in hooks:
        hook.remove()
    kept = [m for m in averaged.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    raw = [m for m in averaged.raw_generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm, mine, last in zip(norms, kept, raw):
        xs = inputs[norm]
        mean = torch.stack([x.mean((0, 2, 3)) for x in xs]).mean(0)
        var = torch.stack([x.transpose(0, 1).flatten(1).var(1, unbiased=True) for x in xs]).mean(0)
        assert torch.allclose(mine.running_mean, mean, rtol=1e-4, atol=1e-6)
        assert torch.allclose(mine.running_var, var, rtol=1e-4, atol=1e-6)
        assert int(mine.num_batches_tracked) == gan_loop.BN_BATCHES and mine.momentum == 0.1
        assert not torch.allclose(mine.running_mean, last.running_mean), "not the raw G's statistics"


def _judge() -> Classifier:
    torch.manual_seed(5)
    return Classifier(ClassifierConfig(width=4, feature_dim=8)).eval()


def test_fd_estimate_is_the_frechet_distance_of_seeded_samples():
    classifier, generator = _judge(), Generator(100)
    reference = judge(classifier, data.load("MNIST", "train")[0][-200:])[0]
    value = fd_estimate(classifier, generator, reference, n=60, seed=3)
    z = torch.randn(60, 100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        samples = generator.eval()(z).add(1).div(2).clamp(0, 1)
    generator.train()
    assert value == pytest.approx(frechet_distance(judge(classifier, samples)[0], reference), rel=1e-4)
    assert fd_estimate(classifier, generator, reference, n=60, seed=3) == value and generator.training
    assert fd_estimate(classifier, generator, reference, n=60, seed=4) != value
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        fd_estimate(classifier, generator, reference, n=1)


def test_resume_with_averaging_and_selection_is_bit_exact(few_digits, tmp_path):
    """Two steps of 25 images per epoch (4 epochs in all, each with the averaged G's batch-norm pass and two
    estimates of 25 samples): what is resumed is the state, which the sizes do not change; they keep it fast."""
    images = few_digits[:50]
    config = GANTraining(batch_size=25, ema_decay=0.9, keep_best=True)
    extra = {"judge": _judge(), "held_out": few_digits[-50:], "estimate_samples": 25}
    straight, hist = train_gan(images, config, 2, run_dir=tmp_path / "a", device="cpu", show_progress=False, **extra)
    train_gan(images, config, 1, run_dir=tmp_path / "b", device="cpu", show_progress=False, **extra)
    resumed, hist_b = train_gan(images, config, 2, run_dir=tmp_path / "b", device="cpu", show_progress=False, **extra)
    assert hist["steps_per_epoch"] == hist_b["steps_per_epoch"] == 2 and len(hist["d_loss"]) == 4
    assert _equal_states(straight, resumed)
    assert sorted(n for n, _ in straight.named_children()) == ["discriminator", "generator", "raw_generator"]
    for key in ("d_loss", "fd_estimate_raw", "fd_estimate_ema", "kept_epoch"):
        assert hist[key] == hist_b[key], key
    assert len(hist["fd_estimate_ema"]) == 2 and all(math.isfinite(v) for v in hist["fd_estimate_raw"])
    assert hist["kept_epoch"] == 1 + min(range(2), key=hist["fd_estimate_ema"].__getitem__)
    saved = load_checkpoint(tmp_path / "b", {k: Generator() for k in ("generator", "generator_ema", "generator_kept")}
                            | {"discriminator": Discriminator()})
    assert saved["config"]["ema_decay"] == 0.9 and saved["config"]["keep_best"] is True


def test_keep_best_returns_the_epoch_with_the_lowest_train_split_estimate(few_digits, monkeypatch):
    images, held_out, classifier = few_digits[:50], few_digits[-100:], _judge()
    scripted = iter([1.0, 9.0, 9.0, 3.0, 0.5, 4.0])  # (raw, averaged) per epoch: the averaged G of epoch 2 wins
    references = []

    def scripted_estimate(judge_, generator, reference, n, seed):
        references.append(reference)
        assert judge_ is classifier and n == 1000 and seed == 0
        return next(scripted)

    def no_test_split(name, split="train", *args, **kwargs):
        raise AssertionError(f"training loaded the {split} split itself")

    monkeypatch.setattr(hw5.metrics.gan, "fd_estimate", scripted_estimate)
    monkeypatch.setattr(data, "load", no_test_split)
    config = GANTraining(batch_size=50, ema_decay=0.5, keep_best=True)
    kept, hist = train_gan(images, config, 3, device="cpu", show_progress=False, judge=classifier, held_out=held_out)
    assert hist["fd_estimate_raw"] == [1.0, 9.0, 0.5] and hist["fd_estimate_ema"] == [9.0, 3.0, 4.0]
    assert hist["kept_epoch"] == 2
    assert all(torch.equal(r, judge(classifier, held_out)[0]) for r in references)
    two_epochs, _ = train_gan(images, GANTraining(batch_size=50, ema_decay=0.5), 2, device="cpu", show_progress=False)
    assert _equal_states(kept.generator, two_epochs.generator), "the averaged G as it was after epoch 2"


def test_generator_step_takes_d_out_of_its_backward_pass_and_changes_nothing_else(few_digits, monkeypatch):
    """The G step freezes D for its backward pass: G's update is that of the plain two-backward step computed by
    hand; D's gradients are those of its own step only; D trains again afterwards, also after a failure."""
    from hw5.training.loop import StepInfo

    config = GANTraining(channels_last=False)
    real = data.to_signed(few_digits[:50], "cpu")
    seed_everything(0)
    model = DCGAN(config.model)
    reference = DCGAN(config.model)
    reference.load_state_dict(model.state_dict())

    def optimizers(m):
        return {n: torch.optim.Adam(getattr(m, n).parameters(), lr=1e-3, betas=(0.5, 0.999))
                for n in ("generator", "discriminator")}

    ours, theirs = optimizers(model), optimizers(reference)
    step = gan_loop.gan_step(config, {"generator": model.generator, "discriminator": model.discriminator}, ours,
                             torch.device("cpu"))
    torch.manual_seed(1)
    step((real,), StepInfo(1, 0, 1, torch.Generator()))
    torch.manual_seed(1)  # the same z, then the plain step with D's gradients left on
    fake = reference.generator(torch.randn(50, config.model.latent_dim))
    d_loss = discriminator_loss(reference.discriminator(real), reference.discriminator(fake.detach()))["loss"]
    theirs["discriminator"].zero_grad()
    d_loss.backward()
    d_grads = [p.grad.clone() for p in reference.discriminator.parameters()]
    theirs["discriminator"].step()
    theirs["generator"].zero_grad()
    generator_loss(reference.discriminator(fake))["loss"].backward()
    theirs["generator"].step()
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    assert all(torch.equal(p.grad, g) for p, g in zip(model.discriminator.parameters(), d_grads))
    assert not all(torch.equal(p.grad, g) for p, g in zip(reference.discriminator.parameters(), d_grads))
    assert all(p.requires_grad for p in model.discriminator.parameters())
    def failing(*args, **kwargs):
        raise RuntimeError("G's loss failed")

    monkeypatch.setattr(gan_loop, "generator_loss", failing)
    with pytest.raises(RuntimeError, match="G's loss failed"):
        step((real,), StepInfo(1, 0, 1, torch.Generator()))
    assert all(p.requires_grad for p in model.discriminator.parameters())
