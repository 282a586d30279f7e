"""MNIST, KMNIST and Fashion-MNIST from their canonical IDX files, without torchvision.

Files are looked for in torchvision's on-disk layout, ``<root>/<Name>/raw/{train,t10k}-{images-idx3,
labels-idx1}-ubyte.gz``, in the roots given to :func:`load` (``roots=``), by default
:func:`hw5.locations.default_data_roots`:

* source checkout: the repository's ``data/``, then ``../shared/data`` beside the repository
  (read-only: never written to);
* installed package: ``<user cache>/data`` (``~/.cache/hw5/data`` on Linux).

If no root holds a dataset it is downloaded from its canonical mirrors into ``<cache_dir>/<Name>/raw``
(MD5-checked, atomic rename); ``cache_dir`` defaults to :func:`hw5.locations.default_cache_dir`, the
first root above. Every raw file's MD5 (the ones torchvision lists) is checked before first use and its
IDX header is parsed and validated; the decoded arrays are cached as ``.npy`` in
``<cache_dir>/cache/<Name>/`` so that a second load of a 60k split takes milliseconds. Each cached
array's file name carries the MD5 of the raw file it was decoded from, and only an array whose MD5 is
the published one for that dataset, split and kind is served: a cache copied under another dataset's
name is never mistaken for it. No environment variable is read here (see :mod:`hw5.settings`).
"""

from __future__ import annotations

import gzip
import hashlib
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import locations
from ..files import atomic_write, atomic_write_bytes
from ..utils import get_device


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class DatasetInfo:
    """What identifies one dataset: its folder name, class names, files with MD5s, and mirrors."""

    name: str
    class_names: tuple[str, ...]
    md5: dict[str, str]  # raw file name -> MD5 (torchvision's list)
    mirrors: tuple[str, ...]


