"""Features of a frozen feature map and their shift averages phi_r (hw5.metrics.features)."""

from __future__ import annotations

import pytest
import torch

import hw5.metrics.features as features_module
from hw5.data import translate
from hw5.metrics.features import (extract_features, extract_features_on, extractor_device, shift_averaged,
                                  shift_averaged_features, shift_averaged_features_on)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """The raw-pixel extractor."""
    return images.flatten(1)


def test_shift_averaged_features_are_the_mean_over_every_shift():
    """phi_r against an independent sum over the (2r + 1)^2 translations, for nested radii in one pass and
    through the one-radius extractor wrapper; phi_0 is phi itself."""
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    proj = torch.randn(784, 6, generator=torch.Generator().manual_seed(2))
    extractor = lambda im: im.flatten(1).square() @ proj  # noqa: E731  a non-linear feature map
    averaged = shift_averaged_features(extractor, images, (2, 0, 1), batch_size=2)
    assert list(averaged) == [0, 1, 2] and all(a.shape == (5, 6) for a in averaged.values())
    for r in (0, 1, 2):
        shifts = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        expected = sum(extractor(translate(images, dy, dx)) for dy, dx in shifts) / len(shifts)
        assert torch.allclose(averaged[r], expected, atol=1e-5)
        assert torch.allclose(shift_averaged(extractor, r)(images), expected, atol=1e-5)
    assert torch.equal(shift_averaged_features(extractor, images, {1}, batch_size=2)[1], averaged[1])
    assert torch.equal(averaged[0], extract_features(extractor, images, batch_size=2))
    for bad in ((1, 1), (-1,), (), (14,), (0.5,)):
        with pytest.raises(ValueError, match=r"radii must be distinct ints in \[0, 13\]"):
            shift_averaged_features(extractor, images, bad)
    with pytest.raises(ValueError, match=r"radii must be distinct ints in \[0, 13\]"):
        shift_averaged(extractor, True)  # a bool is not a radius
    for bad_batch in (0, 2.0, True):
        with pytest.raises(ValueError, match=rf"batch_size must be an integer >= 1, got {bad_batch!r}"):
            extract_features(extractor, images, batch_size=bad_batch)


def test_extractor_device_comes_from_the_argument_the_module_or_the_images(tiny_extractor):
    module, images = tiny_extractor(), torch.rand(2, 1, 28, 28)
    assert extractor_device(module, images) == torch.device("cpu")
    assert extractor_device(module.forward, images) == torch.device("cpu")  # a bound method of a module
    assert extractor_device(_pixels, images.to("meta")) == torch.device("meta")  # a plain function
    assert extractor_device(_pixels, images.to("meta"), "cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'gpu' is not a torch device name"):
        extractor_device(_pixels, images, "gpu")
    with pytest.raises(ValueError, match="device 'gpu' is not a torch device name"):
        shift_averaged(_pixels, 1, device="gpu")  # an explicit device is resolved when phi_r is built


def test_public_functions_resolve_the_device_once_and_the_on_functions_never(monkeypatch):
    """An explicit device name is resolved once per public call, however many shifts and batches it
    computes; the ``*_on`` functions take the resolved device and resolve nothing."""
    calls = []
    real = features_module.get_device
    monkeypatch.setattr(features_module, "get_device", lambda device: calls.append(device) or real(device))
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    averaged = shift_averaged_features(_pixels, images, (0, 2), batch_size=2, device="cpu")  # 25 shifts, 3 batches
    assert calls == ["cpu"]
    extract_features(_pixels, images, batch_size=2, device="cpu")
    phi_2 = shift_averaged(_pixels, 2, device="cpu")
    assert calls == ["cpu"] * 3
    assert torch.equal(phi_2(images), averaged[2]) and torch.equal(phi_2(images), averaged[2])
    assert calls == ["cpu"] * 3  # resolved when phi_r was built, not at each call
    on = shift_averaged_features_on(_pixels, images, (0, 2), torch.device("cpu"), batch_size=2)
    assert torch.equal(on[2], averaged[2])
    assert torch.equal(extract_features_on(_pixels, images, torch.device("cpu")), averaged[0])
    assert calls == ["cpu"] * 3


@pytest.mark.parametrize("device", DEVICES)
def test_features_are_computed_on_the_extractors_device_from_images_anywhere(device, tiny_extractor):
    """Images on the CPU, the extractor on ``device``: the features are computed (and returned) there, equal
    to the CPU's; a plain function over the module reads ``device`` from the argument."""
    images = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cpu_module = tiny_extractor()
    module = tiny_extractor().to(device)
    reference = extract_features(cpu_module, images, batch_size=3)
    for extractor, explicit in ((module, None), (module.forward, None), (lambda im: module(im), device)):
        feats = extract_features(extractor, images, batch_size=3, device=explicit)
        assert feats.device.type == device and torch.allclose(feats, reference.to(device), atol=1e-5)
        averaged = shift_averaged(extractor, 1, device=explicit)(images)
        assert averaged.device.type == device
        assert torch.allclose(averaged, shift_averaged(cpu_module, 1)(images).to(device), atol=1e-5)
        both = shift_averaged_features(extractor, images, (0, 1), device=explicit)
        assert all(t.device.type == device for t in both.values())
