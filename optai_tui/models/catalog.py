"""What every shipped architecture is, without torch: name, family, kind, image sizes, ImageNet weights.

The config schema reads these facts to validate a config without importing torch. The family modules
(``resnet.py``, ``vgg.py``, ...) state the same facts when they register their builders, next to the code
that makes them true (a minimum image size is measured there); ``register_model`` refuses a registration
that disagrees with this table, and a test checks that every registered model is here, so the two
cannot drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from optai_tui.errors import UnknownNameError

FAMILIES: dict[str, str] = {
    "resnet": (
        "ResNet: 3x3 conv stem, then residual basic blocks (two 3x3 convs; depths 18/34) or bottleneck "
        "blocks (1x1-3x3-1x1 convs, 4x expansion; depths 50/101/152) in 4 stages of 64/128/256/512 "
        "channels, spatial size halved at stages 2-4; BatchNorm after each conv, identity or 1x1-conv "
        "projection shortcuts; global average pool and one linear classifier."
    ),
    "preact_resnet": (
        "Pre-activation ResNet: the ResNet layout (basic blocks for 18/34, bottlenecks for 50/101/152, "
        "4 stages of 64/128/256/512 channels) with BatchNorm+ReLU placed before each conv, so the "
        "shortcut path is a clean identity (1x1 conv projection without BatchNorm where shapes change); "
        "global average pool and one linear classifier."
    ),
    "densenet": (
        "DenseNet: 4 dense blocks in which every layer (BN-ReLU-1x1 conv to 4k channels, BN-ReLU-3x3 "
        "conv to k channels, k = growth rate) receives the concatenated outputs of all earlier layers; "
        "transition layers (BN-ReLU-1x1 conv halving channels, 2x2 average pool) between blocks. "
        "Depth 121/169/201 with growth 32, 161 with growth 48; densenet_cifar is the 121 layout with "
        "growth 12."
    ),
    "vgg": (
        "VGG: plain stacks of 3x3 conv-BatchNorm-ReLU layers (8/10/13/16 convs for VGG11/13/16/19) in "
        "5 stages of 64/128/256/512/512 channels, each closed by a 2x2 max pool; no shortcuts; global "
        "average pool and one linear classifier (the ImageNet variants keep a 4096-4096 MLP)."
    ),
}
KINDS: dict[str, str] = {
    "cifar": "CIFAR-style: 3x3 stem without early downsampling, for small (32x32) images",
    "imagenet": "torchvision ImageNet architecture (aggressive stem), optionally with pretrained weights",
}


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about an architecture (everything but its builder)."""

    name: str
    family: str
    kind: str
    min_image_size: int
    default_image_size: int
    pretrained: str | None = None
    """torchvision's weights enum name (``ResNet18_Weights.IMAGENET1K_V1``); None: no ImageNet weights."""
    description: str = ""

    @property
    def has_pretrained(self) -> bool:
        return self.pretrained is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cifar_resnets(family: str, label: str, depths: dict[str, tuple[str, list[int]]]) -> list[ModelInfo]:
    return [
        ModelInfo(name, family, "cifar", 1, 32, None, f"{label}, {block} blocks {blocks}")
        for name, (block, blocks) in depths.items()
    ]


def _densenet(name: str, blocks: list[int], growth: int) -> ModelInfo:
    return ModelInfo(name, "densenet", "cifar", 8, 32, None, f"CIFAR DenseNet-BC, dense blocks {blocks}, growth rate {growth}")


def _vgg(name: str, convs: int) -> ModelInfo:
    return ModelInfo(name, "vgg", "cifar", 32, 32, None, f"CIFAR VGG with BatchNorm, {convs} conv layers, 5 max pools")


def _torchvision(name: str, family: str, min_image_size: int, weights: str) -> ModelInfo:
    arch = name.removeprefix("tv_")
    return ModelInfo(
        name, family, "imagenet", min_image_size, 224, weights, f"torchvision {arch} (ImageNet layout), new linear head"
    )


_RESNET_DEPTHS = {
    "18": ("basic", [2, 2, 2, 2]),
    "34": ("basic", [3, 4, 6, 3]),
    "50": ("bottleneck", [3, 4, 6, 3]),
    "101": ("bottleneck", [3, 4, 23, 3]),
    "152": ("bottleneck", [3, 8, 36, 3]),
}

ARCHITECTURES: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        *_cifar_resnets("resnet", "CIFAR ResNet", {f"resnet{d}": v for d, v in _RESNET_DEPTHS.items()}),
        *_cifar_resnets(
            "preact_resnet", "CIFAR pre-activation ResNet", {f"preact_resnet{d}": v for d, v in _RESNET_DEPTHS.items()}
        ),
        _densenet("densenet121", [6, 12, 24, 16], 32),
        _densenet("densenet169", [6, 12, 32, 32], 32),
        _densenet("densenet201", [6, 12, 48, 32], 32),
        _densenet("densenet161", [6, 12, 36, 24], 48),
        _densenet("densenet_cifar", [6, 12, 24, 16], 12),
        _vgg("vgg11", 8),
        _vgg("vgg13", 10),
        _vgg("vgg16", 13),
        _vgg("vgg19", 16),
        _torchvision("tv_resnet18", "resnet", 1, "ResNet18_Weights.IMAGENET1K_V1"),
        _torchvision("tv_resnet34", "resnet", 1, "ResNet34_Weights.IMAGENET1K_V1"),
        _torchvision("tv_resnet50", "resnet", 1, "ResNet50_Weights.IMAGENET1K_V2"),
        _torchvision("tv_densenet121", "densenet", 32, "DenseNet121_Weights.IMAGENET1K_V1"),
        _torchvision("tv_vgg11_bn", "vgg", 32, "VGG11_BN_Weights.IMAGENET1K_V1"),
        _torchvision("tv_vgg16_bn", "vgg", 32, "VGG16_BN_Weights.IMAGENET1K_V1"),
    )
}
"""Every shipped architecture, by name."""


def architecture_names(family: str | None = None, kind: str | None = None) -> list[str]:
    """The shipped architectures' names, sorted, optionally filtered by family and/or kind."""
    return sorted(
        name
        for name, info in ARCHITECTURES.items()
        if (family is None or info.family == family) and (kind is None or info.kind == kind)
    )


def architecture_info(name: str) -> ModelInfo:
    """The facts about ``name``; an unknown name is answered with the close matches (field model.arch)."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownNameError("architecture", name, ARCHITECTURES, field="model.arch") from None


def imagenet_pretrained() -> list[str]:
    """The architectures with published ImageNet weights, sorted."""
    return [name for name in architecture_names(kind="imagenet") if ARCHITECTURES[name].pretrained]
