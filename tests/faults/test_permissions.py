"""The files' permissions (issue 9, item 13): run folders, checkpoints, summaries, logs, presets and
exports follow the user's umask (as it is when they are written, not when optai-tui was imported); the
crash log is private (0600, in a 0700 folder when optai-tui makes that folder).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, sys
from pathlib import Path
from optai_tui.cli import main
from optai_tui.config import validate_config
from optai_tui.presets import save_preset
import optai_tui.runs.launch  # everything a long-lived process (the TUI) has loaded

os.umask(0o027)  # after the imports: the umask that counts is the one in force when a file is written
out = Path(sys.argv[1])
assert main(["train", "-p", str(out / "tiny.yaml"), "--runs-dir", str(out / "runs"), "--plain"]) == 0
save_preset("mine", validate_config({"name": "mine"}), folder=out / "presets")
assert main(["--runs-dir", str(out / "runs"), "export", os.listdir(out / "runs")[0], "-o", str(out / "report.md")]) == 0
"""


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.lstat().st_mode) for p in sorted(folder.rglob("*"))}


def test_runs_presets_and_exports_follow_the_umask(tmp_path):
    config = {
        "name": "perm",
        "data": {"dataset": "shapes", "subset": 128},
        "model": {"arch": "vgg11", "width": 0.125},
        "train": {"epochs": 1, "batch_size": 128, "device": "cpu"},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    found = modes(tmp_path / "runs")
    run = next(k for k in found if "/" not in k)
    expected_files = {"config.yaml", "events.jsonl", "summary.json", "metrics.csv", "process.pid", "checkpoints/last.pt", "checkpoints/best.pt"}
    assert {k.split("/", 1)[1] for k in found if k != run} >= expected_files | {"checkpoints"}
    for name, mode in found.items():
        is_dir = (tmp_path / "runs" / name).is_dir()
        assert mode == (0o750 if is_dir else 0o640), f"{name}: {oct(mode)}"
    assert modes(tmp_path / "presets") == {"mine.yaml": 0o640}
    assert stat.S_IMODE((tmp_path / "presets").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o640


def test_the_crash_log_is_private_whatever_the_umask(tmp_path, monkeypatch, capsys):
    from optai_tui import cli
    from optai_tui.locations import crash_log_path

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME")
    log = crash_log_path()
    assert str(log).startswith(str(tmp_path / "home"))

    def bug(args):
        raise RuntimeError("a bug with a secret path /home/me/private")

    monkeypatch.setitem(cli.COMMANDS, "doctor", bug)
    old = os.umask(0)  # the most open umask: group and others may write
    try:
        assert cli.main(["doctor"]) == 1
        (log.parent / "last-error.log").chmod(0o644)  # an older log, readable by all: replaced by a private one
        assert cli.main(["doctor"]) == 1
    finally:
        os.umask(old)
    assert "internal error" in capsys.readouterr().err
    assert "secret path" in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700  # ~/.cache/optai-tui, made here
