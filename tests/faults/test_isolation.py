"""The test session writes only under its temp folders: the fork server, started once per session before any
test's own environment, and the children it forks have the session's HOME and XDG folders (a child also gets
its test's cache), never the real ~/.cache where a crash log would land."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from .conftest import child_env


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_fork_server_and_its_children_have_a_private_home_and_cache(fork_server, _session_home):
    real_home = pwd.getpwuid(os.getuid()).pw_dir
    env = _environ(fork_server.proc.pid)  # what it was started with: every forked run inherits it
    assert env["HOME"] == str(_session_home) != real_home
    for var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        assert Path(env[var]).is_relative_to(_session_home), var
    # each forked command is also given its test's own folders (tests/conftest.py's _isolate)
    mine = child_env()
    assert mine["XDG_CACHE_HOME"] == os.environ["XDG_CACHE_HOME"] and not mine["XDG_CACHE_HOME"].startswith(real_home + "/")
