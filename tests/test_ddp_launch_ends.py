"""Three loose ends of the multi-process launch path, with real torchrun and gloo on the CPU (2 processes, ``shapes``,
slim VGG-11s):

- a run folder brought to a machine that lacks the GPUs its config asks for is refused by ``--resume`` (and the TUI's
  resume) before torchrun or the trainer starts, as preflight refuses a new run: it used to be refused by the ranks,
  which recorded a failure in the run;
- torchrun itself killed: the stop used to be recorded and shown as "stop requested", as if the user had asked;
- the launcher and torchrun killed together: the run used to be unlocked while its ranks still trained, so a resume
  could start beside them.
"""

from __future__ import annotations

import csv
import os
import signal
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from optai_tui.config import validate_config
from optai_tui.errors import ConfigError
from optai_tui.runs.lock import lock_state
from optai_tui.runs.store import RunDir

from .conftest import tiny
from .helpers import event_dicts
from .test_ddp import ROOT, TIMEOUT, _env, _pids_of_rank, _state
from .test_ddp_field import _training

from optai_tui.training.devinfo import FAKE_DEVICES_ENV


def _machine(devices: str) -> dict[str, str]:
    """The environment of a process that sees ``devices`` (``cuda:0,cpu``) as this machine's."""
    return {FAKE_DEVICES_ENV: json.dumps({"devices": devices.split(",")})}


