"""Sweep overhead: an N-trial `optai-tui sweep run` against the same N runs started one by one with `optai-tui train`.

    .venv/bin/python benchmarks/bench_sweep.py                  # 4 trials of a slim VGG-11 on shapes, CPU
    .venv/bin/python benchmarks/bench_sweep.py --trials 8 --epochs 3 --device cuda

Both sides are real processes, measured in this invocation. Overhead = wall time minus the trials' own training
seconds (the trainer's ``train_seconds``: data set-up, model, epochs), per trial: for the sweep, the study
(the embedded journal storage, the budget lock, the sampler), the run folders and the one process start; for
the baseline, a process start and its imports for every run. The baseline trains exactly the configs the
sweep's trials trained (their saved config.yaml). Targets: sweep wall <= 1.1 x baseline wall, and at most ~2 s
of overhead per trial.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "optai_tui", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"optai-tui {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--subset", type=int, default=2048)
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from optai_tui.runs.store import list_runs

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    base = {
        "data": {"dataset": "shapes", "subset": args.subset, "val_split": 0.125, "augment": False},
        "model": {"arch": "vgg11", "width": args.width},
        "optim": {"name": "adam", "lr": 0.003},
        "train": {"epochs": args.epochs, "batch_size": 64, "device": args.device},
    }
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {
        "name": "bench", "base": "base.yaml", "space": {"optim.lr": {"float": [0.0005, 0.01], "log": True}},
        "sampler": "random", "seed": 0, "pruner": "none", "n_trials": args.trials,
    }  # fmt: skip
    (tmp / "bench.yaml").write_text(yaml.safe_dump(spec))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    sweep_runs = tmp / "sweep-runs"
    sweep_wall = cli("sweep", "run", str(tmp / "bench.yaml"), "--runs-dir", str(sweep_runs), env=env)
    trials = list_runs(sweep_runs)
    sweep_train = sum(float(r.read_summary().get("train_seconds") or 0) for r in trials)
    assert len(trials) == args.trials, f"{len(trials)} trials"

    base_runs = tmp / "train-runs"
    base_wall = 0.0
    for r in trials:  # the very configs the trials trained, one `optai-tui train` each
        base_wall += cli("train", "--preset", str(r.config_path), "--plain", "--runs-dir", str(base_runs), env=env)
    runs = list_runs(base_runs)
    base_train = sum(float(r.read_summary().get("train_seconds") or 0) for r in runs)

    n = args.trials
    sweep_over, base_over = (sweep_wall - sweep_train) / n, (base_wall - base_train) / n
    print(f"{n} trials of vgg11 x{args.width} on {args.subset} shapes images, {args.epochs} epochs, {args.device}")
    print(f"  sweep run:           wall {sweep_wall:7.1f} s, training {sweep_train:7.1f} s, overhead {sweep_over:5.2f} s per trial")
    print(f"  train, one by one:   wall {base_wall:7.1f} s, training {base_train:7.1f} s, overhead {base_over:5.2f} s per run")
    ratio = sweep_wall / base_wall
    print(f"  ratio sweep / one by one: {ratio:.2f}x (target <= 1.1x); sweep overhead per trial {sweep_over:.2f} s (target <= ~2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
