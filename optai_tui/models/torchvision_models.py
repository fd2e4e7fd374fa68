"""torchvision ImageNet architectures behind the common head API.

The torchvision model is kept whole as ``self.body`` with its final classifier layer replaced by
``Identity`` (for VGG only the last ``Linear`` of the MLP, the 4096-4096 part stays in the body), and a
new ``self.classifier = Linear(num_features, num_classes)`` is the head. Nothing here downloads
weights: :meth:`TorchvisionClassifier.load_body_state_dict` loads a state_dict the caller obtained.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from optai_tui.errors import CheckpointError, ConfigError

from .base import ImageClassifier
from .registry import get_model_info, register_model


@dataclass(frozen=True)
class _Spec:
    arch: str  # torchvision.models builder name
    family: str
    weights: str  # weights enum string, e.g. "ResNet18_Weights.IMAGENET1K_V1"
    head_path: str  # dotted path (in the torchvision model) of the final Linear
    first_conv_path: str  # dotted path of the stem conv
    min_image_size: int


_SPECS: dict[str, _Spec] = {
    # min_image_size is measured: ResNet's downsampling (7x7 s2 conv, 3x3 s2 max pool, strided convs)
    # is all padded, so any size >= 1 runs; DenseNet's three unpadded 2x2 average pools after a /4
    # stem and VGG's five 2x2 max pools need 32.
    "tv_resnet18": _Spec("resnet18", "resnet", "ResNet18_Weights.IMAGENET1K_V1", "fc", "conv1", 1),
    "tv_resnet34": _Spec("resnet34", "resnet", "ResNet34_Weights.IMAGENET1K_V1", "fc", "conv1", 1),
    "tv_resnet50": _Spec("resnet50", "resnet", "ResNet50_Weights.IMAGENET1K_V2", "fc", "conv1", 1),
    "tv_densenet121": _Spec(
        "densenet121", "densenet", "DenseNet121_Weights.IMAGENET1K_V1", "classifier", "features.conv0", 32
    ),
    "tv_vgg11_bn": _Spec("vgg11_bn", "vgg", "VGG11_BN_Weights.IMAGENET1K_V1", "classifier.6", "features.0", 32),
    "tv_vgg16_bn": _Spec("vgg16_bn", "vgg", "VGG16_BN_Weights.IMAGENET1K_V1", "classifier.6", "features.0", 32),
}

# Old torchvision DenseNet checkpoints (the published .pth files) name layers "norm.1" instead of "norm1".
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _get_submodule_parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, attr = path.rpartition(".")
    return (root.get_submodule(parent_path) if parent_path else root), attr


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, attr = _get_submodule_parent(root, path)
    if attr.isdigit():
        parent[int(attr)] = module  # nn.Sequential
    else:
        setattr(parent, attr, module)


class BodyLoadResult(tuple):
    """``(missing_keys, unexpected_keys)`` like ``nn.Module.load_state_dict``, plus ``ignored_keys``.

    ``ignored_keys`` are the original ImageNet classifier's keys (e.g. ``fc.weight``), dropped on
    purpose; they are *not* repeated in ``unexpected_keys``, which lists only keys that matched nothing.
    """

    def __new__(cls, missing_keys: list[str], unexpected_keys: list[str], ignored_keys: list[str]):
        self = super().__new__(cls, (missing_keys, unexpected_keys))
        self.ignored_keys = ignored_keys
        return self

    @property
    def missing_keys(self) -> list[str]:
        return self[0]

    @property
    def unexpected_keys(self) -> list[str]:
        return self[1]


def adapt_input_conv_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Turn an RGB stem kernel ``[O, 3, k, k]`` into one for ``in_channels`` inputs.

    One channel: the sum over RGB (a grey image gives the same response as the RGB one). More
    channels: the RGB kernel tiled and rescaled by ``3 / in_channels`` so activations keep their scale.
    """
    src = weight.shape[1]
    if src == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_channels // src)
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (src / in_channels)


