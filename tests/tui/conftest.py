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
    """The same device list on every machine (so screens and snapshots do not depend on the host)."""
    from optai_tui.training import device

    monkeypatch.setattr(device, "detect_devices", lambda: [device.DeviceInfo("cpu", "Test CPU")])
    monkeypatch.setattr(device, "why_no_gpu", lambda: "this torch build has no CUDA support (CPU-only wheel)")
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset())  # precision auto: fp32, as on a CPU without bf16
