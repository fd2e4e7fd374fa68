"""What bench_ddp.py and gpu_check.py's scaling mode share: one run trained through ``optai-tui train`` (the real
launch path: ``python -m torch.distributed.run`` for ``train.gpus`` above 1, gloo on the CPU, NCCL on CUDA), its
figures read back from the run folder's event log, and the scaling table of several such runs.

Not a benchmark itself (imported by the two scripts, which run from any folder: ``python benchmarks/x.py``)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_BOX = str.maketrans({c: " " for c in "│╭╮╰╯─"})

AIM = 0.9
"""The scaling efficiency a GPU added should keep (issue 12): t1 / (N * tN) >= 0.9."""


class BenchError(Exception):
    """A run of the benchmark failed: the message is one line for the user."""


@dataclass
class RunFigures:
    """One run's figures, from its event log (the trainer's own epoch times, without torch's and torchrun's start-up)."""

    gpus: int
    epoch_seconds: list[float]
    images_per_second: list[float]
    images_per_epoch: int
    wall: float  # seconds of the whole command: start-up, data, every epoch, evaluation
    world_size: int

    @property
    def steady(self) -> float:
        """Mean seconds per epoch, the first (warm-up: cuDNN autotuning, a compile, allocator growth) left out."""
        return statistics.mean(self.epoch_seconds[1:] or self.epoch_seconds)

    @property
    def steady_images_per_second(self) -> float:
        return statistics.mean(self.images_per_second[1:] or self.images_per_second)


def train_cli(runs: Path, sets: dict[str, Any], gpus: int, *, threads: int | None = None, timeout: float = 600,
              env: dict[str, str] | None = None) -> RunFigures:  # fmt: skip
    """Train ``sets`` (``--set key=value`` overrides, ``train.batch_size`` among them) with ``train.gpus=gpus``, in
    a run folder under ``runs/<gpus>/`` (a new folder)."""
    from optai_tui.runs.store import list_runs
    from optai_tui.training import events as ev

    runs = Path(runs) / str(gpus)
    cmd = [sys.executable, "-m", "optai_tui", "train", "--plain", "--runs-dir", str(runs)]
    for k, v in {**sets, "train.gpus": gpus}.items():
        cmd += ["--set", f"{k}={v}"]
    environ = dict(os.environ if env is None else env)
    environ["PYTHONPATH"] = str(ROOT) + os.pathsep + environ.get("PYTHONPATH", "")
    if threads:
        environ["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the run on {gpus} process(es) took more than {timeout:.0f} s (--set {' --set '.join(f'{k}={v}' for k, v in sets.items())})") from None
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        said = " ".join((res.stderr.strip() or res.stdout.strip() or "no output").translate(_BOX).split())  # a panel: one line
        raise BenchError(f"the run on {gpus} process(es) failed (exit {res.returncode}): {said[-400:]}")
    found = list_runs(runs) if runs.is_dir() else []
    if len(found) != 1:
        raise BenchError(f"the run on {gpus} process(es) left {len(found)} run folders in {runs}, not one")
    run = found[0]
    events = list(run.iter_events())
    ends = [e for e in events if isinstance(e, ev.EpochEnd)]
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    if not ends:
        raise BenchError(f"the run on {gpus} process(es) trained no epoch ({run.path})")
    return RunFigures(
        gpus=gpus,
        epoch_seconds=[e.metrics.epoch_seconds for e in ends],
        images_per_second=[e.metrics.images_per_second for e in ends],
        images_per_epoch=started.steps_per_epoch * int(sets["train.batch_size"]),
        wall=wall,
        world_size=started.world_size,
    )


def efficiency(one: RunFigures, many: RunFigures) -> float:
    """Scaling efficiency t1 / (N * tN) on the same work (1.0: N processes do it N times faster), per image: an
    epoch of whole global batches of N times the images may hold a few images fewer than one process's."""
    return (one.steady / one.images_per_epoch) / (many.gpus * many.steady / many.images_per_epoch)


def scaling_table(results: list[RunFigures], *, unit: str = "GPUs", aim: float = AIM) -> list[str]:
    """Lines: per count, the steady s/epoch, img/s, speed-up vs 1, efficiency t1/(N*tN), and PASS/BELOW the aim."""
    one = next(r for r in results if r.gpus == 1)
    lines = [f"{unit:>9}  {'s/epoch':>9}  {'img/s':>10}  {'speed-up':>8}  {'efficiency':>10}  vs {aim:g}"]
    for r in sorted(results, key=lambda r: r.gpus):
        eff = efficiency(one, r)
        mark = "(baseline)" if r.gpus == 1 else ("PASS" if eff >= aim else "BELOW")
        speedup = eff * r.gpus  # t1 / tN, per image
        lines.append(f"{r.gpus:>9}  {r.steady:>9.3f}  {r.steady_images_per_second:>10,.0f}  {speedup:>8.2f}  {eff:>10.2f}  {mark}")
    return lines
