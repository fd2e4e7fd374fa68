"""The fault-injection suite's tools: a fork server that runs ``optai-tui`` commands, one reference run, and the
checks every interrupted run folder must pass (before its resume, and after it).

Faults are injected through the product's test hook ``OPTAI_FAULT=NAME:N[:ACTION]`` (``optai_tui.fsio.fault_point``):
the training process kills itself (SIGKILL) at the N-th time it reaches a write point, or fails the write with
ENOSPC, or stops (SIGSTOP) so that a test can act at that exact moment.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from optai_tui.runs.store import RunDir, list_runs
from optai_tui.runs.summary import SummaryFold, summary_skeleton
from optai_tui.training import events as ev

from ..conftest import REPO

EPOCHS = 3
PRESET = {
    "name": "faults",
    "data": {"dataset": "shapes", "subset": 256, "val_split": 0.25},
    "model": {"arch": "vgg11", "width": 0.125},
    "optim": {"lr": 0.05},
    "train": {"epochs": EPOCHS, "batch_size": 64, "device": "cpu", "progress_every": 0.01},
}
# The metrics that a resumed run must reproduce exactly (the others are timings).
EXACT = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
TEMP_FILE = re.compile(r"^\..+\.tmp$")


def child_env(**extra: str | None) -> dict[str, str]:
    """The environment of a training process started by a test: this repository's code, one thread, the
    test's isolated folders, no fault unless asked for."""
    keep = ("OPTAI_PRESETS_DIR", "OPTAI_DATA_ROOT", "TORCH_HOME", "HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "PATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPTAI_FAULT=None, OPTAI_FAULT_TRACE=None, OPTAI_RUN_LOCK_FD=None)
    env.update(extra)
    return env


class ForkServer:
    """Runs ``optai-tui`` commands in children forked from one warmed-up process (tests/faults/forkserver.py)."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        for k in ("OPTAI_FAULT", "OPTAI_FAULT_TRACE", "OPTAI_RUN_LOCK_FD"):
            env.pop(k, None)
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        assert "ready" in self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)

    def _ask(self, **cmd: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(
        self,
        argv: list[str],
        out: Path,
        *,
        err: Path | None = None,
        tty: str | None = None,
        gate: Path | None = None,
        finalize: bool = False,
        **env: str | None,
    ) -> int:
        """Fork a child running ``optai-tui ARGV`` (stdout, and stderr unless ``err``, to ``out``; or the
        terminal ``tty``); returns its pid. ``finalize``: it exits through Python's exit, as the console
        script does (slower: only where the exit is what a test checks)."""
        cmd = dict(argv=argv, env=child_env(**env), cwd=str(out.parent), out=str(out), err=str(err) if err else None,
                   tty=tty, gate=str(gate) if gate else None, finalize=finalize)  # fmt: skip
        return self._ask(op="start", **cmd)["pid"]

    def wait(self, pid: int) -> int:
        """The child's exit code (-N: killed by signal N)."""
        return self._ask(op="wait", pid=pid)["code"]

    def run(self, argv: list[str], out: Path, **env: str | None) -> int:
        return self.wait(self.start(argv, out, **env))

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


@pytest.fixture(scope="session")
def fork_server() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def preset_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults-preset") / "faults.yaml"
    path.write_text(yaml.safe_dump(PRESET))
    return path


def train_args(preset: Path, runs: Path) -> list[str]:
    return ["train", "-p", str(preset), "--runs-dir", str(runs), "--plain"]


def resume_args(run: RunDir) -> list[str]:
    return ["train", "--resume", str(run.path), "--plain"]


@dataclass
class Reference:
    """An uninterrupted run of PRESET, and the fault points its process went through, in order."""

    run: RunDir
    trace: list[str]
    records: Records

    def hit(self, point: str, after: str | None = None, nth_after: int = 0) -> int:
        """N such that ``OPTAI_FAULT=point:N`` fires at the first ``point`` after the ``nth_after``-th
        ``after`` (from the start without one); 0 when there is none."""
        start = 0
        if after is not None:
            seen = [i for i, p in enumerate(self.trace) if p == after]
            if len(seen) < nth_after:
                return 0
            start = seen[nth_after - 1] + 1 if nth_after else 0
        for i in range(start, len(self.trace)):
            if self.trace[i] == point:
                return self.trace[: i + 1].count(point)
        return 0


@pytest.fixture(scope="session")
def reference(fork_server, preset_file, tmp_path_factory) -> Reference:
    d = tmp_path_factory.mktemp("faults-reference")
    trace = d / "trace.txt"
    code = fork_server.run(train_args(preset_file, d / "runs"), d / "out.txt", OPTAI_FAULT_TRACE=str(trace))
    assert code == 0, (d / "out.txt").read_text()
    (run,) = list_runs(d / "runs")
    recs = Records.read(run)
    assert recs.summary_file["status"] == "completed" and recs.log_epochs == EPOCHS
    return Reference(run, trace.read_text().split(), recs)


# ---------------------------------------------------------------------------------------------------------------
# what a run folder holds, and the promises about it


def load(path: Path) -> dict[str, Any] | None:
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def _best_epoch(history: list[dict[str, Any]]) -> int:
    best, epoch = None, 0
    for h in history:
        acc = h.get("val_acc")
        if acc is not None and (best is None or acc > best):
            best, epoch = acc, h["epoch"]
    return epoch


