"""Problem 1's DCGAN with a moving average of G and an epoch chosen on the train split, in each precision,
measured as the notebook measures it: the whole study as one command for a GPU machine.

    python scripts/study_gan.py --device cuda --out /tmp/gan_study                 # 30 epochs, fp32 and bf16
    python scripts/study_gan.py --device cpu --epochs 1 --images 2000 --samples 1000 --per-digit 60 \\
        --test 2000 --out /tmp/gan_smoke                                          # a smoke run (minutes)

For each precision: the course recipe (``GANTraining``: Figure 1's shapes, Adam 2e-4 / (0.5, 0.999), batch 200)
with ``ema_decay`` and ``keep_best``, trained on the first ``images - held_out`` MNIST training images; after every
epoch the FD-classifier of 1,000 samples of the raw and of the averaged G against the last ``held_out`` training
images (never used for training; the test set chooses nothing) goes into the history, and the averaged G of the
epoch with the lowest estimate is kept. The judge is the shipped MNIST classifier (trained on the train split).

Then, for the last raw G, the last averaged G and the kept G: the classifier IS and the FD-classifier of
``samples`` samples against the test set (:func:`hw5.metrics.gan.sample_quality`), and, for the run's D, Problem
1.2 under the homework's protocol (one linear layer on the features of 600 training images per digit, 5-fold CV).
Prints a table and writes ``<out>/study.json`` (atomically). Run folders are ``<out>/<precision>``: an interrupted
study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import hw5  # noqa: E402
from hw5 import data  # noqa: E402
from hw5.checkpoint import load_checkpoint  # noqa: E402
from hw5.files import write_json  # noqa: E402
from hw5.metrics import gan as quality  # noqa: E402
from hw5.models.dcgan import DCGAN, Discriminator, Generator  # noqa: E402
from hw5.training import probe  # noqa: E402
from hw5.training.gan import GANTraining, train_gan  # noqa: E402
from hw5.utils import device_description, get_device  # noqa: E402


def last_average(run_dir: Path, config: GANTraining, device: torch.device) -> Generator:
    """The averaged G of the run's last epoch, read back from its checkpoint (``train_gan`` returns the kept one)."""
    modules = {"discriminator": Discriminator(), **{name: Generator(config.model.latent_dim)
                                                    for name in ("generator", "generator_ema", "generator_kept")}}
    load_checkpoint(run_dir, modules, config)
    return modules["generator_ema"].to(device).eval()


def measure(classifier: torch.nn.Module, generator: Generator, config: GANTraining, x_train: torch.Tensor,
            x_test: torch.Tensor, samples: int) -> dict[str, float]:
    shell = DCGAN(config.model).to(next(generator.parameters()).device)
    shell.use_generator(generator)
    report = quality.sample_quality(classifier, shell, x_train, x_test, samples)
    return {"classifier_is": report["classifier_is"], "fd_classifier": report["fd_classifier"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: $HW5_DEVICE, else cuda if "
                        "available)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--images", type=int, default=60_000, help="training images used (the first ones)")
    parser.add_argument("--held-out", type=int, default=5_000, help="of those, the last ones: the selection's set")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per final measurement (x 1,000)")
    parser.add_argument("--per-digit", type=int, default=600, help="Problem 1.2's training images per digit")
    parser.add_argument("--test", type=int, default=10_000, help="test images used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not 0 < args.held_out < args.images <= 60_000:
        parser.error(f"need 0 < --held-out < --images <= 60000, got {args.held_out} and {args.images}")
    if args.samples < 1000 or args.samples % 1000:  # checked here, not after hours of training
        parser.error(f"--samples must be a positive multiple of 1000 (samples are drawn 1,000 per seed), got "
                     f"{args.samples}")
    settings = hw5.Settings.from_env()  # HW5_DATA / HW5_CACHE: where MNIST is; HW5_DEVICE unless --device
    if args.device is not None:
        settings = settings.replace(device=get_device(args.device))
    device = settings.device
    (x_train, y_train), (x_test, y_test) = settings.load("MNIST", "train"), settings.load("MNIST", "test")
    x_test, y_test = x_test[:args.test], y_test[:args.test]
    classifier = hw5.pretrained("mnist_classifier", device)
    fit_images, held_out = x_train[:args.images - args.held_out], x_train[args.images - args.held_out:args.images]
    subset = data.stratified_subset(y_train, args.per_digit, seed=args.seed)
    results = {"device": device_description(device), "args": {k: str(v) for k, v in vars(args).items()}, "runs": {}}
    for precision in args.precision:
        config = GANTraining(precision=precision, ema_decay=args.ema_decay, keep_best=True, seed=args.seed)
        start = time.perf_counter()
        model, history = train_gan(fit_images, config, args.epochs, run_dir=args.out / precision, device=device,
                                   show_progress=False, judge=classifier, held_out=held_out)
        seconds = time.perf_counter() - start
        generators = {"raw": model.raw_generator, "averaged": last_average(args.out / precision, config, device),
                      f"kept (epoch {history['kept_epoch']})": model.generator}
        finals = {name: measure(classifier, g, config, x_train, x_test, args.samples) for name, g in generators.items()}
        features = lambda x, d=model.discriminator: d.features(x * 2 - 1)  # noqa: E731 (D reads [-1, 1])
        _, report = probe.run_probe(features, x_train[subset], y_train[subset], x_test, y_test,
                                    probe.homework_protocol(), device)
        results["runs"][precision] = {
            "seconds": seconds, "train_seconds": sum(history["epoch_seconds"]), "kept_epoch": history["kept_epoch"],
            "fd_estimate_raw": history["fd_estimate_raw"], "fd_estimate_ema": history["fd_estimate_ema"],
            "final": finals, "probe_cv_acc": report.cv_acc, "probe_test_acc": report.test_acc}
        write_json(args.out / "study.json", results)
        print(f"{precision}: {args.epochs} epochs in {seconds:.0f} s ({sum(history['epoch_seconds']):.0f} s of steps);"
              f" probe on D (homework protocol): CV {report.cv_acc:.2%}, test {report.test_acc:.2%}", flush=True)
        for name, m in finals.items():
            print(f"  {name:18s} classifier IS {m['classifier_is']:.2f}  FD-classifier {m['fd_classifier']:.2f}")
        print("  per-epoch FD estimate (1,000 samples vs held-out train), raw:",
              " ".join(f"{v:.1f}" for v in history["fd_estimate_raw"]), "\n  averaged:",
              " ".join(f"{v:.1f}" for v in history["fd_estimate_ema"]), flush=True)
    print(f"study: {args.out / 'study.json'}, device {results['device']}")


if __name__ == "__main__":
    main()
