"""The run directory: everything a screen shows about a run can be rebuilt from it.

    runs/<run_id>/
        config.yaml      resolved RunConfig
        events.jsonl     append-only, one JSON event a line
        summary.json     rewritten atomically (temp file + os.replace)
        meta.json        user tags and note (rewritten atomically)
        control.jsonl    requests to the training process (stop, lr/10), appended by the TUI
        train.log        stdout/stderr of a detached training process
        process.pid      the training process's pid (for display: the lock says whether it is alive)
        lock             flock'ed by the process that trains the run (runs/lock.py)
        checkpoints/     last.pt, best.pt
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..errors import ConfigError, StorageError, UnknownNameError
from ..fmt import now_iso
from ..fsio import append_bytes, atomic_write_json, atomic_write_text, fault_point, storage
from ..locations import default_runs_dir
from ..training.events import ControlAction, Event, RunStatus, event_from_dict
from . import lock as run_lock
from .summary import FOLD_EVENTS, SummaryFold, check_summary, summary_skeleton

STATUSES = tuple(st.value for st in RunStatus)
SUMMARY_MAX_BYTES = 1 << 20  # a summary is a few hundred bytes; a larger file is not one


def _a(v: Any) -> str:
    return "null" if v is None else f"a {'list' if isinstance(v, list) else type(v).__name__}"


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s[:60] or "run"


def pid_alive(pid: int | None) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:  # 0 and -1 would name whole process groups
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for us.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    config_path = property(lambda self: self.path / "config.yaml")
    events_path = property(lambda self: self.path / "events.jsonl")
    summary_path = property(lambda self: self.path / "summary.json")
    meta_path = property(lambda self: self.path / "meta.json")
    control_path = property(lambda self: self.path / "control.jsonl")
    log_path = property(lambda self: self.path / "train.log")
    pid_path = property(lambda self: self.path / "process.pid")
    lock_path = property(lambda self: self.path / run_lock.LOCK_NAME)
    checkpoints_dir = property(lambda self: self.path / "checkpoints")

    # -- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, runs_dir: Path | str, config: Any, *, lock: bool = False) -> RunDir:
        """Make a new run folder for a RunConfig; the id is time-sortable and unique. ``lock``: this process
        takes the folder's lock before the folder becomes a run (its config.yaml), and holds it (see
        ``runs/lock.py``): the run never looks stopped before its trainer is up."""
        from ..config import config_to_dict
        from ..configio import config_to_yaml

        runs_dir = Path(runs_dir)
        with storage(runs_dir, "create the runs folder"):
            runs_dir.mkdir(parents=True, exist_ok=True)
        base = time.strftime("%Y%m%d-%H%M%S") + "-" + _slug(config.display_name())
        for i in range(1000):
            rid = base if i == 0 else f"{base}-{i + 1}"
            try:
                (runs_dir / rid).mkdir()
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise StorageError(runs_dir / rid, e, action="create the run folder") from None
        else:  # pragma: no cover
            raise ConfigError(f"could not create a run folder under {runs_dir}")
        run = cls(runs_dir / rid)
        try:
            if lock:
                run_lock.try_acquire(run.path)  # a folder nobody else knows yet: granted
            with storage(run.checkpoints_dir, "create the folder"):
                run.checkpoints_dir.mkdir()
            atomic_write_text(run.config_path, config_to_yaml(config))
            append_bytes(run.events_path, b"")
            summary = summary_skeleton(rid, config.display_name(), config_to_dict(config))
            summary.update(host=socket.gethostname(), started_at=now_iso())
            run.write_summary(summary)
        except OSError:  # a full disk: no half-made run folder is left behind
            import shutil

            shutil.rmtree(run.path, ignore_errors=True)
            raise
        return run

    @classmethod
    def open(cls, path: Path | str) -> RunDir:
        p = Path(path)
        if not (p / "config.yaml").is_file():
            raise ConfigError(f"{p} is not a run folder (no config.yaml)")
        return cls(p)

    # -- config ---------------------------------------------------------------------------
    def load_config(self):
        from ..config import validate_config
        from ..configio import read_yaml_file

        data = read_yaml_file(self.config_path, "run config") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{self.config_path}: expected a mapping of settings, found {type(data).__name__}")
        return validate_config(data, source=str(self.config_path))

    def raw_config(self) -> dict[str, Any]:
        """config.yaml as plain data, not validated; read with the bounds of every config
        (``configio.read_yaml_file``: a regular file of at most 64 KiB, no aliases), a ConfigError
        naming the file otherwise."""
        from ..configio import read_yaml_file

        return read_yaml_file(self.config_path, "run config") or {}

    # -- events ---------------------------------------------------------------------------
    def trim_partial_event(self) -> int:
        """Drop a last event line left half-written (a killed process); returns the bytes removed.

        Without this, the next event would be appended to the broken line and lost with it.
        """
        try:
            with storage(self.events_path), open(self.events_path, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                if size == 0:
                    return 0
                f.seek(max(0, size - 65536))
                tail = f.read()
                if tail.endswith(b"\n"):
                    return 0
                cut = tail.rfind(b"\n")
                keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size)
                f.truncate(keep)
                return size - keep
        except StorageError as e:
            if e.errno == errno.ENOENT:
                return 0
            raise

    def append_event(self, event: Event | dict[str, Any]) -> None:
        """One line of the append-only log (a dict is written as it is: tests write logs by hand). A write
        that fails (a full disk) takes back what it wrote: the next event never lands on half a line."""
        d = event if isinstance(event, dict) else event.to_dict()
        data = (json.dumps(d, separators=(",", ":")) + "\n").encode("utf-8")
        with storage(self.events_path):  # the test hook's full disk reads as a real one
            fault_point(f"event.{d.get('event')}", torn=lambda: append_bytes(self.events_path, data[: len(data) // 2]))
        append_bytes(self.events_path, data)  # all of the line or none of it (StorageError)

    def read_events(self, offset: int = 0, max_bytes: int | None = None) -> tuple[list[Event], int]:
        """The events of the complete lines from byte ``offset``, and the offset to continue from.

        A line still being written (no newline yet) is left for the next call; a line that is not a whole,
        well-typed event (corrupt, or from a newer version) is skipped.
        """
        try:
            with open(self.events_path, "rb") as f:
                f.seek(offset)
                chunk = f.read() if max_bytes is None else f.read(max_bytes)
        except OSError:
            return [], offset
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], offset
        return _parse_lines(chunk[: end + 1].splitlines()), offset + end + 1

    def iter_events(self, kinds: tuple[type[Event], ...] | None = None) -> Iterator[Event]:
        """Every event of the log, in order; with ``kinds``, only those (a week-long log is mostly
        BatchEnd lines: the others are found with bytes.find in large chunks, at C speed)."""
        if kinds is None:
            offset = 0
            while True:
                events, offset2 = self.read_events(offset, max_bytes=1 << 22)
                if offset2 == offset:
                    return
                yield from events
                offset = offset2
        names = [k.__name__.encode() for k in kinds]
        for raw in _lines_mentioning(self.events_path, names):
            for e in _parse_lines([raw]):
                if isinstance(e, kinds):
                    yield e

    # -- summary / meta -------------------------------------------------------------------
    def read_summary(self) -> dict[str, Any]:
        """The run's summary, every known field of the right type (see :meth:`read_summary_checked`)."""
        return self.read_summary_checked()[0]

    def read_summary_checked(self) -> tuple[dict[str, Any], str | None]:
        """The summary, and why summary.json is damaged (None when it is whole).

        A 'running' one whose process is gone (killed, the machine restarted) is read as its log tells it:
        a kill between the log and the summary (or metrics.csv) leaves them an epoch or a final event
        behind, and nothing here shows more, or less, than the log holds; without a final event the run
        reads as stopped. (The file itself is rewritten by the next process that trains the run.)
        """
        s, problem = self._summary_file_checked()
        return (s if self.is_training(s) else self.settled_summary(s)), problem

    def read_summary_file(self) -> dict[str, Any]:
        """summary.json as it is on disk (rebuilt from the log when it is missing, completed from it when
        damaged)."""
        return self._summary_file_checked()[0]

    def _summary_file_checked(self) -> tuple[dict[str, Any], str | None]:
        """summary.json with every known field of the right type, and why it is damaged (None: whole).

        A missing summary is rebuilt from config.yaml and events.jsonl. A damaged one (unreadable, not a
        JSON object, or fields of the wrong type, e.g. text for a number, a list, null for the status)
        keeps its well-typed fields and takes the others from the log as a rebuild would; the reason names
        the fields. Numbers that are not finite (NaN, Infinity) read as unknown (None).
        """
        raw: Any = None
        try:
            with open(self.summary_path, "rb") as f:
                data = f.read(SUMMARY_MAX_BYTES + 1)
        except FileNotFoundError:
            return self.rebuild_summary(), None
        except OSError as e:
            problem = f"summary.json cannot be read ({e.strerror or e})"
        else:
            try:
                raw = json.loads(data) if len(data) <= SUMMARY_MAX_BYTES else None
                problem = None if raw is not None else "summary.json is larger than any summary"
            except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
                problem = "summary.json is not valid JSON"
        good: dict[str, Any] = {}
        if problem is None:
            if not isinstance(raw, dict):
                problem = f"summary.json holds {_a(raw)}, not an object"
            else:
                good, problems = check_summary(raw)
                if not problems:
                    return good, None
                more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
                problem = "summary.json: " + "; ".join(problems[:3]) + more
        s = self.rebuild_summary()  # the fields summary.json lost, from the log
        s.update({k: v for k, v in good.items() if v is not None})
        log_problem = self.events_unreadable()
        if log_problem:  # nothing to rebuild from: say so rather than pass the rebuild off as the log's word
            problem += f"; {log_problem} either, so its numbers are unknown"
        return s, problem

    def events_unreadable(self) -> str | None:
        """Why events.jsonl cannot be read (permissions, a folder in its place), or None (readable or absent)."""
        try:
            with open(self.events_path, "rb"):
                return None
        except FileNotFoundError:
            return None
        except OSError as e:
            return f"events.jsonl cannot be read ({e.strerror or e})"

    def settled_summary(self, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """The summary of a run that no process trains (the caller knows): one that says 'running' is folded
        from the log, and reads as stopped without a final event."""
        summary = self.read_summary_file() if summary is None else summary
        if summary.get("status") != RunStatus.RUNNING:
            return summary
        fold = SummaryFold(dict(summary))
        for e in self.iter_events(kinds=FOLD_EVENTS):
            fold.apply(e)
        s = fold.summary
        if not fold.ended:
            s["status"] = RunStatus.STOPPED.value
        return s

    def rebuild_summary(self) -> dict[str, Any]:
        """A summary from config.yaml and events.jsonl, for a run whose summary.json is missing or
        corrupt (marked ``"rebuilt": true``; the next write by a recorder makes it whole again)."""
        try:
            cfg = self.raw_config()
        except ConfigError:  # unreadable, not YAML, too large, an alias bomb
            cfg = {}
        fold = SummaryFold(summary_skeleton(self.run_id, cfg.get("name") if isinstance(cfg, dict) else None, cfg))
        for e in self.iter_events():
            fold.apply(e)
        s = fold.summary
        s["rebuilt"] = True
        if not fold.ended and not self.is_training(s):
            s["status"] = "stopped" if s["epochs_completed"] else "failed"
        if s["status"] == "failed" and not s["error"]:
            log_problem = self.events_unreadable()
            s["error"] = f"summary.json missing or unreadable, and {log_problem}" if log_problem else "summary.json missing or unreadable, and the log shows no epoch"
        return s

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary_path, summary)

    def update_summary(self, **changes: Any) -> dict[str, Any]:
        s = self.read_summary_file()
        s.update(changes)
        self.write_summary(s)
        return s

    def status(self) -> str:
        """The run's status: 'running' while a process trains it (on this host: it holds the run's lock,
        even when the summary does not say so yet, as a resume starts); a 'running' run nobody trains reads
        as its log tells it (stopped, without a final event). A run on another host: as its summary says."""
        s = self.read_summary()
        if self.is_training(s):
            return RunStatus.RUNNING.value
        st = s.get("status") or RunStatus.FAILED.value
        return RunStatus.STOPPED.value if st == RunStatus.RUNNING else st

    def is_training(self, summary: dict[str, Any] | None = None) -> bool:
        """Whether a process trains this run now. On this host the lock answers; a folder without a lock
        file (older, or made by hand) is answered by the pid. Another host's run cannot be asked: its
        summary answers."""
        s = self.read_summary_file() if summary is None else summary
        if s.get("host") not in (None, socket.gethostname()):
            return s.get("status") == RunStatus.RUNNING
        state = run_lock.lock_state(self.path)
        if state is not None:
            return state
        pid = self._local_pid(s)
        return s.get("status") == RunStatus.RUNNING and (not pid or pid_alive(pid))

    def _local_pid(self, summary: dict[str, Any]) -> int | None:
        """The pid of the run's training process when it ran on this host (pid file, else summary)."""
        if summary.get("host") not in (None, socket.gethostname()):
            return None
        return self.read_pid() or summary.get("pid")

    def training_pid(self, summary: dict[str, Any] | None = None) -> int | None:
        """The pid of the process training this run on this host (for display), or None."""
        s = self.read_summary_file() if summary is None else summary
        return self._local_pid(s) if self.is_training(s) else None

    # -- the training process's pid -------------------------------------------------------
    # Its own small file, written by whoever starts the process and by the trainer itself, so that
    # the launcher never read-modify-writes summary.json while the trainer is writing it.
    def write_pid(self, pid: int) -> None:
        atomic_write_text(self.pid_path, f"{pid}\n")

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def read_meta(self) -> dict[str, Any]:
        """Tags (a list of texts) and note (a text); a damaged meta.json reads as none."""
        try:
            m = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # missing, unreadable, not JSON
            m = {}
        if not isinstance(m, dict):
            m = {}
        tags = m.get("tags")
        m["tags"] = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        if not isinstance(m.get("note"), str):
            m["note"] = ""
        return m

    def write_meta(self, *, tags: list[str] | None = None, note: str | None = None) -> dict[str, Any]:
        m = self.read_meta()
        if tags is not None:
            m["tags"] = sorted({t.strip() for t in tags if t.strip()})
        if note is not None:
            m["note"] = note
        atomic_write_json(self.meta_path, m)
        return m

    # -- control requests (TUI -> training process) ---------------------------------------
    def send_control(self, action: ControlAction | str) -> None:
        action = ControlAction(action)
        append_bytes(self.control_path, (json.dumps({"action": action.value, "time": time.time()}) + "\n").encode())

    def read_controls(self, offset: int = 0) -> tuple[list[ControlAction], int]:
        """The requests of the complete lines from byte ``offset`` (unknown ones skipped), and the offset
        to continue from."""
        try:
            with open(self.control_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            return [], offset
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], offset
        out = []
        for raw in chunk[: end + 1].splitlines():
            try:
                out.append(ControlAction(json.loads(raw)["action"]))
            except (ValueError, TypeError, KeyError):
                continue
        return out, offset + end + 1

    def control_end(self) -> int:
        """The size of control.jsonl: requests before it are stale for a process starting now."""
        try:
            return self.control_path.stat().st_size
        except OSError:
            return 0

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints_dir / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints_dir / "best.pt"


