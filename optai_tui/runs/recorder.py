"""The run folder's sink: every event a trainer emits is appended to ``events.jsonl`` first (the source of
truth), then ``summary.json`` and ``metrics.csv`` are rewritten atomically from the events folded so far.

A recorder opened on a run that already has events (a resume) replays its log, so the summary and the
metrics it writes are rebuilt from the log, whatever an interrupted process left in them.
"""

from __future__ import annotations

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
        """The process that trains the run is up: record it as running, with its pid and host."""
        pid = os.getpid() if pid is None else pid
        self.run.write_pid(pid)
        s = self.fold.summary
        s.update(pid=pid, host=socket.gethostname(), status=ev.RunStatus.RUNNING.value, error=None, finished_at=None)
        s["started_at"] = s.get("started_at") or now_iso()
        s.pop("rebuilt", None)
        self.run.write_summary(s)

    def fail(self, error: str) -> None:
        """The run could not even start (no event was emitted): record why."""
        self.fold.summary.update(status=ev.RunStatus.FAILED.value, error=error, finished_at=now_iso())
        self.run.write_summary(self.fold.summary)

    def __call__(self, e: ev.Event) -> None:
        self.run.append_event(e)
        changed = self.fold.apply(e)
        if isinstance(e, ev.EpochEnd):
            atomic_write_text(self.run.path / "metrics.csv", self.fold.metrics_csv())
            last = self.run.last_checkpoint
            self.fold.summary["checkpoint_mb"] = last.stat().st_size / 2**20 if last.is_file() else None
        if changed:
            self.run.write_summary(self.fold.summary)
