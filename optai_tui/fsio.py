"""File writes: the one home for writing a file so that readers never see half of it, and for saying
clearly why a write failed.

Every file the product rewrites (summaries, metrics, configs, presets, checkpoints, exports, the crash
log) goes through :func:`atomic_write_bytes`: a temp file in the same folder, fsync, then ``os.replace``.
Append-only logs go through :func:`append_bytes`, which never leaves half a line behind. A write that
fails (a full disk, ``ulimit -f``, a read-only folder, no permission) raises a
:class:`~optai_tui.errors.StorageError` naming the file and the system's reason; what was there before
is left as it was.

Permissions: new files get ``0o666`` less the process's umask and new folders ``0o777`` less it, as any
program the user runs would make them; the crash log alone is private (``0o600``, in a ``0o700`` folder
when that folder is made here).

A killed process may leave such a temp file behind (``.NAME.XXXXXXXX.tmp``); the run folder removes its own
when it is next opened for training (``runs/recover.py``).

:func:`fault_point` is a test hook: the fault-injection suite (``tests/faults/``) kills the process, or makes a
write fail, at a chosen point. It does nothing unless ``OPTAI_FAULT`` is set.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError, StorageError

_UMASK = os.umask(0)
os.umask(_UMASK)


def umask() -> int:
    """The process's umask now (Linux: read from /proc, which does not change it), else the one read at
    import (reading it portably means setting it, which is not safe once threads run)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK


@contextlib.contextmanager
def storage(path: Path | str, action: str = "write") -> Iterator[None]:
    """Turn an OSError met while writing ``path`` into a StorageError naming it (one already raised
    passes through unchanged)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as e:
        raise StorageError(path, e, action=action) from None


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int | None = None, make_parents: bool = True) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers never see half a file,
    and a failed write (StorageError) leaves the old file as it was, with no temp file behind.

    ``mode``: the new file's permissions (default: 0o666 less the umask, as ``open`` would give).
    ``make_parents=False``: a missing folder is an error (FileNotFoundError as a StorageError), not made.
    """
    path = Path(path)
    if make_parents:
        with storage(path.parent, "create the folder"):
            path.parent.mkdir(parents=True, exist_ok=True)
    with storage(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, (0o666 & ~umask()) if mode is None else mode)  # mkstemp makes 0600 files
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            fault_point(f"write.{path.name}")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def append_bytes(path: Path | str, data: bytes) -> None:
    """Append ``data`` to ``path`` (created when missing) in one piece: a write that fails part way (a
    full disk, a file size limit) is cut back off, so the file never ends in half a line. StorageError
    when it cannot be written."""
    with storage(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


def atomic_copy(src: Path | str, dst: Path | str, data: bytes | None = None) -> None:
    """Make ``dst`` hold what ``src`` holds, atomically: a hard link to ``src``'s file when the file system
    allows (no second copy on disk; ``src`` is later replaced by a rename, never written in place), else a
    copy of ``data`` (``src``'s bytes when not given). Readers of ``dst`` see the old file or the new one."""
    src, dst = Path(src), Path(dst)
    tmp = dst.parent / f".{dst.name}.{secrets.token_hex(4)}.tmp"
    try:
        os.link(src, tmp)
    except OSError:  # no hard links here (some network and FUSE file systems): a copy
        atomic_write_bytes(dst, src.read_bytes() if data is None else data)
        return
    try:
        fault_point(f"write.{dst.name}")
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path | str, text: str, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def writing(path: Path | str, what: str = "file", field: str | None = None) -> Iterator[None]:
    """Turn a failure to write ``path`` (a user's choice of file) into one clear error naming it."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or str(e)
        raise ConfigError(f"cannot write the {what} {str(path)!r}: {reason}", hint="choose a folder you can write to", field=field) from None


def save_crash_log(path: Path) -> str:
    """Keep the current exception's traceback in ``path`` (private to the user); returns where it went,
    for a message ("traceback saved to ...", or that it could not be saved)."""
    try:
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a folder made here is private too
        atomic_write_text(path, traceback.format_exc(), mode=0o600)
        return f"traceback saved to {path}"
    except OSError:
        return "traceback could not be saved"


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """A per-operation socket timeout while downloading: a stalled connection (a firewall dropping
    packets) fails instead of hanging for ever. An explicit default timeout already set is kept."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


# ---------------------------------------------------------------------------------------------
# the fault-injection test hook

FAULT_ENV = "OPTAI_FAULT"
FAULT_TRACE_ENV = "OPTAI_FAULT_TRACE"
_fault_hits: dict[str, int] = {}


def fault_point(name: str, torn: Callable[[], object] | None = None) -> None:
    """A test hook, for the fault-injection suite (``tests/faults/``); a no-op unless ``OPTAI_FAULT`` is set.

    ``OPTAI_FAULT=NAME:N[:ACTION]`` acts the ``N``-th time this process reaches the point ``NAME``: ACTION
    ``kill`` (the default) sends the process SIGKILL there, after calling ``torn`` (which leaves a half-done
    write, as a real kill might); ``enospc`` raises ``OSError(ENOSPC)`` (a full disk); ``pause`` stops the
    process (SIGSTOP) until a test has done what it wants at that moment and sends SIGCONT.
    Several such specs may be given, separated by commas (at most one for a point).
    ``OPTAI_FAULT_TRACE=FILE`` appends the name of every point reached to FILE, one a line.

    Points: ``write.<file name>`` (:func:`atomic_write_bytes` and :func:`atomic_copy`: the new content is
    written, the file not yet replaced), ``event.<EventName>`` (an event appended to ``events.jsonl``),
    ``lock`` (the run folder's lock just taken).
    """
    spec = os.environ.get(FAULT_ENV)
    trace = os.environ.get(FAULT_TRACE_ENV)
    if not spec and not trace:
        return
    if trace:
        with contextlib.suppress(OSError):
            fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{name}\n".encode())
            finally:
                os.close(fd)
    for one in (spec or "").split(","):
        target, _, rest = one.strip().partition(":")
        if target == name:
            _fault(name, rest, torn)


def _fault(name: str, rest: str, torn: Callable[[], object] | None) -> None:
    count, _, action = rest.partition(":")
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if str(_fault_hits[name]) != count.strip():
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "pause":
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    if torn is not None:
        torn()
    os.kill(os.getpid(), signal.SIGKILL)
