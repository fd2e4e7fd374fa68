"""The setup screen's machine worker without the app: the client starts it, restarts it when it dies, gives up on
one that cannot start (an error, not a hang), and never leaves it behind (closed, or its parent killed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optai_tui.tui.machine import MachineClient, MachineError

REPO = Path(__file__).resolve().parents[1]


def _gone(pid: int, wait_s: float = 60.0) -> bool:
    """Whether ``pid`` has exited (polled until ``wait_s``: a deadline for a loaded machine, not a timing)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


def test_the_worker_answers_is_restarted_when_killed_and_killed_on_close():
    client = MachineClient()
    try:
        first = client.call("ping")["pid"]
        assert first == client.pid and client.starts == 1
        os.kill(first, signal.SIGKILL)
        second = client.call("ping")["pid"]  # asked again of a new worker
        assert second != first and client.starts == 2
        assert client.call("no-such-op") == {"error": "unknown request 'no-such-op'"}
    finally:
        client.close()
    assert _gone(second)
    with pytest.raises(MachineError, match="closing"):
        client.call("ping")


def test_a_worker_that_cannot_start_is_an_error_not_a_hang():
    client = MachineClient([sys.executable, "-c", "import sys; print('torch is broken', file=sys.stderr); sys.exit(3)"])
    try:
        with pytest.raises(MachineError) as e:
            client.call("ping")
        assert "exited (code 3): torch is broken" in str(e.value)
        with pytest.raises(MachineError):  # it gave up: no more restarts
            client.call("ping")
        assert client.failure is not None and client.starts == 3
    finally:
        client.close()


PARENT = r"""
import os, sys
from optai_tui.tui.machine import MachineClient
c = MachineClient()
print(c.call("ping")["pid"], flush=True)
os.kill(os.getpid(), 9)  # killed: no close, no atexit
"""


def test_the_worker_exits_with_a_killed_parent():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", PARENT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    worker = int(proc.stdout.split()[0])
    assert _gone(worker)


def test_fake_devices_reach_the_worker(monkeypatch, tiny_config):
    """The tests' fake devices (OPTAI_FAKE_DEVICES, read by the client at each request) are what the worker
    reports and checks against: a GPU this CPU machine does not have."""
    from optai_tui.config import config_to_dict
    from optai_tui.runs.machine import FAKE_DEVICES_ENV

    gpus = [{"spec": "cuda:0", "name": "Fake H100", "total_mb": 81559.0, "free_mb": 80000.0, "capability": [9, 0]},
            {"spec": "cpu", "name": "Fake CPU"}]
    monkeypatch.setenv(FAKE_DEVICES_ENV, json.dumps({"devices": gpus, "why_no_gpu": None, "cpu_flags": []}))
    client = MachineClient()
    try:
        reply = client.call("devices")
        assert [d["spec"] for d in reply["devices"]] == ["cuda:0", "cpu"] and reply["why_no_gpu"] is None
        assert reply["devices"][0]["capability"] == [9, 0]
        cfg = config_to_dict(tiny_config())
        cfg["train"].update(device="cuda:0", precision="auto")
        check = client.call("check", config=cfg, runs_dir=None, devices=reply["devices"])
        assert check["problems"] == []  # cuda:0 is there (faked)
        assert "precision auto on cuda:0: bf16 autocast" in check["notes"]
        cfg["train"]["device"] = "cuda:1"
        check = client.call("check", config=cfg, runs_dir=None, devices=reply["devices"])
        assert check["problems"][0][0] == "train.device" and "'cuda:1' is not available" in check["problems"][0][1]
    finally:
        client.close()
