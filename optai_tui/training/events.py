"""The one event vocabulary of a run, from the trainer to every reader.

Each event is a frozen dataclass named after a moment of a run. ``to_dict`` gives the JSON object written
to ``events.jsonl`` (with ``event`` = class name and ``time`` = UNIX seconds); :func:`event_from_dict` is
the one parser that rebuilds the typed event from it (the recorder, the run store, the comparison, the
dashboard and the console all read through it). :func:`event_line` is the one human line for an event,
shown by the console of a headless run and by the dashboard's log alike.

Statuses and control actions are enums (``str`` subclasses, so they are plain strings in JSON).
"""

from __future__ import annotations

import dataclasses
import math
import time
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..fmt import fmt_pct, fmt_rate, fmt_secs
from .classmetrics import majority_baseline


class RunStatus(str, Enum):
    """What a run folder's summary says of its run."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    PRUNED = "pruned"  # a sweep's pruner stopped the trial at an epoch boundary

    def __str__(self) -> str:
        return self.value


class ControlAction(str, Enum):
    """Requests a user can send to a training run (the dashboard's keys, ``control.jsonl``)."""

    STOP_NOW = "stop_now"
    STOP_AFTER_EPOCH = "stop_after_epoch"
    LR_DIV10 = "lr_div10"
    PRUNE = "prune"  # a sweep trial's pruner: stop at the end of this epoch, as pruned

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return _ACTION_LABELS[self]


_ACTION_LABELS = {
    ControlAction.STOP_NOW: "stop now",
    ControlAction.STOP_AFTER_EPOCH: "stop after this epoch",
    ControlAction.LR_DIV10: "lr / 10",
    ControlAction.PRUNE: "prune",
}


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
    "compile_seconds",  # only on a compiled run's warm-up epochs (the first a process trains; under DDP, a phase's first)
    "checkpoint_seconds",  # what the epoch's checkpoint held the loop up (a CPU snapshot, a wait for a write)
    "checkpoint_write_seconds",  # the background write of that checkpoint (serialise, write, fsync)
)


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's measurements; the ``val_*`` values only on epochs that validated."""

    train_loss: float
    train_acc: float
    lr: float
    images_per_second: float
    epoch_seconds: float
    peak_memory_mb: float
    val_loss: float | None = None
    val_acc: float | None = None
    val_top5: float | None = None
    compile_seconds: float | None = None
    checkpoint_seconds: float | None = None
    checkpoint_write_seconds: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The metrics present, in ``EPOCH_METRICS`` order (absent ``val_*`` left out, as the log has them)."""
        return {k: v for k in EPOCH_METRICS if (v := getattr(self, k)) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochMetrics:
        return cls(**{k: v for k, v in d.items() if k in _METRIC_FIELDS})


_METRIC_FIELDS = frozenset(f.name for f in dataclasses.fields(EpochMetrics))


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
    macs: int | None = None
    num_classes: int | None = None
    image_size: int | list[int] | None = None
    backbone: str | None = None  # where a transfer run's backbone weights came from
    # what the data is (dataset: its name, an image folder's the folder's own, e.g. "flowers")
    dataset_path: str | None = None  # an image folder's absolute path
    classes: list[str] | None = None
    class_counts: list[int] | None = None  # training images per class (after subset and val_split)
    val_class_counts: list[int] | None = None
    val_source: str | None = None  # "test", "val" (a folder) or "split" (held out of the training images)
    world_size: int = 1  # processes training the run (torchrun: GPUs, or gloo processes on the CPU)
    nodes: int = 1  # machines they run on
    hosts: list[str] | None = None  # the host of each rank, in rank order (several processes only)


@dataclass(frozen=True)
class BatchEnd(Event):
    epoch: int  # 1-based epoch being trained
    step: int  # 1-based step within the epoch
    steps_per_epoch: int
    global_step: int
    loss: float
    lr: float
    images_per_second: float


@dataclass(frozen=True)
class EpochEnd(Event):
    epoch: int  # 1-based, completed
    epochs: int
    metrics: EpochMetrics
    best_val_acc: float | None
    elapsed_seconds: float

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["metrics"] = self.metrics.as_dict()
        return d

    def row(self) -> dict[str, float]:
        """The metrics.csv row: the epoch, then its metrics."""
        return {"epoch": self.epoch, **self.metrics.as_dict()}


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
    feature_cache_seconds: float | None = None  # a frozen phase that cached the backbone's features


@dataclass(frozen=True)
class Compiling(Event):
    """torch.compile at work: once as it begins (``seconds`` None), once done, with the time to the first
    training and evaluation steps (the warm-up that the steady-state figures leave out)."""

    epoch: int  # 1-based epoch whose first steps compile
    mode: str = "default"
    seconds: float | None = None


@dataclass(frozen=True)
class ControlApplied(Event):
    action: ControlAction
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
    early_stop_epoch: int | None = None  # ended by early stopping after this epoch (train.early_stop_patience)


@dataclass(frozen=True)
class ClassBalance(Event):
    """How the classes are spread over the training and validation images (emitted after RunStarted): the
    majority-class baseline and chance level that an accuracy is read against."""

    classes: list[str]
    train_counts: list[int]
    val_counts: list[int]

    @property
    def majority_baseline(self) -> float | None:
        """The validation accuracy of always answering the most frequent training class."""
        found = majority_baseline(self.train_counts, self.val_counts)
        return None if found is None else found[1]

    @property
    def chance(self) -> float | None:
        """The expected accuracy of a uniform random guess: 1 / the number of classes."""
        return 1.0 / len(self.classes) if self.classes else None


@dataclass(frozen=True)
class Evaluated(Event):
    """The best checkpoint judged on the validation images after the run: the confusion matrix
    (``confusion[true][predicted]`` image counts, rows and columns in ``classes`` order)."""

    epoch: int  # the epoch of the checkpoint evaluated (best.pt)
    split: str  # where the images came from: test, val (a folder) or split (held out of train)
    classes: list[str]
    confusion: list[list[int]]
    loss: float | None = None


@dataclass(frozen=True)
class RunFailed(Event):
    epoch: int
    error: str
    kind: str  # nan | oom | error


@dataclass(frozen=True)
class RunStopped(Event):
    epoch: int  # epochs completed
    reason: str


@dataclass(frozen=True)
class RunPruned(Event):
    """A sweep's pruner stopped the trial after ``epoch`` (epochs completed): its accuracy there was not
    promising enough to go on."""

    epoch: int
    reason: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunStarted, BatchEnd, EpochEnd, Checkpointed, PhaseChanged, ControlApplied, RunWarning, RunFinished, RunFailed, RunStopped,
        RunPruned, ClassBalance, Evaluated, Compiling,
    )
}  # fmt: skip
TERMINAL_STATUS: dict[type[Event], RunStatus] = {
    RunFinished: RunStatus.COMPLETED,
    RunStopped: RunStatus.STOPPED,
    RunFailed: RunStatus.FAILED,
    RunPruned: RunStatus.PRUNED,
}
"""The events that end a process's run, and the status each leaves."""
TERMINAL_EVENTS = tuple(TERMINAL_STATUS)


