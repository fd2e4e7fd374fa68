"""The runs screen and the compare screen, driven headless with Pilot on tiny real runs.

A minimal app pushes RunsScreen and records the requests the screen posts to the app (OpenDashboard,
LoadConfig, ResumeRun, TransferFrom), so these tests do not depend on the main app.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from textual.app import App
from textual.binding import Binding
from textual.widgets import Checkbox, DataTable, Input, Select, Static, TabbedContent
from tui_helpers import screen_text, wait_for
from tui_synthetic import make_run

from optai_tui.runs.compare import load_record
from optai_tui.runs.lock import try_acquire
from optai_tui.runs.store import RunDir, list_runs
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.messages import LoadConfig, OpenDashboard, ResumeRun, TransferFrom
from optai_tui.tui.screens.attach import AttachScreen
from optai_tui.tui.screens.compare import CompareScreen
from optai_tui.tui.screens.help import HelpScreen
from optai_tui.tui.screens.confirm import ConfirmScreen
from optai_tui.tui.screens.export_dialog import ExportDialog
from optai_tui.tui.screens.runs import RunsScreen
from optai_tui.tui.screens.tags_dialog import TagsNoteDialog
from optai_tui.tui.widgets.runs_curves import RunsCurvesPlot
from optai_tui.tui.widgets.tradeoff import TradeoffPlot
from tests.conftest import FIXTURE_RUNS


@pytest.fixture
def trained(trained_runs) -> Path:
    return trained_runs


@pytest.fixture
def runs(trained, tmp_path) -> Path:
    """A private copy: these tests edit tags, delete runs and fake running ones."""
    dst = tmp_path / "runs"
    shutil.copytree(trained, dst)
    return dst


class RunsApp(App):
    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.calls: list[tuple] = []

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.runs_dir, refresh_seconds=0))

    def on_open_dashboard(self, message: OpenDashboard) -> None:
        self.calls.append(("open_dashboard", message.run_id))

    def on_load_config(self, message: LoadConfig) -> None:
        self.calls.append(("load_config_into_form", message.cfg))

    def on_resume_run(self, message: ResumeRun) -> None:
        self.calls.append(("resume_run", message.run_id))

    def on_transfer_from(self, message: TransferFrom) -> None:
        self.calls.append(("start_transfer_from", message.run_id))


def names(screen: RunsScreen) -> list[str]:
    table = screen.query_one("#runs-table", DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


def column(screen: RunsScreen, key: str) -> list[str]:
    table = screen.query_one("#runs-table", DataTable)
    idx = [str(c.key.value) for c in table.ordered_columns].index(key)
    return [str(table.get_row_at(i)[idx]) for i in range(table.row_count)]


async def wait_for_compare(pilot, app) -> None:
    """c loads the runs' histories in a worker, then pushes the compare screen."""
    await app.screen.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def go_to(pilot, screen: RunsScreen, name: str) -> None:
    table = screen.query_one("#runs-table", DataTable)
    table.move_cursor(row=names(screen).index(name))
    await pilot.pause()


# ---------------------------------------------------------------------------------------------


