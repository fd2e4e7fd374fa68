"""Start training as a detached process and follow a run through its folder. No Textual here.

The process gets its own session (``start_new_session``), no stdin and ``train.log`` as stdout/stderr, so
closing the app or losing the SSH connection does not stop it. ``follow_run`` is the body of the
dashboard's thread worker: it tails ``events.jsonl`` into a ``RunModel`` and notices a process that ended
without writing a final event.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..runs.store import RunDir
from .history import RunModel

CHUNK_BYTES = 1 << 16  # read the log 64 KiB at a time: a long history replays in steps with a small peak


def spawn_training(run: RunDir, *, resume: bool = False) -> subprocess.Popen:
    """Run ``optai-tui train`` on an existing run folder in a new session; returns the process."""
    flag = "--resume" if resume else "--run-dir"
    cmd = [sys.executable, "-m", "optai_tui", "train", flag, str(run.path.resolve()), "--plain"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(run.log_path, "ab") as log:
        if resume:
            log.write(f"\n--- resumed {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd=os.getcwd(),
        )
    # The trainer writes its own pid once it is up; writing it now lets status() notice a process that
    # dies while still importing torch. A file of its own: summary.json belongs to the trainer.
    try:
        run.write_pid(proc.pid)
    except OSError:
        pass
    return proc


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
    model: RunModel,
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
            if any(e.get("event") == "RunStarted" for e in events):
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
        tail = log_tail(run)
        return f"training process exited with code {rc} before finishing" + (f":\n{tail}" if tail else "")
    if run.status() != "running":
        return "the training process is gone (killed, or the machine restarted) without a final event"
    return None


def _load_summary(run: RunDir, model: RunModel) -> bool:
    """Copy summary.json into the model; True once it holds the run's final status."""
    summary = run.read_summary()
    with model.lock:
        model.summary = summary
        model.version += 1
    return summary.get("status") != "running" or run.status() != "running"


def is_running(run: RunDir) -> bool:
    return run.status() == "running"


def resolve_path(runs_dir: Path, run_id: str) -> RunDir:
    from ..runs.store import resolve_run

    return resolve_run(run_id, runs_dir)
