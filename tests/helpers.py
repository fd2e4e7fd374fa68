"""Small helpers shared by tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from optai_tui.runs.store import RunDir


def event_dicts(run: RunDir) -> list[dict[str, Any]]:
    """The run's events as the one parser rebuilds them, back as JSON-like dicts (for terse asserts)."""
    return [e.to_dict() for e in run.iter_events()]


def play_the_trainer(run: RunDir):
    """This test process plays the run's training process: it holds the run's lock (runs/lock.py), which is
    what says that a run is being trained. Returns the lock (``.release()`` ends the act)."""
    from optai_tui.runs.lock import try_acquire

    return try_acquire(run.path)


@contextlib.contextmanager
def trained_by_another_process(run: RunDir) -> Iterator[subprocess.Popen]:
    """Another process trains ``run`` meanwhile: it holds the run's lock, and its pid is in process.pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run.lock_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        run.write_pid(holder.pid)
        yield holder
    finally:
        holder.kill()
        holder.wait()


_HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""
