"""The run folder's sink: every event a trainer emits is appended to ``events.jsonl`` first (the source of
truth), then ``summary.json`` and ``metrics.csv`` are rewritten atomically from the events folded so far.

A recorder opened on a run that already has events (a resume) replays its log, and :meth:`RunRecorder.begin`
rewrites the summary and the metrics from it, so whatever an interrupted process left in them (an epoch or a
final event behind the log) is made whole before training goes on.
"""

from __future__ import annotations

import contextlib
import os
import socket

from ..fmt import now_iso
from ..fsio import atomic_write_text
from ..training import events as ev
from .store import RunDir
from .summary import SummaryFold


class RunRecorder:
    def __init__(self, run: RunDir):
        self.run = run
        self.fold = SummaryFold(run.read_summary())
        for e in run.iter_events():
            self.fold.apply(e)

    @property
    def summary(self) -> dict:
        return self.fold.summary

    def begin(self, pid: int | None = None) -> None:
        """The process that trains the run is up: record it as running, with its pid and host, and the
        metrics as the log has them."""
        pid = os.getpid() if pid is None else pid
        with contextlib.suppress(OSError):  # for display only: the run's lock tells whether it is alive
            self.run.write_pid(pid)
        s = self.fold.summary
        s.update(pid=pid, host=socket.gethostname(), status=ev.RunStatus.RUNNING.value, error=None, finished_at=None)
        s["started_at"] = s.get("started_at") or now_iso()
        s.pop("rebuilt", None)
        self._write_metrics()
        self.run.write_summary(s)

    def sync(self) -> None:
        """Rewrite the summary and the metrics where they are behind the log (a run that is not training)."""
        if self.fold.rows and _read(self.run.path / "metrics.csv") != self.fold.metrics_csv():
            self._write_metrics()
        if self.run.read_summary_file() != self.fold.summary:
            self.run.write_summary(self.fold.summary)

    def fail(self, error: str) -> None:
        """The run could not even start (no event was emitted): record why."""
        self.fold.summary.update(status=ev.RunStatus.FAILED.value, error=error, finished_at=now_iso())
        self.run.write_summary(self.fold.summary)

    def __call__(self, e: ev.Event) -> None:
        self.run.append_event(e)
        changed = self.fold.apply(e)
        if isinstance(e, (ev.EpochEnd, ev.RunStarted)):  # a resume drops the rows after its epoch
            self._write_metrics()
        if isinstance(e, ev.EpochEnd):
            last = self.run.last_checkpoint
            self.fold.summary["checkpoint_mb"] = last.stat().st_size / 2**20 if last.is_file() else None
        if changed:
            self.run.write_summary(self.fold.summary)

    def _write_metrics(self) -> None:
        path = self.run.path / "metrics.csv"
        if self.fold.rows or path.exists():
            atomic_write_text(path, self.fold.metrics_csv())


def _read(path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
