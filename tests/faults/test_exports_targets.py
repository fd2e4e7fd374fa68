"""Where an export may write (issue 9, items 1 and 12): never inside a run folder of the runs directory
(symlinks and `..` resolved), never over a file that is not a previous export without --force, never
through another user's symlink in a shared sticky folder, never into a folder that does not exist.

The runs are copies of the session's three tiny trained runs: a broken guard would write into them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from optai_tui.cli import main
from optai_tui.errors import ConfigError
from optai_tui.runs.export import export_runs
from optai_tui.runs.store import list_runs

NOBODY = 65534  # another user: the owner of the hostile symlinks


@pytest.fixture(autouse=True)
def _wide_errors(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # error panels on one line: long paths are not folded


@pytest.fixture
def runs(trained_runs, tmp_path) -> Path:
    dst = tmp_path / "runs"
    shutil.copytree(trained_runs, dst, symlinks=True)
    return dst


@pytest.fixture
def ids(runs) -> list[str]:
    return [r.run_id for r in list_runs(runs)]


def digest(folder: Path) -> str:
    """Every file's path, bytes and mode under ``folder``: whether anything in it changed."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mode).encode())
    return h.hexdigest()


def cli(runs: Path, *args: str) -> int:
    return main(["--runs-dir", str(runs), "export", *args])


def err_text(capsys) -> str:
    return " ".join(capsys.readouterr().err.replace("│", " ").split())


# ---------------------------------------------------------------------------------------------
# Item 1: never inside any run folder of the runs directory


def test_export_into_another_runs_checkpoint_is_refused_even_forced(runs, ids, capsys):
    a, b = ids[0], ids[1]
    before = digest(runs)
    weights = runs / b / "checkpoints" / "last.pt"
    for force in ([], ["--force"]):
        assert cli(runs, a, "-f", "json", "-o", str(weights), *force) == 2
        err = err_text(capsys)
        assert f"inside run folder {b}" in err and "internal error" not in err
    assert digest(runs) == before  # run B's weights (and everything else) untouched


def test_every_road_into_a_run_folder_is_refused(runs, ids, tmp_path, capsys):
    a, b = ids[0], ids[1]
    out = tmp_path / "out"
    out.mkdir()
    (out / "link.json").symlink_to(runs / b / "summary.json")  # a symlink into B
    (out / "dirlink").symlink_to(runs / b)  # a symlink to B's folder, then a file in it
    (out / "dangling.csv").symlink_to(runs / b / "new.csv")  # a dangling link into B
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (runs / "linked-run").symlink_to(elsewhere)  # a run folder that is itself a symlink to another place
    shutil.copytree(runs / ids[2], elsewhere, dirs_exist_ok=True)
    before = digest(runs), digest(elsewhere)
    targets = [
        out / "link.json",
        out / "dirlink" / "metrics.csv",
        out / "dangling.csv",
        tmp_path / "out" / ".." / "runs" / b / "config.md",  # `..`
        elsewhere / "report.md",  # inside the linked run, reached by its real path
    ]
    for target in targets:
        assert cli(runs, a, "-o", str(target), "--force") == 2, target
        assert "inside run folder" in err_text(capsys)
    assert not (runs / b / "new.csv").exists() and not (elsewhere / "report.md").exists()
    # a report's plots folder that leads into a run is refused before anything is written
    (out / "rep_files").symlink_to(runs / b / "checkpoints")
    assert cli(runs, a, b, "-f", "md", "-o", str(out / "rep.md")) == 2
    assert "inside run folder" in err_text(capsys) and not (out / "rep.md").exists()
    assert (digest(runs), digest(elsewhere)) == before
    # outside the runs, in the runs directory itself (not in a run), an export is fine
    assert cli(runs, a, "-o", str(runs / "summary.csv")) == 0
    assert (runs / "summary.csv").read_text().startswith("run_id,")


