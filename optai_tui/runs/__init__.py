"""Run directories, summaries, comparison and export."""

from .store import RunDir, list_runs, resolve_run

__all__ = ["RunDir", "list_runs", "resolve_run"]
