"""Model registry and architectures. Importing this package registers every model."""

from . import densenet, preact_resnet, resnet, torchvision_models, vgg  # noqa: F401  (registers)
from .base import ImageClassifier, scaled
from .registry import (
    FAMILIES,
    KINDS,
    ModelInfo,
    create_model,
    get_model,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "FAMILIES",
    "KINDS",
    "ImageClassifier",
    "ModelInfo",
    "create_model",
    "get_model",
    "get_model_info",
    "list_models",
    "register_model",
    "scaled",
]
