"""Issue 13's "smaller things seen" in the TUI, each at 80x24 (and 120x40 where the layout matters):
numbers, plurals, help defaults, charts before and after data, the dashboard's layout once a run ended,
the save dialog's error, the runs table's delete and End, and a run name that follows its architecture."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input
from tui_helpers import screen_text, wait_for
from tui_synthetic import make_run

from optai_tui.errors import ConfigError
from optai_tui.fmt import fmt_rate, fmt_secs, fmt_sig
from optai_tui.presets import save_preset
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.dashboard import DashboardScreen
from optai_tui.tui.screens.preset_diff import PresetDiffScreen
from optai_tui.tui.screens.preset_save import SavePresetScreen
from optai_tui.tui.screens.runs import RunsScreen
from optai_tui.tui.widgets.device_panel import DevicePanel
from optai_tui.tui.widgets.metric_chart import MetricChart, nice_ticks


def test_numbers_are_plain_with_their_units():
    assert fmt_sig(27140.2) == "27,140" and fmt_rate(27140.2) == "27,140 img/s"  # was 2.714e+04
    assert fmt_rate(0.3) == "0.3 img/s"  # was "0 img/s"
    assert fmt_secs(0.0412) == "0.0412 s"  # was "0.0 s"
    assert fmt_sig(293.12) == "293" and fmt_sig(None) == "-" and fmt_sig(float("nan")) == "-"


def test_ticks_are_round_even_and_enclose_the_data():
    for lo, hi in ((1.27, 2.42), (48.3, 71.6), (0.0094, 0.0484), (0.5, 0.5), (0, 100)):
        t = nice_ticks(lo, hi)
        assert t[0] <= lo and t[-1] >= hi
        steps = {round(b - a, 9) for a, b in zip(t, t[1:])}
        assert len(steps) == 1  # evenly spaced


def _chart_rows(app, selector: str) -> list[str]:
    """The chart's rows as text (the chart is drawn where it sits on the screen)."""
    chart = app.screen.query_one(selector, MetricChart)
    region = chart.region
    lines = screen_text(app).splitlines()
    return [ln[region.x : region.right] for ln in lines[region.y : region.bottom]]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_dashboard_numbers_and_a_summary_that_leaves_the_charts_their_height(runs_dir, size):
    running = make_run(runs_dir, "20240101-000000-running", epochs=4, done=2, end=None, images_per_second=0.3)
    ended = make_run(runs_dir, "20240101-000001-ended", epochs=1, end="stopped", images_per_second=27140.2)
    heights = {}
    for run in (running, ended):
        app = OptaiApp(runs_dir, attach=run.run_id)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.rows, what="replay")
            await pilot.pause(2.5)  # charts redraw at most every 2 s
            text = screen_text(app)
            heights[run.run_id] = app.screen.query_one("#loss-chart").size.height
            if run is running:
                assert "0.3 img/s" in text  # not "0 img/s"
            else:
                assert "stopped: 1/1 epoch," in text  # not "1/1 epochs"
                assert "e+0" not in text
            # y ticks: round, evenly spaced, the lowest at or below the data
            rows = _chart_rows(app, "#loss-chart")
            ticks = [float(r.split("┤")[0]) for r in rows if "┤" in r and r.split("┤")[0].strip()]
            assert len(ticks) >= 2
            assert len({round(b - a, 9) for a, b in zip(ticks, ticks[1:])}) == 1, ticks
            chart = app.screen.query_one("#loss-chart", MetricChart)
            assert min(ticks) <= min(y for line in chart.lines for y in line.ys)  # no data below the lowest tick
    assert heights[ended.run_id] == heights[running.run_id]  # the summary does not squeeze the charts


async def test_charts_before_any_data_have_no_negative_axes(runs_dir):
    run = make_run(runs_dir, epochs=4, done=0, end=None)
    app = OptaiApp(runs_dir, attach=run.run_id)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")
        await pilot.pause(0.5)
        for sel in ("#loss-chart", "#acc-chart", "#lr-chart"):
            chart_text = "\n".join(_chart_rows(app, sel))
            assert "-1" not in chart_text and "-0." not in chart_text, chart_text


