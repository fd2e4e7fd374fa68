"""Atomic file writes: the one home for writing a file so that readers never see half of it.

Every file the product rewrites (summaries, metrics, configs, presets, checkpoints, exports, the crash
log) goes through :func:`atomic_write_bytes`: a temp file in the same folder, fsync, then ``os.replace``.
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

from .errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)


def umask() -> int:
    """The process's umask, read once at import (reading it means setting it)."""
    return _UMASK


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int | None = None) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers never see half a file.

    ``mode``: the new file's permissions (default: 0o666 less the umask, as ``open`` would give).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, (0o666 & ~_UMASK) if mode is None else mode)  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
