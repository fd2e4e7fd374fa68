"""CIFAR-style ResNet (He et al. 2015), layout as in the widely used kuangliu/pytorch-cifar models.

3x3 stem (no early downsampling), 4 stages, adaptive global average pooling, any ``num_classes`` /
``in_channels``, and a ``width`` multiplier on every channel count (``width=1`` is the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageClassifier, scaled
from .registry import register_resnet_depths

STAGE_PLANES = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


def make_stages(block, num_blocks: list[int], in_planes: int, width: float) -> tuple[list[nn.Sequential], int]:
    """The four residual stages (64/128/256/512 planes x width, strides 1/2/2/2) of a CIFAR ResNet-like
    network; returns them and the number of output channels."""
    stages = []
    for planes, stride, n in zip(STAGE_PLANES, STAGE_STRIDES, num_blocks):
        planes = scaled(planes, width)
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(block(in_planes, planes, s))
            in_planes = planes * block.expansion
        stages.append(nn.Sequential(*blocks))
    return stages, in_planes
# Smallest input that runs forward (measured, train and eval mode): every downsampling conv is
# padded, so even a 1x1 image goes through (stages 2-4 then see 1x1 maps). Training mode needs a
# batch of at least 2 at that size, as BatchNorm needs more than one value per channel.
MIN_IMAGE_SIZE = 1


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(ImageClassifier):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: list[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ):
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        stages, in_planes = make_stages(block, num_blocks, stem, width)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.num_classes = num_classes
        self.classifier = nn.Linear(in_planes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(self.pool(out), 1)


_CONFIGS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


register_resnet_depths(_CONFIGS, ResNet, family="resnet", basic_block=BasicBlock, label="CIFAR ResNet", min_image_size=MIN_IMAGE_SIZE)
