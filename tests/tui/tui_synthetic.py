"""Run folders written by hand, event by event, for dashboard tests that need no training process."""

from __future__ import annotations

import math
from pathlib import Path

from optai_tui.config import validate_config
from optai_tui.configio import config_to_yaml
from optai_tui.fsio import atomic_write_text
from optai_tui.runs.store import RunDir

T0 = 1_700_000_000.0


def make_run(
    runs_dir: Path,
    run_id: str = "20240101-000000-synthetic",
    *,
    epochs: int = 4,
    done: int | None = None,
    steps: int = 10,
    end: str | None = "finished",
    warnings: dict[int, str] | None = None,
    config: dict | None = None,
    summary: dict | None = None,
    images_per_second: float = 1000.0,
    lr: float = 0.05,
) -> RunDir:
    """A run of ``epochs`` epochs with ``done`` of them in the log, ending with ``end``
    (finished | stopped | failed | None = still running). ``config`` ({"section": {"field": value}}) and
    ``summary`` override what the run folder says; the per-epoch throughput and lr come from
    ``images_per_second`` and ``lr``."""
    data = {"data": {"dataset": "shapes"}, "model": {"arch": "resnet18", "width": 0.125}, "train": {"epochs": epochs}}
    for section, fields in (config or {}).items():
        data.setdefault(section, {}).update(fields)
    cfg = validate_config(data)
    path = Path(runs_dir) / run_id
    (path / "checkpoints").mkdir(parents=True)
    run = RunDir(path)
    atomic_write_text(run.config_path, config_to_yaml(cfg))
    run.events_path.touch()
    done = epochs if done is None else done
    t = T0
    run.append_event(
        {
            "event": "RunStarted",
            "time": t,
            "run_id": run_id,
            "arch": "resnet18",
            "dataset": "shapes",
            "device": "cpu",
            "device_name": "Test CPU",
            "epochs": epochs,
            "start_epoch": 0,
            "steps_per_epoch": steps,
            "num_train": 5000,
            "num_val": 1000,
            "params": 176402,
            "trainable_params": 176402,
            "precision": "fp32",
            "resumed": False,
        }
    )
    best = None
    for ep in range(1, done + 1):
        for st in range(1, steps + 1):
            t += 0.5
            g = (ep - 1) * steps + st
            run.append_event(
                {
                    "event": "BatchEnd",
                    "time": t,
                    "epoch": ep,
                    "step": st,
                    "steps_per_epoch": steps,
                    "global_step": g,
                    "loss": 2.3 * math.exp(-g / (3 * steps)) + 0.2,
                    "lr": lr * (1 - g / (epochs * steps + 1)),
                    "images_per_second": images_per_second,
                }
            )
        val = 0.2 + 0.6 * (1 - math.exp(-ep / 2))
        best = max(best or 0.0, val)
        metrics = {
            "train_loss": 2.3 * math.exp(-ep / 3) + 0.2,
            "train_acc": val + 0.05,
            "val_loss": 2.0 * math.exp(-ep / 3) + 0.3,
            "val_acc": val,
            "lr": lr * (1 - ep / (epochs + 1)),
            "images_per_second": images_per_second,
            "epoch_seconds": 5.0,
            "peak_memory_mb": 512.0,
        }
        t += 1.0
        run.append_event(
            {
                "event": "EpochEnd",
                "time": t,
                "epoch": ep,
                "epochs": epochs,
                "metrics": metrics,
                "best_val_acc": best,
                "elapsed_seconds": ep * 6.0,
            }
        )
        if warnings and ep in warnings:
            run.append_event({"event": "RunWarning", "time": t, "epoch": ep, "message": warnings[ep]})
    record = {
        "run_id": run_id,
        "name": "synthetic",
        "status": "running",
        "arch": cfg.model.arch,
        "width": cfg.model.width,
        "dataset": cfg.data.dataset,
        "transfer_mode": cfg.transfer.mode,
        "epochs": epochs,
        "epochs_completed": done,
        "params": 176402,
        "trainable_params": 176402,
        "macs": 1000000,
        "best_val_acc": best,
        "final_val_acc": best,
        "train_seconds": done * 6.0,
        "seconds_per_epoch": 5.0 if done else None,
        "images_per_second": images_per_second,
        "device": "cpu",
        "device_name": "Test CPU",
        "host": "elsewhere",
        "pid": None,
        "started_at": "2024-01-01T00:00:00+0000",
        "finished_at": None,
        "error": None,
        "num_train": 5000,
        **(summary or {}),
    }
    summary = record
    if end == "finished":
        run.append_event(
            {
                "event": "RunFinished",
                "time": t,
                "epochs_completed": done,
                "best_val_acc": best,
                "final_val_acc": best,
                "train_seconds": done * 6.0,
            }
        )
        summary["status"] = "completed"
    elif end == "stopped":
        run.append_event({"event": "RunStopped", "time": t, "epoch": done, "reason": "stop requested"})
        summary["status"] = "stopped"
    elif end == "failed":
        err = "loss became nan at epoch 3, step 2"
        run.append_event({"event": "RunFailed", "time": t, "epoch": done, "error": err, "kind": "nan"})
        summary.update(status="failed", error=err)
    run.write_summary(summary)
    return run
