"""``load_arrays``: any supported dataset, decoded once into uint8 tensors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import torch

from optai_tui.data.imagefolder import load_imagefolder
from optai_tui.data.registry import DATASET_MEAN_STD, dataset_info, default_data_root
from optai_tui.data.shapes import (
    SHAPE_CLASSES,
    SHAPES_TEST_SEED,
    SHAPES_TEST_SIZE,
    SHAPES_TRAIN_SEED,
    SHAPES_TRAIN_SIZE,
    make_shapes,
)
from optai_tui.data.splits import ArraySplits, channel_stats, hold_out, resize_uint8, take_subset
from optai_tui.data.torchvision_sets import load_torchvision
from optai_tui.errors import ConfigError


@functools.lru_cache(maxsize=4)
def _shapes_cached(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return make_shapes(n, seed)


def _shapes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The built-in images, generated once per process (copies, so callers may modify them)."""
    x, y = _shapes_cached(n, seed)
    return x.clone(), y.clone()


def load_arrays(
    dataset: str,
    *,
    root: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    download: bool = True,
    subset: int | None = None,
    val_split: float = 0.0,
    seed: int = 0,
    image_size: int | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ArraySplits:
    """Decode ``dataset`` into uint8 NCHW tensors on the CPU.

    - ``root``: where the standard datasets live (default :func:`default_data_root`); ``path``: the
      folder of an ``imagefolder`` dataset.
    - ``subset``: keep that many training images, drawn with ``seed``.
    - ``val_split``: hold that fraction of the (subset) training images out as validation (stratified:
      every class in proportion), instead of the test split (``val_name == "split"``); an image folder
      then needs no val/ folder (one that is there is not read).
    - ``image_size``: resize once here (antialiased) when it differs from the native size; an image
      folder's images are decoded at that size, keeping their aspect ratio (then centre-cropped).
    - ``cancel``: polled while an image folder is decoded; once true, ``LoadCancelled`` is raised.

    The built-in ``shapes`` dataset is always the same 5,000 / 1,000 images: ``seed`` picks the subset
    and the split, never the images, so runs with different seeds are compared on the same data.
    """
    info = dataset_info(dataset)
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be positive, got {image_size}", field="data.image_size")
    if val_split and not 0.0 < val_split < 1.0:
        raise ConfigError(f"val_split must be between 0 and 1 (exclusive), got {val_split}", field="data.val_split")
    if subset is not None and subset < 1:
        raise ConfigError(f"subset must be at least 1, got {subset}", field="data.subset")
    if dataset == "shapes":
        train_x, train_y = _shapes(SHAPES_TRAIN_SIZE, SHAPES_TRAIN_SEED)
        val_x, val_y = _shapes(SHAPES_TEST_SIZE, SHAPES_TEST_SEED)
        classes, val_name = list(SHAPE_CLASSES), "test"
    elif dataset == "imagefolder":
        train_x, train_y, val_x, val_y, classes, folder_val = load_imagefolder(path, image_size, val_split=val_split,
                                                                               cancel=cancel)
        val_name = folder_val or "split"
    else:
        data_root = Path(root).expanduser() if root else default_data_root()
        train_x, train_y, val_x, val_y, classes = load_torchvision(dataset, data_root, download)
        val_name = "test"

    train_x, train_y = take_subset(train_x, train_y, subset, seed)
    if val_split:
        train_x, train_y, val_x, val_y = hold_out(train_x, train_y, val_split, seed)
        val_name = "split"
    if image_size is not None:
        train_x = resize_uint8(train_x, image_size)
        val_x = resize_uint8(val_x, image_size)

    if dataset in DATASET_MEAN_STD:
        mean, std = DATASET_MEAN_STD[dataset]
    else:
        mean, std = channel_stats(train_x)
    return ArraySplits(
        train_x=train_x,
        train_y=train_y.to(torch.int64),
        val_x=val_x,
        val_y=val_y.to(torch.int64),
        classes=classes,
        in_channels=int(train_x.shape[1]) if train_x.dim() == 4 else info.in_channels,
        mean=tuple(mean),
        std=tuple(std),
        val_name=val_name,
    )
