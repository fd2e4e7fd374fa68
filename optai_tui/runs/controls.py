"""Control requests (stop, stop after this epoch, lr / 10) from ``control.jsonl`` to a trainer.

The dashboard appends requests to the run's ``control.jsonl``; the training process polls them through
:class:`FileControls`, the ``controls`` object its trainer is given.
"""

from __future__ import annotations

from ..training.events import ControlAction
from .store import RunDir


class FileControls:
    """Reads new requests from a run's control file. ``from_start``: a new run also takes the requests
    sent before its process was up (the TUI may ask to stop a run at once); a resumed run ignores the
    ones an earlier process of the run left."""

    def __init__(self, run: RunDir, *, from_start: bool):
        self.run = run
        self.offset = 0 if from_start else run.control_end()

    def poll(self) -> list[ControlAction]:
        actions, self.offset = self.run.read_controls(self.offset)
        return actions
