"""Several processes (torchrun + DistributedDataParallel) vs one, on the same work.

The same run (``shapes``, a slim VGG-11, one global batch, the same epochs) trained by ``optai-tui train`` on 1
process and on N processes (``train.gpus=N``), both with one CPU thread a process. The epoch time is the
trainer's own (``epoch_seconds``, without the start-up of torch and torchrun), the first epoch left out. The runs
and the figures are ``ddp_common.py``'s, shared with ``gpu_check.py --scaling`` (ResNet-18 at 224 px on 1..N GPUs).

    python benchmarks/bench_ddp.py                         # 2 gloo processes vs 1 on the CPU (informative)
    python benchmarks/bench_ddp.py --device cuda --gpus 4  # on a 4-GPU machine: scaling efficiency of 4 GPUs

Printed: the epoch time of each, the speed-up ``t1 / tN``, the scaling efficiency ``t1 / (N * tN)`` (1.0 =
perfect; aim at 0.9 per GPU on GPUs) and its inverse, the overhead ratio ``N * tN / t1`` (the process-seconds
the same work takes on N processes, per process-second on one). On a CPU whose cores are shared with other
work, N processes compete for them: the overhead is the informative number there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ddp_common import BenchError, efficiency, train_cli


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpus", type=int, default=2, help="processes of the multi-process run (default 2)")
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--subset", type=int, default=2048)
    p.add_argument("--batch", type=int, default=128, help="the global batch (divisible by --gpus)")
    p.add_argument("--arch", default="vgg11")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--threads", type=int, default=1, help="CPU threads a process (OMP_NUM_THREADS)")
    args = p.parse_args()
    sets = {
        "name": "bench-ddp",
        "data.dataset": "shapes",
        "data.subset": args.subset,
        "model.arch": args.arch,
        "model.width": args.width,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch,
        "train.device": args.device,
        "train.progress_every": 5,
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one = train_cli(Path(tmp), sets, 1, threads=args.threads)
            many = train_cli(Path(tmp), sets, args.gpus, threads=args.threads)
    except BenchError as e:
        print(f"bench_ddp: {e}", file=sys.stderr)
        return 1
    n, t1, tn = args.gpus, one.steady, many.steady
    print(f"{args.arch} x{args.width:g}, {args.subset} shapes images, global batch {args.batch}, {args.device}, {args.threads} thread(s) a process")
    print(f"1 process:   {t1:.2f} s/epoch   (wall {one.wall:.1f} s with start-up)")
    print(f"{n} processes: {tn:.2f} s/epoch   (wall {many.wall:.1f} s with start-up, torchrun included)")
    eff = efficiency(one, many)
    print(f"speed-up t1/t{n}: {t1 / tn:.2f}   scaling efficiency t1/({n}*t{n}): {eff:.2f}   overhead ratio {n}*t{n}/t1: {1 / eff:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
