"""Seconds per epoch: linear probing on cached features vs fine-tuning, same backbone, data and process.

    .venv/bin/python benchmarks/bench_transfer.py                 # resnet18 width 0.5 on cifar10-sub or shapes
    .venv/bin/python benchmarks/bench_transfer.py --data shapes --width 0.25 --epochs 3 --device cuda

Both runs go through the real Trainer (the probe's features are computed once by the engine's phase hook;
the fine-tuning run trains backbone and head on the images). The probe's one-off feature pass is printed
separately and amortised over the epochs. Target: probe epoch <= 0.2 x fine-tune epoch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CIFAR_SUB = ROOT / ".." / "shared" / "data" / "cifar10-sub"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["auto", "shapes", "cifar10-sub"], default="auto")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--subset", type=int, default=None, help="training images (default: all)")
    args = ap.parse_args()

    from optai_tui.config import validate_config
    from optai_tui.models import create_model
    from optai_tui.runs.launch import new_session
    from optai_tui.training.profile import count_parameters

    data = args.data
    if data == "auto":
        data = "cifar10-sub" if (CIFAR_SUB / "train").is_dir() else "shapes"
    if data == "cifar10-sub":
        data_cfg = {"dataset": "imagefolder", "path": str(CIFAR_SUB.resolve())}
    else:
        data_cfg = {"dataset": "shapes"}
    data_cfg.update(augment=False, subset=args.subset)

    tmp = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    torch.manual_seed(0)
    bb = create_model(args.arch, num_classes=10, in_channels=3, width=args.width)
    torch.save(bb.state_dict(), tmp / "backbone.pt")
    total, _ = count_parameters(bb)

    def run(mode: str) -> dict:
        cfg = validate_config({
            "name": f"bench-{mode}",
            "data": data_cfg,
            "model": {"arch": args.arch, "width": args.width},
            "transfer": {"mode": mode, "backbone": str(tmp / "backbone.pt"), "cache_features": True},
            "optim": {"lr": 0.01},
            "train": {"epochs": args.epochs, "batch_size": args.batch_size, "device": args.device,
                      "checkpoint": False, "progress_every": 5.0},
        })
        t0 = time.perf_counter()
        trainer = new_session(cfg, tmp / "runs")
        summary = trainer.run()
        summary["wall"] = time.perf_counter() - t0
        summary["epoch_list"] = [h["epoch_seconds"] for h in trainer.trainer.history]
        summary["size"] = "x".join(str(v) for v in trainer.trainer.splits.image_size)
        return summary

    probe = run("linear_probe")
    tune = run("finetune")
    p_epoch, f_epoch = probe["seconds_per_epoch"], tune["seconds_per_epoch"]
    cache = probe.get("feature_cache_seconds", 0.0)
    amortised = (cache + p_epoch * args.epochs) / args.epochs
    print(f"device {probe['device']} ({probe['device_name']}), torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}")
    print(f"backbone {args.arch} width {args.width:g} ({total:,} params), data {data} "
          f"({probe['num_train']} train / {probe['num_val']} val, {probe['size']}px), "
          f"batch {args.batch_size}, {args.epochs} epochs each")
    print(f"fine-tune      : {f_epoch:8.3f} s/epoch  (epochs: {', '.join(f'{s:.3f}' for s in tune['epoch_list'])})")
    print(f"linear probe   : {p_epoch:8.3f} s/epoch  (epochs: {', '.join(f'{s:.3f}' for s in probe['epoch_list'])}), "
          f"cached features")
    print(f"feature cache  : {cache:8.3f} s once (one backbone pass over train + val)")
    print(f"ratio probe / fine-tune            : {p_epoch / f_epoch:.4f}  (target <= 0.2)")
    print(f"ratio incl. cache, over {args.epochs} epochs : {amortised / f_epoch:.4f}")
    print(f"val acc after {args.epochs} epochs: probe {probe['final_val_acc']:.3f}, fine-tune {tune['final_val_acc']:.3f} "
          f"(random-init backbone: timing only, accuracy is not the point)")
    return 0 if p_epoch / f_epoch <= 0.2 else 1


if __name__ == "__main__":
    sys.exit(main())
