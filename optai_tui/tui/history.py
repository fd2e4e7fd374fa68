"""The dashboard's model of a run: bounded, downsampled metric history rebuilt from its events.

No Textual here: a thread worker feeds event dicts (as read from ``events.jsonl``) into ``RunModel``
under its lock, and the screen reads it at a bounded rate. Memory stays flat however long the run is:
every series holds at most ``capacity`` points in preallocated arrays and merges neighbouring pairs
when full; the epoch table and the log keep their last rows only.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

from ..training import events as ev
from ..training.eta import EtaEstimator
from ..training.classmetrics import class_report, majority_baseline
from ..training.events import EPOCH_METRICS

STEP_CAPACITY = 512  # points per step-resolution series (a chart is at most ~200 braille columns wide)
EPOCH_CAPACITY = 256
MAX_ROWS = 100  # epoch table rows kept (the full table is metrics.csv in the run folder)
MAX_LOG = 200
SMOOTHING = 0.8  # EMA factor of the train-loss curve
THROUGHPUT_TAU = 5.0  # seconds: the recent img/s is an EMA over about this much training time


class Series:
    """At most ``capacity`` (x, y) points. When full, neighbouring pairs merge (x of the later point, mean y)
    and later points are averaged ``stride`` at a time, so the history is uniformly downsampled."""

    __slots__ = ("_acc_n", "_acc_x", "_acc_y", "capacity", "count", "n", "stride", "xs", "ys")

    def __init__(self, capacity: int = STEP_CAPACITY):
        if capacity < 2 or capacity % 2:
            raise ValueError("capacity must be an even number >= 2")
        self.capacity = capacity
        self.xs = array("d", bytes(8 * capacity))
        self.ys = array("d", bytes(8 * capacity))
        self.clear()

    def clear(self) -> None:
        self.n = 0
        self.stride = 1
        self.count = 0
        self._acc_n, self._acc_x, self._acc_y = 0, 0.0, 0.0

    def add(self, x: float, y: float) -> None:
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        self.count += 1
        self._acc_n += 1
        self._acc_x = x
        self._acc_y += y
        if self._acc_n >= self.stride:
            self._push(self._acc_x, self._acc_y / self._acc_n)
            self._acc_n, self._acc_y = 0, 0.0

    def _push(self, x: float, y: float) -> None:
        self.xs[self.n] = x
        self.ys[self.n] = y
        self.n += 1
        if self.n == self.capacity:  # full: every stored point now stands for 2x as many raw ones
            xs, ys = self.xs, self.ys
            for i in range(self.capacity // 2):
                xs[i] = xs[2 * i + 1]
                ys[i] = 0.5 * (ys[2 * i] + ys[2 * i + 1])
            self.n = self.capacity // 2
            self.stride *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """Copies of the points, with a partly filled bucket as the latest point."""
        xs, ys = self.xs[: self.n].tolist(), self.ys[: self.n].tolist()
        if self._acc_n:
            xs.append(self._acc_x)
            ys.append(self._acc_y / self._acc_n)
        return xs, ys

    def __len__(self) -> int:
        return self.n + (1 if self._acc_n else 0)

    @property
    def last(self) -> float | None:
        if self._acc_n:
            return self._acc_y / self._acc_n
        return self.ys[self.n - 1] if self.n else None

    def truncate_after(self, x: float) -> None:
        """Forget points beyond ``x`` (a resumed run replays the epochs after its checkpoint)."""
        if self._acc_n and self._acc_x > x:
            self._acc_n, self._acc_y = 0, 0.0
        while self.n and self.xs[self.n - 1] > x:
            self.n -= 1


ROW_KEYS = ("epoch", *EPOCH_METRICS)


class RowRing:
    """The last ``capacity`` per-epoch metric rows in one preallocated array (missing values are NaN)."""

    def __init__(self, capacity: int = MAX_ROWS, keys: tuple[str, ...] = ROW_KEYS):
        self.keys = keys
        self.capacity = capacity
        self.data = array("d", [math.nan]) * (capacity * len(keys))
        self.start = 0
        self.size = 0

    def append(self, row: dict[str, float]) -> None:
        k = len(self.keys)
        slot = (self.start + self.size) % self.capacity
        if self.size == self.capacity:
            self.start = (self.start + 1) % self.capacity
        else:
            self.size += 1
        for i, key in enumerate(self.keys):
            v = row.get(key)
            self.data[slot * k + i] = float(v) if isinstance(v, (int, float)) else math.nan

    def pop(self) -> None:
        if self.size:
            self.size -= 1

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __getitem__(self, index: int) -> dict[str, float]:
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(index)
        k = len(self.keys)
        slot = (self.start + index) % self.capacity
        out = {}
        for i, key in enumerate(self.keys):
            v = self.data[slot * k + i]
            if v == v:  # not NaN
                out[key] = int(v) if key == "epoch" else v
        return out

    def __iter__(self):
        return (self[i] for i in range(self.size))


class RunModel:
    """Everything the dashboard shows about one run, from its events. Thread-safe through ``lock``."""

    def __init__(self, run_id: str, *, step_capacity: int = STEP_CAPACITY, epoch_capacity: int = EPOCH_CAPACITY):
        self.lock = threading.RLock()
        self.run_id = run_id
        self.version = 0  # bumps on every applied event
        self.step_version = 0
        self.epoch_version = 0
        self.status = "waiting"  # waiting | running | completed | stopped | failed | pruned
        self.error: str | None = None
        self.info: dict[str, Any] = {}  # RunStarted fields
        self.summary: dict[str, Any] | None = None  # summary.json once the run ended
        self.epochs = 0
        self.epoch = 0  # epoch being trained (1-based) or last completed
        self.epochs_done = 0
        self.step = 0
        self.steps_per_epoch = 0
        self.images_per_second: float | None = None  # of the last progress interval (a few batches): noisy
        self.recent_images_per_second: float | None = None  # smoothed over ~THROUGHPUT_TAU seconds
        self.current_lr: float | None = None
        self.val_acc: float | None = None
        self.best_val_acc: float | None = None
        self.peak_memory_mb: float | None = None
        self.phase: str | None = None
        self.last_event_time: float | None = None
        self.majority_baseline: float | None = None  # ClassBalance: what an accuracy is read against
        self.majority_class: str | None = None
        self.chance: float | None = None
        self.evaluation: dict[str, Any] | None = None  # Evaluated: the best checkpoint's per-class report
        self.early_stop_epoch: int | None = None
        # metric history
        self.loss = Series(step_capacity)  # train loss, EMA-smoothed, per progress event
        self.lr = Series(step_capacity)
        self.val_loss = Series(epoch_capacity)
        self.train_acc = Series(epoch_capacity)
        self.val_acc_series = Series(epoch_capacity)
        self._ema = 0.0
        self._ema_k = 0
        self.rows = RowRing(MAX_ROWS)
        self.rows_seq = 0  # epoch rows ever added (the table appends the new ones)
        self.rows_gen = 0  # bumps when a resume rewinds the history (the table rebuilds)
        self.log: deque[tuple[int, str, str]] = deque(maxlen=MAX_LOG)  # (seq, level, text)
        self.log_seq = 0
        self._last_batch: tuple[float, int] | None = None  # for the img/s weighting
        self._eta = EtaEstimator()  # the smoothed training rate and what each epoch costs besides

    # -- feeding --------------------------------------------------------------------------
    def apply_all(self, events: list[ev.Event]) -> None:
        with self.lock:
            for e in events:
                self.apply(e)

    def apply(self, e: ev.Event) -> None:
        """Fold one event (as ``event_from_dict`` rebuilt it from the log) into the model."""
        handler = _HANDLERS.get(type(e))
        with self.lock:
            if handler is not None:
                handler(self, e)
            self._eta.apply(e)
            line = ev.event_line(e)
            if line is not None and line[0] != "epoch":  # epochs go to the table, not the log
                self.add_log(*line)
            self.version += 1
            self.last_event_time = e.time

    def add_log(self, level: str, text: str) -> None:
        with self.lock:
            self.log_seq += 1
            self.log.append((self.log_seq, level, text))
            self.version += 1

    def _on_run_started(self, e: ev.RunStarted) -> None:
        self.info = e.to_dict()
        self.evaluation = self.early_stop_epoch = None
        self.status = "running"
        self.error = None
        self.summary = None
        self.epochs = e.epochs
        self.steps_per_epoch = e.steps_per_epoch
        start = e.start_epoch
        self.epochs_done = self.epoch = start
        self.step = 0
        self._last_batch = None
        self.images_per_second = self.recent_images_per_second = None
        if e.resumed:
            for s in (self.loss, self.lr, self.val_loss, self.train_acc, self.val_acc_series):
                s.truncate_after(float(start))
            while self.rows and self.rows[-1].get("epoch", 0) > start:
                self.rows.pop()
            self.rows_gen += 1

    def _on_batch_end(self, e: ev.BatchEnd) -> None:
        self.status = "running"
        self.epoch = e.epoch
        self.step = e.step
        self.steps_per_epoch = e.steps_per_epoch or self.steps_per_epoch
        gs = e.global_step
        x = gs / max(self.steps_per_epoch, 1)
        loss = e.loss
        if math.isfinite(loss):
            # zero-initialised EMA with bias correction (as TensorBoard smooths)
            self._ema = SMOOTHING * self._ema + (1 - SMOOTHING) * loss
            self._ema_k += 1
            self.loss.add(x, self._ema / (1 - SMOOTHING**self._ema_k) if self._ema_k < 200 else self._ema)
        self.current_lr = e.lr
        self.lr.add(x, self.current_lr)
        self.images_per_second = e.images_per_second
        t = e.time
        if self.recent_images_per_second is None or self._last_batch is None:
            self.recent_images_per_second = self.images_per_second
        elif t > self._last_batch[0]:  # weighted by the time the rate was measured over (a short last interval counts little)
            w = 1.0 - math.exp(-(t - self._last_batch[0]) / THROUGHPUT_TAU)
            self.recent_images_per_second += w * (self.images_per_second - self.recent_images_per_second)
        self._last_batch = (t, gs)
        self.step_version += 1

    def _on_epoch_end(self, e: ev.EpochEnd) -> None:
        m = e.metrics
        ep = e.epoch
        self.epochs = e.epochs or self.epochs
        self.epoch = self.epochs_done = ep
        self.step = self.steps_per_epoch
        x = float(ep)
        if m.val_loss is not None:
            self.val_loss.add(x, m.val_loss)
        self.train_acc.add(x, 100.0 * m.train_acc)
        if m.val_acc is not None:
            self.val_acc = m.val_acc
            self.val_acc_series.add(x, 100.0 * self.val_acc)
        if e.best_val_acc is not None:
            self.best_val_acc = e.best_val_acc
        if m.peak_memory_mb:
            self.peak_memory_mb = m.peak_memory_mb
        self.rows.append(e.row())
        self.rows_seq += 1
        self.epoch_version += 1

    def _on_phase_changed(self, e: ev.PhaseChanged) -> None:
        self.phase = e.phase

    def _on_run_finished(self, e: ev.RunFinished) -> None:
        self.status = "completed"
        self.early_stop_epoch = e.early_stop_epoch
        if e.best_val_acc is not None:
            self.best_val_acc = e.best_val_acc

    def _on_class_balance(self, e: ev.ClassBalance) -> None:
        found = majority_baseline(e.train_counts, e.val_counts)
        self.majority_baseline = found[1] if found else None
        self.majority_class = e.classes[found[0]] if found and found[0] < len(e.classes) else None
        self.chance = e.chance

    def _on_evaluated(self, e: ev.Evaluated) -> None:
        self.evaluation = {"epoch": e.epoch, "split": e.split, "classes": e.classes, "confusion": e.confusion, **class_report(e.classes, e.confusion)}

    def _on_run_stopped(self, e: ev.RunStopped) -> None:
        self.status = "stopped"

    def _on_run_pruned(self, e: ev.RunPruned) -> None:
        self.status = "pruned"

    def _on_run_failed(self, e: ev.RunFailed) -> None:
        self.status = "failed"
        self.error = e.error

    def process_gone(self, message: str) -> None:
        """The training process ended without a final event (killed, or crashed before it could write one)."""
        with self.lock:
            if self.status in ("waiting", "running"):
                self.status = "failed" if "exit" in message else "stopped"
                self.error = message
                self.add_log("error", message)

    # -- reading --------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.status in ("completed", "stopped", "failed", "pruned")

    def throughput(self) -> tuple[float | None, str]:
        """(images per second, what it is): the smoothed recent rate while training, the run's overall rate
        (its summary's, else the mean of its epochs') once it has ended."""
        with self.lock:
            if self.finished:
                overall = (self.summary or {}).get("images_per_second")
                if not overall:
                    rates = [r["images_per_second"] for r in self.rows if r.get("images_per_second")]
                    overall = sum(rates) / len(rates) if rates else None
                if overall:
                    return float(overall), "overall"
                return None, "overall"
            return self.recent_images_per_second, "recent"

    def eta(self, now: float | None = None) -> tuple[float | None, float | None]:
        """(seconds left in this epoch, seconds left in the run), from the event timestamps
        (``training/eta.py``: a smoothed rate, the epochs still to train, "stop after this epoch")."""
        with self.lock:
            if self.status != "running":
                return None, None
            return self._eta.estimate(now)


_HANDLERS: dict[type[ev.Event], Callable[[RunModel, Any], None]] = {
    ev.RunStarted: RunModel._on_run_started,
    ev.BatchEnd: RunModel._on_batch_end,
    ev.EpochEnd: RunModel._on_epoch_end,
    ev.PhaseChanged: RunModel._on_phase_changed,
    ev.RunFinished: RunModel._on_run_finished,
    ev.RunStopped: RunModel._on_run_stopped,
    ev.RunFailed: RunModel._on_run_failed,
    ev.RunPruned: RunModel._on_run_pruned,
    ev.ClassBalance: RunModel._on_class_balance,
    ev.Evaluated: RunModel._on_evaluated,
}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}:{s % 60:02d}"
