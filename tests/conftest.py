"""Shared fixtures: tiny real configs and isolated folders, so no test touches the user's files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

# Tiny models on 2 cores: one intra-op thread is faster than two fighting over a busy machine.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
CIFAR_SUB = REPO.parent / "shared" / "data" / "cifar10-sub"


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory):
    """HOME and the XDG folders of this test session, set before any other fixture: the processes the tests
    start once per session (the fault suite's fork server, forked for dozens of runs) inherit them, so no
    crash log, cache or config a test provokes lands in the real ~/.cache or ~/.config."""
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        for var, sub in (("XDG_CACHE_HOME", ".cache"), ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"), ("XDG_STATE_HOME", ".local/state")):
            mp.setenv(var, str(home / sub))
        yield home


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("OPTAI_PRESETS_DIR", str(home / "presets"))
    monkeypatch.setenv("OPTAI_DATA_ROOT", str(home / "data"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("OPTAI_RUNS_DIR", str(home / "runs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))  # crash logs stay out of the real ~/.cache


def tiny(**sections) -> dict:
    """A config dict for a run of a few seconds on the CPU: 512 shapes images, a slim VGG-11."""
    base = {
        "name": "tiny",
        "data": {"dataset": "shapes", "subset": 512},
        "model": {"arch": "vgg11", "width": 0.125},
        "optim": {"lr": 0.05},
        "train": {"epochs": 2, "batch_size": 128, "device": "cpu", "progress_every": 0.01},
    }
    for sec, values in sections.items():
        if isinstance(values, dict):
            base.setdefault(sec, {}).update(values)
        else:
            base[sec] = values
    return base


@pytest.fixture
def tiny_config():
    from optai_tui.config import validate_config

    return lambda **kw: validate_config(tiny(**kw))


@pytest.fixture
def cifar_sub() -> Path:
    if not (CIFAR_SUB / "train").is_dir():
        pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUB} (only present beside the project's CI checkout)")
    return CIFAR_SUB



# Three tiny real runs (two widths of resnet18, one preact_resnet18), trained once per test session and
# shared read-only by the compare, export and runs-screen tests (copy them before changing anything).
FIXTURE_RUNS = (("tiny-r18", "resnet18", 0.125), ("wide-r18", "resnet18", 0.1875), ("tiny-preact", "preact_resnet18", 0.125))


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> Path:
    from optai_tui.config import validate_config
    from optai_tui.runs.launch import new_session

    runs = tmp_path_factory.mktemp("trained") / "runs"
    for name, arch, width in FIXTURE_RUNS:
        cfg = validate_config(
            {
                "name": name,
                "data": {"dataset": "shapes", "subset": 320, "val_split": 0.2, "image_size": 16},
                "model": {"arch": arch, "width": width},
                "train": {"epochs": 2, "batch_size": 128, "device": "cpu"},
            }
        )
        new_session(cfg, runs).run()
        time.sleep(1.05 - time.time() % 1)  # run ids are time-sortable to the second: keep the order
    return runs
