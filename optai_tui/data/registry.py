"""What the datasets are: names, shapes, normalisation statistics, where their files live."""

from __future__ import annotations

import os
from dataclasses import dataclass

from optai_tui.errors import UnknownNameError
from optai_tui.locations import default_data_root  # noqa: F401 - data/ reads it from here

Stats = tuple[tuple[float, ...], tuple[float, ...]]

IMAGENET_MEAN_STD: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""Statistics that torchvision's pretrained backbones were trained with."""

DATASET_MEAN_STD: dict[str, Stats] = {
    # kuangliu/pytorch-cifar values (the std is the per-image std, as that repository uses it)
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    # measured on the built-in dataset's 5,000 training images
    "shapes": ((0.4922, 0.5057, 0.4979), (0.2855, 0.2860, 0.2881)),
}


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset, shown in the form and used to build models."""

    name: str
    num_classes: int | None
    """None when discovered from the files (imagefolder)."""
    in_channels: int
    image_size: int | None
    """Native side length in pixels; None when it depends on the files."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str
    downloadable: bool


def _info(name: str, num_classes: int | None, in_channels: int, image_size: int | None,
          description: str, downloadable: bool) -> DatasetInfo:
    mean, std = DATASET_MEAN_STD.get(name, IMAGENET_MEAN_STD)
    return DatasetInfo(name, num_classes, in_channels, image_size, mean, std, description, downloadable)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _info("shapes", 10, 3, 32,
              "built in, offline: 10 shape classes, 32x32, 5,000 train / 1,000 test", False),
        _info("cifar10", 10, 3, 32, "CIFAR-10: 50,000 train / 10,000 test, 32x32 RGB, 10 classes", True),
        _info("cifar100", 100, 3, 32, "CIFAR-100: 50,000 train / 10,000 test, 32x32 RGB, 100 classes", True),
        _info("mnist", 10, 1, 28, "MNIST digits: 60,000 train / 10,000 test, 28x28 grayscale", True),
        _info("fashion_mnist", 10, 1, 28,
              "Fashion-MNIST clothes: 28x28 grey, 60,000 train / 10,000 test", True),
        _info("svhn", 10, 3, 32,
              "SVHN house numbers: 73,257 train / 26,032 test, 32x32 RGB (needs scipy)", True),
        _info("imagefolder", None, 3, None,
              "your own images: PATH/train/CLASS/*.jpg|png, PATH/val/ or test/", False),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """The facts about ``name``; an unknown name is answered with the close matches."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownNameError("dataset", name, DATASETS, field="data.dataset") from None




def dataset_label(dataset: str, path: str | os.PathLike | None = None) -> str:
    """The name runs show for their dataset: the dataset's, and for an image folder the folder's own name
    (``~/data/flowers`` -> ``flowers``; ``cifar10 (folder)`` where a folder's name is a dataset's)."""
    if dataset != "imagefolder" or not path:
        return dataset
    p = os.path.abspath(os.path.expanduser(os.fspath(path)))
    name = os.path.basename(p.rstrip(os.sep)) or p
    return f"{name} (folder)" if name in DATASETS else name
