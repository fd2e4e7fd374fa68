"""A sweep's folder, its Optuna storage, and the lock that keeps its trial budget exact.

    runs/sweeps/<name>/
        sweep.json       name, storage (embedded, or the URL without its password), created, the spec
        spec.yaml        the spec as the sweep runs it (its base resolved in the study)
        study.journal    the embedded storage: Optuna's JournalStorage file (no server needed)
        budget.lock      taken while a worker counts the trials and claims the next one
        sweep.pid        the `optai-tui sweep run` process, while it runs
        sweep.log        the output of a sweep started detached (the TUI)

The trials themselves are ordinary run folders in the runs directory (``<sweep>-t<N>``).

Storage: embedded (the journal file above, for the workers of one machine), ``sqlite:///file`` or
``postgresql://user@host/db`` (Optuna's RDBStorage with heartbeats, so that a dead worker's trial is failed
and, when asked, retried). The budget lock is a file lock for the first two and a PostgreSQL advisory lock
for the last, so workers on many machines claim trials one at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, UnknownNameError
from ..fmt import now_iso
from ..fsio import atomic_write_json, atomic_write_text
from ..locations import default_runs_dir
from ..runs.store import pid_alive

SWEEPS = "sweeps"
STORAGE_ENV = "OPTAI_SWEEP_STORAGE"
"""A storage URL given through the environment (keeps a password out of the process list and the shell history)."""
HEARTBEAT_SECONDS = 30  # a worker's RDB heartbeat; a trial without one for GRACE_SECONDS is failed
GRACE_SECONDS = 90


def sweeps_dir(runs_dir: Path | str | None = None) -> Path:
    return (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / SWEEPS


@dataclass
class SweepDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    info_path = property(lambda self: self.path / "sweep.json")
    spec_path = property(lambda self: self.path / "spec.yaml")
    journal_path = property(lambda self: self.path / "study.journal")
    lock_path = property(lambda self: self.path / "budget.lock")
    pid_path = property(lambda self: self.path / "sweep.pid")
    log_path = property(lambda self: self.path / "sweep.log")

    @classmethod
    def at(cls, runs_dir: Path | str | None, name: str) -> SweepDir:
        return cls(sweeps_dir(runs_dir) / name)

    def exists(self) -> bool:
        return self.info_path.is_file()

    def read_info(self) -> dict[str, Any]:
        try:
            d = json.loads(self.info_path.read_text(encoding="utf-8"))
            return d if isinstance(d, dict) else {}
        except (OSError, ValueError):
            return {}

    def write_info(self, *, storage: str | None, spec: dict[str, Any], spec_yaml: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        old = self.read_info()
        atomic_write_json(
            self.info_path,
            {
                "name": self.name,
                "storage": mask_url(storage) if storage else None,
                "created_at": old.get("created_at") or now_iso(),
                "host": old.get("host") or socket.gethostname(),
                "spec": spec,
            },
        )
        atomic_write_text(self.spec_path, spec_yaml)

    def stored_url(self) -> str | None:
        """The storage this sweep was created with (None: embedded)."""
        return self.read_info().get("storage")

    # -- the process running it ----------------------------------------------------------------
    def write_pid(self, pid: int) -> None:
        atomic_write_text(self.pid_path, f"{pid}\n")

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        pid = self.read_pid()
        return pid if pid and pid_alive(pid) else None

    def clear_pid(self, pid: int) -> None:
        if self.read_pid() == pid:
            with contextlib.suppress(OSError):
                self.pid_path.unlink()


def list_sweeps(runs_dir: Path | str | None = None) -> list[SweepDir]:
    d = sweeps_dir(runs_dir)
    if not d.is_dir():
        return []
    return sorted((SweepDir(p) for p in d.iterdir() if (p / "sweep.json").is_file()), key=lambda s: s.name)


def resolve_sweep(name: str, runs_dir: Path | str | None = None) -> SweepDir:
    s = SweepDir.at(runs_dir, name)
    if s.exists():
        return s
    raise UnknownNameError("sweep", name, [x.name for x in list_sweeps(runs_dir)], field="sweep")


# ---------------------------------------------------------------------------------------------
# storage URLs


def mask_url(url: str) -> str:
    """The URL without its password (stored in sweep.json and shown; the password comes from the
    command line, $OPTAI_SWEEP_STORAGE, ~/.pgpass or $PGPASSWORD)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[1]}"))


def normalize_url(url: str) -> str:
    url = url.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    return url


