"""Model registry and architectures.

The catalogue of facts (``ARCHITECTURES``, ``FAMILIES``, ``KINDS``, ``ModelInfo``, ``architecture_info``)
imports without torch, for the config schema. Everything else (``create_model``, ``list_models``,
``get_model_info``, ``register_model``, ``ImageClassifier``, ...) is loaded on first use, which imports
torch and registers every shipped model.
"""

from importlib import import_module

from .catalog import ARCHITECTURES, FAMILIES, KINDS, ModelInfo, architecture_info, architecture_names

_LAZY = {
    "ImageClassifier": "base",
    "scaled": "base",
    "create_model": "registry",
    "get_model": "registry",
    "get_model_info": "registry",
    "list_models": "registry",
    "register_model": "registry",
}

__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "KINDS",
    "ImageClassifier",
    "ModelInfo",
    "architecture_info",
    "architecture_names",
    "create_model",
    "get_model",
    "get_model_info",
    "list_models",
    "register_model",
    "scaled",
]


def __getattr__(name: str):
    """The torch side, on first use: registers the shipped models, then gives ``name``."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import_module(f"{__name__}.registry")._load_shipped()
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
