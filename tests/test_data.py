"""Datasets: real files, MD5 and IDX validation, root resolution, download, cache (bound to its source), batching,
splits, augmentations."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from hw5 import data, locations
from hw5.data import datasets, random_affine, random_shift, translate

SHARED = locations.PACKAGE_DIR.parent.parent / "shared" / "data"
MNIST_TEST_IMAGES_MD5 = data.DATASETS["MNIST"].md5["t10k-images-idx3-ubyte.gz"]


def _real_root() -> Path:
    """A root holding the canonical raw files (../shared/data, else wherever hw5 finds them)."""
    return data.locate("MNIST")


@pytest.mark.parametrize("name", ["MNIST", "KMNIST", "FashionMNIST"])
def test_real_files_shapes_and_label_counts(name):
    x, y = data.load(name, "train")
    xt, yt = data.load(name, "test")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8
    assert xt.shape == (10000, 28, 28) and y.dtype == yt.dtype == torch.int64
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert set(y.unique().tolist()) == set(range(10)) == set(yt.unique().tolist())
    if name != "MNIST":  # KMNIST and Fashion-MNIST are balanced; MNIST is not
        assert y.bincount().tolist() == [6000] * 10
        assert yt.bincount().tolist() == [1000] * 10
    assert len(data.class_names(name)) == 10
    assert int(x.max()) == 255 and int(x.min()) == 0


def test_unknown_dataset_and_split_are_rejected():
    with pytest.raises(ValueError, match="unknown dataset 'CIFAR'"):
        data.load("CIFAR")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        data.load("MNIST", "val")


@pytest.fixture()
def mnist_copy(tmp_path) -> Path:
    """A private copy of the MNIST raw files: ``<tmp>/root/MNIST/raw/*.gz``."""
    src = _real_root() / "MNIST" / "raw"
    dst = tmp_path / "root" / "MNIST" / "raw"
    dst.mkdir(parents=True)
    for f in src.glob("*.gz"):
        shutil.copy(f, dst / f.name)
    return tmp_path / "root"


def test_load_from_explicit_root_builds_cache_and_matches(mnist_copy, tmp_path):
    cache = tmp_path / "cache"
    x, y = data.load("MNIST", "test", roots=[mnist_copy], cache_dir=cache, allow_download=False)
    assert (cache / "cache" / "MNIST" / f"test-images.{MNIST_TEST_IMAGES_MD5}.npy").is_file()
    ref_x, ref_y = data.load("MNIST", "test")
    assert torch.equal(x, ref_x) and torch.equal(y, ref_y)
    shutil.rmtree(mnist_copy)  # the raw files are gone: the second load must come from the cache
    x2, y2 = data.load("MNIST", "test", roots=[mnist_copy], cache_dir=cache, allow_download=False)
    assert torch.equal(x2, x) and torch.equal(y2, y)


def test_damaged_cache_is_rebuilt(mnist_copy, tmp_path):
    cache = tmp_path / "cache"
    x, _ = data.load("MNIST", "test", roots=[mnist_copy], cache_dir=cache, allow_download=False)
    (cache / "cache" / "MNIST" / f"test-images.{MNIST_TEST_IMAGES_MD5}.npy").write_bytes(b"not an array")
    x2, _ = data.load("MNIST", "test", roots=[mnist_copy], cache_dir=cache, allow_download=False)
    assert torch.equal(x, x2)


def test_corrupted_file_fails_md5_with_clear_message(mnist_copy, tmp_path):
    bad = mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(bad.read_bytes())
    raw[100] ^= 0xFF  # one flipped byte, same length
    bad.write_bytes(bytes(raw))
    with pytest.raises(data.DataError) as err:
        data.load("MNIST", "test", roots=[mnist_copy], cache_dir=tmp_path / "cache", allow_download=False)
    msg = str(err.value)
    assert str(bad) in msg and "MD5" in msg and "ec29112dd5afa0611ce80d1b7f02629c" in msg
    assert "Delete it" in msg


def _write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    with gzip.open(path, "wb") as fh:
        fh.write(header + payload)


def test_read_idx_validates_magic_dims_and_length(tmp_path):
    good = tmp_path / "good.gz"
    labels = np.arange(10, dtype=np.uint8) % 10
    _write_idx(good, 0x801, (10,), labels.tobytes())
    assert np.array_equal(data.read_idx(good, "labels", 10), labels)

    wrong_magic = tmp_path / "magic.gz"
    _write_idx(wrong_magic, 0x803, (10,), labels.tobytes())
    with pytest.raises(data.DataError, match=r"magic.gz: IDX magic number 0x00000803, expected 0x00000801"):
        data.read_idx(wrong_magic, "labels", 10)

    wrong_dims = tmp_path / "dims.gz"
    _write_idx(wrong_dims, 0x803, (2, 28, 27), bytes(2 * 28 * 27))
    with pytest.raises(data.DataError, match=r"dims.gz: IDX dimensions \(2, 28, 27\), expected \(2, 28, 28\)"):
        data.read_idx(wrong_dims, "images", 2)

    truncated = tmp_path / "short.gz"
    _write_idx(truncated, 0x801, (10,), labels.tobytes()[:7])
    with pytest.raises(data.DataError, match=r"short.gz: 7 data bytes after the header, expected 10"):
        data.read_idx(truncated, "labels", 10)

    empty = tmp_path / "empty.gz"
    with gzip.open(empty, "wb") as fh:
        fh.write(b"\x00\x00")
    with pytest.raises(data.DataError, match="too short for an IDX header"):
        data.read_idx(empty, "labels", 10)


def _offline(monkeypatch) -> None:
    """Point every mirror at a closed local port: downloads fail at once, as offline."""
    info = data.DATASETS["MNIST"]
    monkeypatch.setitem(data.DATASETS, "MNIST", dataclasses.replace(info, mirrors=("http://127.0.0.1:9/",)))


def test_missing_dataset_offline_gives_one_clear_error(tmp_path, monkeypatch):
    _offline(monkeypatch)
    roots = [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(data.DataError) as err:
        data.load("MNIST", "train", roots=roots, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    for root in roots:
        assert str(root / "MNIST" / "raw") in msg
    assert "the download failed" in msg and "127.0.0.1:9" in msg and "Fix:" in msg and "HW5_DATA" in msg
    assert not list((tmp_path / "cache").rglob("*.gz")), "a failed download must leave no file behind"

    with pytest.raises(data.DataError, match="downloading is disabled"):
        data.load("MNIST", "train", roots=roots, cache_dir=tmp_path / "cache", allow_download=False)


def test_defaults_come_from_locations_not_the_environment(mnist_copy, tmp_path, monkeypatch):
    """hw5.settings alone reads HW5_DATA / HW5_CACHE and passes roots in; data's defaults ignore them."""
    monkeypatch.setenv("HW5_DATA", str(mnist_copy))
    monkeypatch.setenv("HW5_CACHE", str(tmp_path / "elsewhere"))
    assert data.default_roots() == locations.default_data_roots()
    assert mnist_copy not in data.default_roots()
    assert data.default_cache_dir() == locations.default_cache_dir()
    assert data.locate("MNIST", roots=[mnist_copy], allow_download=False) == mnist_copy


def test_download_from_a_mirror_verifies_and_renames(mnist_copy, tmp_path, monkeypatch):
    """Serve the real files over local HTTP: hw5 downloads them into the cache and loads them."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mnist_copy / "MNIST" / "raw"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = data.DATASETS["MNIST"]
        mirrors = ("http://127.0.0.1:9/", f"http://127.0.0.1:{server.server_address[1]}/")  # first one fails
        monkeypatch.setitem(data.DATASETS, "MNIST", dataclasses.replace(info, mirrors=mirrors))
        cache = tmp_path / "dl"
        x, y = data.load("MNIST", "test", roots=[tmp_path / "nowhere"], cache_dir=cache)
    finally:
        server.shutdown()
    assert sorted(p.name for p in (cache / "MNIST" / "raw").iterdir()) == sorted(info.md5)
    assert x.shape == (10000, 28, 28) and torch.equal(y, data.load("MNIST", "test")[1])


def test_download_with_wrong_checksum_is_refused(mnist_copy, tmp_path, monkeypatch):
    raw = mnist_copy / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(raw))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = data.DATASETS["MNIST"]
        mirror = (f"http://127.0.0.1:{server.server_address[1]}/",)
        monkeypatch.setitem(data.DATASETS, "MNIST", dataclasses.replace(info, mirrors=mirror))
        with pytest.raises(data.DataError, match="does not match the published ec29112d"):
            data.download("MNIST", tmp_path / "dl")
    finally:
        server.shutdown()
    assert not (tmp_path / "dl" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()


def test_shared_data_is_never_written(tmp_path):
    if not SHARED.is_dir():
        pytest.skip("no ../shared/data beside the repository")
    before = {p: p.stat().st_mtime_ns for p in SHARED.rglob("*")}
    data.load("KMNIST", "test", cache_dir=tmp_path)  # a fresh cache: the raw files are read again
    assert {p: p.stat().st_mtime_ns for p in SHARED.rglob("*")} == before


def test_scaling_helpers():
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    x[0, 0, :4] = torch.tensor([0, 255, 51, 102], dtype=torch.uint8)
    unit, signed = data.to_unit(x), data.to_signed(x)
    assert unit.shape == signed.shape == (1, 1, 28, 28) and unit.dtype == torch.float32
    assert torch.allclose(unit[0, 0, 0, :4], torch.tensor([0.0, 1.0, 0.2, 0.4]))
    assert torch.allclose(signed[0, 0, 0, :4], torch.tensor([-1.0, 1.0, -0.6, -0.2]))
    for shape in ((1, 1, 28, 28), (1, 784)):  # every accepted layout gives the same images
        assert torch.equal(data.to_unit(x.reshape(shape)), unit)
    assert torch.equal(data.to_unit(unit), unit), "floats already in [0, 1] are kept, not divided again"


@pytest.mark.parametrize("images, error, message", [
    (torch.arange(2 * 784.0).view(2, 28, 28) / 7, ValueError, r"images are floats in \[0, 223.857\], not in \[0, 1\]"),
    (torch.full((2, 28, 28), -1.0), ValueError, "map \\[-1, 1\\] data with \\(x \\+ 1\\) / 2"),
    (torch.full((2, 28, 28), float("nan")), ValueError, "not in \\[0, 1\\]"),
    (torch.zeros(2, 32, 32, dtype=torch.uint8), ValueError, r"shape \(2, 32, 32\).*crop or resize them to 28x28"),
    (torch.zeros(0, 28, 28, dtype=torch.uint8), ValueError, "images is empty"),
    (torch.zeros(2, 28, 28, dtype=torch.int64), TypeError, "dtype torch.int64; pass uint8 pixels"),
    (np.zeros((2, 28, 28), dtype=np.uint8), TypeError, "must be a torch.Tensor"),
])
def test_bad_images_are_refused_with_the_fix(images, error, message):
    with pytest.raises(error, match=message):
        data.to_unit(images)


def test_minibatches_visit_every_index_once_and_are_seeded():
    idx = torch.arange(1003)
    other = idx * 10

    def epoch(seed):
        return list(data.minibatches(idx, other, batch_size=100, generator=torch.Generator().manual_seed(seed)))

    batches = epoch(0)
    assert len(batches) == data.num_batches(1003, 100) == 11
    assert [len(b[0]) for b in batches] == [100] * 10 + [3]
    seen = torch.cat([b[0] for b in batches])
    assert torch.equal(seen.sort().values, idx), "every index exactly once"
    assert not torch.equal(seen, idx), "shuffled"
    assert all(torch.equal(b[1], b[0] * 10) for b in batches), "tensors stay aligned"
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, epoch(0))), "same seed, same batches"
    assert not torch.equal(torch.cat([b[0] for b in epoch(1)]), seen), "another seed, another order"

    dropped = list(data.minibatches(idx, batch_size=100, drop_last=True, generator=torch.Generator().manual_seed(0)))
    assert len(dropped) == data.num_batches(1003, 100, drop_last=True) == 10
    ordered = torch.cat([b[0] for b in data.minibatches(idx, batch_size=7, shuffle=False)])
    assert torch.equal(ordered, idx)


def test_minibatches_reject_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        next(data.minibatches(torch.zeros(5), torch.zeros(6), batch_size=2))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(data.minibatches(torch.zeros(5), batch_size=0))


def test_stratified_subset_counts_and_seed():
    _, y = data.load("MNIST", "train")
    sub = data.stratified_subset(y, 600, seed=0)
    assert sub.numel() == 6000 and sub.unique().numel() == 6000
    assert torch.equal(sub, sub.sort().values)
    assert y[sub].bincount().tolist() == [600] * 10
    assert torch.equal(sub, data.stratified_subset(y, 600, seed=0))
    assert not torch.equal(sub, data.stratified_subset(y, 600, seed=1))
    with pytest.raises(ValueError, match="class 0 has 5923 items, fewer than per_class=6000"):
        data.stratified_subset(y, 6000, seed=0)


def test_train_val_split_sizes_disjoint_and_seeded():
    train, val = data.train_val_split(60000, 0.2, seed=0)
    assert train.numel() == 48000 and val.numel() == 12000
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(60000))
    assert torch.equal(val, data.train_val_split(60000, 0.2, seed=0)[1])
    assert not torch.equal(val, data.train_val_split(60000, 0.2, seed=1)[1])
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        data.train_val_split(10, 1.0, seed=0)


# ---------------------------------------------------------------- the dataset cache is bound to its source

@pytest.fixture()
def real_roots() -> list[Path]:
    try:
        return [data.locate("MNIST", allow_download=False), data.locate("KMNIST", allow_download=False)]
    except data.DataError:
        pytest.skip("the raw MNIST/KMNIST files are not available offline")


def test_a_kmnist_cache_copied_under_the_mnist_name_is_not_served(real_roots, tmp_path):
    cache = tmp_path / "cache"
    kx, ky = data.load("KMNIST", "test", roots=real_roots, cache_dir=cache, allow_download=False)
    kdir, mdir = cache / "cache" / "KMNIST", cache / "cache" / "MNIST"
    shutil.copytree(kdir, mdir)  # the whole folder, as a careless copy would
    for kind in ("images", "labels"):  # and under the MD5-less names older hw5 versions used
        np.save(mdir / f"test-{kind}.npy", np.load(next(kdir.glob(f"test-{kind}.*.npy"))))

    x, y = data.load("MNIST", "test", roots=real_roots, cache_dir=cache, allow_download=False)
    raw = real_roots[0] / "MNIST" / "raw"
    assert torch.equal(x, torch.from_numpy(data.read_idx(raw / "t10k-images-idx3-ubyte.gz", "images", 10_000)))
    assert torch.equal(y, torch.from_numpy(data.read_idx(raw / "t10k-labels-idx1-ubyte.gz", "labels", 10_000)).long())
    assert not torch.equal(x, kx)
    md5 = data.DATASETS["MNIST"].md5
    assert sorted(p.name for p in mdir.iterdir()) == sorted([
        f"test-images.{md5['t10k-images-idx3-ubyte.gz']}.npy", f"test-labels.{md5['t10k-labels-idx1-ubyte.gz']}.npy"])


def test_a_cache_hit_does_not_rehash_the_raw_files(real_roots, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    x, y = data.load("MNIST", "test", roots=real_roots, cache_dir=cache, allow_download=False)

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed on a cache hit")

    monkeypatch.setattr(datasets, "md5sum", no_hashing)  # where verify_md5 looks it up
    x2, y2 = data.load("MNIST", "test", roots=[tmp_path / "no-raw-files"], cache_dir=cache, allow_download=False)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_md5_error_names_the_cache_dir_a_fresh_copy_goes_to(real_roots, tmp_path):
    copy = tmp_path / "root" / "MNIST" / "raw"
    shutil.copytree(real_roots[0] / "MNIST" / "raw", copy)
    bad = copy / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated
    cache = tmp_path / "my-cache"
    with pytest.raises(data.DataError) as err:
        data.load("MNIST", "test", roots=[tmp_path / "root"], cache_dir=cache, allow_download=False)
    msg = str(err.value)
    assert str(bad) in msg and "does not match the published" in msg
    assert f"Delete it (the next load then downloads a fresh copy into {cache / 'MNIST' / 'raw'}" in msg
    assert "into data/" not in msg


def test_translate_matches_pixel_by_pixel_indexing():
    x = torch.rand(3, 2, 9, 7, generator=torch.Generator().manual_seed(0))
    for dy, dx in [(0, 0), (1, 0), (-2, 3), (4, -1), (-8, -6)]:
        expected = torch.zeros_like(x)
        for i in range(9):
            for j in range(7):
                if 0 <= i - dy < 9 and 0 <= j - dx < 7:  # output pixel (i, j) shows input pixel (i - dy, j - dx)
                    expected[..., i, j] = x[..., i - dy, j - dx]
        assert torch.equal(translate(x, dy, dx), expected)
    with pytest.raises(ValueError, match=r"a translation by \(9, 0\) leaves nothing of a 9x7 image"):
        translate(x, 9, 0)


def test_random_shift_moves_content_without_changing_it():
    x = torch.zeros(4, 1, 28, 28)
    x[:, 0, 10:14, 12:16] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert not torch.equal(shifted, x)
    assert torch.equal(random_shift(x, 0), x)


def test_random_affine_is_identity_at_zero_and_moves_mass_only_slightly():
    x = torch.zeros(8, 1, 28, 28)
    x[:, 0, 9:19, 11:17] = 1.0
    same = random_affine(x, 0.0, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-5)
    moved = random_affine(x, 10.0, 0.1, 2.0, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and not torch.allclose(moved[0], moved[1])
    ratio = moved.sum((1, 2, 3)) / x.sum((1, 2, 3))  # area scales by 1 / s^2 with s in [0.9, 1.1]
    assert ((ratio > 0.8) & (ratio < 1.25)).all()
