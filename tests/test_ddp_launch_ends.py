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

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from optai_tui.config import validate_config
from optai_tui.errors import ConfigError
from optai_tui.runs.lock import lock_state
from optai_tui.runs.store import RunDir

from .conftest import tiny
from .test_ddp import ROOT, TIMEOUT, _env

DEVICES = "OPTAI_TEST_DEVICES"


def _resume(run: RunDir, *extra: str, devices: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optai_tui", "train", "--plain", "--resume", str(run.path), *extra],
        cwd=ROOT, env=_env(**{DEVICES: devices}), capture_output=True, text=True, timeout=TIMEOUT,
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
    monkeypatch.setenv(DEVICES, "cuda:0,cpu")
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
