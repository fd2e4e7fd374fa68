"""Datasets (the standard ones through torchvision, your own image folders, and the built-in offline
``shapes``) decoded once into uint8 tensors, and the loaders that feed them to a model."""

from optai_tui.data.arrays import load_arrays
from optai_tui.data.imagefolder import load_imagefolder, load_rgb
from optai_tui.data.loaders import build_loaders, choose_loader
from optai_tui.data.registry import (
    DATASET_MEAN_STD,
    DATASETS,
    IMAGENET_MEAN_STD,
    DatasetInfo,
    dataset_info,
    default_data_root,
)
from optai_tui.data.shapes import SHAPE_CLASSES, make_shapes
from optai_tui.data.splits import ArraySplits
from optai_tui.data.stream_loader import StreamLoader
from optai_tui.data.tensor_loader import TensorLoader, crop_flip

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
    "default_data_root",
    "load_arrays",
    "load_imagefolder",
    "load_rgb",
    "make_shapes",
]