async def test_preset_diff_and_help_say_what_the_form_holds(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        form = app.screen.form
        form.focus_field("data.dataset")
        await pilot.pause()
        help_text = " ".join(str(app.screen.query_one("#help-text").render()).split())
        assert "default shapes (preset default; without a preset: cifar10)" in help_text
        assert "default cifar10)" not in help_text
        form.set_value("optim.lr", "0.02")
        form.validate()
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, PresetDiffScreen)
        assert "1 setting differs" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        form.set_value("optim.lr", str(app.screen.loaded_preset[1].optim.lr))
        form.validate()
        await pilot.press("ctrl+t")
        await pilot.pause()
        text = screen_text(app)
        assert "no differences" in text and "preset  form" not in text  # no empty table's header under it


async def test_run_name_follows_the_architecture_it_names(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        form = app.screen.form
        form.set_value("model.arch", "resnet18")
        form.validate()
        form.set_value("name", "resnet18-shapes-lr0.1")
        form.validate()
        await pilot.pause()
        form.control("model.arch").value = "vgg11"  # as the dropdown does
        await pilot.pause()
        assert form.raw_values()["name"] == "vgg11-shapes-lr0.1"
        form.set_value("name", "my experiment")
        form.validate()
        form.control("model.arch").value = "resnet34"
        await pilot.pause()
        assert form.raw_values()["name"] == "my experiment"  # the user's own name is left alone


async def test_long_device_names_are_shown_whole(runs_dir, monkeypatch):
    from tui_helpers import fake_devices

    from optai_tui.training import device

    name = "AMD EPYC 7763 64-Core Processor"
    fake_devices(monkeypatch, [device.DeviceInfo("cpu", name)])
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.devices is not None, what="devices")
        await pilot.pause()
        panel = app.screen.query_one(DevicePanel)
        assert name in " ".join(str(panel.render()).split())


async def test_save_dialog_shows_its_whole_error_at_80x24(runs_dir):
    try:
        save_preset("a/b", None)  # the message the dialog shows for that name
    except ConfigError as e:
        message = e.message
    except Exception:
        message = ""
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SavePresetScreen), what="save dialog")
        app.screen.query_one("#preset-name", Input).value = "a/b"
        await pilot.press("enter")
        await pilot.pause()
        err = app.screen.query_one("#preset-save-error")
        shown = " ".join(ln.strip(" │") for ln in screen_text(app).splitlines())
        assert str(err.render()).startswith("! ") and len(str(err.render())) > 30
        words = (message or str(err.render())[2:]).split()
        assert all(w in shown for w in words), (words, shown)


@pytest.fixture
def five_runs(trained_runs, tmp_path) -> Path:
    dst = tmp_path / "runs"
    shutil.copytree(trained_runs, dst)
    return dst


async def test_delete_keeps_the_cursor_and_end_goes_to_the_last_run(five_runs):
    app = OptaiApp(five_runs, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(RunsScreen(five_runs, refresh_seconds=0))
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs screen")
        await pilot.pause()
        table = app.screen.query_one("#runs-table", DataTable)
        n = table.row_count
        assert n == 3
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == n - 1  # the last run, not the last column
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_row == 0
        table.move_cursor(row=1)
        await pilot.pause()
        below = app.screen.shown[2].run_id
        await pilot.press("d", "y")
        await pilot.pause()
        assert table.row_count == n - 1
        assert table.cursor_row == 1 and app.screen.current_run().run_id == below  # the next run, not the top


async def test_footers_keep_f1_help_and_the_status_line_counts_in_words(five_runs):
    app = OptaiApp(five_runs, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs screen")
        await pilot.pause()
        assert screen_text(app).splitlines()[-1].rstrip().endswith("f1 Help")
        await pilot.press("c")
        from optai_tui.tui.screens.compare import CompareScreen

        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare screen")
        await pilot.pause()
        assert screen_text(app).splitlines()[-1].rstrip().endswith("f1 Help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs screen again")
        app.screen.filter_text = "tiny-r18"
        app.screen._render_table()
        await pilot.pause()
        assert "1 of 3 runs" in screen_text(app)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_architecture_dropdown_items_take_one_line_each(runs_dir, size):
    from textual.widgets._select import SelectOverlay

    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        form = app.screen.form
        form.focus_field("model.arch")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause(0.3)
        overlay = form.control("model.arch").query_one(SelectOverlay)
        assert overlay.display
        region = overlay.region
        lines = screen_text(app).splitlines()[region.y : region.bottom]
        items = [ln[region.x : region.right].strip(" ▁▂▃▄▅▆▇█▔▏▕") for ln in lines]
        items = [i for i in items if i]
        assert len(items) >= 5
        assert all(i.endswith((" cifar", " tv")) for i in items), items  # each label whole on its own line
