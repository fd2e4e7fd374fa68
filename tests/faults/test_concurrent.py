"""One process trains a run at a time: two resumes started at the same instant (exactly one trains), and a run
resumed from the TUI (a detached process that inherits the launcher's lock) never reads as stopped while its
process starts, and refuses a second resume meanwhile."""

from __future__ import annotations

import os
import signal

from optai_tui.runs.launch import resume_detached
from optai_tui.training import events as ev

from .conftest import Records, assert_reads_consistently, assert_whole, resume_args, stopped, the_run, train_args, wait_for


def _interrupted_run(fork_server, preset_file, reference, tmp_path):
    n = reference.hit("write.last.pt", "event.EpochEnd", 1)
    assert fork_server.run(train_args(preset_file, tmp_path / "runs"), tmp_path / "killed.txt", OPTAI_FAULT=f"write.last.pt:{n}") == -9
    run = the_run(tmp_path / "runs")
    assert_reads_consistently(run)
    return run


def test_two_resumes_at_the_same_instant_one_trains(fork_server, preset_file, reference, tmp_path):
    run = _interrupted_run(fork_server, preset_file, reference, tmp_path)
    gate = tmp_path / "go"
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    # each pauses once it has recorded an epoch: the one that trains is held there until the other has
    # answered (a whole resume of this tiny run can end sooner than a refused lock is retried)
    pids = [fork_server.start(resume_args(run), out, gate=gate, OPTAI_FAULT="event.EpochEnd:1:pause") for out in outs]
    gate.touch()  # both start now
    wait_for(lambda: any(stopped(p) for p in pids), what="one resume to train an epoch")
    trains = next(p for p in pids if stopped(p))
    other = pids[1 - pids.index(trains)]
    assert fork_server.wait(other) == 2, outs[pids.index(other)].read_text()
    os.kill(trains, signal.SIGCONT)
    assert fork_server.wait(trains) == 0, outs[pids.index(trains)].read_text()
    refused = outs[pids.index(other)].read_text()
    assert f"run {run.run_id} is still training (pid {trains})" in " ".join(refused.split()) and "Traceback" not in refused
    r = assert_whole(run, reference)
    assert sum(isinstance(e, ev.RunStarted) for e in r.events) == 2  # the first process and one resume
    assert sum(isinstance(e, ev.RunFinished) for e in r.events) == 1


def test_a_resume_from_the_tui_reads_running_from_the_start_and_refuses_another(fork_server, preset_file, reference, tmp_path, monkeypatch):
    run = _interrupted_run(fork_server, preset_file, reference, tmp_path)
    assert run.status() == "stopped"
    monkeypatch.setenv("OPTAI_FAULT", "event.EpochEnd:1:pause")  # the detached process waits there for the test
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    proc = resume_detached(run)  # spawns `optai-tui train --resume` with the run's lock handed down
    try:
        seen = set()
        while not stopped(proc.pid):  # the whole start of the process: imports, loading the data, epoch 2
            seen.add(run.status())
            assert proc.poll() is None, run.log_path.read_text()
        assert seen == {"running"}, f"read as {seen} while its process started"
        assert run.training_pid() == proc.pid
        assert fork_server.run(resume_args(run), tmp_path / "second.txt") == 2
        assert "is still training" in (tmp_path / "second.txt").read_text()
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=300) == 0, run.log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_whole(run, reference)
    assert Records.read(run).summary_file["pid"] == proc.pid
    wait_for(lambda: run.status() == "completed", what="the lock to be released")
