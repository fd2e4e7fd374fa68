"""Following a run through its folder: tail ``events.jsonl`` into a model of the run, and notice a
training process that ended without a final event. No Textual here: ``follow_run`` is the body of the
dashboard's thread worker, and works the same on a run started now, by an earlier app, headless, or by a
sweep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..training.events import Event, RunStarted
from .store import RunDir

CHUNK_BYTES = 1 << 16  # read the log 64 KiB at a time: a long history replays in steps with a small peak


class RunFollower(Protocol):
    """What ``follow_run`` feeds: the dashboard's model of a run."""

    lock: threading.RLock
    summary: dict[str, Any] | None
    version: int

    def apply_all(self, events: list[Event]) -> None: ...

    @property
    def finished(self) -> bool: ...

    def process_gone(self, message: str) -> None: ...


def log_tail(run: RunDir, lines: int = 6) -> str:
    try:
        with open(run.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return "\n".join(kept)


def follow_run(
    run: RunDir,
    model: RunFollower,
    *,
    notify: Callable[[], None],
    cancelled: Callable[[], bool],
    process: Callable[[], subprocess.Popen | None] = lambda: None,
    poll: float = 0.25,
    idle_poll: float = 1.0,
) -> None:
    """Tail the run's events into ``model`` until ``cancelled()``; call ``notify()`` after each change.

    ``process()`` gives the training process when this app started it (its exit is noticed at once);
    otherwise the pid in summary.json is checked.
    """
    offset = 0
    gone_reported = False
    summary_final = False
    last_status_check = 0.0
    last_notify = 0.0
    pending = False  # applied events the UI has not been told about yet
    while not cancelled():
        events, new_offset = run.read_events(offset, max_bytes=CHUNK_BYTES)
        if events:
            model.apply_all(events)
            if any(isinstance(e, RunStarted) for e in events):
                summary_final = gone_reported = False
            del events
            pending = True
        caught_up = new_offset - offset < CHUNK_BYTES // 2
        if pending and (caught_up or time.monotonic() - last_notify > 0.2):
            last_notify, pending = time.monotonic(), False
            notify()
        if new_offset != offset:
            offset = new_offset
            continue  # more may be waiting: keep reading without sleeping
        if model.finished and not summary_final:
            # The trainer writes its final summary just after the final event.
            summary_final = _load_summary(run, model)
            notify()
        now = time.monotonic()
        if not model.finished and not gone_reported and now - last_status_check > 1.0:
            last_status_check = now
            message = _process_gone(run, process())
            if message:
                # One last read: the final event may have landed just before the exit.
                events, offset = run.read_events(offset)
                model.apply_all(events)
                if not model.finished:
                    model.process_gone(message)
                _load_summary(run, model)
                gone_reported = True
                notify()
        time.sleep(idle_poll if model.finished else poll)


def _process_gone(run: RunDir, proc: subprocess.Popen | None) -> str | None:
    if proc is not None:
        rc = proc.poll()
        if rc is None:
            return None
        if rc < 0:  # killed by a signal (kill -9, the OOM killer): the run is stopped, as the runs screen says
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"the training process was killed by {name} before finishing; u resumes it from its last completed epoch"
        tail = log_tail(run)
        return f"training process exited with code {rc} before finishing" + (f":\n{tail}" if tail else "")
    if run.status() != "running":
        return "the training process is gone (killed, or the machine restarted) without a final event"
    return None


def _load_summary(run: RunDir, model: RunFollower) -> bool:
    """Copy summary.json into the model; True once it holds the run's final status."""
    summary = run.read_summary()
    with model.lock:
        model.summary = summary
        model.version += 1
    return summary.get("status") != "running" or run.status() != "running"


def is_running(run: RunDir) -> bool:
    return run.status() == "running"
