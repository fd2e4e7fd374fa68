"""The fast path: the whole uint8 dataset on the device, augmented a batch at a time with tensor ops.

Following the idea of airbench's loader, there are no worker processes and no PIL in the loop. The
data is moved to the device once (GPU memory when it fits, pinned host memory otherwise). Each batch
is gathered with one ``index_select``; random crop (zero padding, as kuangliu/pytorch-cifar, or
reflection with ``translate``) and horizontal flip are folded into a single ``gather`` whose source
indices carry each image's offset and flip; then one cast-subtract-multiply normalises.

Everything random about an epoch (order, offsets, flips) is drawn up front from a CPU generator
seeded by ``(seed, epoch)``, so ``set_epoch(e)`` replays epoch ``e`` exactly, on any device.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from optai_tui.errors import DataError

Batch = tuple[torch.Tensor, torch.Tensor]


@contextlib.contextmanager
def _intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the enclosed CPU ops with ``n`` intra-op threads, then restore the setting.

    A batch of small images is too little work to share between threads: on a busy machine the
    threads wait for each other (10x slower seen on 2 shared cores), so the CPU path uses one.
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    if previous == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def epoch_seed(seed: int, epoch: int) -> int:
    """A generator seed for ``(seed, epoch)``; distinct pairs give distinct streams."""
    return ((int(seed) % (2**31)) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63)


def _as_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def _norm_tensors(mean: Sequence[float], std: Sequence[float], channels: int, device: torch.device,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        raise DataError(f"normalisation has {len(mean)} means / {len(std)} stds for {channels}-channel images",
                        field="data.dataset")
    m = torch.tensor([float(v) * 255.0 for v in mean], dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor([1.0 / (float(v) * 255.0) for v in std], dtype=torch.float32).view(1, -1, 1, 1)
    # normalise in float32 (bf16 would round the subtraction), cast at the end
    return m.to(device), s.to(device)


def crop_flip_indices(dy: torch.Tensor, dx: torch.Tensor, flips: torch.Tensor | None, height: int, width: int,
                      pad: int, reflect: bool) -> tuple[torch.Tensor, int, int]:
    """Flat source indices [B, H*W] of each output pixel, and the source (padded) height and width.

    ``dy``, ``dx`` in ``[0, 2*pad]`` are the crop corners in padded coordinates. With zero padding the
    source is the batch padded by ``pad``; with reflection it is the batch itself, indices mirrored.
    """
    ar_h = torch.arange(height, device=dy.device)
    ar_w = torch.arange(width, device=dy.device)
    rows = dy[:, None] + ar_h[None, :]
    cols = dx[:, None] + ar_w[None, :]
    if flips is not None:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    if reflect:
        rows = rows - pad
        cols = cols - pad
        rows = torch.where(rows < 0, -rows, rows)
        rows = torch.where(rows > height - 1, 2 * (height - 1) - rows, rows)
        cols = torch.where(cols < 0, -cols, cols)
        cols = torch.where(cols > width - 1, 2 * (width - 1) - cols, cols)
        src_h, src_w = height, width
    else:
        src_h, src_w = height + 2 * pad, width + 2 * pad
    flat = rows[:, :, None] * src_w + cols[:, None, :]
    return flat.reshape(len(dy), height * width), src_h, src_w


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flips: torch.Tensor | None, pad: int,
              reflect: bool = False) -> torch.Tensor:
    """Batched random crop (offsets ``dy``, ``dx``) and flip of a uint8 or float NCHW batch."""
    b, c, h, w = x.shape
    flat, src_h, src_w = crop_flip_indices(dy, dx, flips, h, w, pad, reflect)
    src = x if (reflect or pad == 0) else F.pad(x, (pad, pad, pad, pad))
    src = src.reshape(b, c, src_h * src_w)
    out = torch.gather(src, 2, flat[:, None, :].expand(b, c, h * w))
    return out.view(b, c, h, w)


class EpochLoader:
    """Bookkeeping shared by the loaders: the batch count, and a settable epoch so that epoch ``e``'s
    order (and augmentation) is the same every time it is replayed, as exact resume needs."""

    num_samples: int
    batch_size: int
    drop_last: bool = False
    epoch: int = 0
    _start_batch: int = 0
    rank: int = 0  # this process's shard of the data (several processes: training/distributed.py)
    world: int = 1

    def __len__(self) -> int:
        if self.drop_last or (self.train and self.world > 1):
            return self.num_samples // self.batch_size
        return math.ceil(self._local_count() / self.batch_size)

    def shard(self, rank: int, world: int) -> None:
        """Make this loader one of ``world`` processes' (``rank``). Training: ``batch_size`` stays the global
        batch, and each batch is this rank's ``batch_size / world`` slice of the global batch of the same
        seeded order (an incomplete last batch is dropped, so every rank runs the same steps). Evaluation:
        this rank's disjoint share ``rank, rank + world, ...`` of the samples, whole batches of them."""
        if world > 1 and self.train and self.batch_size % world:
            raise DataError(f"batch size {self.batch_size} does not divide among {world} processes", field="train.batch_size")
        self.rank, self.world = int(rank), int(world)

    def _local_count(self) -> int:
        return len(range(self.rank, self.num_samples, self.world)) if not self.train else self.num_samples

    def _eval_order(self) -> torch.Tensor:
        return torch.arange(self.rank, self.num_samples, self.world)

    def _span(self, k: int) -> tuple[int, int]:
        """Positions [s, e) of batch ``k`` in the epoch's order (this rank's slice of it when sharded)."""
        if self.train and self.world > 1:
            per = self.batch_size // self.world
            s = k * self.batch_size + self.rank * per
            return s, s + per
        s = k * self.batch_size
        return s, min(s + self.batch_size, self._local_count())

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration epoch ``epoch``, starting at batch ``start_batch`` (for exact resume)."""
        self.epoch = int(epoch)
        self._start_batch = int(start_batch)

    def _init_common(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        device: str | torch.device,
        train: bool,
        drop_last: bool,
        seed: int,
        resize_to: int | Sequence[int] | None,
        channels_last: bool,
        dtype: torch.dtype,
    ) -> None:
        """Check the inputs and set what every loader holds (the constructors' shared part)."""
        what = type(self).__name__
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise DataError(f"{what} needs uint8 images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        if len(x) != len(y):
            raise DataError(f"{len(x)} images but {len(y)} labels")
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}", field="train.batch_size")
        self.device = torch.device(device)
        self.train = train
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.seed = int(seed)
        self.dtype = dtype
        self.channels_last = channels_last
        self.resize_to = _as_size(resize_to)
        self.num_samples = len(x)

    def _take_epoch(self) -> tuple[int, int]:
        """(epoch, first batch) of the iteration starting now; the next one is the following epoch."""
        epoch, start = self.epoch, self._start_batch
        self.epoch, self._start_batch = epoch + 1, 0
        return epoch, start


class TensorLoader(EpochLoader):
    """Iterate ``(images, labels)`` batches from uint8 tensors already in memory.

    Yields float images ``[B, C, H, W]`` (normalised, ``dtype``, optionally resized to ``resize_to``
    and in channels-last layout) and int64 labels, both on ``device``. ``train=True`` shuffles and
    augments (crop with ``crop_padding`` zero padding, or reflection padding ``translate``; random
    horizontal ``flip``); ``train=False`` keeps the order and only normalises.

    ``storage``: where the images live (device, pinned, host), decided by ``build_loaders``'s budget;
    None: on a GPU when they fit ``memory_fraction`` of its free memory, else pinned host memory.

    ``cpu_threads``: intra-op threads for the batch ops when ``device`` is the CPU (default 1, see
    ``_intra_op_threads``; ``None`` leaves torch's setting alone). The model's own ops are unaffected.

    Each ``iter()`` runs one epoch and advances the epoch counter; ``set_epoch(e)`` makes the next
    iteration epoch ``e``, which is identical every time for the same ``seed``.
    """

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
        memory_fraction: float = 0.5,
        cpu_threads: int | None = 1,
        storage: str | None = None,
    ) -> None:
        self._init_common(x, y, batch_size=batch_size, device=device, train=train, drop_last=drop_last, seed=seed,
                          resize_to=resize_to, channels_last=channels_last, dtype=dtype)
        if len(x) == 0:
            raise DataError("the dataset is empty")
        self.translate = int(translate) if translate else 0
        self.pad = self.translate if self.translate else int(crop_padding)
        self.reflect = bool(self.translate)
        self.flip = bool(flip)
        if self.pad < 0:
            raise DataError(f"crop padding must be >= 0, got {self.pad}", field="data.crop_padding")
        _, self.channels, self.height, self.width = x.shape
        if self.reflect and self.pad >= min(self.height, self.width):
            raise DataError(f"translate={self.pad} is too large for {self.height}x{self.width} images",
                            field="data.translate")

        self.storage = storage or self._place(x, memory_fraction)
        self.x = x.to(self.device) if self.storage == "device" else x
        if self.storage == "pinned":  # batches are gathered into two pinned buffers, taken in turn
            self._staging = PinnedStaging((self.batch_size, *x.shape[1:]), self.device)
        self.y = y.to(device=self.device, dtype=torch.int64)
        self._mean, self._inv_std = _norm_tensors(mean, std, self.channels, self.device, dtype)
        # intra-op threads for the batch ops when they run on the CPU (None: leave torch's setting)
        self.cpu_threads = cpu_threads if self.device.type == "cpu" else None

    def _place(self, x: torch.Tensor, memory_fraction: float) -> str:
        if self.device.type == "cpu":
            return "host"
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            return "device" if x.numel() <= memory_fraction * free else "pinned"
        return "device"  # mps, xpu: unified or unknown memory, try the device

    def _plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Order, crop corners [N, 2] and flips [N] of an epoch, in iteration order."""
        n = self.num_samples
        if not self.train:
            return self._eval_order(), None, None
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(n, generator=g)
        corners = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g) if self.pad else None
        flips = (torch.rand(n, generator=g) < 0.5) if self.flip else None
        return order, corners, flips

    def __iter__(self) -> Iterator[Batch]:
        epoch, start = self._take_epoch()
        order, corners, flips = self._plan(epoch)
        return self._batches(order, corners, flips, start)

    def _batches(self, order: torch.Tensor, corners: torch.Tensor | None, flips: torch.Tensor | None,
                 start: int) -> Iterator[Batch]:
        dev = self.device
        order = order.to(self.x.device)
        order_dev = order.to(dev)
        if corners is not None:
            corners = corners.to(dev)
        if flips is not None:
            flips = flips.to(dev)
        for k in range(start, len(self)):
            s, e = self._span(k)
            with _intra_op_threads(self.cpu_threads):
                xb = self._fetch(order[s:e], k)
                if corners is not None or flips is not None:
                    if corners is None:
                        zeros = torch.zeros(e - s, dtype=torch.int64, device=dev)
                        dy = dx = zeros
                    else:
                        dy, dx = corners[s:e, 0], corners[s:e, 1]
                    fb = flips[s:e] if flips is not None else None
                    xb = crop_flip(xb, dy, dx, fb, self.pad, self.reflect)
                x = self._normalise(xb)
            yield self._finish(x), self.y[order_dev[s:e]]

    def _fetch(self, idx: torch.Tensor, k: int) -> torch.Tensor:
        if self.storage != "pinned":
            return self.x.index_select(0, idx)
        return self._staging.fetch(self.x, idx, k)

    def _normalise(self, xb: torch.Tensor) -> torch.Tensor:
        return xb.to(torch.float32).sub_(self._mean).mul_(self._inv_std)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize_to is not None and tuple(x.shape[-2:]) != self.resize_to:
            shrink = self.resize_to[0] < x.shape[-2] or self.resize_to[1] < x.shape[-1]
            x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False, antialias=shrink)
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __repr__(self) -> str:
        return (f"TensorLoader({self.num_samples} samples, batch_size={self.batch_size}, train={self.train}, "
                f"device={self.device}, storage={self.storage})")


class PinnedStaging:
    """Batches of host images copied to a CUDA device through two pinned buffers, taken in turn.

    The copy of batch ``k`` is asynchronous; buffer ``k % 2`` is refilled only after the event recorded
    behind its previous copy has completed. Both the copy and the event go to the *current stream of the
    loader's device* (under ``cuda.device(device)``): an event recorded on another GPU's stream (GPU 0's,
    when the process never called set_device) says nothing about this copy, and the buffer could be
    overwritten while it is read (wrong images for the labels). ``cuda``: ``torch.cuda`` or a test's fake
    (``device``, ``current_stream``, ``Event``); ``pin`` and ``copy`` likewise.
    """

    def __init__(self, shape: tuple[int, ...], device: torch.device, *, cuda=None, pin=None, copy=None) -> None:
        self.device = torch.device(device)
        self.cuda = cuda if cuda is not None else torch.cuda
        pin = pin or (lambda t: t.pin_memory())
        self._copy = copy or (lambda buf: buf.to(self.device, non_blocking=True))
        self.buffers = [pin(torch.empty(shape, dtype=torch.uint8)) for _ in range(2)]
        self.events: list = [None, None]

    def fetch(self, x: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
        slot = k % 2
        event = self.events[slot]
        if event is not None:
            event.synchronize()  # the copy that last read this buffer has finished
        buf = self.buffers[slot][: len(idx)]
        torch.index_select(x, 0, idx, out=buf)
        with self.cuda.device(self.device):
            stream = self.cuda.current_stream(self.device)
            xb = self._copy(buf)
            event = self.cuda.Event()
            event.record(stream)
        self.events[slot] = event
        return xb
