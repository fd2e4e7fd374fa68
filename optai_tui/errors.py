"""User-facing error hierarchy.

Every problem a user can cause or fix (bad config, missing dataset, absent device, bad checkpoint)
is an ``OptaiError``. The CLI prints it as a short panel and exits with ``exit_code``; the TUI shows
it next to the field or in a modal. Anything else reaching the user is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OptaiError(Exception):
    """Base class for problems the user can understand and fix."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(OptaiError):
    """Invalid configuration, preset or command-line value."""


class UnknownNameError(ConfigError):
    """A name (architecture, dataset, preset, run) that does not exist; suggests close matches."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], *, field: str | None = None):
        choices = sorted(choices)
        self.name = name
        self.kind = kind
        self.choices = choices
        self.suggestions = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        if self.suggestions:
            hint = "did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        else:
            shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
            hint = f"choose one of: {shown}"
        super().__init__(f"unknown {kind} {name!r}", hint=hint, field=field)


class DataError(OptaiError):
    """A dataset that cannot be found, downloaded or read."""


class DeviceError(OptaiError):
    """A configured device that is not present."""


class CheckpointError(OptaiError):
    """A checkpoint or weights file that cannot be loaded into the model."""


class TrainingError(OptaiError):
    """A run that failed while training (NaN loss, out of memory)."""

    exit_code = 1

    def __init__(self, message: str, *, kind: str = "error", hint: str | None = None, field: str | None = None):
        super().__init__(message, hint=hint, field=field)
        self.kind = kind  # nan | oom | error: what RunFailed records


def close_matches(name: str, choices: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