def test_a_run_folder_of_another_runs_directory_is_refused(runs, ids, tmp_path, capsys):
    """Issue 13: the guard knew only the runs directory's runs and the runs exported; a run folder of another
    runs directory (another project, a copy, a colleague's) is a run folder too."""
    other = tmp_path / "other-runs"
    other.mkdir()
    shutil.copytree(runs / ids[2], other / "their-run")
    (other / "their-run" / "events.jsonl").unlink()  # config.yaml and summary.json are enough to know it
    before = digest(other)
    for target in (other / "their-run" / "report.md", other / "their-run" / "checkpoints" / "x.json"):
        for force in ([], ["--force"]):
            assert cli(runs, ids[0], "-o", str(target), *force) == 2, target
            err = err_text(capsys)
            assert "inside run folder their-run" in err and "internal error" not in err
    assert digest(other) == before
    assert cli(runs, ids[0], "-o", str(other / "beside-the-runs.md")) == 0  # its runs directory itself is fine
    project = tmp_path / "project"  # a folder of the user's with a config.yaml and a summary.json is not a run
    project.mkdir()
    (project / "config.yaml").write_text("lr: 0.1\n")
    (project / "summary.json").write_text("{}\n")
    assert cli(runs, ids[0], "-o", str(project / "report.md")) == 0


# ---------------------------------------------------------------------------------------------
# Item 1: a file that is not a previous export is replaced only with --force


def test_a_file_that_is_not_an_export_is_kept_without_force(runs, ids, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("# my thesis notes\n\nthree months of work\n")
    weights = tmp_path / "model.json"
    weights.write_bytes(b'{"weights": [1, 2, 3]}')
    for path in (notes, weights):
        kept = path.read_bytes()
        assert cli(runs, ids[0], "-o", str(path)) == 2
        err = err_text(capsys)
        assert f"'{path}' is an existing file that is not an optai-tui export" in err and "--force" in err
        assert path.read_bytes() == kept
    assert cli(runs, ids[0], "-o", str(notes), "--force") == 0  # said twice: replaced
    assert notes.read_text().startswith("# Run report: ")


@pytest.mark.parametrize("fmt", ["md", "html", "csv", "json"])
def test_a_previous_export_is_replaced_without_force(runs, ids, tmp_path, fmt):
    out = tmp_path / f"again.{fmt}"
    export_runs(ids, fmt, out, runs, per_epoch=fmt in ("csv", "json"))
    first = out.read_bytes()
    out.chmod(0o640)
    export_runs(ids[:1], fmt, out, runs)  # another export over it: no --force needed
    assert out.read_bytes() != first and stat.S_IMODE(out.stat().st_mode) == 0o640
    empty = tmp_path / f"empty.{fmt}"
    empty.touch()  # an empty file holds nothing to lose
    export_runs(ids[:1], fmt, empty, runs)
    assert empty.stat().st_size > 0


def test_a_plot_file_that_is_not_a_plot_is_kept(runs, ids, tmp_path):
    files = tmp_path / "rep_files"
    files.mkdir()
    mine = files / "tradeoff-params.svg"
    mine.write_text("my drawing, not a plot")
    with pytest.raises(ConfigError, match="not a plot"):
        export_runs(ids, "md", tmp_path / "rep.md", runs, image_format="svg")
    assert mine.read_text() == "my drawing, not a plot" and not (tmp_path / "rep.md").exists()
    assert sorted(p.name for p in files.iterdir()) == ["tradeoff-params.svg"]  # nothing half-written
    export_runs(ids, "md", tmp_path / "rep.md", runs, image_format="svg", force=True)
    assert mine.read_text().startswith("<svg")
    export_runs(ids, "md", tmp_path / "rep.md", runs, image_format="svg")  # its own plots: replaced freely


# ---------------------------------------------------------------------------------------------
# Item 12: shared sticky folders, missing folders


@pytest.fixture
def shared(tmp_path) -> Path:
    """A /tmp-like folder: world-writable and sticky (mode 1777), owned by this user."""
    if os.geteuid() != 0:
        pytest.skip("making a symlink owned by another user needs root (os.lchown)")
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o1777)
    return d


def hostile_link(link: Path, target: Path, uid: int = NOBODY) -> Path:
    link.symlink_to(target)
    os.lchown(link, uid, uid)
    assert link.lstat().st_uid == uid
    return link


