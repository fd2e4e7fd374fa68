"""Where things live on disk, each decided in one place (environment variables first)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RUNS_DIR = "runs"


def default_runs_dir() -> Path:
    """``$OPTAI_RUNS_DIR``, else ``./runs``."""
    return Path(os.environ.get("OPTAI_RUNS_DIR", DEFAULT_RUNS_DIR))


def default_data_root() -> Path:
    """Where torchvision datasets are downloaded: ``$OPTAI_DATA_ROOT``, else
    ``$XDG_CACHE_HOME/optai-tui/data``, else ``~/.cache/optai-tui/data``."""
    explicit = os.environ.get("OPTAI_DATA_ROOT")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "optai-tui" / "data"


def shipped_presets_dir() -> Path:
    """The presets packaged with optai-tui: the project's top-level ``presets/`` folder, reached through
    the package's ``shipped_presets`` link (a wheel holds the files themselves there)."""
    return Path(__file__).resolve().parent / "shipped_presets"


def user_presets_dir() -> Path:
    """``$OPTAI_PRESETS_DIR``, else ``$XDG_CONFIG_HOME/optai-tui/presets`` (``~/.config/...``)."""
    env = os.environ.get("OPTAI_PRESETS_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "optai-tui" / "presets"


def crash_log_path() -> Path:
    """Where the traceback of an internal error is kept: ``$XDG_CACHE_HOME/optai-tui/last-error.log``,
    else ``~/.cache/optai-tui/last-error.log``."""
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "optai-tui" / "last-error.log"
