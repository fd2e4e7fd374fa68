"""Small helpers shared by tests."""

from __future__ import annotations

from typing import Any

from optai_tui.runs.store import RunDir


def event_dicts(run: RunDir) -> list[dict[str, Any]]:
    """The run's events as the one parser rebuilds them, back as JSON-like dicts (for terse asserts)."""
    return [e.to_dict() for e in run.iter_events()]
