"""Issue 12 in the field: what users of a GPU server meet with ``train.gpus`` above 1, reproduced with real torchrun
and gloo on the CPU (2 processes, ``shapes``, slim VGG-11s).

- torchrun itself killed (``kill -9``, the OOM killer): its ranks used to train on, orphaned, after the launcher
  had marked the run failed and let go of its lock; now they stop together and the launcher waits for them;
- the launcher killed: the run used to read as not training while its ranks were still stopping (a resume could
  start beside them); torchrun now holds the run's lock until its ranks are gone;
- ``optai-tui train >&-`` (no stdout): the run used to fail on its first console line.
"""

from __future__ import annotations

import os
import signal
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from optai_tui.config import validate_config
from optai_tui.runs.lock import held_here, lock_state
from optai_tui.runs.store import RunDir

from .conftest import tiny
from .helpers import event_dicts
from .test_ddp import ROOT, TIMEOUT, _env, _pids_of_rank, _state


def _long_run(tmp_path: Path) -> RunDir:
    """A 2-process run far longer than the test lets it train (8 steps an epoch)."""
    from optai_tui.runs.launch import create_run

    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 256}, train={"epochs": 200, "batch_size": 32, "gpus": 2}))
    run = create_run(cfg, tmp_path / "runs")
    held_here(run.path).release()  # the launcher started below takes it
    return run


def _start(run: RunDir) -> subprocess.Popen:
    """The launcher, its output in a file (orphaned ranks would hold a pipe open)."""
    with open(run.path.parent / "launcher.out", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "optai_tui", "train", "--plain", "--run-dir", str(run.path)],
            cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _output(run: RunDir) -> str:
    return (run.path.parent / "launcher.out").read_text(errors="replace")


def _alive(pid: int) -> bool:
    return _state(pid) not in ("gone", "Z")


