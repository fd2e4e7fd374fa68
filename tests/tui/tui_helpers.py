"""Helpers for the TUI tests: a tiny CPU config, the screen as text, waiting while the app runs."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

# A run that trains in seconds on 2 CPU cores: 3 steps an epoch of 16px images on a 1/8-width ResNet-18.
TINY = {
    "data.dataset": "shapes",
    "data.subset": 512,
    "data.val_split": 0.25,
    "data.image_size": 16,
    "model.arch": "resnet18",
    "model.width": 0.125,
    "train.epochs": 2,
    "train.batch_size": 128,
    "train.progress_every": 0.05,
    "optim.lr": 0.05,
}


def screen_text(app) -> str:
    """The current screen (with the screens under a modal) as plain text."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.1)


def notified(app, text: str) -> bool:
    """Whether a notification whose message contains ``text`` has been shown (``notify`` posts a message: it
    is in the app's list a frame or more later, later still on a loaded machine)."""
    return any(text in str(n.message) for n in app._notifications)


def fill(form, values: dict) -> None:
    for key, value in values.items():
        form.set_value(key, value)
    form.validate()


def read_events(run_path: Path) -> list[dict]:
    return [json.loads(line) for line in (run_path / "events.jsonl").read_text().splitlines() if line.strip()]


def wait_file_status(run_path: Path, statuses: tuple[str, ...], timeout: float = 120.0) -> dict:
    """Poll summary.json (no app needed) until the run reaches one of ``statuses``."""
    t0 = time.monotonic()
    while True:
        try:
            s = json.loads((run_path / "summary.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            s = {}
        if s.get("status") in statuses:
            return s
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"run {run_path.name} still {s.get('status')!r} after {timeout:.0f}s")
        time.sleep(0.25)


NO_GPU = "this torch build has no CUDA support (CPU-only wheel)"


def fake_devices(monkeypatch, devices: list, why_no_gpu: str | None = NO_GPU, cpu_flags: frozenset = frozenset()) -> None:
    """The devices the app sees, in this process and in the app's machine worker (runs/machine.py reads
    OPTAI_FAKE_DEVICES with each request): the list, why there is no GPU, the CPU's flags."""
    from optai_tui.runs.machine import FAKE_DEVICES_ENV
    from optai_tui.training import device
    from optai_tui.training.devinfo import device_to_dict

    devices = list(devices)
    monkeypatch.setattr(device, "detect_devices", lambda: list(devices))
    monkeypatch.setattr(device, "why_no_gpu", lambda: why_no_gpu)
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset(cpu_flags))
    fake = {"devices": [device_to_dict(d) for d in devices], "why_no_gpu": why_no_gpu, "cpu_flags": sorted(cpu_flags)}
    monkeypatch.setenv(FAKE_DEVICES_ENV, json.dumps(fake))
