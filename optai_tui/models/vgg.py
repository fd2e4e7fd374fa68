"""CIFAR-style VGG with BatchNorm (Simonyan & Zisserman 2014), layout as in kuangliu/pytorch-cifar.

3x3 conv (with bias) - BN - ReLU stacks, five 2x2 max pools, global average pooling (an identity at
32x32, where the map is already 1x1) and a single linear classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ImageClassifier, scaled
from .registry import register_model

# Five 2x2 max pools: 32 -> 1. At 16 the fifth pool would see a 1x1 map and fail.
MIN_IMAGE_SIZE = 32

M = "M"
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
    "vgg13": [64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
    "vgg16": [64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M],
    "vgg19": [64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M],
}


class VGG(ImageClassifier):
    def __init__(self, cfg: list[int | str], num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == M:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = scaled(int(item), width)
                layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.num_classes = num_classes
        self.classifier = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


def _register(name: str, cfg: list[int | str]) -> None:
    convs = sum(1 for item in cfg if item != M)

    @register_model(
        name,
        family="vgg",
        kind="cifar",
        min_image_size=MIN_IMAGE_SIZE,
        default_image_size=32,
        description=f"CIFAR VGG with BatchNorm, {convs} conv layers, 5 max pools",
    )
    def build(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
        return VGG(cfg, num_classes, in_channels, width)

    build.__name__ = build.__qualname__ = name


for _name, _cfg in CONFIGS.items():
    _register(_name, _cfg)