def _training(run: RunDir, proc: subprocess.Popen) -> tuple[int, list[int]]:
    """Once an epoch is logged: (torchrun's pid, the ranks' pids)."""
    deadline = time.monotonic() + TIMEOUT
    while not (run.events_path.is_file() and any(e["event"] == "EpochEnd" for e in event_dicts(run))):
        assert proc.poll() is None and time.monotonic() < deadline, _output(run) if proc.poll() is not None else "no epoch"
        time.sleep(0.2)
    ranks = _pids_of_rank(run, 0) + _pids_of_rank(run, 1)
    assert len(ranks) == 2
    (torchrun,) = {int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) for p in ranks}
    assert b"torch.distributed.run" in Path(f"/proc/{torchrun}/cmdline").read_bytes()
    return torchrun, ranks


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_torchrun_killed_its_ranks_stop_together_and_the_launcher_waits_for_them(tmp_path):
    run = _long_run(tmp_path)
    proc = _start(run)
    ranks: list[int] = []
    try:
        torchrun, ranks = _training(run, proc)
        os.kill(torchrun, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
        out = _output(run)
        # the launcher returns once no rank is left training the run (it used to return at once, ranks training on)
        assert not [p for p in ranks if _alive(p)], out
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(ranks)
    assert "Traceback" not in out
    kinds = [e["event"] for e in event_dicts(run)]
    # the ranks stopped together at a step boundary, and rank 0 recorded it; nothing was written after the end
    assert kinds[-1] == "RunStopped" and "RunFailed" not in kinds, kinds[-5:]
    s = run.read_summary()
    assert s["status"] == "stopped" and s["epochs_completed"] >= 1
    assert proc.returncode == 130, out
    assert lock_state(run.path) is False  # and the run can be resumed
    # nobody asked for this stop: the run's log, the console (rank 0's line, then the launcher's) and what the
    # dashboard and the exports read from the log say what happened (they used to say "stop requested")
    what = f"torchrun (pid {torchrun}) was killed (SIGKILL); its 2 processes stopped together"
    assert event_dicts(run)[-1]["reason"] == what
    assert f"stopped after {s['epochs_completed']} epoch" in out and what in out, out
    assert f"{what} after epoch {s['epochs_completed']}. Resume: optai-tui train --resume {run.run_id}" in out, out
    assert "stop requested" not in out
    from optai_tui.runs.interventions import read_interventions

    assert what in read_interventions(run)[-1].text


def test_a_killed_launcher_leaves_the_run_locked_until_its_ranks_are_gone(tmp_path):
    run = _long_run(tmp_path)
    proc = _start(run)
    ranks: list[int] = []
    try:
        _, ranks = _training(run, proc)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + TIMEOUT
        seen_alive = 0
        while any(_alive(p) for p in ranks):
            # a resume now would train beside the ranks: the run must still read as training
            assert lock_state(run.path) is True, "the run reads as not training while its ranks still run"
            seen_alive += 1
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        _kill_all(ranks)
    deadline = time.monotonic() + 60
    while lock_state(run.path) and time.monotonic() < deadline:  # torchrun exits just after its ranks
        time.sleep(0.1)
    assert lock_state(run.path) is False
    s = run.read_summary()
    assert s["status"] == "stopped", s  # torchrun told the ranks (SIGTERM), which stopped together
    assert [e["event"] for e in event_dicts(run)][-1] == "RunStopped"


def test_a_run_started_with_stdout_and_stderr_closed_trains(tmp_path):
    """``optai-tui train ... >&- 2>&-``: the console output is lost, the run is not (1 process and 2)."""
    runs = tmp_path / "runs"
    for gpus in (1, 2):
        cmd = [
            sys.executable, "-m", "optai_tui", "train", "--plain", "--runs-dir", str(runs),
            "--set", "data.dataset=shapes", "--set", "data.subset=128", "--set", "model.arch=vgg11",
            "--set", "model.width=0.125", "--set", "train.device=cpu", "--set", "train.epochs=1",
            "--set", "train.batch_size=32", "--set", f"train.gpus={gpus}", "--set", f"name=closed{gpus}",
        ]  # fmt: skip
        res = subprocess.run(["bash", "-c", 'exec >&- 2>&- "$@"', "bash", *cmd], cwd=ROOT, env=_env(), timeout=TIMEOUT)
        (path,) = runs.glob(f"*-closed{gpus}")
        s = RunDir.open(path).read_summary()
        assert (res.returncode, s["status"], s.get("error")) == (0, "completed", None)
        assert s["world_size"] == gpus


def test_a_run_folder_where_torchrun_log_cannot_be_written_is_one_line_not_a_traceback(tmp_path):
    """A read-only or full disk under a resume with train.gpus=2 (here torchrun.log is a folder: any OSError)."""
    from optai_tui.runs.launch import create_run

    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 128}, train={"epochs": 1, "batch_size": 32, "gpus": 2}))
    run = create_run(cfg, tmp_path / "runs")
    held_here(run.path).release()
    (run.path / "torchrun.log").mkdir()
    res = subprocess.run(
        [sys.executable, "-m", "optai_tui", "train", "--plain", "--run-dir", str(run.path)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "cannot write" in res.stderr and "torchrun.log" in res.stderr, res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert lock_state(run.path) is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA GPUs")
def test_a_resume_whose_processes_fail_to_start_reports_their_error_not_the_earlier_stop(tmp_path):
    """A stopped run folder brought from the GPU server (train.device cuda) to a machine without GPUs: the resume's
    processes fail before training. The launcher used to read the stop already in the log as this session's end
    (exit 130, no message); it reports and records the processes' error. (The resume refuses such a run before
    torchrun starts, as preflight sees no GPU here: ``OPTAI_FAKE_DEVICES`` makes preflight see two, so that the
    ranks, which look for themselves, are the ones to fail.)"""
    from optai_tui.runs.launch import create_run
    from optai_tui.runs.recorder import RunRecorder
    from optai_tui.training import events as ev

    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 128}, train={"epochs": 1, "batch_size": 32, "gpus": 2}))
    run = create_run(cfg, tmp_path / "runs")
    RunRecorder(run)(ev.RunStopped(epoch=0, reason="stop requested"))  # stopped before its first epoch: resumable
    held_here(run.path).release()
    run.config_path.write_text(run.config_path.read_text().replace("device: cpu", "device: cuda"))
    res = subprocess.run(
        [sys.executable, "-m", "optai_tui", "train", "--plain", "--resume", str(run.path)],
        cwd=ROOT, env=_env(OPTAI_FAKE_DEVICES=json.dumps({"devices": ["cuda:0", "cuda:1", "cpu"]})), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no CUDA GPU visible" in res.stderr and "Traceback" not in res.stderr, res.stderr
    s = run.read_summary()
    assert s["status"] == "failed" and "no CUDA GPU visible" in s["error"]


def test_ctrl_c_while_a_resumed_run_starts_stops_it(tmp_path):
    """Ctrl-C (SIGINT) of ``optai-tui train --resume RUN`` while torchrun starts its processes: the launcher writes
    the stop to the control file before rank 0 is up, and rank 0 of a resumed run used to read only the requests
    sent after it was up: the run trained to its end."""
    from optai_tui.runs.launch import RunSession, create_run

    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 128}, train={"epochs": 3, "batch_size": 32}))
    run = create_run(cfg, tmp_path / "runs")
    run.send_control("stop_after_epoch")  # one process, one epoch: a run to resume on two
    RunSession(run).run()
    assert run.read_summary()["status"] == "stopped"
    proc = subprocess.Popen(
        [sys.executable, "-m", "optai_tui", "train", "--plain", "--resume", str(run.path), "--set", "train.gpus=2"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _children(proc.pid):  # torchrun started: the launcher's signal handling is in place
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    s = run.read_summary()
    assert s["status"] == "stopped" and s["epochs_completed"] < 3, s


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def test_a_stop_sent_while_a_detached_resume_starts_is_applied(tmp_path):
    """The dashboard's resume (u) then stop (s) at once: the stop reaches the control file before the detached process
    is up, and a resumed run used to read only the requests sent after that: it trained on (1 and 2 processes)."""
    from optai_tui.runs.launch import RunSession, create_run, spawn_detached
    from optai_tui.training.events import ControlAction

    for gpus in (1, 2):
        cfg = validate_config(tiny(name=f"g{gpus}", data={"dataset": "shapes", "subset": 128}, train={"epochs": 3, "batch_size": 32}))
        run = create_run(cfg, tmp_path / "runs")
        run.send_control(ControlAction.STOP_AFTER_EPOCH)
        RunSession(run).run()  # one epoch, stopped
        if gpus > 1:
            from optai_tui.runs.launch import set_world_size

            set_world_size(run, [f"train.gpus={gpus}"])
        proc = spawn_detached(run, resume=True)
        run.send_control(ControlAction.STOP_NOW)
        assert proc.wait(timeout=TIMEOUT) == 130, run.log_path.read_text()
        s = run.read_summary()
        assert s["status"] == "stopped" and s["epochs_completed"] < 3, (gpus, s)