class TorchvisionClassifier(ImageClassifier):
    """A torchvision ImageNet model as ``body`` (features) + ``classifier`` (new Linear head)."""

    def __init__(self, name: str, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        spec = _SPECS[name]
        self.spec = spec
        self.in_channels = in_channels
        body = getattr(torchvision.models, spec.arch)(weights=None)
        old_head = body.get_submodule(spec.head_path)
        if not isinstance(old_head, nn.Linear):
            raise TypeError(f"{spec.arch}.{spec.head_path} is not a Linear layer")
        self.num_features = old_head.in_features
        self._ignored_keys = (f"{spec.head_path}.weight", f"{spec.head_path}.bias")
        _set_submodule(body, spec.head_path, nn.Identity())
        if in_channels != 3:
            conv = body.get_submodule(spec.first_conv_path)
            _set_submodule(
                body,
                spec.first_conv_path,
                nn.Conv2d(
                    in_channels,
                    conv.out_channels,
                    kernel_size=conv.kernel_size,
                    stride=conv.stride,
                    padding=conv.padding,
                    bias=conv.bias is not None,
                ),
            )
        self.body = body
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes)

    @property
    def pretrained(self) -> str:
        return self.spec.weights

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def load_body_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> BodyLoadResult:
        """Load a torchvision ImageNet state_dict (keys as torchvision saves them) into ``self.body``.

        The original final classifier keys are ignored, a ``module.`` prefix (DataParallel) is
        stripped, old DenseNet key names are mapped to the current ones, and the stem kernel is adapted
        when ``in_channels != 3``. Non-strict: returns ``(missing_keys, unexpected_keys)`` with the
        ignored classifier keys in ``.ignored_keys``. A tensor whose shape does not fit raises
        :class:`~optai_tui.errors.CheckpointError`.
        """
        sd: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            if key.startswith("module."):
                key = key[len("module.") :]
            if self.spec.family == "densenet":
                key = _DENSENET_OLD_KEY.sub(r"\1\2", key)
            sd[key] = value
        ignored = [k for k in sd if k in self._ignored_keys]
        for k in ignored:
            del sd[k]
        conv_key = f"{self.spec.first_conv_path}.weight"
        if conv_key in sd and sd[conv_key].dim() == 4 and sd[conv_key].shape[1] != self.in_channels:
            sd[conv_key] = adapt_input_conv_weight(sd[conv_key], self.in_channels)
        own = self.body.state_dict()
        wrong = [
            f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in sd.items()
            if k in own and tuple(v.shape) != tuple(own[k].shape)
        ]
        if wrong:
            raise CheckpointError(
                f"{len(wrong)} tensor(s) do not fit {self.spec.arch}: " + "; ".join(wrong[:3]),
                hint="the weights must come from the same torchvision architecture",
            )
        result = self.body.load_state_dict(sd, strict=False)
        return BodyLoadResult(list(result.missing_keys), list(result.unexpected_keys), ignored)


def pretrained_weights(name: str):
    """The torchvision weights enum member of a ``tv_`` model (resolving it downloads nothing)."""
    info = get_model_info(name)
    if info.pretrained is None:
        raise ConfigError(f"model {name!r} has no pretrained weights", field="model.arch")
    return torchvision.models.get_weight(info.pretrained)


def _register(name: str, spec: _Spec) -> Callable[..., TorchvisionClassifier]:
    @register_model(
        name,
        family=spec.family,
        kind="imagenet",
        min_image_size=spec.min_image_size,
        default_image_size=224,
        pretrained=spec.weights,
        description=f"torchvision {spec.arch} (ImageNet layout), new linear head",
    )
    def build(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> TorchvisionClassifier:
        if width != 1.0:
            raise ConfigError(
                f"{name} has a fixed width (pretrained weights only fit width 1.0), got {width}",
                hint="set model.width to 1.0 or choose a CIFAR architecture",
                field="model.width",
            )
        return TorchvisionClassifier(name, num_classes, in_channels)

    build.__name__ = build.__qualname__ = name
    return build


for _name, _spec in _SPECS.items():
    _register(_name, _spec)
