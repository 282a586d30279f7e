"""The homework's data: MNIST, KMNIST and Fashion-MNIST read from their IDX files, checked model inputs,
mini-batches and splits, and augmentations. One import for all of it (``from hw5 import data``), split by
concern into:

* :mod:`hw5.data.datasets`  the dataset registry, finding, verifying, downloading, decoding and caching the
  raw files; :func:`load`;
* :mod:`hw5.data.convert`   user images and labels into model inputs (:func:`to_unit`, :func:`to_signed`,
  :func:`to_labels`);
* :mod:`hw5.data.batching`  :func:`minibatches` of device-resident tensors and seeded index splits;
* :mod:`hw5.data.augment`   translations and random affine maps of image batches.

Nothing here reads the environment (see :mod:`hw5.settings`).
"""

from .augment import random_affine, random_shift, translate
from .batching import minibatches, num_batches, stratified_folds, stratified_subset, train_val_split
from .convert import IMAGE_SHAPES, to_labels, to_signed, to_unit
from .datasets import (DATASETS, SPLIT_SIZES, DataError, DatasetInfo, class_names, dataset_info, default_cache_dir,
                       default_roots, download, load, locate, md5sum, read_idx, verify_md5)

__all__ = [
    "DATASETS", "IMAGE_SHAPES", "SPLIT_SIZES", "DataError", "DatasetInfo", "class_names", "dataset_info",
    "default_cache_dir", "default_roots", "download", "load", "locate", "md5sum", "minibatches", "num_batches",
    "random_affine", "random_shift", "read_idx", "stratified_folds", "stratified_subset", "to_labels", "to_signed",
    "to_unit", "train_val_split", "translate", "verify_md5",
]
