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
GPU_FREE_FRACTION = 0.5


def choose_loader(nbytes: int, device: str | torch.device, memory_budget_bytes: int | None = None) -> str:
    """"tensor" when ``nbytes`` of uint8 images fit the budget (GPU: half the free memory, CPU: 4 GiB),
    else "stream"."""
    dev = torch.device(device)
    if memory_budget_bytes is not None:
        budget = memory_budget_bytes
    elif dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        budget = int(GPU_FREE_FRACTION * free)
    else:
        budget = CPU_TENSOR_BUDGET_BYTES
    return "tensor" if nbytes <= budget else "stream"


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
) -> tuple[TensorLoader | StreamLoader, TensorLoader | StreamLoader]:
    """(train_loader, val_loader) over ``splits``.

    ``mean``/``std`` override the dataset's statistics (pass ``IMAGENET_MEAN_STD`` for pretrained
    backbones); ``augment=False`` still shuffles but neither crops nor flips.
    """
    if loader not in ("auto", "tensor", "stream"):
        raise ConfigError(f"unknown loader {loader!r}", hint="choose auto, tensor or stream", field="data.loader")
    kind = choose_loader(splits.nbytes, device, memory_budget_bytes) if loader == "auto" else loader
    mean = tuple(mean) if mean is not None else splits.mean
    std = tuple(std) if std is not None else splits.std
    common = dict(device=device, mean=mean, std=std, resize_to=resize_to, channels_last=channels_last, dtype=dtype,
                  seed=seed)
    train_aug = dict(crop_padding=crop_padding if augment else 0, flip=flip and augment,
                     translate=translate if augment else None)
    eval_bs = eval_batch_size or batch_size
    if kind == "tensor":
        train = TensorLoader(splits.train_x, splits.train_y, batch_size=batch_size, train=True, drop_last=drop_last,
                             **train_aug, **common)
        val = TensorLoader(splits.val_x, splits.val_y, batch_size=eval_bs, train=False, **common)
    else:
        train = StreamLoader(splits.train_x, splits.train_y, batch_size=batch_size, train=True, drop_last=drop_last,
                             workers=workers, **train_aug, **common)
        val = StreamLoader(splits.val_x, splits.val_y, batch_size=eval_bs, train=False, workers=workers, **common)
    return train, val