def _resume(run: RunDir, *extra: str, devices: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optai_tui", "train", "--plain", "--resume", str(run.path), *extra],
        cwd=ROOT, env=_env(**_machine(devices)), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def _stopped_after_one_epoch(tmp_path: Path) -> RunDir:
    from optai_tui.runs.launch import RunSession, create_run

    cfg = validate_config(tiny(name="moved", data={"dataset": "shapes", "subset": 128}, train={"epochs": 2, "batch_size": 32}))
    run = create_run(cfg, tmp_path / "runs")
    run.send_control("stop_after_epoch")
    RunSession(run).run()
    assert run.read_summary()["status"] == "stopped"
    return run


def _as_trained_on(run: RunDir, **train) -> None:
    """The run's config as the GPU server it came from wrote it."""
    data = yaml.safe_load(run.config_path.read_text())
    data["train"].update(train)
    run.config_path.write_text(yaml.safe_dump(data))


def _files(run: RunDir) -> dict[str, bytes]:
    return {p.relative_to(run.path).as_posix(): p.read_bytes() for p in sorted(run.path.rglob("*")) if p.is_file() and p.name != "lock"}


def test_a_run_moved_to_a_machine_without_its_gpus_is_refused_before_anything_starts(tmp_path, monkeypatch):
    from optai_tui.runs.launch import plan_resume, resume_detached

    run = _stopped_after_one_epoch(tmp_path)
    cases = [
        # (what the config asks for, the devices here, --set, what the refusal says)
        ({"device": "cuda", "gpus": [0, 3]}, "cuda:0,cpu", (), "train.gpus: GPU 3 is not present here (usable CUDA GPUs: cuda:0)"),
        ({"device": "cuda:2", "gpus": 1}, "cuda:0,cpu", (), "train.device: 'cuda:2' is not available on this machine"),
        ({"device": "cuda", "gpus": 2}, "cpu", (), "train.gpus: 2 processes on CUDA need 2 GPUs; this machine has 0 usable (none)"),
        # a resume on other GPUs is checked before the config is saved with them
        ({"device": "cuda", "gpus": 1}, "cuda:0,cpu", ("--set", "train.gpus=[0,3]"), "train.gpus: GPU 3 is not present here"),
    ]
    for train, devices, extra, said in cases:
        _as_trained_on(run, **train)
        before = _files(run)
        res = _resume(run, *extra, devices=devices)
        assert res.returncode == 2, (train, res.stdout + res.stderr)
        text = " ".join(res.stderr.split())
        assert said in text and "Traceback" not in res.stderr, (train, res.stderr)
        # nothing written: no event, no torchrun.log, the summary and the config as they were; the run unlocked
        assert _files(run) == before, train
        assert not (run.path / "torchrun.log").exists() and not (run.path / "torchrun").exists()
        assert lock_state(run.path) is False
    # the TUI's resume (dashboard u, the runs screen) goes through resume_detached: the same refusal, no process
    _as_trained_on(run, device="cuda", gpus=[0, 3])
    before = _files(run)
    monkeypatch.setenv(FAKE_DEVICES_ENV, json.dumps({"devices": ["cuda:0", "cpu"]}))
    with pytest.raises(ConfigError, match=r"GPU 3 is not present here") as e:
        resume_detached(run)
    assert e.value.field == "train.gpus"
    assert _files(run) == before and lock_state(run.path) is False
    # on a machine that has the GPUs, the run resumes from its epoch
    plan = plan_resume(run, devices=["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cpu"])
    assert (plan.completed, plan.epochs_done) == (False, 1)
    # and a CPU run on 2 gloo processes resumes on a machine without GPUs
    _as_trained_on(run, device="cpu", gpus=1)
    res = _resume(run, "--set", "train.gpus=2", devices="cpu")
    assert res.returncode == 0, res.stdout + res.stderr
    s = run.read_summary()
    assert (s["status"], s["epochs_completed"], s["world_size"]) == ("completed", 2, 2)


def _start(run: RunDir, **env: str) -> subprocess.Popen:
    """The launcher, its output in a file (ranks that outlive it would hold a pipe open)."""
    with open(run.path.parent / "launcher.out", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "optai_tui", "train", "--plain", "--run-dir", str(run.path)],
            cwd=ROOT, env=_env(**env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _three_epochs(tmp_path: Path) -> RunDir:
    """A 2-process run of 3 epochs of 8 steps each."""
    from optai_tui.runs.launch import create_run
    from optai_tui.runs.lock import held_here

    cfg = validate_config(tiny(data={"dataset": "shapes", "subset": 256}, train={"epochs": 3, "batch_size": 32, "gpus": 2}))
    run = create_run(cfg, tmp_path / "runs")
    held_here(run.path).release()  # the launcher started below takes it
    return run


def _wait(what, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_resume_is_refused_while_the_ranks_of_a_killed_launcher_and_torchrun_live(tmp_path):
    run = _three_epochs(tmp_path)
    # rank 0 stops (SIGSTOP) as it records the end: the ranks are alive, the test looks at that moment
    proc = _start(run, OPTAI_FAULT="event.RunStopped:1:pause")
    ranks: list[int] = []
    try:
        torchrun, ranks = _training(run, proc)
        (rank0,) = _pids_of_rank(run, 0)
        os.kill(proc.pid, signal.SIGKILL)  # both at once (pkill -9 -f optai: in the order of their pids)
        os.kill(torchrun, signal.SIGKILL)
        proc.wait()
        _wait(lambda: _state(rank0) == "T")  # the ranks stopped together; rank 0 is recording it
        assert lock_state(run.path) is False  # the run's lock went with the launcher and torchrun
        before = _files(run)
        res = _resume(run, devices="cpu")
        assert res.returncode == 2, res.stdout + res.stderr
        text = " ".join(res.stderr.split())
        assert "is still training: its torchrun processes are still running (pid" in text and str(rank0) in text, res.stderr
        assert "Traceback" not in res.stderr
        assert _files(run) == before  # nothing started beside them
        os.kill(rank0, signal.SIGCONT)
        _wait(lambda: not any(_state(p) not in ("gone", "Z") for p in ranks))
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in ranks:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    stopped = run.read_summary()
    assert stopped["status"] == "stopped" and 1 <= stopped["epochs_completed"] < 3, stopped
    # they are gone: the resume trains the epochs left, and the run ends as an uninterrupted one
    res = _resume(run, devices="cpu")
    assert res.returncode == 0, res.stdout + res.stderr
    s = run.read_summary()
    assert (s["status"], s["epochs_completed"]) == ("completed", 3), s
    assert [r["epoch"] for r in csv.DictReader((run.path / "metrics.csv").open())] == ["1", "2", "3"]
    assert [e["epochs_completed"] for e in event_dicts(run) if e["event"] == "RunFinished"] == [3]
