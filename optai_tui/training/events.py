"""Typed events a run emits. Sinks (JSONL log, console, TUI) subscribe to them.

Each event is a frozen dataclass; ``to_dict`` gives the JSON object written to ``events.jsonl``
(with ``event`` = class name and ``time`` = UNIX seconds) and ``event_from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["event"] = type(self).__name__
        return d


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    arch: str
    dataset: str
    device: str
    device_name: str
    epochs: int
    start_epoch: int  # 0 for a new run; the first epoch still to train when resuming
    steps_per_epoch: int
    num_train: int
    num_val: int
    params: int
    trainable_params: int
    precision: str
    resumed: bool = False


@dataclass(frozen=True)
class BatchEnd(Event):
    epoch: int  # 1-based epoch being trained
    step: int  # 1-based step within the epoch
    steps_per_epoch: int
    global_step: int
    loss: float
    lr: float
    images_per_second: float


# The per-epoch metrics of EpochEnd (timm's summary.csv prefixes), in the order tables show them.
EPOCH_METRICS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_top5",  # only with more than 10 classes
    "lr",
    "images_per_second",
    "epoch_seconds",
    "peak_memory_mb",
)


@dataclass(frozen=True)
class EpochEnd(Event):
    epoch: int  # 1-based, completed
    epochs: int
    metrics: dict[str, float]  # EPOCH_METRICS (val_* only on epochs that validated)
    best_val_acc: float | None
    elapsed_seconds: float


@dataclass(frozen=True)
class Checkpointed(Event):
    epoch: int
    path: str
    is_best: bool


@dataclass(frozen=True)
class PhaseChanged(Event):
    epoch: int  # first epoch of the new phase (1-based)
    phase: str  # e.g. "linear_probe", "finetune"
    lr: float


@dataclass(frozen=True)
class ControlApplied(Event):
    action: str  # stop_now | stop_after_epoch | lr_div10
    epoch: int
    step: int
    detail: str = ""


@dataclass(frozen=True)
class RunWarning(Event):
    """A notable condition the user should see (plateau, widening train/val gap, ...)."""

    epoch: int
    message: str


@dataclass(frozen=True)
class RunFinished(Event):
    epochs_completed: int
    best_val_acc: float | None
    final_val_acc: float | None
    train_seconds: float


@dataclass(frozen=True)
class RunFailed(Event):
    epoch: int
    error: str
    kind: str  # nan | oom | error


@dataclass(frozen=True)
class RunStopped(Event):
    epoch: int  # epochs completed
    reason: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (RunStarted, BatchEnd, EpochEnd, Checkpointed, PhaseChanged, ControlApplied, RunWarning, RunFinished, RunFailed, RunStopped)
}
TERMINAL_EVENTS = ("RunFinished", "RunFailed", "RunStopped")


def event_from_dict(d: dict[str, Any]) -> Event | None:
    """Rebuild an event from its JSON object; unknown kinds (from a newer version) give None."""
    cls = EVENT_TYPES.get(d.get("event", ""))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
