"""A fork server for the fault-injection suite: one process that has imported torch and optai-tui (and drawn the
built-in dataset) once, then forks a child for each ``optai-tui`` command a test asks for.

A forked child runs the real command line (``optai_tui.cli.main``) with its own environment, working folder and
output file, so a test can kill it at a write point and resume it many times in the time that one cold start of
Python and torch takes on a busy 2-core machine. Every child is forked from the same warmed-up image, so a
resumed run and an uninterrupted one compute with the same code and threads: their final weights are compared
bit for bit.

Protocol (JSON lines on stdin, answers on stdout):
    {"op": "start", "argv": [...], "env": {NAME: value or null}, "cwd": DIR, "out": FILE, "err": FILE or null,
     "tty": PATH or null, "gate": FILE or null, "finalize": bool}
        -> {"pid": PID}; stdout (and stderr unless "err") go to FILE (a FIFO works: a pipe); with "tty", the
        child runs in a session of its own with that terminal as its controlling terminal and stdio; it waits
        until the file ``gate`` exists (if given) before it starts; with "finalize", it ends as the console
        script does, through Python's exit (otherwise os._exit, once the command has returned)
    {"op": "wait", "pid": PID} -> {"pid": PID, "code": EXIT CODE, or -SIGNAL}
    {"op": "quit"}
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import termios
import time


def _warm() -> None:
    import torch

    torch.set_num_threads(1)
    import optai_tui.cli  # noqa: F401
    import optai_tui.runs.launch  # noqa: F401
    import optai_tui.training.engine  # noqa: F401
    import optai_tui.training.profile  # noqa: F401
    from optai_tui.data import load_arrays
    from optai_tui.models import list_models

    list_models()  # the registry, torchvision's models included
    load_arrays("shapes", subset=64)  # the built-in images are drawn once and cached


def _child(cmd: dict) -> None:
    """In the forked child: become ``optai-tui ARGV`` (as its console script does, Python's exit included)."""
    try:
        for k, v in cmd.get("env", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.chdir(cmd["cwd"])
        if cmd.get("tty"):  # the terminal of a new session, as a login shell's job has
            os.setsid()
            term = os.open(cmd["tty"], os.O_RDWR)
            fcntl.ioctl(term, termios.TIOCSCTTY, 0)
            stdin = stdout = stderr = term
        else:
            stdin = os.open(os.devnull, os.O_RDONLY)
            stdout = os.open(cmd["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)  # a file or a FIFO
            stderr = os.open(cmd["err"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if cmd.get("err") else stdout
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        gate = cmd.get("gate")
        while gate and not os.path.exists(gate):
            time.sleep(0.001)
        sys.argv = ["optai-tui", *cmd["argv"]]
        from optai_tui import cli
    except BaseException:  # noqa: BLE001 - the child must never return into the server's loop
        import traceback

        traceback.print_exc()
        os._exit(99)
    if cmd.get("finalize"):
        cli.entry()  # SystemExit: out of the server's loop, then Python's own exit (flushes, signal handlers, atexit)
    code = cli.main(cmd["argv"])  # the same, without Python's exit (seconds of torch teardown on a busy machine)
    cli._flush_or_drop_output()
    os._exit(code)


def main() -> None:
    _warm()
    reply = sys.stdout
    print(json.dumps({"ready": os.getpid()}), file=reply, flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            return
        if cmd["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(cmd)
            print(json.dumps({"pid": pid}), file=reply, flush=True)
        elif cmd["op"] == "wait":
            _, status = os.waitpid(cmd["pid"], 0)
            code = os.waitstatus_to_exitcode(status)
            print(json.dumps({"pid": cmd["pid"], "code": code}), file=reply, flush=True)


if __name__ == "__main__":
    main()
