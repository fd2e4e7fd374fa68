"""The machine's answers for the setup screen, from a process of their own: the devices, the cost preview of a
config (parameters, MACs, memory, seconds per epoch) and the checks a config must pass on this machine (device,
precision, backbone) with the notes on what the machine decides.

They need torch, and importing torch holds the interpreter's lock for a second or more (loading its C extension):
in the TUI's own process, even on a thread, the screen would freeze meanwhile. So the TUI starts this module as a
long-lived worker (``tui/machine.py``'s ``MachineClient``) and speaks JSON lines with it::

    python -m optai_tui.runs.machine        # a request a line on stdin, its answer a line on stdout

A request is ``{"id": N, "op": "devices" | "cost" | "check" | "ping", ...}``, its answer ``{"id": N, ...}``
(:func:`handle`). The answers are those the TUI computed in its own process before: the same functions, the
same messages. The worker exits when its stdin closes, and with its parent (``PR_SET_PDEATHSIG``, as
``runs/launch.py`` does for torchrun), so it is never left behind.

``OPTAI_FAKE_DEVICES`` (a test hook, sent with each request): a JSON object ``{"devices": [DeviceInfo as a
dict, ...], "why_no_gpu": "...", "cpu_flags": [...]}`` that the worker reports and decides with instead of
this machine's, as the TUI tests fake the devices in their own process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from ..training.devinfo import FAKE_DEVICES_ENV  # torch-free
PARENT_ENV = "OPTAI_MACHINE_PARENT"


def check_key(cfg) -> tuple:
    """Every setting the machine checks of a config read (``device_problems``, ``backbone_problems``,
    ``machine_notes``): an answer holds for every config with the same key. A new check that reads another
    setting adds it here."""
    t = cfg.train
    return (t.device, t.precision, json.dumps(t.gpus), t.compile, cfg.transfer.mode, cfg.transfer.backbone,
            cfg.model.arch, float(cfg.model.width), cfg.data.dataset)


# -- the answers ---------------------------------------------------------------------------------------
def handle(request: dict[str, Any], *, fakes: bool = True) -> dict[str, Any]:
    """The answer to one request (without its id). ``fakes``: apply the request's fake devices (the worker
    process; a caller in the test process itself has its own fakes)."""
    if fakes:
        _apply_fakes(request.get("fake"))
    op = request.get("op")
    if op == "ping":
        return {"pid": os.getpid()}
    if op == "devices":
        return _detect()
    if op == "cost":
        return {"result": _cost(request)}
    if op == "check":
        return _check(request)
    return {"error": f"unknown request {op!r}"}


def _detect() -> dict[str, Any]:
    from ..training import device
    from ..training.devinfo import device_to_dict

    try:
        devices, why = device.detect_devices(), device.why_no_gpu()
    except Exception as e:  # detection must never take the app down
        devices, why = [device.DeviceInfo("cpu", "CPU")], f"device detection failed: {e}"
    return {"devices": [device_to_dict(d) for d in devices], "why_no_gpu": why}


def _config(data: dict[str, Any]):
    from ..config import RunConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RunConfig.model_validate(data)


def _devices(data: list | None) -> list | None:
    from ..training.devinfo import device_from_dict

    return None if data is None else [device_from_dict(d) for d in data]


def _runs_dir(request: dict[str, Any]) -> Path | None:
    return Path(request["runs_dir"]) if request.get("runs_dir") else None


def _cost(request: dict[str, Any]) -> dict[str, Any]:
    from .cost import compute_cost

    try:
        return compute_cost(_config(request["config"]), _runs_dir(request), _devices(request.get("devices")))
    except Exception as e:  # a preview must never take the app down
        return {"error": f"{type(e).__name__}: {e}"}


def _check(request: dict[str, Any]) -> dict[str, Any]:
    """The problems of ``config`` on this machine beyond its image folder (the devices', when the request
    has them, then the backbone's) and the notes on what the machine decides for it."""
    from .preflight import backbone_problems, device_problems, machine_notes

    cfg, devices = _config(request["config"]), _devices(request.get("devices"))
    problems = []
    if devices is not None:
        problems += device_problems(cfg, devices)
    problems += backbone_problems(cfg, _runs_dir(request))
    notes = machine_notes(cfg, devices) if devices is not None else []
    return {"problems": [[p.field, p.message, list(p.related)] for p in problems], "notes": notes}


def _apply_fakes(spec: str | None) -> None:
    """Report and decide with the devices ``spec`` (OPTAI_FAKE_DEVICES's JSON, as the test that started the
    request set it) describes; None: this machine's. ``training/device.py`` reads the variable itself."""
    if spec:
        os.environ[FAKE_DEVICES_ENV] = spec
    else:
        os.environ.pop(FAKE_DEVICES_ENV, None)


# -- the worker process ------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """SIGTERM when the parent (the thread of the TUI that started this process) is gone, and exit now if it
    already is (as runs/launch.py's torchrun does; Linux only, elsewhere stdin's end stops the worker)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit() and os.getppid() != int(parent):
        sys.exit(0)


def serve(stdin=None, out=None) -> None:
    """Answer the requests of ``stdin`` on ``out``, one JSON line each, until stdin ends."""
    stdin = stdin or sys.stdin
    for line in stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        try:
            reply = handle(request)
        except Exception as e:  # an answer, never a dead worker
            reply = {"error": f"{type(e).__name__}: {e}"}
        reply["id"] = request.get("id")
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main() -> int:
    _die_with_parent()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the answers; anything else printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        serve(sys.stdin, out)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
