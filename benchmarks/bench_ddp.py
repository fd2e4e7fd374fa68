"""Several processes (torchrun + DistributedDataParallel) vs one, on the same work.

The same run (``shapes``, a slim VGG-11, one global batch, the same epochs) trained by ``optai-tui train`` on 1
process and on N processes (``train.gpus=N``), both with one CPU thread a process. The epoch time is the
trainer's own (``epoch_seconds``, without the start-up of torch and torchrun), the first epoch left out.

    python benchmarks/bench_ddp.py                         # 2 gloo processes vs 1 on the CPU (informative)
    python benchmarks/bench_ddp.py --device cuda --gpus 4  # on a 4-GPU machine: scaling efficiency of 4 GPUs

Printed: the epoch time of each, the speed-up ``t1 / tN``, the scaling efficiency ``t1 / (N * tN)`` (1.0 =
perfect; aim at 0.9 per GPU on GPUs) and its inverse, the overhead ratio ``N * tN / t1`` (the process-seconds
the same work takes on N processes, per process-second on one). On a CPU whose cores are shared with other
work, N processes compete for them: the overhead is the informative number there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(runs: Path, gpus: int, args: argparse.Namespace) -> tuple[float, float]:
    """(mean epoch seconds after the first, wall seconds) of one run."""
    sets = {
        "name": f"bench-ddp-{gpus}",
        "data.dataset": "shapes",
        "data.subset": args.subset,
        "model.arch": args.arch,
        "model.width": args.width,
        "train.epochs": args.epochs,
        "train.batch_size": args.batch,
        "train.device": args.device,
        "train.gpus": gpus,
        "train.progress_every": 5,
    }
    cmd = [sys.executable, "-m", "optai_tui", "train", "--plain", "--runs-dir", str(runs)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    (run,) = [p for p in runs.iterdir() if p.name.endswith(sets["name"])]
    epochs = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    secs = [e["metrics"]["epoch_seconds"] for e in epochs if e.get("event") == "EpochEnd"]
    return sum(secs[1:]) / max(len(secs) - 1, 1), wall


def main() -> None:
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
    with tempfile.TemporaryDirectory() as tmp:
        one, wall1 = train(Path(tmp) / "one", 1, args)
        many, walln = train(Path(tmp) / "many", args.gpus, args)
    n = args.gpus
    print(f"{args.arch} x{args.width:g}, {args.subset} shapes images, global batch {args.batch}, {args.device}, {args.threads} thread(s) a process")
    print(f"1 process:   {one:.2f} s/epoch   (wall {wall1:.1f} s with start-up)")
    print(f"{n} processes: {many:.2f} s/epoch   (wall {walln:.1f} s with start-up, torchrun included)")
    print(f"speed-up t1/t{n}: {one / many:.2f}   scaling efficiency t1/({n}*t{n}): {one / (n * many):.2f}   "
          f"overhead ratio {n}*t{n}/t1: {n * many / one:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
