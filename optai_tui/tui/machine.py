"""The TUI's link to its machine worker (``runs/machine.py``): the process that imports torch, so that the
TUI's own never does for the setup screen (importing torch holds the interpreter's lock for a second or
more: the screen would not answer a key meanwhile).

:class:`MachineClient` starts ``python -m optai_tui.runs.machine`` when first asked, restarts it when it dies
(a request under way is asked again once), and kills it on :meth:`close` (the app's exit); the worker also
exits with the thread that started it (``PR_SET_PDEATHSIG``) and when its stdin closes, so it is never left
behind. :meth:`call` blocks: screens call it from their thread workers.

``OPTAI_MACHINE`` (test and benchmark hooks): ``thread`` answers on the caller's thread in this process, as
the TUI did before the worker (torch is imported here); ``shared`` gives every app of this process one worker
that outlives them (the test suite: one torch import per test process instead of one per app).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..runs.machine import FAKE_DEVICES_ENV, PARENT_ENV

MODE_ENV = "OPTAI_MACHINE"
QUICK_DEATHS = 3  # the worker died this many times in a row within QUICK_S of its start: give up
QUICK_S = 20.0


class MachineError(Exception):
    """The worker cannot answer (it keeps dying, or the app is closing)."""


class _WorkerDied(Exception):
    pass


def _never() -> bool:
    return False


class MachineClient:
    """One worker process, started on first use, restarted when it dies, killed by :meth:`close`."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-m", "optai_tui.runs.machine"]
        self._cond = threading.Condition()
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, Future] = {}
        self._next_id = 0
        self._thread: threading.Thread | None = None
        self.closed = False
        self.failure: str | None = None  # why it gave up restarting
        self.starts = 0  # processes started so far

    @property
    def pid(self) -> int | None:
        """The worker's process id now (None before it started or between a death and its restart)."""
        with self._cond:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start the worker (on a thread of its own, which stays to read its answers and restart it)."""
        with self._cond:
            if self._thread is None and not self.closed:
                self._thread = threading.Thread(target=self._supervise, name="optai-machine", daemon=True)
                self._thread.start()

    def call(self, op: str, *, cancelled: Callable[[], bool] = _never, **payload: Any) -> dict[str, Any] | None:
        """The worker's answer to ``op`` (None when ``cancelled()`` turns true first). A worker that dies under
        the request is restarted and asked again once; MachineError when it cannot answer."""
        fake = os.environ.get(FAKE_DEVICES_ENV)
        request = {"op": op, **payload, **({"fake": fake} if fake else {})}
        why = ""
        for _ in range(2):
            try:
                fut = self._send(request, cancelled)
                if fut is None:
                    return None
                while True:
                    try:
                        return fut.result(timeout=0.2)
                    except FutureTimeout:
                        if cancelled():
                            return None
            except _WorkerDied as e:
                why = str(e)
        raise MachineError(why)

    def close(self) -> None:
        """Kill the worker and stop restarting it; requests under way fail with MachineError."""
        with self._cond:
            self.closed = True
            proc, pending, self._pending = self._proc, self._pending, {}
            self._cond.notify_all()
        for fut in pending.values():
            fut.set_exception(MachineError("the app is closing"))
        if proc is not None:
            _stop(proc)

    # -- inside --------------------------------------------------------------------------------------
    def _send(self, request: dict[str, Any], cancelled: Callable[[], bool]) -> Future | None:
        self.start()
        with self._cond:
            while not self.closed and self.failure is None and (self._proc is None or self._proc.poll() is not None):
                if cancelled():
                    return None
                self._cond.wait(0.2)
            if self.closed or self.failure is not None:
                raise MachineError(self.failure or "the app is closing")
            self._next_id += 1
            rid, fut = self._next_id, Future()
            self._pending[rid] = fut
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write((json.dumps({**request, "id": rid}) + "\n").encode())
                self._proc.stdin.flush()
            except (OSError, ValueError) as e:  # it died: the supervisor restarts it
                self._pending.pop(rid, None)
                raise _WorkerDied(f"the worker process stopped ({e})") from None
        return fut

    def _supervise(self) -> None:
        quick = 0
        err = tempfile.TemporaryFile()  # its stderr: the last lines say why it died
        try:
            while True:
                with self._cond:
                    if self.closed:
                        return
                started = time.monotonic()
                err.seek(0)
                err.truncate()
                try:
                    proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                            env={**os.environ, PARENT_ENV: str(os.getpid())})
                except OSError as e:
                    self._give_up(f"cannot start {self.argv[0]}: {e.strerror or e}")
                    return
                with self._cond:
                    if self.closed:
                        _stop(proc)
                        return
                    self._proc = proc
                    self.starts += 1
                    self._cond.notify_all()
                assert proc.stdout is not None
                for line in proc.stdout:
                    self._answer(line)
                code = proc.wait()
                with self._cond:
                    self._proc = None
                    pending, self._pending = self._pending, {}
                    closed = self.closed
                why = f"the worker process exited (code {code}){_last_line(err)}"
                for fut in pending.values():
                    fut.set_exception(_WorkerDied(why))
                if closed:
                    return
                quick = quick + 1 if time.monotonic() - started < QUICK_S else 1
                if quick >= QUICK_DEATHS:
                    self._give_up(why)
                    return
        finally:
            err.close()

    def _answer(self, line: bytes) -> None:
        try:
            reply = json.loads(line)
        except ValueError:
            return
        with self._cond:
            fut = self._pending.pop(reply.pop("id", None), None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def _give_up(self, why: str) -> None:
        with self._cond:
            self.failure = why
            pending, self._pending = self._pending, {}
            self._cond.notify_all()
        for fut in pending.values():
            fut.set_exception(MachineError(why))


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _last_line(err) -> str:
    try:
        err.seek(0)
        lines = [ln for ln in err.read()[-4000:].decode("utf-8", "replace").splitlines() if ln.strip()]
    except (OSError, ValueError):
        return ""
    return f": {lines[-1].strip()}" if lines else ""


class LocalMachine:
    """The same answers on the caller's thread, in this process (``OPTAI_MACHINE=thread``: the path before the
    worker, for the benchmark's baseline)."""

    closed = False
    failure = None
    pid = None

    def start(self) -> None:
        pass

    def call(self, op: str, *, cancelled: Callable[[], bool] = _never, **payload: Any) -> dict[str, Any] | None:
        from ..runs.machine import handle

        return handle(json.loads(json.dumps({"op": op, **payload})), fakes=False)

    def close(self) -> None:
        pass


_SHARED: MachineClient | None = None


def client_for_app() -> tuple[MachineClient | LocalMachine, bool]:
    """The app's machine client and whether the app owns it (closes it when it exits)."""
    global _SHARED
    mode = os.environ.get(MODE_ENV, "").strip().lower()
    if mode == "thread":
        return LocalMachine(), True
    if mode == "shared":
        if _SHARED is None or _SHARED.closed or _SHARED.failure is not None:
            _SHARED = MachineClient()
            atexit.register(_SHARED.close)
        return _SHARED, False
    return MachineClient(), True
