"""The TUI's messages.

Thread workers post the first kind to the UI (high-rate ones coalesce with ``can_replace``). Screens post
the second kind, requests to the app: they bubble up from the screen to the app, whose ``on_...``
handlers do the work, so a screen never calls the app by name and works under any app that handles them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from ..config import RunConfig


# -- from thread workers --------------------------------------------------------------------------


class RunUpdated(Message):
    """The run model of ``run_id`` changed; the dashboard redraws at its own bounded rate."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdated) and message.run_id == self.run_id


class ProcessExited(Message):
    """A training process this app started has exited."""

    def __init__(self, run_id: str, returncode: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.returncode = returncode


class CostReady(Message):
    """The cost preview's numbers for a config (or the error that prevented them)."""

    def __init__(self, key: tuple, result: dict[str, Any]) -> None:
        super().__init__()
        self.key = key
        self.result = result


class DevicesReady(Message):
    def __init__(self, devices: list, why_no_gpu: str | None) -> None:
        super().__init__()
        self.devices = devices
        self.why_no_gpu = why_no_gpu


class MachineChecked(Message):
    """The machine worker's checks of a config (``runs.machine.check_key``): its problems and notes."""

    def __init__(self, key: tuple, problems: list, notes: list[str]) -> None:
        super().__init__()
        self.key = key
        self.problems = problems
        self.notes = notes


# -- requests from the screens to the app -----------------------------------------------------------


class RunRequest(Message):
    """A request about one run, named by its id (or a unique prefix, or its folder)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class OpenDashboard(RunRequest):
    """Show the dashboard of the run (reusing one already open)."""


class ResumeRun(RunRequest):
    """Continue a stopped or failed run from its last completed epoch."""


class TransferFrom(RunRequest):
    """Fill the setup form for a new run that transfers the run's weights (a linear probe on its backbone)."""


class StartRun(Message):
    """Start a run of ``cfg`` (a config the form validated)."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        self.cfg = cfg


class LoadConfig(Message):
    """Load ``cfg`` into the setup form and show the form."""

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        self.cfg = cfg


class LoadPreset(Message):
    """Load the preset ``name`` into the setup form and show the form."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


# -- sweeps ---------------------------------------------------------------------------------------


class SweepLoaded(Message):
    """A thread worker read a sweep's study: its results, or the error that prevented it."""

    def __init__(self, name: str, results: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.results = results
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SweepLoaded) and message.name == self.name


class OpenSweep(Message):
    """Show the live view of the sweep ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class StartSweep(Message):
    """Start the sweep of the spec file ``spec_path`` detached (``gpus``: one worker per GPU, e.g. "0,1")."""

    def __init__(self, spec_path: Path, name: str, gpus: str | None = None) -> None:
        super().__init__()
        self.spec_path = spec_path
        self.name = name
        self.gpus = gpus
