"""Self-describing checkpoints, written atomically and loaded with ``weights_only=True``.

A checkpoint holds the model name, the resolved config, the completed epoch, model/optimizer/schedule
state, the best metric and the per-epoch history, so it can be resumed or inspected on its own.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..fsio import atomic_write_bytes

FORMAT = "optai-tui/1"


def serialize_checkpoint(payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    return buf.getvalue()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(Path(path), serialize_checkpoint(payload))


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain containers only)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, not a torch file, pickle with arbitrary objects, ...
        text = str(e).strip()
        if "Weights only load failed" in text:
            # torch's message advises weights_only=False, which would run code from the file: never say that
            why = "it is corrupt, or holds Python objects beyond tensors (refused: loading them could run code)"
        else:
            first = text.splitlines()[0][:160] if text else type(e).__name__
            why = f"it is corrupt or not a PyTorch checkpoint ({first})"
        raise CheckpointError(f"cannot load {str(p)!r}: {why}") from None


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The model weights of any supported file: ours, a plain state_dict, or kuangliu's {'net': ...}.

    DataParallel's 'module.' and torch.compile's '_orig_mod.' key prefixes are removed.
    """
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        sd = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("net"), dict):
        sd = obj["net"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        sd = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        sd = obj["model"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj
    else:
        raise CheckpointError("file holds no model weights (expected a state_dict, {'net': ...} or an optai-tui checkpoint)")
    return {strip_wrapper_prefixes(k): v for k, v in sd.items()}


def strip_wrapper_prefixes(key: str) -> str:
    """A state_dict key without DataParallel's ``module.`` and torch.compile's ``_orig_mod.`` prefixes."""
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key
