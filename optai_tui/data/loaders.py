"""``build_loaders``: the train and validation loaders for decoded splits, fast path when it fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from optai_tui.data.splits import ArraySplits
from optai_tui.data.stream_loader import StreamLoader
from optai_tui.data.tensor_loader import TensorLoader
from optai_tui.errors import ConfigError

LoaderKind = Literal["auto", "tensor", "stream"]
CPU_TENSOR_BUDGET_BYTES = 4 * 1024**3
GPU_FREE_FRACTION = 0.5  # an explicit budget's old meaning, kept for choose_loader without a model
GPU_USABLE_FRACTION = 0.8  # of the free GPU memory, for the data and the model's training memory together
PINNED_HOST_FRACTION = 0.5  # of the available host memory, for data staged in pinned memory


def host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def plan_storage(nbytes: int, device_type: str, *, free_bytes: int | None = None, model_bytes: int = 0,
                 host_bytes: int | None = None) -> str:
    """Where ``nbytes`` of uint8 images go: "device", "pinned" or "host" (the tensor loader), or "stream"
    (the PIL streaming loader). Pure: the caller passes the free GPU memory, the model's estimated
    training memory and the available host memory.

    On a GPU the data and the model must fit together in GPU_USABLE_FRACTION of the free memory (the rest
    is for cuDNN workspaces and fragmentation); data that does not, but fits PINNED_HOST_FRACTION of the
    available host memory, is gathered in pinned host memory and copied a batch at a time; only data too
    big for both is streamed. On the CPU the tensor loader takes up to CPU_TENSOR_BUDGET_BYTES.
    """
    if device_type == "cuda":
        if free_bytes is not None and nbytes + model_bytes <= GPU_USABLE_FRACTION * free_bytes:
            return "device"
        if host_bytes is None or nbytes <= PINNED_HOST_FRACTION * host_bytes:
            return "pinned"
        return "stream"
    if device_type == "cpu":
        return "host" if nbytes <= CPU_TENSOR_BUDGET_BYTES else "stream"
    return "device"  # mps, xpu: unified or unknown memory, try the device


def choose_loader(nbytes: int, device: str | torch.device, memory_budget_bytes: int | None = None,
                  model_bytes: int = 0) -> str:
    """"tensor" or "stream" for ``nbytes`` of uint8 images (see ``choose_storage``)."""
    return "stream" if choose_storage(nbytes, device, memory_budget_bytes, model_bytes) == "stream" else "tensor"


def choose_storage(nbytes: int, device: str | torch.device, memory_budget_bytes: int | None = None,
                   model_bytes: int = 0) -> str:
    """plan_storage with this machine's free memory; an explicit ``memory_budget_bytes`` is the whole
    budget for the data (tensor within it, stream beyond)."""
    dev = torch.device(device)
    if memory_budget_bytes is not None:
        if nbytes > memory_budget_bytes:
            return "stream"
        return "host" if dev.type == "cpu" else "device"
    free = None
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
    return plan_storage(nbytes, dev.type, free_bytes=free, model_bytes=model_bytes,
                        host_bytes=host_available_bytes() if dev.type == "cuda" else None)


def build_loaders(
    splits: ArraySplits,
    *,
    batch_size: int,
    device: str | torch.device,
    seed: int,
    augment: bool = True,
    crop_padding: int = 4,
    flip: bool = True,
    translate: int | None = None,
    resize_to: int | Sequence[int] | None = None,
    channels_last: bool = False,
    loader: LoaderKind = "auto",
    workers: int = 2,
    memory_budget_bytes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    eval_batch_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    drop_last: bool = False,
    model_bytes: int = 0,
) -> tuple[TensorLoader | StreamLoader, TensorLoader | StreamLoader]:
    """(train_loader, val_loader) over ``splits``.

    ``mean``/``std`` override the dataset's statistics (pass ``IMAGENET_MEAN_STD`` for pretrained
    backbones); ``augment=False`` still shuffles but neither crops nor flips. ``model_bytes``: the model's
    estimated training memory, which shares the GPU with the data (see ``plan_storage``).
    """
    if loader not in ("auto", "tensor", "stream"):
        raise ConfigError(f"unknown loader {loader!r}", hint="choose auto, tensor or stream", field="data.loader")
    storage = choose_storage(splits.nbytes, device, memory_budget_bytes, model_bytes) if loader == "auto" else None
    kind = loader if loader != "auto" else ("stream" if storage == "stream" else "tensor")
    mean = tuple(mean) if mean is not None else splits.mean
    std = tuple(std) if std is not None else splits.std
    placed = dict(storage=storage) if storage not in (None, "stream") else {}
    common = dict(device=device, mean=mean, std=std, resize_to=resize_to, channels_last=channels_last, dtype=dtype,
                  seed=seed)
    train_aug = dict(crop_padding=crop_padding if augment else 0, flip=flip and augment,
                     translate=translate if augment else None)
    eval_bs = eval_batch_size or batch_size
    if kind == "tensor":
        train = TensorLoader(splits.train_x, splits.train_y, batch_size=batch_size, train=True, drop_last=drop_last,
                             **train_aug, **common, **placed)
        val = TensorLoader(splits.val_x, splits.val_y, batch_size=eval_bs, train=False, **common, **placed)
    else:
        train = StreamLoader(splits.train_x, splits.train_y, batch_size=batch_size, train=True, drop_last=drop_last,
                             workers=workers, **train_aug, **common)
        val = StreamLoader(splits.val_x, splits.val_y, batch_size=eval_bs, train=False, workers=workers, **common)
    return train, val
