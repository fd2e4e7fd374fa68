"""A full disk while training: the run fails (exit 1), its folder stays consistent (nothing half-written: no
temp file, no torn event line, nothing claimed that is not on disk), and once there is room again it resumes to
the final weights of an uninterrupted run.

The disk is a small tmpfs mounted for the test when the test can mount one (root), filled at the end of epoch 1;
and, everywhere, the same writes are made to fail with ENOSPC through the fault hook. (What the error says is the CLI's errors table's business; here:
the records.)
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import assert_reads_consistently, assert_whole, resume_args, stopped, the_run, train_args, wait_for


class SmallDisk:
    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def fill(self, leave: int) -> None:
        """Take all the free space but ``leave`` bytes."""
        with open(self.filler, "ab") as f:
            while True:
                st = os.statvfs(self.path)
                room = st.f_bavail * st.f_frsize - leave
                if room <= 0:
                    return
                try:
                    f.write(b"\0" * min(room, 1 << 20))
                    f.flush()
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    return

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture(params=["tmpfs", "injected"])
def small_disk(request, tmp_path) -> Iterator[SmallDisk | None]:
    """A 16 MB tmpfs (skipped where it cannot be mounted), or None: ENOSPC through the fault hook."""
    if request.param == "injected":
        yield None
        return
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "optai-faults", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield SmallDisk(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# (case, room left once epoch 1 is recorded, the same failure through the fault hook)
CASES = [
    ("no room for a checkpoint", 256 << 10, "write.last.pt:2:enospc"),  # small writes go on, last.pt of epoch 2 fails
    ("no room at all", 0, "write.metrics.csv:1:enospc"),  # epoch 1's records fail after its EpochEnd
]


@pytest.mark.parametrize(("leave", "fault"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_full_disk_fails_the_run_and_it_resumes_once_there_is_room(fork_server, preset_file, reference, tmp_path, small_disk, leave, fault):
    out = tmp_path / "out.txt"
    if small_disk is not None:
        runs = small_disk.path / "runs"
        pid = fork_server.start(train_args(preset_file, runs), out, OPTAI_FAULT="event.EpochEnd:1:pause")
        wait_for(lambda: stopped(pid), what="epoch 1's end")
        small_disk.fill(leave)
        os.kill(pid, signal.SIGCONT)
    else:
        runs = tmp_path / "runs"
        pid = fork_server.start(train_args(preset_file, runs), out, OPTAI_FAULT=fault)
    assert fork_server.wait(pid) == 1, out.read_text()
    text = out.read_text()
    assert "Traceback" not in text and "No space left on device" in text
    run = the_run(runs)
    r = assert_reads_consistently(run)
    assert r.temps == [] and r.last["epoch"] == 1 and r.log_epochs <= 1
    assert run.status() in ("failed", "stopped")
    if small_disk is not None:
        small_disk.free()
    resumed = tmp_path / "resumed.txt"
    assert fork_server.run(resume_args(run), resumed) == 0, resumed.read_text()
    assert_whole(run, reference)
