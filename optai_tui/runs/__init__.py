"""Run directories, summaries, comparison and export."""

from .store import RunDir, atomic_write_json, atomic_write_text, default_runs_dir, list_runs, resolve_run

__all__ = ["RunDir", "atomic_write_json", "atomic_write_text", "default_runs_dir", "list_runs", "resolve_run"]