def test_another_users_symlink_in_a_sticky_folder_is_not_followed(runs, ids, tmp_path, shared, capsys):
    home = tmp_path / "victim"
    home.mkdir()
    report = home / "report.json"
    export_runs(ids, "json", report, runs)  # the victim's own earlier export: replacing it needs no --force
    kept = report.read_bytes()
    link = hostile_link(shared / "report.json", report)
    for force in ([], ["--force"]):
        assert cli(runs, ids[0], "-o", str(link), *force) == 2
        err = err_text(capsys)
        assert "symlink owned by another user" in err and f"uid {NOBODY}" in err and "internal error" not in err
    assert report.read_bytes() == kept and link.is_symlink()
    # a dangling one: the file it names is not created
    dangling = hostile_link(shared / "new.csv", home / "new.csv")
    assert cli(runs, ids[0], "-o", str(dangling)) == 2
    assert not (home / "new.csv").exists()
    # a link to a folder, met half way
    via = hostile_link(shared / "dir", home)
    assert cli(runs, ids[0], "-o", str(via / "x.md")) == 2
    assert not (home / "x.md").exists()
    # one's own link in the same folder is followed, as the kernel would
    mine = shared / "mine.json"
    mine.symlink_to(report)
    assert cli(runs, ids[0], "-o", str(mine)) == 0
    assert json.loads(report.read_text())["runs"][0]["run_id"] == ids[0] and mine.is_symlink()


def test_a_link_owned_by_the_folders_owner_is_followed(runs, ids, tmp_path, shared):
    os.chown(shared, NOBODY, NOBODY)  # the kernel's rule: the folder's owner may plant links in it
    target = tmp_path / "t.json"
    link = hostile_link(shared / "ok.json", target)
    export_runs(ids[:1], "json", link, runs)
    assert json.loads(target.read_text())["schema"] == "optai-tui/runs"


def test_a_missing_folder_is_an_error_not_created(runs, ids, tmp_path, capsys):
    root = Path(f"/nonexistent-optai-{os.getpid()}")  # at the root, as a user types it
    assert not root.exists()
    for fmt in ("md", "html"):
        assert cli(runs, *ids, "-o", str(root / f"x.{fmt}")) == 2
        assert f"'{root}' does not exist" in err_text(capsys)
        assert not root.exists()
    for fmt in ("md", "json"):
        target = tmp_path / "no" / "such" / f"x.{fmt}"
        assert cli(runs, *ids, "-f", fmt, "-o", str(target)) == 2
        err = err_text(capsys)
        assert f"cannot write the export '{target}'" in err and f"'{tmp_path / 'no' / 'such'}' does not exist" in err
    assert not (tmp_path / "no").exists()


# ---------------------------------------------------------------------------------------------
# The TUI's export dialog says the same


async def _wait(pilot, predicate, what: str, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await pilot.pause(0.1)


async def test_the_export_dialog_shows_the_same_refusals(runs, ids, tmp_path, monkeypatch):
    from textual.app import App
    from textual.widgets import Checkbox, Input, Static

    from optai_tui.tui.screens.export_dialog import ExportDialog
    from optai_tui.tui.screens.runs import RunsScreen

    monkeypatch.chdir(tmp_path)

    class RunsApp(App):
        def on_mount(self) -> None:
            self.push_screen(RunsScreen(runs, refresh_seconds=0))

    b = ids[1]
    before = digest(runs)
    notes = tmp_path / "notes.md"
    notes.write_text("mine")
    app = RunsApp()
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        error = dialog.query_one("#export-error", Static)

        async def attempt(path: Path | str) -> str:
            dialog.query_one("#path", Input).value = str(path)
            await pilot.press("ctrl+s")
            await _wait(pilot, lambda: not dialog.exporting or app.screen is not dialog, "export attempt")
            await pilot.pause()
            return str(error.render()) if app.screen is dialog else ""

        assert f"inside run folder {b}" in await attempt(runs / b / "checkpoints" / "last.md")
        assert "does not exist" in await attempt(tmp_path / "nope" / "x.md")
        assert not (tmp_path / "nope").exists()
        assert "not an optai-tui export" in await attempt(notes)
        assert notes.read_text() == "mine" and app.screen is dialog
        dialog.query_one("#force", Checkbox).value = True  # "replace a file that is not an export"
        assert await attempt(notes) == ""
        await _wait(pilot, lambda: isinstance(app.screen, RunsScreen), "dialog closed")
        assert notes.read_text().startswith("# Run report: ")
        # the folder the dialog suggests (./exports/) is made for it
        await pilot.press("e")
        dialog = app.screen
        suggested = Path(dialog.query_one("#path", Input).value)
        assert suggested.parent == tmp_path / "exports" and not suggested.parent.exists()
        await pilot.press("ctrl+s")
        await _wait(pilot, lambda: isinstance(app.screen, RunsScreen), "dialog closed")
        assert suggested.read_text().startswith("# Run report")
    assert digest(runs) == before
