"""Checkpoint seconds per epoch: the old way (two synchronous saves, last.pt and best.pt, each fsynced) against
the trainer's writer (a CPU snapshot, then one serialisation and one fsync on a background thread, best.pt a hard
link), on ResNet-18 with its SGD momentum state, in the same process.

    .venv/bin/python benchmarks/bench_checkpoint.py                      # CPU, ResNet-18 (~85 MiB a checkpoint)
    .venv/bin/python benchmarks/bench_checkpoint.py --device cuda --epoch-seconds 1.0

Each simulated epoch trains for ``--epoch-seconds`` (a sleep: on a GPU the training thread mostly waits for
kernels) and then checkpoints as the best epoch. "held" is what the training loop waits for: the old saves whole;
for the writer, the snapshot plus any wait for the previous epoch's write. Target: the writer's held time <= 5%
of an H100 epoch (~1 s), and well below the old way's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--epoch-seconds", type=float, default=1.0, help="simulated training time per epoch")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    from optai_tui.models import create_model
    from optai_tui.training.checkpoint import CheckpointWriter, cpu_snapshot, save_checkpoint

    device = torch.device(args.device)
    model = create_model(args.arch, num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32, device=device)).sum().backward()
    opt.step()  # momentum buffers exist, as after a real epoch

    def payload(epoch: int) -> dict:
        return {"arch": args.arch, "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict()}

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        folder = Path(d)
        old_held: list[float] = []
        for epoch in range(1, args.epochs + 1):
            time.sleep(args.epoch_seconds)
            t0 = time.perf_counter()
            save_checkpoint(folder / "old-last.pt", payload(epoch))
            save_checkpoint(folder / "old-best.pt", payload(epoch))
            old_held.append(time.perf_counter() - t0)
        size_mb = (folder / "old-last.pt").stat().st_size / 2**20

        new_held: list[float] = []
        snaps: list[float] = []
        writes: list[float] = []
        writer: CheckpointWriter | None = None
        buffers: dict = {}
        for epoch in range(1, args.epochs + 1):
            time.sleep(args.epoch_seconds)  # the previous epoch's write runs meanwhile
            t0 = time.perf_counter()
            if writer is not None:
                writes.append(writer.wait())
            t1 = time.perf_counter()
            snap = cpu_snapshot(payload(epoch), buffers)
            snaps.append(time.perf_counter() - t1)
            writer = CheckpointWriter(snap, folder / "last.pt", folder / "best.pt")
            new_held.append(time.perf_counter() - t0)
        writes.append(writer.wait())

    old, new, write = statistics.median(old_held), statistics.median(new_held), statistics.median(writes)
    snap = statistics.median(snaps)
    print(f"checkpoint benchmark: {args.arch} + SGD state, {size_mb:.1f} MiB a file, device {device}, "
          f"{args.epochs} epochs of {args.epoch_seconds:g} s")  # fmt: skip
    print(f"  old (2 synchronous saves, fsync each)  held {old:.3f} s/epoch  ({100 * old / args.epoch_seconds:.1f}% of the epoch)")
    print(f"  writer (snapshot + background write)    held {new:.3f} s/epoch  ({100 * new / args.epoch_seconds:.1f}% of the epoch), "
          f"of which snapshot {snap:.3f} s; write {write:.3f} s in the background")  # fmt: skip
    print(f"  ratio old/new held: {old / max(new, 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
