"""The streaming path: a torch DataLoader with PIL transforms and worker processes.

For data that does not fit the tensor path's budget. Same interface as :class:`TensorLoader`. The
augmentation of sample ``i`` in epoch ``e`` is seeded from ``(seed, e, i)``, so an epoch replays
exactly whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from optai_tui.data.tensor_loader import Batch, EpochLoader, epoch_seed


class UInt8ImageDataset(Dataset):
    """uint8 NCHW tensors served as PIL images through ``transform`` (as torchvision's CIFAR10 does)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: Callable[[Image.Image], Any] | None = None,
                 seed: int | None = None) -> None:
        self.x = x
        self.y = y
        self.transform = transform
        self.seed = seed  # set per epoch; None: leave the random state alone

    def __len__(self) -> int:
        return len(self.x)

    def image(self, i: int) -> Image.Image:
        arr = self.x[i]
        if arr.shape[0] == 1:
            return Image.fromarray(arr[0].numpy())
        return Image.fromarray(arr.permute(1, 2, 0).contiguous().numpy())

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.image(i)
        if self.transform is not None:
            if self.seed is None:
                img = self.transform(img)
            elif get_worker_info() is not None:  # a worker process owns its random state
                torch.manual_seed(self.seed + int(i))
                img = self.transform(img)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed + int(i))
                    img = self.transform(img)
        return img, int(self.y[i])


def kuangliu_transforms(train: bool, mean: Sequence[float], std: Sequence[float], size: tuple[int, int],
                        crop_padding: int = 4, flip: bool = True, translate: int | None = None) -> Callable:
    """The PIL pipeline of kuangliu/pytorch-cifar: RandomCrop(32, padding=4), RandomHorizontalFlip,
    ToTensor, Normalize (``translate`` uses reflection padding instead)."""
    import torchvision.transforms as T

    steps: list[Any] = []
    if train:
        if translate:
            steps.append(T.RandomCrop(size, padding=int(translate), padding_mode="reflect"))
        elif crop_padding:
            steps.append(T.RandomCrop(size, padding=int(crop_padding)))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(tuple(mean), tuple(std))]
    return T.Compose(steps)


class StreamLoader(EpochLoader):
    """A DataLoader over uint8 tensors with PIL augmentation in ``workers`` processes; batches are moved
    to ``device`` (from pinned memory when it is a GPU). Same interface as :class:`TensorLoader`."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        device: str | torch.device = "cpu",
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 4,
        flip: bool = True,
        translate: int | None = None,
        drop_last: bool = False,
        seed: int = 0,
        resize_to: int | Sequence[int] | None = None,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        workers: int = 2,
    ) -> None:
        self._init_common(x, y, batch_size=batch_size, device=device, train=train, drop_last=drop_last, seed=seed,
                          resize_to=resize_to, channels_last=channels_last, dtype=dtype)
        self.workers = max(0, int(workers))
        size = (int(x.shape[-2]), int(x.shape[-1]))
        transform = kuangliu_transforms(train, mean, std, size, crop_padding, flip, translate)
        self.dataset = UInt8ImageDataset(x, y.to(torch.int64), transform)

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        seed = epoch_seed(self.seed, epoch)
        n = self.num_samples
        batch = self.batch_size
        if self.train:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
            self.dataset.seed = seed % (2**62)
        else:
            order = self._eval_order().tolist()
            self.dataset.seed = None
        if self.train and self.world > 1:  # this rank's slice of every global batch (training/distributed.py)
            order = [i for k in range(len(self)) for i in order[slice(*self._span(k))]]
            batch = self.batch_size // self.world
        return DataLoader(
            self.dataset,
            batch_size=batch,
            sampler=order[start_batch * batch:],
            drop_last=self.drop_last or (self.train and self.world > 1),
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed + 1),
        )

    def __iter__(self) -> Iterator[Batch]:
        epoch, start = self._take_epoch()
        return self._batches(self._loader(epoch, start))

    def _batches(self, loader: DataLoader) -> Iterator[Batch]:
        non_blocking = self.device.type == "cuda"
        for xb, yb in loader:
            x = xb.to(self.device, non_blocking=non_blocking)
            if self.resize_to is not None and tuple(x.shape[-2:]) != self.resize_to:
                shrink = self.resize_to[0] < x.shape[-2] or self.resize_to[1] < x.shape[-1]
                x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False, antialias=shrink)
            if x.dtype != self.dtype:
                x = x.to(self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, yb.to(self.device, non_blocking=non_blocking)

    def __repr__(self) -> str:
        return (f"StreamLoader({self.num_samples} samples, batch_size={self.batch_size}, train={self.train}, "
                f"device={self.device}, workers={self.workers})")
