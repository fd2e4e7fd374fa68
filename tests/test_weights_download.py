"""ImageNet weights reaching the trainer: with OPTAI_OFFLINE=1 a missing file fails the run at once with
preflight's message and no connection; a download writes its progress best effort (a dropped SSH terminal
or a closed pipe never fails the run) and lands in the torch hub cache atomically, checked against its hash."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from optai_tui.config import validate_config
from optai_tui.errors import CheckpointError
from optai_tui.models import create_model
from optai_tui.runs import launch, preflight
from optai_tui.runs.launch import new_session
from optai_tui.training import backbones

pytestmark = pytest.mark.filterwarnings("ignore:tv_resnet18 was trained on 224px")

CFG = {
    "model": {"arch": "tv_resnet18"},
    "data": {"dataset": "shapes", "subset": 32, "val_split": 0.5, "normalize": "imagenet", "augment": False},
    "transfer": {"mode": "linear_probe", "backbone": "imagenet", "resize_to": 32},
    "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
}


@pytest.fixture(autouse=True)
def no_connections(tmp_path, monkeypatch):
    """A fake torch hub (TORCH_HOME in tmp_path), and a socket guard: any connection attempt is recorded
    and refused, so a test that expects none fails instead of reaching the network or hanging."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError(errno.ENETUNREACH, "connection attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_offline_and_not_cached_fails_in_the_trainer_at_once_with_preflights_message(tmp_path, monkeypatch, no_connections):
    monkeypatch.setenv("OPTAI_OFFLINE", "1")
    cfg = validate_config(CFG)
    url, fname, folder = backbones.imagenet_weights_file("tv_resnet18")
    [problem] = list(preflight.imagenet_problems(cfg))  # what preflight says before a run folder exists
    monkeypatch.setattr(launch, "preflight", lambda *a, **k: [])  # a run that skipped it reaches the trainer
    session = new_session(cfg, tmp_path / "runs")
    with pytest.raises(CheckpointError) as failed:
        session.run()
    msg = failed.value.message
    assert msg == problem.message and "\n" not in msg
    assert f"(OPTAI_OFFLINE is set): download {url} on a machine with internet" in msg and f"copy {fname} into the folder {folder}" in msg
    s = session.run_dir.read_summary()
    assert s["status"] == "failed" and msg in s["error"]
    assert no_connections == []  # never tried the network
    assert not folder.exists() or not any(folder.iterdir())


class DeadTerminal:
    """stderr after an SSH drop: still 'a terminal', every write EIO."""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def flush(self) -> None:
        raise OSError(errno.EIO, "Input/output error")


def _weights_source(tmp_path: Path) -> tuple[str, str, bytes]:
    """A resnet18 state_dict file the test serves itself (file:// URL), named with its sha256 prefix as
    torchvision's are."""
    torch.manual_seed(3)
    src = tmp_path / "mirror" / "resnet18.pth"
    src.parent.mkdir()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), src)
    data = src.read_bytes()
    return src.as_uri(), f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth", data


def _close(f) -> None:
    try:
        f.close()
    except OSError:  # its buffer cannot be flushed into the dead pipe
        pass


@pytest.mark.parametrize("stderr", ["dead terminal", "closed pipe"])
def test_download_with_stderr_gone_goes_on_and_lands_in_the_cache_atomically(tmp_path, monkeypatch, request, no_connections, stderr):
    url, fname, data = _weights_source(tmp_path)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    monkeypatch.setattr(backbones, "imagenet_weights_file", lambda arch: (url, fname, folder))
    assert preflight.offline_reason(url) is None  # a file:// mirror needs no network (and is not probed)
    monkeypatch.setattr(launch, "preflight", lambda *a, **k: [])  # the trainer's own download, not preflight's check
    if stderr == "dead terminal":
        gone = DeadTerminal()
    else:
        r, w = os.pipe()
        os.close(r)  # the reader is gone (`optai-tui train 2>&1 | tee log`, tee killed): every write is EPIPE
        gone = os.fdopen(w, "w")
        request.addfinalizer(lambda: _close(gone))
    monkeypatch.setattr(sys, "stdout", gone)  # a foreground run's terminal: both streams
    monkeypatch.setattr(sys, "stderr", gone)
    opened: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (opened.append(str(a)), real_replace(a, b))[1])
    session = new_session(validate_config(CFG), tmp_path / "runs")
    summary = session.run()
    assert summary["status"] == "completed" and fname in summary["backbone"]
    assert (folder / fname).read_bytes() == data
    assert [p.name for p in folder.iterdir()] == [fname]  # no temp file left beside it
    assert any(Path(p).parent == folder and Path(p).name.startswith(f".{fname}.") for p in opened)  # renamed into place
    assert no_connections == []


def test_a_download_that_fails_its_hash_leaves_nothing_in_the_cache(tmp_path, monkeypatch, capsys):
    url, _, _ = _weights_source(tmp_path)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    fname = "resnet18-00000000.pth"  # not the file's hash
    monkeypatch.setattr(backbones, "imagenet_weights_file", lambda arch: (url, fname, folder))
    with pytest.raises(CheckpointError) as failed:
        backbones.load_imagenet_backbone(create_model("tv_resnet18", 10, 3), "tv_resnet18", progress=False)
    assert "the download failed" in failed.value.message and "sha256" in failed.value.message
    assert list(folder.iterdir()) == []
    err = capsys.readouterr().err
    assert f"downloading {url}" in err  # the plain start line (progress=False: no redrawn line)
    assert "\r" not in err
