"""Fixtures for the TUI tests: a temporary runs folder and presets folder, and the same device list on
every machine. Helpers the tests import live in ``tui_helpers`` (a conftest is not importable by name)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def presets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "presets"
    d.mkdir()
    monkeypatch.setenv("OPTAI_PRESETS_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def _fixed_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same device list on every machine (so screens and snapshots do not depend on the host), here and
    in the apps' machine worker; one worker for every app of this test process (OPTAI_MACHINE=shared: one
    torch import per process, not one per test)."""
    from tui_helpers import fake_devices

    from optai_tui.training.devinfo import DeviceInfo
    from optai_tui.tui.machine import MODE_ENV

    fake_devices(monkeypatch, [DeviceInfo("cpu", "Test CPU")])  # precision auto: fp32, as on a CPU without bf16
    monkeypatch.setenv(MODE_ENV, "shared")
