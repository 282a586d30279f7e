"""Where features are computed, and which radii are accepted, checked without a GPU: a module on PyTorch's
``meta`` device (shapes only, no data) stands for a module on another device, so computing on the wrong
device fails or returns CPU tensors (fast: run by ``scripts/mutation.sh`` against ``hw5/metrics/features.py``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from hw5.metrics.features import (MAX_RADIUS, extract_features, extractor_device, shift_averaged,
                                  shift_averaged_features)


class Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(784, 3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


META = torch.device("meta")


def test_the_device_is_the_one_given_else_the_modules_else_the_images():
    images = torch.rand(2, 1, 28, 28)
    on_meta = Features().to(META)
    assert extractor_device(on_meta, images) == META  # a module
    assert extractor_device(on_meta.features, images) == META  # a bound method of one
    assert extractor_device(lambda x: on_meta(x), images) == torch.device("cpu")  # a plain function: the images'
    assert extractor_device(on_meta, images, "cpu") == torch.device("cpu")  # given
    assert extractor_device(Features(), images.to(META)) == torch.device("cpu")


@pytest.mark.parametrize("how", ["module", "method"])
def test_features_and_shift_averages_are_computed_where_the_extractor_is(how):
    on_meta = Features().to(META)
    extractor = on_meta if how == "module" else on_meta.features
    images = torch.rand(3, 1, 28, 28)
    assert extract_features(extractor, images, batch_size=2).device == META
    averaged = shift_averaged_features(extractor, images, [1, 0], batch_size=2)
    assert list(averaged) == [0, 1] and all(f.device == META and f.shape == (3, 3) for f in averaged.values())
    assert shift_averaged(extractor, 1)(images).device == META
    # a plain function is run where the images are
    cpu = Features()
    plain = extract_features(lambda x: cpu(x), images, batch_size=2)
    torch.testing.assert_close(plain, cpu(images))
    torch.testing.assert_close(shift_averaged_features(lambda x: cpu(x), images, [0])[0], cpu(images))
    # a device given to shift_averaged wins over the extractor's
    with pytest.raises((RuntimeError, NotImplementedError)):
        shift_averaged(on_meta, 1, device="cpu")(images)  # a meta module cannot read CPU tensors


def test_radii_are_distinct_ints_from_0_to_the_maximum():
    cpu = Features()
    images = torch.rand(1, 1, 28, 28)
    assert list(shift_averaged_features(cpu, images, [MAX_RADIUS])) == [MAX_RADIUS]
    assert shift_averaged(cpu, 0)(images).shape == (1, 3)
    for bad in ([], [1, 1], [-1], [MAX_RADIUS + 1], [1.5], [0, 2.0 + 0.5]):
        with pytest.raises(ValueError, match="radii must be distinct ints"):
            shift_averaged_features(cpu, images, bad)
    with pytest.raises(ValueError, match="radii must be distinct ints"):
        shift_averaged(cpu, MAX_RADIUS + 1)


def test_features_are_computed_in_batches_of_the_size_asked_for():
    """An extractor that reports its batch's size shows the chunks: 5 images in batches of 2 are 2, 2, 1, and
    501 images in the default batches of 500 are 500 and 1."""
    def size(x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1), float(x.shape[0]))

    five = torch.rand(5, 1, 28, 28)
    assert extract_features(size, five, batch_size=2).flatten().tolist() == [2, 2, 2, 2, 1]
    assert shift_averaged_features(size, five, [0], batch_size=2)[0].flatten().tolist() == [2, 2, 2, 2, 1]
    many = torch.zeros(501, 1, 28, 28)
    assert extract_features(size, many).flatten().tolist() == [500.0] * 500 + [1.0]
    assert shift_averaged_features(size, many, [0])[0].flatten().tolist() == [500.0] * 500 + [1.0]


def test_a_plain_function_averaged_over_shifts_runs_where_the_images_are():
    cpu = Features()
    images = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(shift_averaged(lambda x: cpu(x), 0)(images), cpu(images))
