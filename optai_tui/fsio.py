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
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import traceback
from collections.abc import Iterator
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
