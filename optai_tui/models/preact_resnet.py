"""CIFAR-style pre-activation ResNet (He et al. 2016, "Identity Mappings in Deep Residual Networks").

Same stage layout as :mod:`.resnet`, but BatchNorm+ReLU come before each conv and projection
shortcuts are a bare 1x1 conv applied to the pre-activated input (as in kuangliu/pytorch-cifar,
whose layout, including no final BatchNorm before pooling, is reproduced at ``width=1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageClassifier, scaled
from .registry import register_resnet_depths
from .resnet import make_stages

# Smallest input that runs forward (measured, train and eval mode): every downsampling conv is
# padded, so even a 1x1 image goes through (stages 2-4 then see 1x1 maps). Training mode needs a
# batch of at least 2 at that size, as BatchNorm needs more than one value per channel.
MIN_IMAGE_SIZE = 1


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = _projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + identity


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.shortcut = _projection(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + identity


class PreActResNet(ImageClassifier):
    def __init__(
        self,
        block: type[PreActBlock] | type[PreActBottleneck],
        num_blocks: list[int],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ):
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(in_channels, stem, 3, stride=1, padding=1, bias=False)
        stages, in_planes = make_stages(block, num_blocks, stem, width)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.num_classes = num_classes
        self.classifier = nn.Linear(in_planes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(self.pool(out), 1)


_CONFIGS = {
    "preact_resnet18": (PreActBlock, [2, 2, 2, 2]),
    "preact_resnet34": (PreActBlock, [3, 4, 6, 3]),
    "preact_resnet50": (PreActBottleneck, [3, 4, 6, 3]),
    "preact_resnet101": (PreActBottleneck, [3, 4, 23, 3]),
    "preact_resnet152": (PreActBottleneck, [3, 8, 36, 3]),
}


register_resnet_depths(_CONFIGS, PreActResNet, family="preact_resnet", basic_block=PreActBlock, label="CIFAR pre-activation ResNet", min_image_size=MIN_IMAGE_SIZE)
