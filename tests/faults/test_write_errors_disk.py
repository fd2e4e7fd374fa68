"""Writes that fail (issue 9, item 5): a full disk (a small tmpfs), a file size limit (`ulimit -f`, with
SIGXFSZ ignored so that the write error surfaces) and a read-only runs folder. Each says in one line which
file could not be written and why (exit 1), marks the run failed only where its folder can still record
it, and loses nothing that was already written: a resume after the space comes back ends the run.

Mounting needs root (or a user namespace); where it is refused, those tests skip and say why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from optai_tui.cli import main
from optai_tui import errors
from optai_tui.runs.store import RunDir, list_runs

REPO = Path(__file__).resolve().parents[2]
TINY = {  # 3 epochs of a slim VGG-11 on 256 shapes images: each checkpoint is about 1.2 MB
    "name": "disk",
    "data": {"dataset": "shapes", "subset": 256},
    "model": {"arch": "vgg11", "width": 0.125},
    "train": {"epochs": 3, "batch_size": 128, "device": "cpu", "progress_every": 5.0},
}


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # the error panel on one line


@pytest.fixture
def preset(tmp_path) -> Path:
    p = tmp_path / "disk.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return p


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``path`` (skips the test where mounting is not allowed), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def err_line(capsys) -> str:
    return " ".join(capsys.readouterr().err.replace("│", " ").split())


def check_whole(run: RunDir) -> dict:
    """Every file of the run folder is whole: JSON summary, complete event lines, loadable checkpoints,
    no temp file left behind. Returns the summary."""
    summary = json.loads(run.summary_path.read_text())
    log = run.events_path.read_bytes()
    assert log == b"" or log.endswith(b"\n")
    assert all(json.loads(line) for line in log.splitlines())
    for ckpt in run.checkpoints_dir.glob("*.pt"):
        torch.load(ckpt, weights_only=True)
    assert not [p.name for p in run.path.rglob("*.tmp")]
    return summary


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# A full disk


def test_a_full_disk_fails_the_run_with_the_file_and_a_resume_ends_it(preset, tmp_path, capsys):
    with tmpfs(tmp_path / "small", "3m") as runs:  # one epoch's two checkpoints fit, not a third one
        assert main(["train", "-p", str(preset), "--runs-dir", str(runs), "--plain"]) == 1
        err = err_line(capsys)
        assert "No space left on device" in err and "internal error" not in err and "Traceback" not in err
        assert f"cannot write '{runs}/" in err and "the disk is full" in err
        run = list_runs(runs)[0]
        summary = check_whole(run)
        assert summary["status"] == "failed" and "No space left on device" in summary["error"]  # it could record it
        assert summary["epochs_completed"] >= 1
        assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] >= 1  # epoch 1's weights kept
        remount(runs, "size=64m")  # space again
        capsys.readouterr()
        assert main(["train", "--resume", run.run_id, "--runs-dir", str(runs), "--plain"]) == 0
        summary = check_whole(run)
        assert summary["status"] == "completed" and summary["epochs_completed"] == 3


class _FillDisk:
    """A sink after the recorder that fills the disk at the last step of epoch 2: from then on nothing
    fits, not even the RunFailed line the run folder would record."""

    def __init__(self, folder: Path):
        self.filler = folder / "filler"

    def __call__(self, e) -> None:
        last_step = type(e).__name__ == "BatchEnd" and e.epoch == 2 and e.step == e.steps_per_epoch
        if last_step and not self.filler.exists():
            with contextlib.suppress(OSError), open(self.filler, "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 16))
                    f.flush()


def test_the_failure_path_survives_a_disk_too_full_to_record_it(tiny_config, tmp_path):
    from optai_tui.runs.launch import new_session

    with tmpfs(tmp_path / "full", "8m") as disk:
        runs = disk / "runs"
        cfg = tiny_config(train={"epochs": 3, "progress_every": 5.0})
        session = new_session(cfg, runs, sinks=[_FillDisk(disk)])
        with pytest.raises(errors.StorageError) as e:
            session.run()
        # a clear error about a file of the run (the first write that failed: epoch 2's records), not one
        # raised by the failure path itself when the log could not record the failure
        run = session.run_dir
        assert run.path in Path(e.value.path).parents and e.value.strerror == "No space left on device"
        assert str(e.value).startswith("cannot write '") and "the disk is full" in str(e.value)
        (disk / "filler").unlink()
        summary = check_whole(run)
        assert summary["epochs_completed"] == 1 and summary["status"] == "running"  # as left after epoch 1
        assert torch.load(run.last_checkpoint, weights_only=True)["epoch"] == 1


# ---------------------------------------------------------------------------------------------
# ulimit -f


def _limit_file_size() -> None:  # in the child, before exec: what `ulimit -f 512` does
    resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))


def test_a_file_size_limit_names_the_file_instead_of_killing_the_run(preset, tmp_path):
    runs = tmp_path / "runs"
    # SIGXFSZ back to its default (which kills): main() must ignore it so that the write fails with EFBIG
    code = (
        "import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_DFL); from optai_tui.cli import main; "
        f"sys.exit(main(['train', '-p', {str(preset)!r}, '--runs-dir', {str(runs)!r}, '--plain']))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="2000", HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=600)
    assert r.returncode != -signal.SIGXFSZ, "killed by SIGXFSZ"
    err = " ".join(r.stderr.replace("│", " ").split())
    assert r.returncode == 1, err
    assert "File too large" in err and "last.pt" in err and "ulimit -f" in err
    assert "internal error" not in err and "Traceback" not in err
    run = list_runs(runs)[0]
    summary = check_whole(run)
    assert summary["status"] == "failed" and "last.pt" in summary["error"] and "File too large" in summary["error"]
    assert run.load_config().name == "disk"  # what was written before is whole


# ---------------------------------------------------------------------------------------------
# A read-only runs folder


@pytest.fixture
def read_only_runs(trained_runs, tmp_path) -> Iterator[Path]:
    """A runs folder holding a copy of a trained run that can go on (its config now asks for 3 epochs),
    made read-only (a tmpfs remounted read-only: root ignores a folder's mode bits)."""
    with tmpfs(tmp_path / "ro", "64m") as runs:
        src = list_runs(trained_runs)[0]
        shutil.copytree(src.path, runs / src.run_id)
        cfg = runs / src.run_id / "config.yaml"
        cfg.write_text(cfg.read_text().replace("epochs: 2", "epochs: 3"))
        remount(runs, "ro")
        yield runs


def test_a_read_only_runs_folder(read_only_runs, preset, tmp_path, capsys):
    runs = read_only_runs
    before = tree_digest(runs)
    run = list_runs(runs)[0]
    # resuming: refused with the file and the reason; the run stays exactly as it was (not marked failed:
    # its folder cannot record anything)
    assert main(["train", "--resume", run.run_id, "--runs-dir", str(runs), "--plain"]) == 1
    err = err_line(capsys)
    assert "Read-only file system" in err and f"'{run.path}/" in err and "internal error" not in err
    # a new run: no folder can be made
    assert main(["train", "-p", str(preset), "--runs-dir", str(runs), "--plain"]) == 1
    err = err_line(capsys)
    assert "cannot create the run folder" in err and "Read-only file system" in err and "--runs-dir" in err
    assert tree_digest(runs) == before
    # reading works: the list, and an export written elsewhere
    assert main(["--runs-dir", str(runs), "runs", "list"]) == 0
    assert main(["--runs-dir", str(runs), "export", run.run_id, "-o", str(tmp_path / "r.csv")]) == 0
    assert tree_digest(runs) == before


def test_tags_on_a_read_only_run_say_why(read_only_runs):
    run = list_runs(read_only_runs)[0]
    with pytest.raises(errors.StorageError) as e:
        run.write_meta(tags=["x"])
    assert e.value.path == str(run.meta_path) and "Read-only file system" in str(e.value)
    with pytest.raises(errors.StorageError):
        run.send_control("stop_now")
