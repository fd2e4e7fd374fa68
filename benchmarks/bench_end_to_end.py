"""End to end: training images/s of our Trainer vs a plain kuangliu-style loop, same model, same data.

Ours:     optai_tui Trainer on an ImageFolder dataset (decoded once into a uint8 tensor, batched
          crop/flip/normalise on the device, randperm shuffling).
Baseline: torchvision ImageFolder + RandomCrop(32, 4) + RandomHorizontalFlip + ToTensor + Normalize,
          DataLoader(batch 128, shuffle, 2 workers), SGD 0.1 / 0.9 / 5e-4, cross-entropy.
Both train the same architecture for the same number of images; only training steps are timed
(ours: the trainer's own per-epoch train time; baseline: the loop, including waiting for the loader).

    python benchmarks/bench_end_to_end.py                      # vgg11 on ../shared/data/cifar10-sub
    python benchmarks/bench_end_to_end.py --images 2560 --width 0.5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optai_tui.config import validate_config  # noqa: E402
from optai_tui.data.registry import DATASET_MEAN_STD  # noqa: E402
from optai_tui.models import create_model  # noqa: E402
from optai_tui.runs.launch import new_session  # noqa: E402


def baseline(data: Path, arch: str, width: float, images: int, batch: int, workers: int, seed: int) -> float:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    mean, std = DATASET_MEAN_STD["cifar10"]
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    ds = ImageFolder(str(data / "train"), transform=tf)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:images].tolist()
    ds = torch.utils.data.Subset(ds, idx)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=False)
    torch.manual_seed(seed)
    model = create_model(arch, num_classes=10, width=width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    seen = 0
    t0 = time.perf_counter()
    for x, y in loader:
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += y.shape[0]
    return seen / (time.perf_counter() - t0)


def ours(data: Path, arch: str, width: float, images: int, batch: int, seed: int, channels_last: bool = False, precision: str = "fp32") -> tuple[float, float]:
    cfg = validate_config(
        {
            "data": {"dataset": "imagefolder", "path": str(data), "subset": images},
            "model": {"arch": arch, "width": width},
            "train": {"epochs": 1, "batch_size": batch, "device": "cpu", "checkpoint": False, "seed": seed, "channels_last": channels_last, "precision": precision},
        }
    )
    with tempfile.TemporaryDirectory() as runs:
        t0 = time.perf_counter()
        t = new_session(cfg, runs)
        t.run()
        wall = time.perf_counter() - t0
    return t.trainer.history[0]["images_per_second"], wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-sub"))
    p.add_argument("--arch", default="vgg11")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--images", type=int, default=5000, help="training images per measured epoch")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    data = Path(a.data)
    if not (data / "train").is_dir():
        sys.exit(f"no ImageFolder tree at {data} (expected train/ and test/)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {a.arch} width {a.width}, {a.images} images, batch {a.batch}")
    base = baseline(data, a.arch, a.width, a.images, a.batch, a.workers, a.seed)
    print(f"baseline (ImageFolder + PIL transforms + DataLoader, {a.workers} workers): {base:8.1f} img/s")
    mine, wall = ours(data, a.arch, a.width, a.images, a.batch, a.seed)
    print(f"optai-tui Trainer (tensor loader):                             {mine:8.1f} img/s  (whole run incl. decode and eval: {wall:.1f}s)")
    cl, wall_cl = ours(data, a.arch, a.width, a.images, a.batch, a.seed, channels_last=True)
    print(f"optai-tui Trainer (tensor loader, train.channels_last=true):   {cl:8.1f} img/s  (whole run: {wall_cl:.1f}s)")
    print(f"ratio ours / baseline: {mine / base:.2f}x   with channels_last: {cl / base:.2f}x")
    from optai_tui.training.device import cpu_supports_bf16, precision_for

    choice = precision_for("auto", torch.device("cpu"))
    au, wall_au = ours(data, a.arch, a.width, a.images, a.batch, a.seed, precision="auto")
    print(f"optai-tui Trainer (train.precision=auto: {choice.note}): {au:8.1f} img/s  (whole run: {wall_au:.1f}s)")
    print(f"ratio ours (precision auto, as a user gets it) / baseline (fp32): {au / base:.2f}x")
    if cpu_supports_bf16():
        bf, wall_bf = ours(data, a.arch, a.width, a.images, a.batch, a.seed, channels_last=True, precision="bf16")
        print(f"optai-tui Trainer (channels_last + train.precision=bf16):      {bf:8.1f} img/s  (whole run: {wall_bf:.1f}s)")
        print(f"ratio ours (bf16 autocast, channels_last) / baseline (fp32): {bf / base:.2f}x")


if __name__ == "__main__":
    main()
