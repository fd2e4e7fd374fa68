"""How a training process answers signals (``optai-tui train``, in a terminal or detached).

Installed first thing, before torch loads (it imports nothing heavy), so that a signal that arrives while the
process starts is handled like any other.
"""

from __future__ import annotations

import signal
from typing import Any


class StopSignals:
    """How a training process answers signals, installed first thing (before torch loads):

    - SIGINT / SIGTERM: stop after the current batch (the weights are saved, the run is marked stopped,
      exit 130); a second one stops at once (still exit 130). One that arrives while the process is still
      starting is kept, and the run stops as soon as it exists, before training.
    - SIGHUP (an SSH hang-up, a closed terminal) is ignored: training goes on.
    - Once the run has ended (:meth:`done`), SIGINT and SIGTERM are ignored: the process is only exiting,
      and Python restores their default action (death, 143) while it shuts down.
    """

    def __init__(self) -> None:
        self.session: Any = None  # a launch.RunSession
        self.received = 0
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.session is not None and self.session.trainer.finishing:
            return  # the run is recording its end: let it (the exit code is already 130 or the run's own)
        self.received += 1
        if self.received > 1 or (self.session is not None and self.session.trainer.stopping):
            raise KeyboardInterrupt  # the trainer records the stop (or, while starting, main exits 130)
        if self.session is not None:
            self.session.request_stop()

    def attach(self, session: Any) -> None:
        """The run exists: stop requests go to it (one received while starting is passed on now)."""
        self.session = session
        if self.received:
            session.request_stop()

    def done(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
