"""Bad input never trains silently: each case feeds one bad input to a training entry point and checks that it is
refused before any step, with an error that names the problem and the fix."""

from __future__ import annotations

import pytest
import torch


def _digits(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=gen))


def test_float_images_in_unit_range_train_exactly_like_their_uint8_originals():
    from hw5.models.rbm import RBMConfig
    from hw5.training.rbm import RBMTraining, train_rbm

    images, _ = _digits()
    as_uint8, h8 = train_rbm(images, RBMTraining(RBMConfig(hidden=8), batch_size=32), 1, device="cpu", show_progress=False)
    as_float, hf = train_rbm(images.float() / 255, RBMTraining(RBMConfig(hidden=8), batch_size=32), 1, device="cpu",
                             show_progress=False)
    assert torch.equal(as_uint8.W, as_float.W) and h8["train_mse"] == hf["train_mse"]


@pytest.mark.parametrize("images, message", [
    (lambda x: x.float(), r"train_images are floats in \[0, 255\], not in \[0, 1\]"),  # uint8 values cast to float
    (lambda x: torch.nn.functional.pad(x, (2, 2, 2, 2)), r"train_images has shape \(64, 32, 32\).*28x28"),
    (lambda x: x[:0], "train_images is empty"),
])
def test_the_vae_loop_refuses_images_it_would_train_on_wrongly(images, message):
    from hw5.training.vae import VAETraining, train_vae

    x, y = _digits()
    with pytest.raises(ValueError, match=message):
        train_vae(images(x), y, x, y, VAETraining(), 1, device="cpu", show_progress=False)


def test_empty_validation_set_and_bad_labels_are_refused():
    from hw5.training.vae import VAETraining, train_vae

    x, y = _digits()
    with pytest.raises(ValueError, match="val_images is empty"):
        train_vae(x, y, x[:0], y[:0], VAETraining(), 1, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match=r"train_labels must lie in 0..9"):
        train_vae(x, y + 10, x, y, VAETraining(), 1, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match=r"train_labels must be integer class labels of shape \(64,\)"):
        train_vae(x, y[:10], x, y, VAETraining(), 1, device="cpu", show_progress=False)


def test_a_batch_larger_than_the_data_is_an_error_not_an_untrained_model():
    from hw5.training.gan import GANTraining, train_gan

    x, _ = _digits(100)
    with pytest.raises(ValueError, match=r"batch_size 200 is larger than the 100 training images.*no step would run"):
        train_gan(x, GANTraining(), 1, device="cpu", show_progress=False)


def test_fewer_epochs_than_the_run_folder_holds_is_refused(tmp_path):
    from hw5.models.rbm import RBMConfig
    from hw5.training.rbm import RBMTraining, train_rbm

    x, _ = _digits()
    config = RBMTraining(RBMConfig(hidden=8), batch_size=32)
    train_rbm(x, config, 2, run_dir=tmp_path, device="cpu", show_progress=False)
    with pytest.raises(ValueError, match=r"already holds 2 epochs .* more than the 1 asked for; ask for epochs >= 2"):
        train_rbm(x, config, 1, run_dir=tmp_path, device="cpu", show_progress=False)
    _, history = train_rbm(x, config, 2, run_dir=tmp_path, device="cpu", show_progress=False)  # the same budget
    assert len(history["loss"]) == 2