def _files(md5s: Sequence[str]) -> dict[str, str]:
    names = [f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
    return dict(zip(names, md5s))


DATASETS: dict[str, DatasetInfo] = {
    "MNIST": DatasetInfo(
        "MNIST",
        tuple(str(d) for d in range(10)),
        _files(["f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"]),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    ),
    "KMNIST": DatasetInfo(
        "KMNIST",
        # Kuzushiji-MNIST's ten hiragana, romanised (matplotlib's default fonts have no kana glyphs).
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        _files(["bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"]),
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    ),
    "FashionMNIST": DatasetInfo(
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"),
        _files(["8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"]),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
}

SPLIT_SIZES = {"train": 60_000, "test": 10_000}
_RAW_PREFIX = {"train": "train", "test": "t10k"}
_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # ubyte data, 3 and 1 dimensions


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; a clear ``ValueError`` for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def class_names(name: str) -> tuple[str, ...]:
    """The ten class names of dataset ``name``, in label order."""
    return dataset_info(name).class_names


def default_roots() -> list[Path]:
    """Where raw files are looked for when ``roots`` is not given: :func:`hw5.locations.default_data_roots`."""
    return locations.default_data_roots()


def default_cache_dir() -> Path:
    """Folder for downloads and decoded arrays when ``cache_dir`` is not given:
    :func:`hw5.locations.default_cache_dir`."""
    return locations.default_cache_dir()


def _cache_root(cache_dir: Path | None) -> Path:
    """The cache folder in use: ``cache_dir`` when given, else :func:`default_cache_dir`."""
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def md5sum(path: Path) -> str:
    """Hex MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str, download_dir: Path | None = None) -> None:
    """Raise :class:`DataError` naming ``path`` if its MD5 is not ``expected``.

    ``download_dir`` is where a fresh copy would be downloaded to (``<cache_dir>/<Name>/raw``); the
    message names it so the user knows where the replacement will appear.
    """
    actual = md5sum(path)
    if actual != expected:
        where = f"into {download_dir}" if download_dir is not None else "into the data cache folder"
        raise DataError(
            f"{path}: MD5 {actual} does not match the published {expected}; the file is corrupt or "
            f"truncated. Delete it (the next load then downloads a fresh copy {where}, unless "
            "another data root holds the files) or replace it with the original file."
        )


def read_idx(path: Path, kind: str, count: int) -> np.ndarray:
    """Decode a gzipped IDX file of ``kind`` ``"images"`` (count x 28 x 28) or ``"labels"`` (count).

    IDX layout: a big-endian uint32 magic ``0x0000TTNN`` (TT = 0x08 for unsigned bytes, NN = number of
    dimensions), NN big-endian uint32 sizes, then the data in C order. Raises :class:`DataError` naming
    the file when the magic number, the sizes or the data length are wrong.
    """
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = 3 if kind == "images" else 1
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[kind]:
        raise DataError(f"{path}: IDX magic number {magic:#010x}, expected {_IDX_MAGIC[kind]:#010x} for {kind}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected_dims = (count, 28, 28) if kind == "images" else (count,)
    if dims != expected_dims:
        raise DataError(f"{path}: IDX dimensions {dims}, expected {expected_dims}")
    payload = len(raw) - header_len
    if payload != int(np.prod(dims)):
        raise DataError(f"{path}: {payload} data bytes after the header, expected {int(np.prod(dims))}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def _raw_dir(root: Path, name: str) -> Path:
    return root / name / "raw"


def _holds(root: Path, info: DatasetInfo) -> bool:
    return all((_raw_dir(root, info.name) / f).is_file() for f in info.md5)


def _download_file(urls: Sequence[str], dest: Path, md5: str, timeout: float) -> None:
    """Fetch ``dest`` from the first mirror that answers with the right MD5; atomic rename."""
    errors = []
    for base in urls:
        url = base + dest.name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                payload = resp.read()  # at most 26 MB; checked before anything is written
        except Exception as exc:  # any failure: try the next mirror, report all of them
            errors.append(f"{url}: {exc}")
            continue
        actual = hashlib.md5(payload).hexdigest()
        if actual == md5:
            atomic_write_bytes(dest, payload)
            return
        errors.append(f"{url}: MD5 {actual} does not match the published {md5}")
    raise DataError("\n    ".join([f"could not download {dest.name}:"] + errors))


def download(name: str, cache_dir: Path | None = None, timeout: float = 30.0) -> Path:
    """Download dataset ``name`` into ``<cache_dir>/<Name>/raw`` (MD5-checked); returns the root."""
    info = dataset_info(name)
    root = _cache_root(cache_dir)
    _raw_dir(root, name).mkdir(parents=True, exist_ok=True)
    for fname, md5 in info.md5.items():
        dest = _raw_dir(root, name) / fname
        if not dest.is_file():
            _download_file(info.mirrors, dest, md5, timeout)
    return root


def locate(name: str, roots: Sequence[Path] | None = None, cache_dir: Path | None = None,
           allow_download: bool = True) -> Path:
    """The first root that holds all four raw files of ``name``, downloading them if none does.

    Raises :class:`DataError` listing every place looked and the fix when the files are nowhere and
    the download fails (e.g. offline).
    """
    info = dataset_info(name)
    roots = list(roots) if roots is not None else default_roots()
    for root in roots:
        if _holds(root, info):
            return root
    reason = "downloading is disabled"
    if allow_download:
        try:
            return download(name, cache_dir)
        except (DataError, OSError) as exc:
            reason = f"the download failed: {exc}"
    looked = "\n".join(f"  - {_raw_dir(r, name)}" for r in roots)
    raise DataError(
        f"{name} raw files ({', '.join(info.md5)}) were not found in:\n{looked}\nand {reason}.\n"
        f"Fix: put the four .gz files in one of those folders (or point HW5_DATA at a folder holding "
        f"{name}/raw/), or connect to the internet so hw5 can download them from {info.mirrors[0]} "
        f"into {_raw_dir(_cache_root(cache_dir), name)}."
    )


_KINDS = (("images", "images-idx3"), ("labels", "labels-idx1"))


def _cached_array_path(cache_root: Path, name: str, split: str, kind: str, md5: str) -> Path:
    """``<cache_root>/cache/<Name>/<split>-<kind>.<md5>.npy``: the MD5 of the raw file the array was
    decoded from is part of the name, so a cache is only ever served for the file it came from."""
    return cache_root / "cache" / name / f"{split}-{kind}.{md5}.npy"


def _read_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The uint8 array of ``shape`` stored at ``path``, or ``None`` when it is absent or damaged."""
    try:
        array = np.load(path)  # allow_pickle=False: a tampered cache cannot run code
    except (OSError, ValueError, EOFError):
        return None
    return array if array.shape == shape and array.dtype == np.uint8 else None


def _remove_superseded(path: Path, split: str, kind: str) -> None:
    """Delete the other cached arrays of this split and kind (other MD5s, or the MD5-less names of
    older hw5 versions): they can never be served again and only take space."""
    for other in path.parent.glob(f"{split}-{kind}*.npy"):
        if other != path:
            try:
                other.unlink()
            except OSError:
                pass  # a read-only or concurrently cleaned cache: harmless, it is never served


def _load_arrays(name: str, split: str, roots: Sequence[Path] | None, cache_dir: Path | None,
                 allow_download: bool) -> tuple[np.ndarray, np.ndarray]:
    """The decoded (images, labels) of ``split``: from the cache when it holds arrays decoded from the
    published files, else decoded from the MD5-verified raw files and cached."""
    info = dataset_info(name)
    count = SPLIT_SIZES[split]
    shapes = {"images": (count, 28, 28), "labels": (count,)}
    raw_names = {kind: f"{_RAW_PREFIX[split]}-{stem}-ubyte.gz" for kind, stem in _KINDS}
    cache_root = _cache_root(cache_dir)
    paths = {kind: _cached_array_path(cache_root, name, split, kind, info.md5[raw_names[kind]])
             for kind, _ in _KINDS}
    # A hit costs one np.load per array: the .gz is not re-hashed, the MD5 in the name vouches for it.
    arrays = {kind: _read_cached(paths[kind], shapes[kind]) for kind, _ in _KINDS}
    missing = [kind for kind, array in arrays.items() if array is None]
    if missing:
        root = locate(name, roots, cache_dir, allow_download)
        for kind in missing:
            raw = _raw_dir(root, name) / raw_names[kind]
            verify_md5(raw, info.md5[raw.name], download_dir=_raw_dir(cache_root, name))
            arrays[kind] = read_idx(raw, kind, count)
            atomic_write(paths[kind], lambda fh, a=arrays[kind]: np.save(fh, a))
            _remove_superseded(paths[kind], split, kind)
    return arrays["images"], arrays["labels"]


def load(name: str, split: str = "train", device: str | torch.device | None = "cpu", *,
         roots: Sequence[Path] | None = None, cache_dir: Path | None = None,
         allow_download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8, N x 28 x 28) and labels (int64, N) of ``split`` (``"train"``/``"test"``).

    ``device=None`` picks :func:`hw5.utils.get_device`. ``roots`` and ``cache_dir`` override where raw
    files are looked for and where the decoded cache (and downloads) go.
    """
    dataset_info(name)
    if split not in SPLIT_SIZES:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    images, labels = _load_arrays(name, split, roots, cache_dir, allow_download)
    dev = get_device(device)
    return torch.from_numpy(images).to(dev), torch.from_numpy(labels).long().to(dev)
