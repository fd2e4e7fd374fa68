"""The run folder's lock: ``runs/<id>/lock``, an exclusive ``fcntl.flock`` held by the process that trains the run.

The lock, not a pid, answers "is this run being trained?" on this host: it is held for as long as the training
process lives and released by the kernel when it ends, however it ends (``kill -9`` included), so a pid reused by
another process, or a ``process.pid`` that could not be written, never makes a dead run look alive.

- The training process holds it from before anything in the folder changes until its run has ended.
- Whoever starts a detached training process (the TUI) takes it first and hands it down: the child inherits the
  open file (``pass_fds``, its number in ``OPTAI_RUN_LOCK_FD``) and adopts it, so there is no moment when a
  starting run looks stopped, and no moment when a second resume could slip in.
- A new run's folder is locked as it is created (:meth:`RunDir.create` with ``lock=True``), before its
  ``config.yaml`` makes it a run.
- Readers ask :func:`lock_state`. A folder without a lock file (made before locks existed, or by hand) is
  answered by the pid, as before.

The file stays (empty) after the run ends: only the lock on it means something. Without ``fcntl`` (Windows)
every lock is granted and the pid answers.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from ..fsio import fault_point, storage

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "lock"
ENV_FD = "OPTAI_RUN_LOCK_FD"

_HELD: dict[str, RunLock] = {}  # the locks this process holds, by run folder


def _key(run_path: Path | str) -> str:
    return os.path.realpath(run_path)


class RunLock:
    """The lock on one run folder, held by this process until :meth:`release`."""

    def __init__(self, run_path: Path | str, fd: int | None):
        self.run_path = Path(run_path)
        self.fd = fd

    @property
    def held(self) -> bool:
        return _HELD.get(_key(self.run_path)) is self

    def release(self) -> None:
        """Stop holding the lock here. Only the file is closed (never LOCK_UN): a child process that inherited
        it (a detached trainer) keeps holding it."""
        if _HELD.get(_key(self.run_path)) is self:
            del _HELD[_key(self.run_path)]
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def held_here(run_path: Path | str) -> RunLock | None:
    """The lock this process holds on the run folder, if any."""
    return _HELD.get(_key(run_path))


def try_acquire(run_path: Path | str, *, patience: float = 0.5) -> RunLock | None:
    """Take the run folder's lock (creating the lock file); None when another process holds it.

    Holding it already in this process returns that lock. ``patience``: how long to retry, since a reader
    probing the lock holds it for an instant (a real holder holds it for the whole run).
    """
    mine = held_here(run_path)
    if mine is not None:
        return mine
    path = Path(run_path) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:  # a read-only folder: an existing lock file can still be locked (flock needs no write)
        with storage(path, "lock"):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    if fcntl is not None:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.01)
            except OSError:  # a file system without flock: the pid answers, as before locks
                break
    return _register(run_path, fd)


def adopt_inherited(run_path: Path | str) -> RunLock | None:
    """The lock a launcher took on this run folder and handed to this process (``OPTAI_RUN_LOCK_FD``), or
    None. The variable is consumed, so that processes this one starts do not claim the lock too."""
    value = os.environ.pop(ENV_FD, None)
    if value is None:
        return None
    try:
        fd = int(value)
        mine, there = os.fstat(fd), os.stat(Path(run_path) / LOCK_NAME)
    except (ValueError, OSError):
        return None
    if (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino):
        return None  # not this folder's lock: leave that file alone
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours (the same open file): returns at once
        except OSError:
            return None
    os.set_inheritable(fd, False)
    return _register(run_path, fd)


def _register(run_path: Path | str, fd: int) -> RunLock:
    lock = RunLock(run_path, fd)
    _HELD[_key(run_path)] = lock
    fault_point("lock")
    return lock


def lock_state(run_path: Path | str) -> bool | None:
    """True: a process holds the run folder's lock (this one included); False: the lock file is there and
    nobody holds it (whoever trained the run is gone); None: no lock file (a folder from before locks, or
    made by hand), or it cannot be read: the caller asks the pid."""
    if held_here(run_path) is not None:
        return True
    if fcntl is None:
        return None
    try:
        fd = os.open(Path(run_path) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock taken to probe
    return False


def _close_in_forked_child() -> None:
    """A forked child (a data-loading worker) is not the training process: it must not keep the lock alive."""
    for lock in list(_HELD.values()):
        lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_forked_child)
