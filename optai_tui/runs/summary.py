"""A run's summary and per-epoch rows, folded from its typed events.

One fold serves the recorder (which writes ``summary.json`` and ``metrics.csv`` as the events arrive) and
the run store (which rebuilds a missing or corrupt summary from ``events.jsonl``), so both always agree.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..training import events as ev
from ..training.classmetrics import class_report, majority_baseline


def summary_skeleton(run_id: str, name: str | None, cfg: Any) -> dict[str, Any]:
    """A summary before any training: what the (raw) config says, nothing measured yet."""
    cfg = cfg if isinstance(cfg, dict) else {}

    def sec(key: str) -> dict[str, Any]:
        return cfg[key] if isinstance(cfg.get(key), dict) else {}

    return {
        "run_id": run_id,
        "name": name,
        "status": ev.RunStatus.RUNNING.value,
        "arch": sec("model").get("arch"),
        "width": sec("model").get("width", 1.0),
        "dataset": _dataset_label(sec("data")),
        "transfer_mode": sec("transfer").get("mode", "scratch"),
        "epochs": sec("train").get("epochs"),
        "epochs_completed": 0,
        "params": None,
        "trainable_params": None,
        "macs": None,
        "best_val_acc": None,
        "final_val_acc": None,
        "train_seconds": 0.0,
        "seconds_per_epoch": None,
        "images_per_second": None,
        "device": None,
        "device_name": None,
        "host": None,
        "pid": None,
        "started_at": None,
        "finished_at": None,
        "error": None,
    }


def _dataset_label(data: dict[str, Any]) -> Any:
    """The dataset's name as runs show it (an image folder: the folder's), from a raw config section."""
    from ..data.registry import dataset_label

    name, path = data.get("dataset"), data.get("path")
    return dataset_label(name, path) if isinstance(name, str) and isinstance(path, str) else name


_STARTED_FIELDS = (
    "arch", "dataset", "device", "device_name", "epochs", "params", "trainable_params",
    "num_train", "num_val", "macs", "num_classes", "image_size", "backbone",
    "dataset_path", "classes", "class_counts", "val_class_counts", "val_source", "world_size", "nodes", "hosts",
)  # fmt: skip


FOLD_EVENTS: tuple[type[ev.Event], ...] = (ev.RunStarted, ev.EpochEnd, ev.PhaseChanged, ev.ClassBalance, ev.Evaluated, *ev.TERMINAL_EVENTS)
"""The kinds of event that change a fold (the others, BatchEnd above all, can be skipped when reading a log)."""


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


class SummaryFold:
    """Folds events into a summary dict and the per-epoch rows (the latest row of an epoch wins; a
    resume drops the rows after the epoch it restarts from)."""

    def __init__(self, summary: dict[str, Any]):
        self.summary = summary
        self.rows: dict[int, dict[str, float]] = {}
        self.ended = False  # a terminal event came after the last RunStarted

    def apply(self, e: ev.Event) -> bool:
        """Fold one event in; True when the summary changed (worth writing)."""
        s = self.summary
        if isinstance(e, ev.RunStarted):
            for k in _STARTED_FIELDS:
                v = getattr(e, k)
                if v is not None:
                    s[k] = v
            self.rows = {k: r for k, r in self.rows.items() if k <= e.start_epoch}
            self._epochs_changed()
            s.update(status=ev.RunStatus.RUNNING.value, error=None, finished_at=None)
            s.pop("pruned_epoch", None)
            s.pop("early_stop_epoch", None)
            s.pop("evaluation", None)  # the best checkpoint may change: judged again at the end
            self.ended = False
            return True
        if isinstance(e, ev.ClassBalance):
            found = majority_baseline(e.train_counts, e.val_counts)
            s["class_balance"] = {"classes": e.classes, "train_counts": e.train_counts, "val_counts": e.val_counts}
            s["majority_class"] = e.classes[found[0]] if found and found[0] < len(e.classes) else None
            s["majority_baseline"] = found[1] if found else None
            s["chance_acc"] = e.chance
            return True
        if isinstance(e, ev.Evaluated):
            s["evaluation"] = {"epoch": e.epoch, "split": e.split, "loss": e.loss, "classes": e.classes, "confusion": e.confusion,
                               **class_report(e.classes, e.confusion)}
            return True
        if isinstance(e, ev.EpochEnd):
            self.rows[e.epoch] = e.row()
            s["best_val_acc"] = e.best_val_acc
            s["train_seconds"] = e.elapsed_seconds
            self._epochs_changed()
            return True
        if isinstance(e, ev.PhaseChanged) and e.feature_cache_seconds is not None:
            s["feature_cache_seconds"] = e.feature_cache_seconds
            return True
        status = ev.TERMINAL_STATUS.get(type(e))
        if status is not None:
            s.update(status=status.value, finished_at=iso_time(e.time), error=e.error if isinstance(e, ev.RunFailed) else None)
            if isinstance(e, ev.RunFinished) and e.early_stop_epoch is not None:
                s["early_stop_epoch"] = e.early_stop_epoch  # completed by early stopping after that epoch
            if isinstance(e, ev.RunPruned):
                s["pruned_epoch"] = e.epoch  # the epoch after which the sweep's pruner stopped it
            self.ended = True
            return True
        return False

    def _epochs_changed(self) -> None:
        s, rows = self.summary, [self.rows[k] for k in sorted(self.rows)]
        s["epochs_completed"] = rows[-1]["epoch"] if rows else 0
        s["final_val_acc"] = _last(rows, "val_acc")
        s["final_train_loss"] = _last(rows, "train_loss")
        s["final_val_loss"] = _last(rows, "val_loss")
        if rows:
            # steady state: a compiled run's warm-up epochs (compile_seconds) left out while others exist
            steady = [r for r in rows if not r.get("compile_seconds")] or rows
            s["seconds_per_epoch"] = sum(r["epoch_seconds"] for r in steady) / len(steady)
            s["images_per_second"] = sum(r["images_per_second"] for r in steady) / len(steady)
            s["mean_seconds_per_epoch"] = sum(r["epoch_seconds"] for r in rows) / len(rows)
            s["mean_images_per_second"] = sum(r["images_per_second"] for r in rows) / len(rows)
            s["peak_memory_mb"] = max(r["peak_memory_mb"] for r in rows)
            for key in ("compile_seconds", "checkpoint_seconds", "checkpoint_write_seconds"):
                if any(r.get(key) is not None for r in rows):
                    s[key] = sum(r.get(key) or 0.0 for r in rows)

    def metrics_csv(self) -> str:
        """metrics.csv: a header of every column seen (epoch first), one row an epoch."""
        rows = [self.rows[k] for k in sorted(self.rows)]
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        lines = [",".join(keys)]
        for r in rows:
            lines.append(",".join("" if r.get(k) is None else f"{r[k]:.6g}" for k in keys))
        return "\n".join(lines) + "\n"


def _last(rows: list[dict[str, float]], key: str) -> float | None:
    for r in reversed(rows):
        if r.get(key) is not None:
            return r[key]
    return None


# ---------------------------------------------------------------------------------------------
# Reading a summary someone else may have written: every field of the right type, or it is damaged

_WHOLE_FIELDS = (
    "epochs", "epochs_completed", "params", "trainable_params", "macs", "num_classes", "num_train", "num_val", "pid",
    "early_stop_epoch", "world_size", "nodes",
)  # fmt: skip
_NUMBER_FIELDS = (
    "width", "best_val_acc", "final_val_acc", "final_train_loss", "final_val_loss", "train_seconds",
    "seconds_per_epoch", "images_per_second", "peak_memory_mb", "checkpoint_mb", "feature_cache_seconds",
    "majority_baseline", "chance_acc",
    "mean_seconds_per_epoch", "mean_images_per_second", "compile_seconds", "checkpoint_seconds", "checkpoint_write_seconds",
)  # fmt: skip
_TEXT_FIELDS = (
    "run_id", "name", "arch", "dataset", "transfer_mode", "device", "device_name", "host", "started_at",
    "finished_at", "error", "backbone", "dataset_path", "val_source",
)  # fmt: skip
_STATUSES = tuple(st.value for st in ev.RunStatus)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return f"text {v[:20]!r}"
    if isinstance(v, (int, float)):
        return repr(v)
    return f"a {type(v).__name__}"


def check_summary(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A summary read from a file, checked field by field: the fields of the right type (numbers that
    are not finite become null: unknown, not damage), and what is wrong with the others (left out).

    Whole numbers are non-negative integers (a float with no fraction is taken); numbers are ints or
    floats, never booleans; texts are strings; ``status`` is one of the run statuses; ``image_size`` is a
    whole number or a [height, width] pair. Any of them may be null but ``run_id`` and ``status``.
    Fields this version does not know are kept as they are.
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    for k, v in raw.items():
        bad = None
        if k == "status":
            if v not in _STATUSES:
                bad = f"is {_kind(v)}, not one of {', '.join(_STATUSES)}"
        elif k == "run_id":
            if not isinstance(v, str) or not v:
                bad = f"is {_kind(v)}, not the run's id"
        elif v is None:
            pass
        elif k in _WHOLE_FIELDS:
            if isinstance(v, float) and math.isfinite(v) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad = f"is {_kind(v)}, not a whole number"
        elif k in _NUMBER_FIELDS:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad = f"is {_kind(v)}, not a number"
            elif not math.isfinite(v):
                v = None
        elif k in _TEXT_FIELDS:
            if not isinstance(v, str):
                bad = f"is {_kind(v)}, not text"
        elif k == "image_size":
            ok = lambda x: isinstance(x, int) and not isinstance(x, bool) and x > 0  # noqa: E731
            if not (ok(v) or (isinstance(v, list) and len(v) == 2 and all(ok(x) for x in v))):
                bad = f"is {_kind(v)}, not an image size"
        elif k == "classes":
            if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                bad = f"is {_kind(v)}, not a list of class names"
        elif k in ("class_counts", "val_class_counts"):
            if not (isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)):
                bad = f"is {_kind(v)}, not a list of counts"
        elif k == "evaluation":
            if not _is_evaluation(v):
                bad = f"is {_kind(v)}, not a confusion matrix with its classes"
        elif k == "rebuilt":
            if not isinstance(v, bool):
                bad = f"is {_kind(v)}, not true or false"
        elif isinstance(v, float) and not math.isfinite(v):
            v = None
        if bad is None:
            out[k] = v
        else:
            problems.append(f"{k} {bad}")
    for k in ("run_id", "status"):
        if k not in raw:
            problems.append(f"{k} is missing")
    return out, problems


def _is_evaluation(v: Any) -> bool:
    """A summary's ``evaluation``: its classes (texts) and a square matrix of counts the size of them."""
    if not isinstance(v, dict):
        return False
    classes, matrix = v.get("classes"), v.get("confusion")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or not isinstance(matrix, list):
        return False
    per = v.get("per_class")
    if per is not None and not (isinstance(per, list) and all(isinstance(c, dict) for c in per)):
        return False
    whole = lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 0  # noqa: E731
    return len(matrix) == len(classes) and all(isinstance(r, list) and len(r) == len(classes) and all(whole(x) for x in r) for r in matrix)


def status_text(summary: dict[str, Any], *, short: bool = False) -> str:
    """The status as a person reads it, the one rule of every face: ``completed (early stop at epoch 7)`` for a
    run early stopping ended (``short``: ``early stop 7``, for a table column at 80 columns), ``damaged``
    where the summary says why it is (``damaged``, set by the readers of ``read_summary_checked``)."""
    if summary.get("damaged"):
        return "damaged"
    status = str(summary.get("status") or "?")
    epoch = summary.get("early_stop_epoch")
    if status == ev.RunStatus.COMPLETED.value and isinstance(epoch, int) and not isinstance(epoch, bool):
        return f"early stop {epoch}" if short else f"{status} (early stop at epoch {epoch})"
    return status
