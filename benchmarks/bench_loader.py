"""Loader throughput: our TensorLoader vs torchvision's DataLoader with kuangliu's PIL transforms.

One CIFAR-shaped training epoch (50,000 32x32 RGB images, batch 128, random crop with 4 pixels of
zero padding, random horizontal flip, normalisation), same images, same machine, same run.

Data: the real CIFAR-10 JPEGs of ../shared/data/cifar10-sub (5,000 train images), decoded once to
uint8 and tiled 10x to 50,000 images; without that folder, the built-in ``shapes`` images tiled 10x.

Baseline: a Dataset that serves the HWC uint8 array as PIL images exactly as
torchvision.datasets.CIFAR10.__getitem__ does, transforms RandomCrop(32, padding=4),
RandomHorizontalFlip(), ToTensor(), Normalize(kuangliu mean/std), DataLoader(shuffle=True,
num_workers=2), batches moved to the device. Ours: TensorLoader on the same device.

    .venv/bin/python benchmarks/bench_loader.py [--device cpu|cuda] [--images 50000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optai_tui.data import DATASET_MEAN_STD, TensorLoader, load_arrays  # noqa: E402

CIFAR_SUB = ROOT / ".." / "shared" / "data" / "cifar10-sub"
MEAN, STD = DATASET_MEAN_STD["cifar10"]


class CifarLike(Dataset):
    """What torchvision.datasets.CIFAR10 does per item: HWC uint8 -> PIL -> transform."""

    def __init__(self, data_hwc: np.ndarray, targets: list[int], transform) -> None:
        self.data, self.targets, self.transform = data_hwc, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.data[i])
        return self.transform(img), self.targets[i]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_epoch(loader, device: torch.device) -> tuple[float, int]:
    sync(device)
    start = time.perf_counter()
    n = 0
    checksum = torch.zeros((), device=device)
    for xb, yb in loader:
        checksum += xb[:, 0, 0, 0].sum()  # touch the batch so nothing is skipped
        n += len(yb)
    sync(device)
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)

    t0 = time.perf_counter()
    if CIFAR_SUB.is_dir():
        splits = load_arrays("imagefolder", path=CIFAR_SUB)
        source = f"cifar10-sub JPEGs ({len(splits.train_x)} train images, decoded to 32x32 uint8)"
    else:
        splits = load_arrays("shapes")
        source = f"built-in shapes ({len(splits.train_x)} images; {CIFAR_SUB} not found)"
    reps = -(-args.images // len(splits.train_x))
    x = splits.train_x.repeat(reps, 1, 1, 1)[: args.images].contiguous()
    y = splits.train_y.repeat(reps)[: args.images].contiguous()
    print(f"data: {source}, tiled {reps}x to {len(x)} images of {tuple(x.shape[1:])}; "
          f"decode {time.perf_counter() - t0:.1f}s")
    print(f"device: {device}; torch threads: {torch.get_num_threads()}; batch size {args.batch_size}; "
          f"cpu cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.1f}")

    import torchvision.transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(MEAN, STD)])
    dataset = CifarLike(x.permute(0, 2, 3, 1).contiguous().numpy(), y.tolist(), transform)
    baseline = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                          pin_memory=device.type == "cuda")

    def moved(loader):
        for xb, yb in loader:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)

    ours = TensorLoader(x, y, batch_size=args.batch_size, device=device, train=True, mean=MEAN, std=STD,
                        crop_padding=4, flip=True, seed=0)
    time_epoch(ours, device)  # warm-up epoch (allocator, kernels)
    ours.set_epoch(1)
    t_ours, n_ours = time_epoch(ours, device)
    t_base, n_base = time_epoch(moved(baseline), device)

    ips_ours, ips_base = n_ours / t_ours, n_base / t_base
    print(f"torchvision DataLoader + PIL (kuangliu), {args.workers} workers: "
          f"{n_base} images in {t_base:6.2f}s = {ips_base:10,.0f} images/s")
    print(f"optai TensorLoader ({ours.storage}, batched crop+flip+normalise):    "
          f"{n_ours} images in {t_ours:6.2f}s = {ips_ours:10,.0f} images/s")
    print(f"ratio: {ips_ours / ips_base:.1f}x  (target >= 3x)")


if __name__ == "__main__":
    main()
