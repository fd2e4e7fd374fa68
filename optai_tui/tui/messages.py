"""Messages that thread workers post to the UI. High-rate ones coalesce (``can_replace``)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


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
