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

The training loops never use a ``DataLoader``: a whole split lives on the device as one tensor and
:func:`minibatches` slices it with a shuffled index, one ``randperm`` per epoch.
"""

from __future__ import annotations

import gzip
import hashlib
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import locations
from .files import atomic_write, atomic_write_bytes
from .utils import get_device


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


IMAGE_SHAPES = ("(N, 28, 28)", "(N, 1, 28, 28)", "(N, 784)")


def to_unit(images: torch.Tensor, device: str | torch.device | None = None, *, name: str = "images"
            ) -> torch.Tensor:
    """Images as float32 (N, 1, 28, 28) in [0, 1] on ``device`` (default: where they are), checked.

    Accepted: uint8 pixels 0..255 (as :func:`load` returns them; divided by 255) or floating-point pixels
    already in [0, 1] (kept), shaped (N, 28, 28), (N, 1, 28, 28) or (N, 784). Anything else raises a
    ``TypeError``/``ValueError`` that names ``name``, what is wrong and the fix: an empty set, another
    shape, another dtype, or floats outside [0, 1] (e.g. uint8 pixels already cast to float, or [-1, 1]
    data). This is the one place hw5 turns user images into model inputs; the range check costs one
    device synchronisation per call, at the boundary, never inside a training step.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}; "
                        "convert with torch.as_tensor(...)")
    shape = tuple(images.shape)
    if images.ndim == 2 and shape[1] == 784:
        images = images.view(-1, 1, 28, 28)  # (N, 784) -> (N, 1, 28, 28)
    elif images.ndim == 3 and shape[1:] == (28, 28):
        images = images.unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
    elif not (images.ndim == 4 and shape[1:] == (1, 28, 28)):
        raise ValueError(f"{name} has shape {shape}; hw5's models read 28x28 grey images shaped "
                         f"{', '.join(IMAGE_SHAPES)}: crop or resize them to 28x28 first")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {shape}); pass at least one image")
    if device is not None:
        images = images.to(device)
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        raise TypeError(f"{name} has dtype {images.dtype}; pass uint8 pixels (0..255, as hw5.data.load "
                        "returns them) or floating-point pixels in [0, 1]")
    low, high = (float(v) for v in torch.aminmax(images.detach().float()))
    if not (0.0 <= low and high <= 1.0):  # also false for NaN
        raise ValueError(f"{name} are floats in [{low:g}, {high:g}], not in [0, 1]; pass uint8 pixels "
                         "(0..255) as they are, or floats scaled to [0, 1] (divide 0..255 values by 255, "
                         "map [-1, 1] data with (x + 1) / 2)")
    return images.float()


def to_signed(images: torch.Tensor, device: str | torch.device | None = None, *, name: str = "images"
              ) -> torch.Tensor:
    """Images as float32 (N, 1, 28, 28) in [-1, 1] (the GAN's tanh range): 2 :func:`to_unit` - 1."""
    return to_unit(images, device, name=name).mul_(2.0).sub_(1.0)


def to_labels(labels: torch.Tensor, n: int, num_classes: int, device: str | torch.device | None = None, *,
              name: str = "labels") -> torch.Tensor:
    """Class labels as int64 (n,) in [0, num_classes) on ``device`` (default: where they are), checked.

    The one place hw5 turns user labels into targets: a tensor of integer classes, one per image; anything
    else (floats, bools, another length, a class out of range) raises a ``ValueError`` that names ``name``.
    """
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.dtype.is_floating_point \
            or labels.dtype.is_complex or labels.dtype == torch.bool:
        got = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be integer class labels of shape ({n},), got {got}")
    labels = labels if device is None else labels.to(device)
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1} (the {num_classes} classes), got "
                         f"{int(labels.min())}..{int(labels.max())}")
    return labels.long()


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many mini-batches :func:`minibatches` yields for ``n`` items."""
    return n // batch_size if drop_last else -(-n // batch_size)


def minibatches(*tensors: torch.Tensor, batch_size: int, shuffle: bool = True,
                generator: torch.Generator | None = None, drop_last: bool = False,
                ) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of mini-batches of device-resident tensors that share their first dimension.

    The order is one ``torch.randperm`` drawn on the CPU from ``generator`` (so the same seed gives the
    same batches on every device), moved to the data's device once; each batch is an index-select.
    Yields tuples, one slice per tensor.
    """
    if not tensors:
        raise ValueError("minibatches needs at least one tensor")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
    device = tensors[0].device
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield tuple(t.index_select(0, idx) for t in tensors)


def _shuffled_classes(labels: torch.Tensor, minimum: int, name: str, seed: int) -> Iterator[torch.Tensor]:
    """The indices of each class's items in a seeded random order, class by class (CPU tensors); a class
    with fewer than ``minimum`` items raises, naming the argument ``name`` that asked for them."""
    gen = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        if members.numel() < minimum:
            raise ValueError(f"class {c} has {members.numel()} items, fewer than {name}={minimum}")
        yield members[torch.randperm(members.numel(), generator=gen)]


def stratified_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``per_class`` items of every class, drawn without replacement (seeded).

    Problem 1.2's "10% of the training set" is ``stratified_subset(train_labels, 600, seed)``.
    """
    picked = [members[:per_class] for members in _shuffled_classes(labels, per_class, "per_class", seed)]
    return torch.cat(picked).sort().values


def stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """Fold index in [0, folds) of every item, balanced per class (seeded): item i is validated in fold
    ``fold[i]`` and fitted in the others, so k-fold cross-validation scores every item exactly once."""
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    fold = torch.empty(labels.numel(), dtype=torch.long)
    for members in _shuffled_classes(labels, folds, "folds", seed):
        fold[members] = torch.arange(members.numel()) % folds
    return fold


def train_val_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint sorted index sets (train, validation) covering ``range(n)``; round(n * f) for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Every image of ``x`` (B, C, H, W) moved down by ``dy`` and right by ``dx`` pixels (zero fill)."""
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a translation by ({dy}, {dx}) leaves nothing of a {h}x{w} image")
    padded = F.pad(x, (abs(dx), abs(dx), abs(dy), abs(dy)))  # (B, C, H, W) -> (B, C, H+2|dy|, W+2|dx|)
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top:top + h, left:left + w]  # (B, C, H, W)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by integers in [-max_shift, max_shift] (zero fill), one offset per image."""
    if max_shift == 0:
        return x
    b = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4)  # (B, 1, 28, 28) -> (B, 1, 28+2s, 28+2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).to(x.device)
    h, w = x.shape[-2:]
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))  # (B, 28)
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))  # (B, 28)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[:, 0][batch, rows[:, :, None], cols[:, None, :]].unsqueeze(1)  # (B, 1, 28, 28)


def random_affine(x: torch.Tensor, max_degrees: float = 10.0, max_scale: float = 0.1, max_shift: float = 2.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly rotate (+-max_degrees), scale (1 +- max_scale) and translate (+-max_shift pixels) each image.

    ``x`` is (B, 1, H, W) with background 0 (use images in [0, 1]; for [-1, 1] data shift first). One
    affine map per image, bilinear resampling (``affine_grid`` + ``grid_sample``), zeros outside.
    """
    b, _, h, w = x.shape
    u = torch.rand(4, b, generator=generator, dtype=torch.float64).to(x.device, x.dtype) * 2 - 1  # U(-1, 1)
    angle = u[0] * max_degrees * torch.pi / 180
    scale = 1 + u[1] * max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, u[2] * 2 * max_shift / w], 1),
                         torch.stack([sin, cos, u[3] * 2 * max_shift / h], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2) sampling positions
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
