"""User-facing error hierarchy.

Every problem a user can cause or fix (bad config, missing dataset, absent device, bad checkpoint)
is an ``OptaiError``. The CLI prints it as a short panel and exits with ``exit_code``; the TUI shows
it next to the field or in a modal. Anything else reaching the user is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One broken rule: the field it is about (dotted, ``""`` for the whole config), the message (which
    does not repeat the field), and the other fields the rule involves (a form shows a note at each).

    It unpacks as the ``(field, message)`` pair: ``for field, message in problems``.
    """

    field: str
    message: str
    related: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[str]:
        return iter((self.field, self.message))

    @classmethod
    def of(cls, item: Problem | tuple[str, str]) -> Problem:
        """A Problem from a Problem or a ``(field, message)`` pair."""
        return item if isinstance(item, Problem) else cls(*item)


class OptaiError(Exception):
    """Base class for problems the user can understand and fix."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def headline(self) -> str:
        """The problem in one line without the hint: ``field: message`` (the message alone when there is
        no field or the message already starts with it)."""
        if self.field and not self.message.startswith(self.field):
            return f"{self.field}: {self.message}"
        return self.message

    def __str__(self) -> str:
        return f"{self.headline()} ({self.hint})" if self.hint else self.headline()


class ConfigError(OptaiError):
    """Invalid configuration, preset or command-line value.

    ``problems`` lists every problem found (``Problem``s or ``(field, message)`` pairs); the message and
    field are the first one's. Without ``problems`` the error is its own single problem.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        field: str | None = None,
        problems: Iterable[Problem | tuple[str, str]] = (),
    ):
        super().__init__(message, hint=hint, field=field)
        self.problems: list[Problem] = [Problem.of(p) for p in problems] or [Problem(field or "", message)]

    @classmethod
    def from_problems(cls, problems: Iterable[Problem | tuple[str, str]], *, where: str = "") -> ConfigError:
        """One error for several problems: the first one's field and message, ``(and N more)``, then
        ``where`` (e.g. `` (in presets/x.yaml)``), carrying all of them."""
        found = [Problem.of(p) for p in problems]
        if not found:
            raise ValueError("ConfigError.from_problems needs at least one problem")
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return cls(f"{first.message}{more}{where}", field=first.field or None, problems=found)


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


class StorageError(OptaiError, OSError):
    """A file or folder that could not be written: a full disk (ENOSPC), a file size limit (``ulimit -f``:
    EFBIG), a read-only file system, missing permissions. It names the path and the system's reason; it
    is an ``OSError`` too (with the original ``errno``), so code that handles OSError still does.

    The CLI exits with 1: the run (or the command) failed because of the machine, not of its input.
    """

    exit_code = 1
    HINTS = {
        "ENOSPC": "the disk is full: free some space; a stopped or failed run resumes from its last checkpoint",
        "EDQUOT": "your disk quota is used up: free some space; a stopped or failed run resumes from its last checkpoint",
        "EFBIG": "a file size limit is in force (ulimit -f): raise it; a stopped or failed run resumes from its last checkpoint",
        "EROFS": "the file system is read-only: use a writable folder (e.g. --runs-dir)",
        "EACCES": "you may not write there: check the folder's permissions, or use another folder",
        "EPERM": "you may not write there: check the folder's permissions, or use another folder",
    }

    def __init__(self, path: object, error: OSError, *, action: str = "write"):
        import errno as _errno

        reason = error.strerror or str(error)
        OSError.__init__(self, error.errno, reason, str(path))
        code = _errno.errorcode.get(error.errno or 0, "")
        self.message = f"cannot {action} {str(path)!r}: {reason}"
        self.hint = self.HINTS.get(code)
        self.field = None
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return OptaiError.__str__(self)


class TrainingError(OptaiError):
    """A run that failed while training: ``kind`` says how (``nan`` loss, out of memory ``oom``, or
    another ``error``), as the RunFailed event records it."""

    exit_code = 1
    KINDS = ("nan", "oom", "error")

    def __init__(self, message: str, *, kind: str = "error", hint: str | None = None, field: str | None = None):
        if kind not in self.KINDS:
            raise ValueError(f"TrainingError kind must be one of {', '.join(self.KINDS)}, got {kind!r}")
        super().__init__(message, hint=hint, field=field)
        self.kind = kind


def close_matches(name: str, choices: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