def list_runs(runs_dir: Path | str | None = None) -> list[RunDir]:
    """All run folders in a runs directory, oldest first."""
    d = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not d.is_dir():
        return []
    return sorted((RunDir(p) for p in d.iterdir() if (p / "config.yaml").is_file()), key=lambda r: r.run_id)


def resolve_run(ref: str, runs_dir: Path | str | None = None) -> RunDir:
    """A run from its id, a unique id prefix or suffix, or a path to its folder."""
    p = Path(ref).expanduser()
    if (p / "config.yaml").is_file():
        return RunDir(p)
    runs = list_runs(runs_dir)
    ids = [r.run_id for r in runs]
    exact = [r for r in runs if r.run_id == ref]
    if exact:
        return exact[0]
    partial = [r for r in runs if r.run_id.startswith(ref) or r.run_id.endswith(ref)]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        shown, more = partial[:5], len(partial) - 5
        raise ConfigError(
            f"run {ref!r} is ambiguous ({len(partial)} runs match): "
            + ", ".join(r.run_id for r in shown)
            + (f" ...and {more} more" if more > 0 else "")
        )
    raise UnknownNameError("run", ref, ids, field="run")


def _parse_lines(lines: list[bytes]) -> list[Event]:
    out = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            e = event_from_dict(json.loads(raw))
        except (ValueError, RecursionError):  # not JSON, not UTF-8
            continue
        if e is not None:
            out.append(e)
    return out