@dataclass
class Records:
    run: RunDir
    lines: list[bytes]
    events: list[ev.Event]
    rows: dict[int, dict[str, float]]  # the epochs the log holds (a resume supersedes later ones)
    ended: bool
    summary_file: dict[str, Any]
    summary_read: dict[str, Any]  # what every screen and command shows
    metrics: list[dict[str, str]]
    last: dict[str, Any] | None
    best: dict[str, Any] | None
    temps: list[str]

    @classmethod
    def read(cls, run: RunDir) -> Records:
        lines = run.events_path.read_bytes().splitlines(keepends=True)
        events = list(run.iter_events())
        fold = SummaryFold(summary_skeleton(run.run_id, None, {}))
        for e in events:
            fold.apply(e)
        try:
            summary_file = json.loads(run.summary_path.read_text())
        except (OSError, ValueError):
            summary_file = {}
        mpath = run.path / "metrics.csv"
        metrics = list(csv.DictReader(io.StringIO(mpath.read_text()))) if mpath.is_file() else []
        temps = [str(p.relative_to(run.path)) for p in run.path.rglob("*") if TEMP_FILE.match(p.name)]
        return cls(run, lines, events, fold.rows, fold.ended, summary_file, run.read_summary(), metrics,
                   load(run.last_checkpoint), load(run.best_checkpoint), temps)  # fmt: skip

    @property
    def log_epochs(self) -> int:
        return max(self.rows, default=0)

    def checkpointed(self, best: bool) -> list[int]:
        return [e.epoch for e in self.events if isinstance(e, ev.Checkpointed) and e.is_best == best and not e.path.endswith("interrupted.pt")]

    def finished(self) -> bool:
        """A RunFinished after the last RunStarted."""
        return self.end_status() == "completed"

    def end_status(self) -> str | None:
        """The status the log's final event gives (after the last RunStarted), or None."""
        kinds = [type(e) for e in self.events if isinstance(e, (ev.RunStarted, *ev.TERMINAL_EVENTS))]
        status = ev.TERMINAL_STATUS.get(kinds[-1]) if kinds else None
        return status.value if status else None


def assert_reads_consistently(run: RunDir) -> Records:
    """What an interrupted folder must promise before anything repairs it: nothing claims more than the log
    holds, the log nothing that is not on disk, best.pt holds the epoch it is recorded for, 'completed' only
    with RunFinished, and a dead process reads as not training."""
    r = Records.read(run)
    assert all(line.endswith(b"\n") for line in r.lines[:-1])  # only the last line may be torn
    ckpt_epoch = r.last["epoch"] if r.last else 0
    assert r.log_epochs <= ckpt_epoch, f"the log holds epoch {r.log_epochs}, last.pt only {ckpt_epoch}"
    for summary in (r.summary_file, r.summary_read):
        assert (summary.get("epochs_completed") or 0) <= r.log_epochs
    assert r.summary_read["epochs_completed"] == r.log_epochs  # a reader folds the log itself
    assert [int(m["epoch"]) for m in r.metrics] == list(range(1, len(r.metrics) + 1)) and len(r.metrics) <= r.log_epochs
    for summary in (r.summary_file, r.summary_read):
        if summary.get("status") == "completed":
            assert r.finished(), "'completed' without RunFinished"
    assert r.summary_read["status"] == (r.end_status() or "stopped")  # as the log ends; killed: stopped
    assert run.status() != "running" and run.training_pid() is None
    if r.best is not None:
        assert r.best["epoch"] == _best_epoch(r.best["history"])  # its content is the epoch it says
        if r.summary_read.get("best_val_acc") is not None:
            assert r.best["best_val_acc"] >= r.summary_read["best_val_acc"], "best.pt is older than the best the summary reports"
    for best, ckpt in ((False, r.last), (True, r.best)):
        logged = r.checkpointed(best)
        if logged:
            assert ckpt is not None and logged[-1] <= ckpt["epoch"], "a Checkpointed event newer than its file"
    return r


def assert_whole(run: RunDir, ref: Reference) -> Records:
    """A run that ended after interruptions and resumes: every record complete and equal to the reference run's,
    its final weights (last.pt and best.pt) bit-equal, no temp file left."""
    r = Records.read(run)
    want = ref.records
    assert all(line.endswith(b"\n") for line in r.lines) and len(r.events) == len(r.lines), "a torn or unreadable event line"
    assert r.finished() and r.summary_file["status"] == r.summary_read["status"] == run.status() == "completed"
    assert sorted(r.rows) == list(range(1, EPOCHS + 1))
    assert r.summary_file["epochs_completed"] == len(r.metrics) == r.last["epoch"] == EPOCHS
    for k in range(1, EPOCHS + 1):
        assert {m: r.rows[k].get(m) for m in EXACT} == {m: want.rows[k].get(m) for m in EXACT}, f"epoch {k}"
    assert [{m: row[m] for m in EXACT} for row in r.metrics] == [{m: row[m] for m in EXACT} for row in want.metrics]
    for key in ("best_val_acc", "final_val_acc", "epochs_completed", "final_train_loss"):
        assert r.summary_file[key] == want.summary_file[key], key
    assert_same_weights(r.last, want.last)
    assert r.best is not None and r.best["epoch"] == want.best["epoch"]
    assert_same_weights(r.best, want.best)
    assert r.checkpointed(False)[-1] == EPOCHS and r.checkpointed(True)[-1] == r.best["epoch"]
    assert r.temps == [], f"temp files left: {r.temps}"
    return r


def assert_same_weights(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["model"].keys() == b["model"].keys()
    for k, t in a["model"].items():
        assert torch.equal(t, b["model"][k]), f"{k} differs"


def the_run(runs: Path) -> RunDir:
    (run,) = list_runs(runs)
    return run


def wait_for(predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def proc_state(pid: int) -> str | None:
    """The process's state letter in /proc (R, S, T stopped, Z zombie...); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP, by OPTAI_FAULT=...:pause)."""
    return proc_state(pid) == "T"
