"""Signals, a closed terminal and a closed pipe: a headless run stops cleanly (130) when asked to, and nothing
else stops it.

Each case lands at a chosen moment: the training process stops itself there (``OPTAI_FAULT=POINT:N:pause``),
the test acts (a signal, closing the terminal or the pipe), then lets it go on (SIGCONT). Stop signals and
SIGHUP are sent to processes of the fork server; a closed terminal, a closed pipe and the exit code after two
SIGTERMs need a process of its own (Python's start and exit are part of what is tested).
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import time

import pytest

from optai_tui.runs.store import list_runs

from .conftest import (
    assert_reads_consistently,
    assert_whole,
    child_env,
    proc_state,
    resume_args,
    stopped,
    the_run,
    train_args,
    wait_for,
)

# The first epoch's files are written, its EpochEnd not yet: a stop lands in the middle of the run.
MID_RUN = "event.EpochEnd:1:pause"
# The run folder exists and is locked; torch and the trainer are not loaded yet.
STARTING = "lock:1:pause"


def _act_while_paused(pid: int, *signals: signal.Signals) -> None:
    wait_for(lambda: stopped(pid), what="the process to reach its pause point")
    for sig in signals:
        os.kill(pid, sig)
    time.sleep(0.05)  # let them be queued before the process runs again
    os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize(
    ("where", "sig", "code"),
    [
        (MID_RUN, signal.SIGTERM, 130),
        (MID_RUN, signal.SIGINT, 130),
        (MID_RUN, signal.SIGHUP, 0),  # an SSH hang-up: training goes on
        (STARTING, signal.SIGTERM, 130),  # while torch loads: the run stops before training, and resumes
        (STARTING, signal.SIGHUP, 0),
    ],
    ids=["SIGTERM", "SIGINT", "SIGHUP", "SIGTERM-starting", "SIGHUP-starting"],
)
def test_a_signal_then_resume_ends_bit_equal(fork_server, preset_file, reference, tmp_path, where, sig, code):
    runs = tmp_path / "runs"
    pid = fork_server.start(train_args(preset_file, runs), tmp_path / "out.txt", OPTAI_FAULT=where)
    _act_while_paused(pid, sig)
    assert fork_server.wait(pid) == code, (tmp_path / "out.txt").read_text()
    run = the_run(runs)
    if code == 130:
        r = assert_reads_consistently(run)
        assert r.end_status() == "stopped" and run.status() == "stopped"
        assert r.log_epochs == (1 if where == MID_RUN else 0)
        assert fork_server.run(resume_args(run), tmp_path / "resumed.txt") == 0, (tmp_path / "resumed.txt").read_text()
    assert "Traceback" not in (tmp_path / "out.txt").read_text()
    assert_whole(run, reference)


def test_two_sigterms_stop_with_130_not_143(fork_server, preset_file, reference, tmp_path):
    """The second SIGTERM (and any later one) arrives while the run records its stop and while Python exits,
    which restores the default action of the signals it handled: the exit code stays 130."""
    runs = tmp_path / "runs"
    err = tmp_path / "err.txt"
    pid = fork_server.start(train_args(preset_file, runs), tmp_path / "out.txt", err=err, finalize=True, OPTAI_FAULT=MID_RUN)
    _act_while_paused(pid, signal.SIGTERM)
    wait_for(lambda: list_runs(runs) and b'"RunStopped"' in the_run(runs).events_path.read_bytes(), what="RunStopped")
    while True:  # SIGTERMs until it has exited (a zombie until the server reaps it)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            break
        if _zombie(pid):
            break
        time.sleep(0.002)
    assert fork_server.wait(pid) == 130, err.read_text()
    assert "Traceback" not in err.read_text()
    run = the_run(runs)
    r = assert_reads_consistently(run)
    assert r.end_status() == "stopped" and r.summary_file["status"] == "stopped"
    assert fork_server.run(resume_args(run), tmp_path / "resumed.txt") == 0
    assert_whole(run, reference)


def _zombie(pid: int) -> bool:
    return proc_state(pid) in (None, "Z")  # exited: a zombie until the server reaps it, or gone


@pytest.mark.parametrize("where", [STARTING, MID_RUN], ids=["while-starting", "mid-run"])
def test_a_closed_terminal_does_not_stop_the_run(fork_server, preset_file, reference, tmp_path, where):
    """``optai-tui train`` with progress bars on a terminal that goes away (an SSH drop: SIGHUP, then EIO on
    every write): the run completes, exit 0, with whole records."""
    runs = tmp_path / "runs"
    master, slave = pty.openpty()
    argv = ["train", "-p", str(preset_file), "--runs-dir", str(runs)]  # no --plain: rich progress bars
    pid = fork_server.start(argv, tmp_path / "out.txt", tty=os.ttyname(slave), finalize=True, OPTAI_FAULT=where)
    os.close(slave)
    _drain(master, until=lambda: stopped(pid))
    os.close(master)  # the terminal is gone
    time.sleep(0.05)
    os.kill(pid, signal.SIGCONT)
    assert fork_server.wait(pid) == 0
    assert_whole(the_run(runs), reference)


def _drain(fd: int, until) -> None:
    """Read what the process writes to its terminal (a full pty would block it) until ``until()``."""
    os.set_blocking(fd, False)
    deadline = time.monotonic() + 120
    while not until():
        assert time.monotonic() < deadline, "timed out"
        try:
            os.read(fd, 65536)
        except (BlockingIOError, OSError):
            time.sleep(0.01)


def test_a_closed_pipe_does_not_stop_the_run(fork_server, preset_file, reference, tmp_path):
    """``optai-tui train ... | head -1``: the reader goes away after the first line; the run completes, exit 0,
    without a word about the broken pipe."""
    runs = tmp_path / "runs"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    err = tmp_path / "err.txt"
    pid = fork_server.start(train_args(preset_file, runs), fifo, err=err, finalize=True, OPTAI_FAULT=MID_RUN)
    with open(fifo, "rb") as reader:
        first = reader.readline()
        wait_for(lambda: stopped(pid), what="the pause point")
    os.kill(pid, signal.SIGCONT)  # head -1 has gone with what it wanted
    assert fork_server.wait(pid) == 0, err.read_text()
    assert first.startswith(b"run ") and err.read_text() == ""
    assert_whole(the_run(runs), reference)


def test_a_terminal_closed_while_the_process_starts(preset_file, reference, tmp_path):
    """A real ``optai-tui train`` process whose terminal closes as soon as its run folder exists, while it still
    loads torch: it ignores the hang-up (installed before anything heavy loads) and completes."""
    runs = tmp_path / "runs"
    master, slave = pty.openpty()
    env = {k: v for k, v in {**os.environ, **child_env()}.items() if v is not None}

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(
        [sys.executable, "-m", "optai_tui", "train", "-p", str(preset_file), "--runs-dir", str(runs)],
        stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_terminal, env=env,
    )  # fmt: skip
    os.close(slave)
    _drain(master, until=lambda: any(runs.glob("*/config.yaml")))
    os.close(master)
    assert p.wait(timeout=300) == 0
    assert_whole(the_run(runs), reference)