# ---------------------------------------------------------------------------------------------
# the one parser


class _Bad(Exception):
    pass


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as the annotation ``hint`` asks (JSON gives ints for floats, strings for enums)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except _Bad:
                continue
        raise _Bad
    if origin is list:
        if not isinstance(value, list):
            raise _Bad
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Bad
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
            raise _Bad
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Bad
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise _Bad from None
    if hint is EpochMetrics:
        if not isinstance(value, dict):
            raise _Bad
        hints = _hints(EpochMetrics)
        known = {k: _coerce(v, hints[k]) for k, v in value.items() if k in _METRIC_FIELDS}
        try:
            return EpochMetrics(**known)
        except TypeError:
            raise _Bad from None
    return value  # Any


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def event_from_dict(d: Any) -> Event | None:
    """Rebuild an event from its JSON object. None for anything that is not a whole, well-typed event:
    an unknown kind (from a newer version), a missing field, a value of the wrong type. Extra keys are
    ignored (an older reader of a newer log)."""
    if not isinstance(d, dict):
        return None
    cls = EVENT_TYPES.get(d.get("event")) if isinstance(d.get("event"), str) else None
    if cls is None:
        return None
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    try:
        for f in dataclasses.fields(cls):
            if f.name in d:
                kwargs[f.name] = _coerce(d[f.name], hints[f.name])
        return cls(**kwargs)
    except (_Bad, TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        return None


# ---------------------------------------------------------------------------------------------
# the one human line


def epoch_line(e: EpochEnd) -> str:
    """``epoch 3/10  train_loss 0.4123  train_acc 85.20%  val_loss ...  lr 0.05  1234 img/s  4.1s``."""
    m = e.metrics
    parts = [f"epoch {e.epoch}/{e.epochs}", f"train_loss {m.train_loss:.4f}", f"train_acc {fmt_pct(m.train_acc, 2)}"]
    if m.val_loss is not None:
        parts += [f"val_loss {m.val_loss:.4f}", f"val_acc {fmt_pct(m.val_acc, 2)}"]
    if m.val_top5 is not None:
        parts.append(f"val_top5 {fmt_pct(m.val_top5, 2)}")
    parts += [f"lr {m.lr:.4g}", fmt_rate(m.images_per_second), fmt_secs(m.epoch_seconds)]
    return "  ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def event_line(e: Event) -> tuple[str, str] | None:
    """(level, text) of an event for a person to read; None for the events that are not log lines
    (batch progress, routine checkpoints). Levels: info, success, warning, error, control, epoch."""
    if isinstance(e, RunStarted):
        where = f"{e.device} [{e.device_name}]"
        if e.world_size > 1:
            where += f" x {e.world_size} processes" + (f" on {e.nodes} machines" if e.nodes > 1 else "")
        if e.resumed:
            return "info", f"resumed at epoch {e.start_epoch + 1} on {where}, {e.precision}"
        return "info", (
            f"started: {e.arch} on {e.dataset}{f' ({len(e.classes)} classes)' if e.classes else ''}, "
            f"{e.num_train} train / {e.num_val} val images{' (held out of train)' if e.val_source == 'split' else ''}, "
            f"{e.params:,} params, {where}, {e.precision}"
        )
    if isinstance(e, EpochEnd):
        return "epoch", epoch_line(e)
    if isinstance(e, PhaseChanged):
        cached = f", backbone features cached in {e.feature_cache_seconds:.1f}s" if e.feature_cache_seconds is not None else ""
        return "info", f"phase {e.phase} from epoch {e.epoch} (lr {e.lr:g}){cached}"
    if isinstance(e, Compiling):
        if e.seconds is None:
            return "info", f"compiling the model (torch.compile, mode {e.mode}): the first steps wait for it"
        return "info", f"compiled in {e.seconds:.1f}s (time to the first steps; left out of the steady-state s/epoch)"
    if isinstance(e, ControlApplied):
        detail = f" ({e.detail})" if e.detail else ""
        return "control", f"applied: {e.action.label} at epoch {e.epoch}, step {e.step}{detail}"
    if isinstance(e, RunWarning):
        return "warning", (f"epoch {e.epoch}: " if e.epoch else "") + e.message
    if isinstance(e, Checkpointed):
        if e.path.endswith("interrupted.pt"):
            return "info", f"checkpoint after the current batch saved (epoch {e.epoch})"
        return None
    if isinstance(e, Evaluated):
        total = sum(map(sum, e.confusion))
        right = sum(row[i] for i, row in enumerate(e.confusion) if i < len(row))
        return "info", f"best checkpoint (epoch {e.epoch}) evaluated on {_plural(total, 'image')}: accuracy {fmt_pct(right / total if total else None, 2)}"
    if isinstance(e, RunFinished):
        early = f" (early stop at epoch {e.early_stop_epoch})" if e.early_stop_epoch is not None else ""
        return "success", (
            f"finished{early}: {_plural(e.epochs_completed, 'epoch')}, best val acc {fmt_pct(e.best_val_acc, 2)}, "
            f"final {fmt_pct(e.final_val_acc, 2)}, {e.train_seconds:.1f}s"
        )
    if isinstance(e, RunStopped):
        return "warning", f"stopped after {_plural(e.epoch, 'epoch')} ({e.reason})"
    if isinstance(e, RunPruned):
        return "warning", f"pruned after {_plural(e.epoch, 'epoch')} ({e.reason})"
    if isinstance(e, RunFailed):
        return "error", f"failed at epoch {e.epoch} ({e.kind}): {e.error}"
    return None