async def test_table_shows_every_run_newest_first(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert names(screen) == ["tiny-preact", "wide-r18", "tiny-r18"]  # newest first
        table = screen.query_one("#runs-table", DataTable)
        labels = [str(c.label) for c in table.ordered_columns]
        for want in (
            "Name",
            "Status",
            "Arch",
            "Params",
            "MACs",
            "Best",
            "Final",
            "Ep",
            "Time",
            "s/ep",
            "img/s",
            "Data",
            "Transfer",
            "Device",
            "Tags",
        ):
            assert any(label.startswith(want) for label in labels), want
        assert any(label.startswith("Started") and "▼" in label for label in labels)
        summaries = {RunDir(p).read_summary()["name"]: RunDir(p).read_summary() for p in runs.iterdir()}
        assert column(screen, "status") == ["completed"] * 3
        assert column(screen, "arch") == ["preact_resnet18", "resnet18", "resnet18"]
        assert column(screen, "epochs") == ["2/2"] * 3
        for name, best in zip(names(screen), column(screen, "best")):
            assert best == f"{100 * summaries[name]['best_val_acc']:.1f}%"
        assert column(screen, "dataset") == ["shapes"] * 3 and column(screen, "device") == ["cpu"] * 3
        footer_text = " ".join(b.binding.description for b in screen.active_bindings.values() if b.binding.show)
        for action in ("Select", "Compare", "Load", "Resume", "Backbone", "Delete", "Export"):
            assert action in footer_text
        # open (enter) and tags are named on the status line, so that the footer keeps f1 Help at 80 columns
        assert "enter open" in screen_text(app) and "t tags" in screen_text(app)


async def test_sort_by_keys_and_header(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        params = {r.read_summary()["name"]: r.read_summary()["params"] for r in list_runs(runs)}
        while screen.sort_key != "params":
            await pilot.press("s")
        assert names(screen) == sorted(params, key=params.get)
        await pilot.press("S")  # reverse
        assert names(screen) == sorted(params, key=params.get, reverse=True)
        while screen.sort_key != "best":
            await pilot.press("s")
        best = {r.read_summary()["name"]: r.read_summary()["best_val_acc"] for r in list_runs(runs)}
        assert [best[n] for n in names(screen)] == sorted(best.values(), reverse=True)  # best first
        # a click on a header sorts by that column; a second click reverses
        table = screen.query_one("#runs-table", DataTable)
        from textual.widgets._data_table import ColumnKey

        table.post_message(DataTable.HeaderSelected(table, ColumnKey("name"), 1, Text_label()))
        await pilot.pause()
        assert names(screen) == sorted(params)
        table.post_message(DataTable.HeaderSelected(table, ColumnKey("name"), 1, Text_label()))
        await pilot.pause()
        assert names(screen) == sorted(params, reverse=True)


def Text_label():
    from rich.text import Text

    return Text("Name")


async def test_filter(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"preact")
        assert names(screen) == ["tiny-preact"]
        await pilot.press("enter")  # back to the table, filter kept
        assert isinstance(app.focused, DataTable) and names(screen) == ["tiny-preact"]
        await pilot.press("escape")  # clears the filter
        assert len(names(screen)) == 3
        await pilot.press("slash", *"r18 completed")
        assert sorted(names(screen)) == ["tiny-r18", "wide-r18"]
        await pilot.press("escape", "escape")
        await pilot.press("slash", *"nothing-like-this")
        assert names(screen) == []
        assert "No run matches" in str(screen.query_one("#runs-detail").render())


async def test_edit_tags_and_note_persists_to_meta_json(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        await go_to(pilot, screen, "wide-r18")
        await pilot.press("t")
        assert isinstance(app.screen, TagsNoteDialog)
        await pilot.press(*"baseline, lab-2")
        app.screen.query_one("#note", Input).value = "twice the channels"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        run = next(r for r in list_runs(runs) if r.read_summary()["name"] == "wide-r18")
        meta = json.loads(run.meta_path.read_text())
        assert meta == {"tags": ["baseline", "lab-2"], "note": "twice the channels"}
        assert column(screen, "tags")[names(screen).index("wide-r18")] == "baseline, lab-2"
        # the tag is searchable
        await pilot.press("slash", *"lab-2")
        assert names(screen) == ["wide-r18"]
        # escape in the dialog changes nothing
        await pilot.press("enter", "t", "x", "escape")
        await pilot.pause()
        assert json.loads(run.meta_path.read_text())["tags"] == ["baseline", "lab-2"]


async def test_delete_with_confirmation_and_refusal_while_running(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        victim = next(r for r in list_runs(runs) if r.read_summary()["name"] == "tiny-r18")
        ckpt = victim.path / "checkpoints"
        (ckpt / "best.pt").unlink()
        os.link(ckpt / "last.pt", ckpt / "best.pt")  # as training leaves them (the copy above made two files)
        await go_to(pilot, screen, "tiny-r18")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        # its size on disk in MiB as everywhere else (was '2.9MB': decimal, with best.pt counted twice)
        files = {f.stat().st_ino: f.stat().st_size for f in victim.path.rglob("*") if f.is_file()}
        assert f"{sum(files.values()) / 2**20:.3g} MiB on disk" in app.screen.question, app.screen.question
        await pilot.press("n")  # cancelled
        await pilot.pause()
        assert victim.path.is_dir() and len(names(screen)) == 3
        await pilot.press("d", "enter")  # the dialog starts on Cancel: enter does not delete
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen) and victim.path.is_dir()
        await pilot.press("d", "y")
        await pilot.pause()
        assert not victim.path.exists()
        assert names(screen) == ["tiny-preact", "wide-r18"]
        # a running run (this process plays its training process) is not deleted
        live = next(r for r in list_runs(runs) if r.read_summary()["name"] == "wide-r18")
        live.update_summary(status="running", pid=os.getpid(), host=socket.gethostname())
        try_acquire(live.path)  # ...and holds its lock, which is what says it trains
        screen.action_refresh()
        await go_to(pilot, screen, "wide-r18")
        assert column(screen, "status")[names(screen).index("wide-r18")] == "running"
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen) and live.path.is_dir()


async def test_actions_call_the_app(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        ids = {r.read_summary()["name"]: r.run_id for r in list_runs(runs)}
        await go_to(pilot, screen, "wide-r18")
        await pilot.press("o")
        await pilot.press("enter")  # enter on a row opens it too
        await pilot.press("l", "b")
        await pilot.press("r")  # completed: nothing to resume
        await pilot.pause()  # the requests bubble to the app, which handles them in its own turn
        assert [c[0] for c in app.calls] == ["open_dashboard", "open_dashboard", "load_config_into_form", "start_transfer_from"]
        assert app.calls[0][1] == app.calls[1][1] == app.calls[3][1] == ids["wide-r18"]
        cfg = app.calls[2][1]
        assert cfg.model.arch == "resnet18" and cfg.model.width == 0.1875 and cfg.name == "wide-r18"
        # a stopped run with a checkpoint can be resumed
        RunDir(runs / ids["tiny-r18"]).update_summary(status="stopped")
        screen.action_refresh()
        await go_to(pilot, screen, "tiny-r18")
        await pilot.press("r")
        await pilot.pause()
        assert app.calls[-1] == ("resume_run", ids["tiny-r18"])


async def test_compare_opens_with_curves_tradeoffs_and_configs(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("a")  # select all shown
        assert app.screen.selected == {r.run_id for r in list_runs(runs)}
        await pilot.press("c")
        await wait_for_compare(pilot, app)
        cmp = app.screen
        assert isinstance(cmp, CompareScreen) and len(cmp.records) == 3
        loss = cmp.query_one("#loss-plot", RunsCurvesPlot)
        acc = cmp.query_one("#acc-plot", RunsCurvesPlot)
        assert len(loss.series) == len(acc.series) == 3
        assert all(s.x == [1.0, 2.0] for s in acc.series)
        await pilot.press("x")  # by wall-clock time
        assert cmp.by == "time" and "wall-clock" in acc.x_label
        assert all(s.x[0] < s.x[1] for s in acc.series)
        await pilot.press("m")
        assert acc.title.startswith("training")
        await pilot.press("2")
        await pilot.pause()
        plot = cmp.query_one(TradeoffPlot)
        assert plot.cost == "params" and len(plot.points) == 3
        assert plot.front_drawn and sorted(plot.labels_drawn) == sorted(n for n, _, _ in FIXTURE_RUNS)
        await pilot.press("a")
        await pilot.pause()
        assert plot.cost == "macs"
        await pilot.press("a", "a")
        assert plot.cost == "params"
        await pilot.press("3")
        await pilot.pause()
        table = cmp.query_one("#config-table", DataTable)
        assert len(table.columns) == 4  # field + 3 runs
        full = table.row_count
        await pilot.press("f")  # only the differing fields
        assert table.row_count == 2 < full
        assert [str(table.get_row_at(i)[0]).strip("≠ ") for i in range(2)] == ["model.arch", "model.width"]
        # a curves key pressed on another tab shows the curves it changed (it changed them out of sight)
        await pilot.press("x")
        await pilot.pause()
        assert cmp.query_one(TabbedContent).active == "curves" and cmp.by == "epoch" and acc.x_label == "epoch"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_compare_of_selected_runs_only(runs):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        await go_to(pilot, screen, "wide-r18")
        await pilot.press("space", "space")  # selects wide-r18 and the row below (tiny-r18)
        assert column(screen, "sel")[1:] == ["✓", "✓"]
        await pilot.press("c")
        await wait_for_compare(pilot, app)
        assert sorted(r.name for r in app.screen.records) == ["tiny-r18", "wide-r18"]


async def test_export_from_the_runs_screen(runs, tmp_path):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("a", "e")
        assert isinstance(app.screen, ExportDialog)
        out = tmp_path / "from-screen.md"
        app.screen.query_one("#path", Input).value = str(out)
        await pilot.press("tab", "enter")  # enter in the file field exports
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="dialog closed")
        assert out.is_file() and out.read_text().startswith("# Run comparison: 3 runs")


async def test_export_dialog_walks_format_file_option_and_keeps_values_on_error(runs, tmp_path):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("a", "e")
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        # the format comes first and has the focus; tab walks the fields in the order they are shown
        assert app.focused is dialog.query_one("#format", Select)
        await pilot.press("space")  # opens the select (it does not edit the path nor export)
        await pilot.pause()
        await pilot.press("down", "down", "enter")  # md -> html -> csv
        await pilot.pause()
        assert dialog.query_one("#format", Select).value == "csv"
        assert app.screen is dialog and not list((tmp_path).glob("*.csv"))
        await pilot.press("tab")
        assert app.focused is dialog.query_one("#path", Input)
        await pilot.press("tab")
        assert app.focused is dialog.query_one("#per-epoch", Checkbox)
        # a file that cannot be written: the dialog stays, says why, and keeps what was typed
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        bad = str(blocker / "sub" / "out.csv")
        dialog.query_one("#path", Input).value = bad
        await pilot.press("space", "ctrl+s")  # one row per epoch, export
        await wait_for(pilot, lambda: not dialog.exporting, what="export attempt")
        await pilot.pause()
        assert app.screen is dialog
        error = str(dialog.query_one("#export-error", Static).render())
        assert "export failed" in error and "a-file" in error
        assert dialog.query_one("#path", Input).value == bad
        assert dialog.query_one("#format", Select).value == "csv"
        assert dialog.query_one("#per-epoch", Checkbox).value is True
        assert "export failed" in screen_text(app)
        # fixed path: exported, the dialog closes
        good = tmp_path / "out.csv"
        dialog.query_one("#path", Input).value = str(good)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="dialog closed")
        assert good.is_file() and len(good.read_text().splitlines()) == 1 + 3 * 2  # header + 3 runs x 2 epochs


async def test_new_runs_appear_on_background_refresh(runs, tmp_path):
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        src = list_runs(runs)[0]
        shutil.copytree(src.path, runs / "20991231-000000-copy")
        screen._reload_worker()
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert len(names(screen)) == 4


async def test_names_and_values_are_shown_literally_not_as_markup(runs):
    odd = "[bold]odd[/bold] [run"
    run = next(r for r in list_runs(runs) if r.read_summary()["name"] == "tiny-r18")
    run.update_summary(name=odd)
    run.write_meta(tags=["[red]x"], note="a [b] note")
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert odd in names(screen)
        assert "[red]x" in column(screen, "tags")
        await go_to(pilot, screen, odd)
        assert "a [b] note" in str(screen.query_one("#runs-detail").render())
        await pilot.press("d")  # the question names the run
        await pilot.press("n", "a", "c")
        await wait_for_compare(pilot, app)
        cmp = app.screen
        assert isinstance(cmp, CompareScreen)
        await pilot.press("3")
        await pilot.pause()
        table = cmp.query_one("#config-table", DataTable)
        assert any(str(c.label) == odd for c in table.ordered_columns)
        rows = {str(table.get_row_at(i)[0]).strip("≠ "): table.get_row_at(i) for i in range(table.row_count)}
        assert str(rows["schedule.milestones"][1]) == "[]"


async def test_compare_follows_a_running_run(runs):
    live = next(r for r in list_runs(runs) if r.read_summary()["name"] == "tiny-r18")
    live.update_summary(status="running", pid=os.getpid(), host=socket.gethostname())
    try_acquire(live.path)  # ...and holds its lock, which is what says it trains
    app = RunsApp(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await go_to(pilot, app.screen, "tiny-r18")
        await pilot.press("space", "c")
        await wait_for_compare(pilot, app)
        cmp = app.screen
        assert isinstance(cmp, CompareScreen) and cmp.records[0].is_running
        assert "(running)" in str(cmp.query_one("#compare-title").render())
        acc = cmp.query_one("#acc-plot", RunsCurvesPlot)
        assert [len(s.x) for s in acc.series] == [2]
        # the training process finishes a third epoch
        live.append_event(
            {
                "event": "EpochEnd",
                "epoch": 3,
                "epochs": 3,
                "metrics": {"train_loss": 0.9, "train_acc": 0.6, "val_acc": 0.5, "val_loss": 1.0, "lr": 0.01,
                            "images_per_second": 100.0, "epoch_seconds": 20.0, "peak_memory_mb": 10.0},
                "best_val_acc": 0.5,
                "elapsed_seconds": 60.0,
                "time": 0.0,
            }
        )
        cmp._reload_worker()
        await cmp.workers.wait_for_complete()
        await pilot.pause()
        assert [len(s.x) for s in cmp.query_one("#acc-plot", RunsCurvesPlot).series] == [3]


# -- help (f1) ---------------------------------------------------------------------------------


def _key_names(binding) -> list[str]:
    names = {"escape": "esc", "slash": "/", "question_mark": "?"}
    return [names.get(k.strip(), k.strip()) for k in binding.key.split(",")]


async def test_help_lists_runs_and_compare_keys_and_scrolls_to_its_end_at_80x24(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        body = str(app.screen.query_one("#help-body").render())
        sections = {}
        for block in body.split("\n\n"):
            title, *rows = block.splitlines()
            sections[title] = rows
        for title, screen_cls in (("Runs screen", RunsScreen), ("Compare screen", CompareScreen)):
            assert title in sections, title
            rows = sections[title]
            for b in screen_cls.BINDINGS:
                b = b if isinstance(b, Binding) else Binding(*b)
                # the row of this binding: its keys, then its description
                want = " / ".join(_key_names(b))
                assert any(r.strip().startswith(want + " ") and b.description in r for r in rows), (title, want)
        for key in ("space", "a", "c", "o", "l", "r", "b", "t", "d", "e", "s", "S", "/"):
            assert any(r.split()[0] == key for r in sections["Runs screen"]), key
        for key in ("x", "m", "a", "f", "e", "esc"):
            assert any(r.split()[0] == key for r in sections["Compare screen"]), key
        # the dialog fits 80x24: its key line shows, and the end of the list can be scrolled into view
        dialog = app.screen.query_one("#help-dialog")
        assert dialog.region.y >= 0 and dialog.region.bottom <= 24
        assert "esc close" in screen_text(app)
        last = body.splitlines()[-1].strip()
        assert last not in screen_text(app)  # the list is longer than the dialog
        await pilot.press("end")
        await pilot.pause()
        text = screen_text(app)
        assert last in text and "esc close" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")


# -- live-runs picker (ctrl+g) -----------------------------------------------------------------


async def test_live_runs_picker_names_the_screen_esc_goes_back_to(runs_dir):
    make_run(runs_dir, epochs=50, done=1, end=None)  # "running" on another host
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs screen")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen), what="live runs")
        await pilot.pause()
        text = screen_text(app)
        assert "esc back to the runs screen" in text and "the form" not in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="back to the runs screen")
        await pilot.press("escape")  # the runs screen goes back to the form
        await wait_for(pilot, lambda: type(app.screen).__name__ == "SetupScreen", what="the form")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachScreen), what="live runs")
        await pilot.pause()
        assert "esc back to the form" in screen_text(app)


# -- trade-offs chart with many close runs -----------------------------------------------------

SEVEN = [  # name, params, MACs, seconds, best val acc: six close in size, one far, one at 99.5%
    ("r18-w0.125", 176_402, 2_000_000, 60, 0.62),
    ("r18-w0.25", 565_871, 9_500_000, 120, 0.81),
    ("r18-w0.5", 572_828, 9_700_000, 240, 0.86),
    ("preact-w0.25", 569_000, 9_600_000, 130, 0.83),
    ("dense-w0.25", 568_000, 9_650_000, 300, 0.995),
    ("vgg-w0.25", 570_000, 9_620_000, 90, 0.70),
    ("a-much-longer-run-name-than-the-others", 571_000, 9_680_000, 180, 0.85),
]


class CompareApp(App):
    def __init__(self, records) -> None:
        super().__init__()
        self.records = records

    def on_mount(self) -> None:
        self.push_screen(CompareScreen(self.records))


def _plot_rows(app, plot: TradeoffPlot) -> list[str]:
    """The plot area's rows as shown on screen (below the plot's title row)."""
    lines = screen_text(app).splitlines()
    r = plot.region
    return [line[r.x : r.right] for line in lines[r.y + 1 : r.bottom]]


async def test_tradeoffs_readable_ticks_every_run_shown_and_front_columns_at_80x24(runs_dir):
    records = []
    for i, (name, params, macs, secs, acc) in enumerate(SEVEN):
        run = make_run(runs_dir, f"2026010{i}-000000-run{i}", epochs=2)
        run.update_summary(name=name, params=params, macs=macs, train_seconds=secs, best_val_acc=acc)
        records.append(load_record(RunDir(run.path)))
    app = CompareApp(records)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        cmp = app.screen
        plot = cmp.query_one(TradeoffPlot)
        readable = {"params": r"\d{1,3}(\.\d)?[kM]", "macs": r"\d{1,3}(\.\d{1,2})?[kM]", "train_seconds": r"\d{1,3}(\.\d)?[smh]"}
        for cost in ("params", "macs", "train_seconds"):
            while plot.cost != cost:
                await pilot.press("a")
            await pilot.pause()
            xt, yt = plot.ticks_drawn
            # round, short tick labels on both axes (no 565871.1), at least two of them
            assert len(xt) >= 2 and all(re.fullmatch(readable[cost], t) for t in xt), (cost, xt)
            assert len(yt) >= 2 and all(re.fullmatch(r"\d{1,3}", t) for t in yt), (cost, yt)
            # accuracy never above 100%
            assert max(float(t) for t in yt) <= 100 and plot.limits[3] <= 100
            # every run has its own marker on screen, none hidden under a label or another run
            assert sorted(len(v) for v in plot.markers_drawn.values()) == [1] * 7
            rows = _plot_rows(app, plot)
            assert sum(row.count("●") + row.count("○") for row in rows) == 7, "\n".join(rows)
            assert sum(row.count("●") for row in rows) == len(plot.front_drawn)
        # the Pareto table's front marks are on screen at 80 columns, even with a long run name
        text = screen_text(app)
        assert "Front P M T" in text
        assert len([line for line in text.splitlines() if re.search(r"[★·] [★·] [★·]", line)]) == 7
        assert "a-much-longer-run-name" in text


SHARED_START = "course-lab-cifar10-sweep-"
SHARED_START_RUNS = [  # what tells them apart: architecture, width, mode
    ("resnet18-w0.125-scratch", 176_402, 0.62),
    ("resnet18-w0.25-scratch", 565_871, 0.81),
    ("vgg11-w0.25-finetune", 1_400_000, 0.70),
    ("preact18-w0.125-probe", 300_000, 0.75),
]


@pytest.mark.parametrize("width", [80, 160])
async def test_tradeoff_labels_use_the_room_and_keep_what_tells_runs_apart(runs_dir, width):
    """Four runs named course-lab-cifar10-sweep-...: each label read 'course-lab-cifar10-sw…' (a fixed cut
    at 22 characters, on any terminal). Now a label takes the room the plot has: the whole name at 160
    columns, and at 80 the part the names do not share; always beside its own marker."""
    records = []
    for i, (tail, params, acc) in enumerate(SHARED_START_RUNS):
        run = make_run(runs_dir, f"2026010{i}-000000-run{i}", epochs=2)
        run.update_summary(name=SHARED_START + tail, params=params, best_val_acc=acc)
        records.append(load_record(RunDir(run.path)))
    tails = {r.run_id: r.name.removeprefix(SHARED_START) for r in records}
    app = CompareApp(records)
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        plot = app.screen.query_one(TradeoffPlot)
        await wait_for(pilot, lambda: len(plot.label_spots) == 4, 10, "every run labelled")
        rows = _plot_rows(app, plot)
        marker_of = {ids[0]: spot for spot, ids in plot.markers_drawn.items()}
        for run_id, (text, start, row) in plot.label_spots.items():
            want = SHARED_START + tails[run_id] if width >= 160 else tails[run_id]
            assert text == want, (width, text)
            assert text in rows[row + 1], (text, rows)  # drawn whole (under the plot's top border)
            c, r = marker_of[run_id]
            assert abs(row - r) <= 1 and (start == c + 2 or start + len(text) == c - 1), (text, start, row, c, r)
        # the Pareto table beside it names the runs by what differs too, not by their shared start
        table = app.screen.query_one("#pareto-table")
        assert sorted(str(table.get_row(key)[0]) for key in table.rows) == sorted(tails.values())
        # and the title (the curves' legend) names every run: at 80 columns the shared start once
        title = " ".join(line.strip() for line in screen_text(app).splitlines()[:3])
        if width >= 160:
            assert all(f"● {SHARED_START}{t}" in title for t in tails.values()), title
        else:
            assert f"runs {SHARED_START}*:" in title and all(f"● {t} " in title for t in tails.values()), title
        # the classes tab: its columns are named by the fitted labels, and its hint is read to its end
        await pilot.press("4")
        await pilot.pause()
        text = screen_text(app)
        assert "optai-tui evaluate RUN)" in text and all(t in text for t in tails.values()), text


async def test_runs_on_different_classes_are_marked_and_never_ranked_together_at_80x24(runs_dir):
    """A 2-class result must not sit unmarked on a 5-class front: each dataset has its own front, every
    label names its dataset, and the trade-offs tab says so."""
    ants, flowers = ["ants", "bees"], ["daisy", "iris", "lily", "rose", "tulip"]
    runs = [("ants-small", "ants_bees", ants, 100_000, 0.95), ("ants-big", "ants_bees", ants, 400_000, 0.90),
            ("flowers-big", "flowers", flowers, 500_000, 0.60), ("flowers-small", "flowers", flowers, 200_000, 0.50)]
    records = []
    for i, (name, ds, classes, params, acc) in enumerate(runs):
        run = make_run(runs_dir, f"2026010{i}-000000-run{i}", epochs=2)
        run.update_summary(name=name, dataset=ds, classes=classes, params=params, best_val_acc=acc)
        records.append(load_record(RunDir(run.path)))
    app = CompareApp(records)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        text = screen_text(app)
        assert "2 datasets: ants_bees (2 classes, 2 runs), flowers (5 classes, 2 runs)" in text
        assert "[ants_bees, 2 cl]" in text and "[flowers, 5 cl]" in text
        table = app.screen.query_one("#pareto-table")
        front = {key.value: str(table.get_row(key)[1]).split()[0] for key in table.rows}
        # ants-big is beaten by ants-small; both flowers runs are on the flowers front, whatever ants scored
        assert front == {"20260100-000000-run0": "★", "20260101-000000-run1": "·",
                         "20260102-000000-run2": "★", "20260103-000000-run3": "★"}


async def test_an_early_stopped_run_says_so_in_the_table_at_80x24(runs_dir):
    """The table's status of a run early stopping completed follows the rule of runs list and the dashboard
    (runs/summary.status_text), short enough for its column at 80 columns; a run of all its epochs stays plain."""
    from optai_tui.runs.summary import status_text

    make_run(runs_dir, "20260101-000000-full", epochs=3)
    early = make_run(runs_dir, "20260102-000000-early", epochs=6, done=3, summary={"early_stop_epoch": 3})
    assert status_text(early.read_summary()) == "completed (early stop at epoch 3)"  # what runs list says
    app = RunsApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert sorted(column(screen, "status")) == ["completed", "early stop 3"]
        assert "early stop 3" in screen_text(app)  # shown whole at 80 columns, not cut
        await pilot.press("slash", *"completed", "enter")
        await pilot.pause()
        assert sorted(column(screen, "status")) == ["completed", "early stop 3"]  # still a completed run for the filter


async def test_compare_curves_have_round_evenly_spaced_y_ticks():
    """A new user comparing two 1-epoch runs read the loss axis `1.09736 1.09659 1.09505 1.09427 1.09273`
    (plotext's own ticks: uneven and unround). The compare curves take the dashboard's round ticks."""
    import re as _re

    from optai_tui.runs.compare import RunCurve

    class CurvesApp(App):
        def compose(self):
            yield RunsCurvesPlot(id="p")

    app = CurvesApp()
    async with app.run_test(size=(80, 14)) as pilot:
        plot = app.query_one(RunsCurvesPlot)
        plot.set_series([RunCurve("a", "a", [1.0], [1.09736]), RunCurve("b", "b", [1.0], [1.09273])],
                        colors={"a": "blue", "b": "red"}, title="validation loss", x_label="epoch", x_integer=True)
        await pilot.pause()
        labels = [m.group(1) for ln in screen_text(app).splitlines() if (m := _re.match(r"\s*(-?\d+(?:\.\d+)?)\s*┤", ln))]
        values = [float(v) for v in labels]
        assert len(values) >= 2, screen_text(app)
        assert len({len(v.split(".")[-1]) if "." in v else 0 for v in labels}) == 1, labels  # one number of decimals
        steps = {round(a - b, 9) for a, b in zip(values, values[1:])}
        assert len(steps) == 1, labels  # evenly spaced
        step = steps.pop()
        assert any(abs(step - m * 10**e) < 1e-12 for m in (1, 2, 2.5, 5) for e in range(-6, 3)), labels  # round
        assert min(values) <= 1.09273 and max(values) >= 1.09736, labels  # they enclose the points
