"""The devices a machine offers, as plain data, and the choices among them that need no torch: which GPU
``auto`` takes, which GPUs can train. ``training/device.py`` detects them (with torch); the faces read them
here, so that a screen that shows devices never imports torch (the setup screen gets them from its machine
worker, ``runs/machine.py``, as JSON: :func:`device_to_dict` / :func:`device_from_dict`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

FAKE_DEVICES_ENV = "OPTAI_FAKE_DEVICES"
"""A test hook (never set it outside tests): a JSON object ``{"devices": [...], "why_no_gpu": "...",
"cpu_flags": [...]}``, each key optional, that ``training/device.py``'s ``detect_devices``, ``why_no_gpu`` and
``cpu_flags`` answer instead of probing, in any process (the CLI's, the setup screen's machine worker), so that a
test can play a machine with other GPUs. A device is a DeviceInfo as a dict or just its spec (``"cuda:0"``).
Training itself (``resolve_device``) still probes."""


def faked() -> dict[str, Any]:
    """What :data:`FAKE_DEVICES_ENV` fakes ({} when unset or not a JSON object)."""
    spec = os.environ.get(FAKE_DEVICES_ENV)
    if not spec:
        return {}
    try:
        fake = json.loads(spec)
    except ValueError:
        return {}
    return fake if isinstance(fake, dict) else {}


def fake_device_list(items: Sequence[Any]) -> list[DeviceInfo]:
    return [device_from_dict(d) if isinstance(d, dict) else DeviceInfo(str(d), f"test device {d}") for d in items]


@dataclass(frozen=True)
class DeviceInfo:
    spec: str  # cuda:0, mps, cpu (CUDA's numbering: what train.device names)
    name: str
    total_mb: float | None = None
    free_mb: float | None = None
    uuid: str | None = None
    smi_index: int | None = None  # nvidia-smi's number for the same GPU (may differ from CUDA's)
    capability: tuple[int, int] | None = None
    usable: bool = True  # False: this torch build has no kernels for the GPU's architecture


def device_to_dict(d: DeviceInfo) -> dict[str, Any]:
    return asdict(d)


def device_from_dict(d: dict[str, Any]) -> DeviceInfo:
    cap = d.get("capability")
    return DeviceInfo(**{**d, "capability": tuple(cap) if cap is not None else None})


def _info(d) -> DeviceInfo:
    return d if isinstance(d, DeviceInfo) else DeviceInfo(str(d), str(d))


def usable_gpus(devices: Sequence[DeviceInfo | str]) -> list[DeviceInfo]:
    """The CUDA devices of ``devices`` this torch build can train on."""
    return [d for d in map(_info, devices) if d.spec.startswith("cuda:") and d.spec[5:].isdigit() and d.usable]


def usable_cuda_indices(devices: Sequence[DeviceInfo | str]) -> list[int]:
    """The CUDA numbers (``cuda:N``) of the usable GPUs among ``devices``, in order."""
    return sorted(int(d.spec[5:]) for d in usable_gpus(devices))


def best_gpu(devices: Sequence[DeviceInfo | str]) -> str | None:
    """The usable CUDA device with the most free memory (the lowest number among equals; unknown memory
    counts as none free), or None."""
    gpus = usable_gpus(devices)
    if not gpus:
        return None
    return max(gpus, key=lambda d: (d.free_mb if d.free_mb is not None else -1.0, -int(d.spec[5:]))).spec


def device_spec(spec: str, present: Sequence[DeviceInfo | str]) -> str:
    """The device a configured value names among ``present`` (auto: the GPU with the most free memory,
    then MPS, then the CPU; cuda: that GPU); it may be one that is not present."""
    spec = spec.strip().lower()
    infos = [_info(d) for d in present]
    if spec in ("auto", "cuda"):
        gpu = best_gpu(infos)
        if gpu is not None:
            return gpu
        if spec == "cuda":
            return "cuda:0"
        usable = [d.spec for d in infos if d.usable]
        return usable[0] if usable else "cpu"
    return spec
