"""CIFAR-style DenseNet-BC (Huang et al. 2017), layout as in kuangliu/pytorch-cifar.

Stem: 3x3 conv to ``2 * growth`` channels; 4 dense blocks of bottleneck layers separated by
transitions (compression 0.5, 2x2 average pool); final BN-ReLU and adaptive average pooling.
``width`` scales the growth rate (``width=1`` is the reference).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageClassifier, scaled
from .registry import register_model

# Three 2x2 average pools: 8 -> 1. At 4 the last transition would pool a 1x1 map and fail.
MIN_IMAGE_SIZE = 8


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (4k) - BN-ReLU-3x3 conv (k); output concatenated in front of the input."""

    def __init__(self, in_planes: int, growth_rate: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], dim=1)


class Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(ImageClassifier):
    def __init__(
        self,
        num_blocks: list[int],
        growth_rate: int = 12,
        reduction: float = 0.5,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ):
        super().__init__()
        growth = scaled(growth_rate, width)
        self.growth_rate = growth
        planes = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        transitions: list[nn.Module] = []
        for i, n in enumerate(num_blocks):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(planes, growth))
                planes += growth
            blocks.append(nn.Sequential(*layers))
            if i < len(num_blocks) - 1:
                out_planes = max(1, int(math.floor(planes * reduction)))
                transitions.append(Transition(planes, out_planes))
                planes = out_planes
        self.dense1, self.dense2, self.dense3, self.dense4 = blocks
        self.trans1, self.trans2, self.trans3 = transitions
        self.bn = nn.BatchNorm2d(planes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = planes
        self.num_classes = num_classes
        self.classifier = nn.Linear(planes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = F.relu(self.bn(self.dense4(out)))
        return torch.flatten(self.pool(out), 1)


_CONFIGS = {
    "densenet121": ([6, 12, 24, 16], 32),
    "densenet169": ([6, 12, 32, 32], 32),
    "densenet201": ([6, 12, 48, 32], 32),
    "densenet161": ([6, 12, 36, 24], 48),
    "densenet_cifar": ([6, 12, 24, 16], 12),
}


def _register(name: str, num_blocks: list[int], growth: int) -> None:
    @register_model(
        name,
        family="densenet",
        kind="cifar",
        min_image_size=MIN_IMAGE_SIZE,
        default_image_size=32,
        description=f"CIFAR DenseNet-BC, dense blocks {num_blocks}, growth rate {growth}",
    )
    def build(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> DenseNet:
        return DenseNet(num_blocks, growth, 0.5, num_classes, in_channels, width)

    build.__name__ = build.__qualname__ = name


for _name, (_blocks, _growth) in _CONFIGS.items():
    _register(_name, _blocks, _growth)