def _lines_mentioning(path: Path, needles: list[bytes], chunk_size: int = 1 << 24) -> Iterator[bytes]:
    """The complete lines of a file that contain one of ``needles``, found with bytes.find in large
    chunks. The last line, still being written (no newline yet), is left out."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        tail = b""
        while True:
            chunk = f.read(chunk_size)
            if not chunk:
                return
            buf = tail + chunk
            end = buf.rfind(b"\n")
            if end < 0:
                tail = buf
                continue
            body, tail = buf[: end + 1], buf[end + 1 :]
            hits = []
            for needle in needles:
                i = body.find(needle)
                while i >= 0:
                    start = body.rfind(b"\n", 0, i) + 1
                    stop = body.find(b"\n", i)
                    hits.append((start, stop))
                    i = body.find(needle, stop)
            for start, stop in sorted(set(hits)):
                yield body[start:stop]


def delete_run(run: RunDir) -> None:
    """Delete a run's folder with its checkpoints and logs; refused (ConfigError) while it is training.

    A run marked running whose process is gone counts as stopped and is deleted; one training on another
    host cannot be told apart from a live one and is refused. An OSError from the file system propagates.
    """
    import shutil

    name = run.read_summary().get("name") or run.run_id
    refusal = ConfigError(f"{name} is still training: stop it before deleting it")
    if run.status() == "running":
        raise refusal
    lock = run_lock.try_acquire(run.path)  # held while deleting: a resume started meanwhile is refused
    if lock is None:
        raise refusal
    try:
        shutil.rmtree(run.path)
    finally:
        lock.release()
