"""Model registry: ``register_model`` / ``list_models`` / ``get_model_info`` / ``create_model``.

Builders have the signature ``fn(num_classes=10, in_channels=3, width=1.0) -> nn.Module`` and return
an :class:`~optai_tui.models.base.ImageClassifier`. The shipped family modules register themselves the
first time the registry is asked about models; a shipped name must be registered with exactly the facts
the torch-free catalogue (``catalog.py``) holds for it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from torch import nn

from optai_tui.errors import ConfigError, UnknownNameError

from .catalog import ARCHITECTURES, FAMILIES, KINDS, ModelInfo

Builder = Callable[..., nn.Module]

FAMILY_MODULES = ("resnet", "preact_resnet", "densenet", "vgg", "torchvision_models")
"""The modules that register the shipped architectures (imported on the registry's first use)."""

_INFOS: dict[str, ModelInfo] = {}
_BUILDERS: dict[str, Builder] = {}
_shipped_loaded = False


def _load_shipped() -> None:
    """Import the family modules once, which registers every shipped architecture."""
    global _shipped_loaded
    if not _shipped_loaded:
        _shipped_loaded = True  # first: a family module may use the registry while it is imported
        for module in FAMILY_MODULES:
            importlib.import_module(f"{__package__}.{module}")


def _check_catalogued(info: ModelInfo) -> None:
    """A shipped name must be registered with the catalogue's facts (the schema validates with those)."""
    known = ARCHITECTURES.get(info.name)
    if known is None or known == info:
        return
    diff = "; ".join(
        f"{f.name} {getattr(info, f.name)!r} here, {getattr(known, f.name)!r} there"
        for f in fields(ModelInfo)
        if getattr(info, f.name) != getattr(known, f.name)
    )
    raise ValueError(f"model {info.name!r} disagrees with models/catalog.py: {diff}")


def register_model(
    name: str,
    *,
    family: str,
    kind: str,
    min_image_size: int,
    default_image_size: int,
    pretrained: str | None = None,
    description: str = "",
) -> Callable[[Builder], Builder]:
    """Decorator registering ``fn(num_classes=10, in_channels=3, width=1.0)`` under ``name``."""
    if name in _INFOS:
        raise ValueError(f"model {name!r} is already registered")
    if name != name.lower() or not name:
        raise ValueError(f"model names are lowercase and non-empty, got {name!r}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(KINDS)}")
    if min_image_size < 1 or default_image_size < min_image_size:
        raise ValueError(
            f"need 1 <= min_image_size <= default_image_size, got {min_image_size}, {default_image_size}"
        )
    if pretrained is not None and kind != "imagenet":
        raise ValueError("only imagenet-kind models can name pretrained weights")
    info = ModelInfo(name, family, kind, min_image_size, default_image_size, pretrained, description)
    _check_catalogued(info)

    def decorator(fn: Builder) -> Builder:
        if name in _INFOS:  # re-checked: the decorator may be applied later than it was created
            raise ValueError(f"model {name!r} is already registered")
        _INFOS[name] = info
        _BUILDERS[name] = fn
        return fn

    return decorator


def list_models(family: str | None = None, kind: str | None = None) -> list[str]:
    """Registered names, sorted, optionally filtered by family and/or kind."""
    _load_shipped()
    return sorted(
        name
        for name, info in _INFOS.items()
        if (family is None or info.family == family) and (kind is None or info.kind == kind)
    )


def _lookup(name: str) -> ModelInfo:
    _load_shipped()
    try:
        return _INFOS[name]
    except KeyError:
        raise UnknownNameError("architecture", name, list_models(), field="model.arch") from None


def get_model_info(name: str) -> ModelInfo:
    return _lookup(name)


def create_model(name: str, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> nn.Module:
    """Build a freshly initialised model (never downloads weights)."""
    info = _lookup(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ConfigError(f"width must be a positive number, got {width!r}", field="model.width")
    model = _BUILDERS[name](num_classes=num_classes, in_channels=in_channels, width=float(width))
    model.arch = info.name
    return model


# torchvision spelling
get_model = create_model


def _unregister(name: str) -> None:
    """Remove a registration (for tests only)."""
    _INFOS.pop(name, None)
    _BUILDERS.pop(name, None)


def register_resnet_depths(
    configs: dict[str, tuple[type, list[int]]],
    model_cls: Callable[..., Any],
    *,
    family: str,
    basic_block: type,
    label: str,
    min_image_size: int,
) -> None:
    """Register one CIFAR model per depth of a ResNet-like family.

    ``configs`` maps a name to (block class, blocks per stage); the model is built as
    ``model_cls(block, num_blocks, num_classes, in_channels, width)``.
    """

    def make(block: type, num_blocks: list[int]) -> Callable[..., Any]:
        def build(num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
            return model_cls(block, num_blocks, num_classes, in_channels, width)

        return build

    for name, (block, num_blocks) in configs.items():
        build = make(block, num_blocks)
        build.__name__ = build.__qualname__ = name
        kind = "basic" if block is basic_block else "bottleneck"
        register_model(
            name,
            family=family,
            kind="cifar",
            min_image_size=min_image_size,
            default_image_size=32,
            description=f"{label}, {kind} blocks {num_blocks}",
        )(build)
