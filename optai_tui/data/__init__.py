"""Datasets (the standard ones through torchvision, your own image folders, and the built-in offline
``shapes``) decoded once into uint8 tensors, and the loaders that feed them to a model.

The facts about the datasets (``DATASETS``, ``dataset_info``, the normalisation statistics) import without
torch, for the config schema; the loaders and arrays are loaded on first use.
"""

from importlib import import_module

from optai_tui.data.registry import (
    DATASET_MEAN_STD,
    DATASETS,
    IMAGENET_MEAN_STD,
    DatasetInfo,
    dataset_info,
    dataset_label,
    default_data_root,
)

_LAZY = {
    "load_arrays": "arrays",
    "load_imagefolder": "imagefolder",
    "load_rgb": "imagefolder",
    "build_loaders": "loaders",
    "choose_loader": "loaders",
    "SHAPE_CLASSES": "shapes",
    "make_shapes": "shapes",
    "ArraySplits": "splits",
    "StreamLoader": "stream_loader",
    "TensorLoader": "tensor_loader",
    "crop_flip": "tensor_loader",
}

__all__ = [
    "DATASETS",
    "DATASET_MEAN_STD",
    "IMAGENET_MEAN_STD",
    "SHAPE_CLASSES",
    "ArraySplits",
    "DatasetInfo",
    "StreamLoader",
    "TensorLoader",
    "build_loaders",
    "choose_loader",
    "crop_flip",
    "dataset_info",
    "dataset_label",
    "default_data_root",
    "load_arrays",
    "load_imagefolder",
    "load_rgb",
    "make_shapes",
]


def __getattr__(name: str):
    """The torch side, on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
