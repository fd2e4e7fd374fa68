"""Decoded datasets as uint8 tensors, and the deterministic subset / validation split on top."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from optai_tui.errors import ConfigError, DataError


@dataclass
class ArraySplits:
    """A dataset decoded once: uint8 NCHW images and int64 labels, on the CPU."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: list[str]
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_name: str
    """Where the validation images come from: "test", "val" (a folder) or "split" (held out of train)."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[-2]), int(self.train_x.shape[-1])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.val_x, self.val_y))


def _generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed((int(seed) % (2**31)) * 1000 + stream)


def take_subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples drawn without replacement, the same ones for the same seed (kept in file order)."""
    if n is None or n >= len(x):
        return x, y
    if n < 1:
        raise ConfigError(f"subset must be at least 1, got {n}", field="data.subset")
    idx = torch.randperm(len(x), generator=_generator(seed, 1))[:n].sort().values
    return x[idx], y[idx]


def hold_out(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split ``fraction`` of the samples off as validation: (train_x, train_y, val_x, val_y).

    Stratified and seeded: each class gives the same fraction of its images (rounded so the total is
    ``round(n * fraction)``; a class of 2 or more images keeps at least one for training), drawn with
    ``seed``, so the validation set has the class balance of the whole and the same seed holds out the
    same images. Both parts keep the original order."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"val_split must be between 0 and 1 (exclusive), got {fraction}",
                          field="data.val_split")
    n = len(x)
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise DataError(f"val_split={fraction} of {n} training images leaves an empty split",
                        hint="use a larger subset or a val_split closer to 0.5", field="data.val_split")
    perm = torch.randperm(n, generator=_generator(seed, 2))
    labels = y[perm].to(torch.int64)
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.to(torch.float64) * (n_val / n)
    quota = exact.floor().to(torch.int64)
    # the rest goes to the classes with the largest remainders (ties: the class seen first)
    order = torch.argsort(exact - quota.to(torch.float64), descending=True, stable=True)
    quota[order[: n_val - int(quota.sum())]] += 1
    quota = torch.where(counts > 1, torch.minimum(quota, counts - 1), quota)
    picked = [perm[labels == c][: int(q)] for c, q in zip(classes.tolist(), quota.tolist(), strict=True)]
    val_mask = torch.zeros(n, dtype=torch.bool)
    val_mask[torch.cat(picked)] = True
    if not val_mask.any() or val_mask.all():
        raise DataError(f"val_split={fraction} of {n} training images leaves an empty split",
                        hint="use a larger subset or a val_split closer to 0.5", field="data.val_split")
    val_idx = val_mask.nonzero().flatten()
    train_idx = (~val_mask).nonzero().flatten()
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def resize_uint8(x: torch.Tensor, size: int | tuple[int, int], chunk: int = 2048) -> torch.Tensor:
    """Resize a uint8 NCHW batch (antialiased when shrinking), in chunks to bound memory."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    out = torch.empty((x.shape[0], x.shape[1], *hw), dtype=torch.uint8)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].float()
        part = F.interpolate(part, size=hw, mode="bilinear", align_corners=False, antialias=True)
        out[start:start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units of a uint8 NCHW tensor (exact, from 256-bin histograms)."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = x[:, c].reshape(-1).bincount(minlength=256).to(torch.float64)
        count = max(float(hist.sum()), 1.0)
        mean = float((hist * values).sum()) / count
        var = float((hist * (values - mean) ** 2).sum()) / count
        means.append(round(mean, 4))
        stds.append(round(max(var, 1e-6) ** 0.5, 4))
    return tuple(means), tuple(stds)
