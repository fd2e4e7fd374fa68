"""Deleting a run folder (runs.store.delete_run): never one that is still training."""

from __future__ import annotations

import os

import pytest

from optai_tui.config import validate_config
from optai_tui.errors import ConfigError
from optai_tui.runs.store import RunDir, delete_run, list_runs

from .conftest import tiny

DEAD_PID = 2**22 + 12345  # above Linux's pid_max: never a live process


def _run(tmp_path, **summary) -> RunDir:
    run = RunDir.create(tmp_path, validate_config(tiny()))
    (run.checkpoints_dir / "last.pt").write_bytes(b"weights")
    run.append_event({"event": "RunStarted", "run_id": run.run_id})
    run.update_summary(**summary)
    return run


def test_a_finished_run_is_deleted_with_its_checkpoints(tmp_path):
    keep = _run(tmp_path, status="completed")
    gone = _run(tmp_path, status="failed", name="broken")
    delete_run(gone)
    assert not gone.path.exists() and keep.path.is_dir()
    assert [r.run_id for r in list_runs(tmp_path)] == [keep.run_id]


def test_a_run_still_training_is_refused_and_kept(tmp_path):
    run = _run(tmp_path, status="running", pid=os.getpid(), name="live-one")  # this process plays its trainer
    with pytest.raises(ConfigError, match="live-one is still training"):
        delete_run(run)
    assert (run.checkpoints_dir / "last.pt").is_file()
    # on another host: it cannot be told from a live one, so it is kept too
    run.update_summary(host="another-host")
    with pytest.raises(ConfigError):
        delete_run(run)
    assert run.path.is_dir()


def test_a_running_run_whose_process_is_gone_counts_as_stopped(tmp_path):
    run = _run(tmp_path, status="running", pid=DEAD_PID)
    assert run.status() == "stopped"
    delete_run(run)
    assert not run.path.exists()