def storage_kind(url: str | None) -> str:
    """embedded | sqlite | postgresql"""
    if url is None:
        return "embedded"
    if url.startswith("sqlite:///"):
        return "sqlite"
    if re.match(r"postgresql(\+\w+)?://", url):
        return "postgresql"
    raise ConfigError(
        f"unsupported storage {mask_url(url)!r}",
        field="--storage",
        hint="use postgresql://USER@HOST:PORT/DB (many machines) or sqlite:///FILE; nothing: the embedded storage in the sweep's folder",
    )


def driver_url(url: str) -> str:
    """A PostgreSQL URL with its driver named (``postgresql+psycopg2://``) when the user gave none: SQLAlchemy's
    default driver changed between versions (psycopg2, then psycopg 3), so name the one that is installed."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://" + url[len("postgresql://") :]
    raise ConfigError("a PostgreSQL storage needs the psycopg2 driver", field="--storage", hint="pip install 'optai-tui[postgres]'")


SCHEMA_RACE_TRIES = 20
# what SQLite and PostgreSQL say when two processes create Optuna's schema in one new database at once
SCHEMA_RACE_MARKS = ("already exists", "UNIQUE constraint failed", "database is locked", "duplicate key value")


def open_storage(url: str | None, folder: SweepDir, *, retry_lost: int = 0, heartbeat: int | None = None):
    """The Optuna storage of a sweep. A URL that cannot be reached is a ConfigError naming it (exit 2)."""
    import warnings

    import optuna

    kind = storage_kind(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "embedded":
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

            folder.path.mkdir(parents=True, exist_ok=True)
            path = str(folder.journal_path)
            try:
                return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
            except OSError as e:
                raise ConfigError(f"cannot open the sweep's storage {path}: {e.strerror or e}", field="sweep") from None
        assert url is not None
        kw: dict[str, Any] = {}
        if kind == "postgresql":
            interval = heartbeat or int(os.environ.get("OPTAI_SWEEP_HEARTBEAT", HEARTBEAT_SECONDS))
            kw = dict(
                engine_kwargs={"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}},
                heartbeat_interval=interval,
                grace_period=max(3 * interval, 2),
                heartbeat_stale_trial_callback=retry_callback(retry_lost),
            )
        elif kind == "sqlite":
            db = Path(url[len("sqlite:///") :])
            if not db.parent.is_dir():
                raise ConfigError(f"cannot open {url}: the folder {str(db.parent)!r} does not exist", field="--storage")
        for attempt in range(SCHEMA_RACE_TRIES):
            try:
                return optuna.storages.RDBStorage(driver_url(url), **kw)
            except ConfigError:
                raise
            except Exception as e:  # sqlalchemy's OperationalError, ArgumentError...: one line for the user
                reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                if attempt + 1 < SCHEMA_RACE_TRIES and any(m in reason for m in SCHEMA_RACE_MARKS):
                    # another worker (a second `sweep run`, a `join`) creates Optuna's tables in the same new
                    # database at this instant: once it is done, the tables are there to open
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise ConfigError(f"cannot connect to {mask_url(url)}: {reason}", field="--storage") from None
        raise AssertionError("unreachable")  # pragma: no cover


def retry_callback(retry_lost: int):
    """Optuna's callback that enqueues a lost trial's parameters again (up to ``retry_lost`` times), or None."""
    import warnings

    import optuna

    if retry_lost <= 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
        return cls(max_retry=retry_lost)


# ---------------------------------------------------------------------------------------------
# the budget lock


class BudgetLock:
    """Held while a worker fails the trials of dead workers, counts the trials, and claims the next one,
    so that workers (processes, machines) never run more than the budget between them. ``release`` may be
    called more than once (the objective releases it as soon as its trial is claimed)."""

    def __init__(self, url: str | None, folder: SweepDir, study_name: str):
        self.kind = storage_kind(url)
        self.url = url
        self.folder = folder
        self.key = zlib.crc32(f"optai-tui sweep {study_name}".encode()) & 0x7FFFFFFF
        self._fd: int | None = None
        self._conn = None
        self.held = False

    def acquire(self) -> None:
        if self.held:
            return
        if self.kind == "postgresql":
            from sqlalchemy import create_engine, text
            from sqlalchemy.pool import NullPool

            if self._conn is None:
                engine = create_engine(driver_url(str(self.url)), poolclass=NullPool, connect_args={"connect_timeout": 10})
                self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        else:
            path = self.folder.lock_path if self.kind == "embedded" else Path(str(self.url)[len("sqlite:///") :] + ".lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            if self._fd is None:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self.kind == "postgresql":
            from sqlalchemy import text

            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        else:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
