"""The sweep screens: search settings around the setup form, validated as you type with the CLI's rules, the
spec saved and loaded as YAML, a sweep started detached and followed live, a trial's dashboard opened from it."""

from __future__ import annotations

import os

import pytest
import yaml
from textual.widgets import DataTable, Input, Select
from tui_helpers import TINY, fill, screen_text, wait_for

from optai_tui.cli import main
from optai_tui.runs.store import RunDir, pid_alive
from optai_tui.sweep.spec import load_spec
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.dashboard import DashboardScreen
from optai_tui.tui.screens.path_dialog import PathDialog
from optai_tui.tui.screens.sweep_setup import SweepSetupScreen
from optai_tui.tui.screens.sweep_view import SweepViewScreen
from optai_tui.tui.widgets.flag_switch import FlagSwitch
from optai_tui.tui.widgets.sweep_plot import SweepPlot

LIMIT = 240.0  # seconds two tiny trials may take on a busy 2-core machine


async def _sweep_screen(pilot, app, values: dict | None = None) -> SweepSetupScreen:
    fill(app.screen.form, {**TINY, **(values or {})})
    await pilot.press("ctrl+w")
    await wait_for(pilot, lambda: isinstance(app.screen, SweepSetupScreen), what="sweep screen")
    return app.screen


def _error(screen) -> str:
    return str(screen.query_one("#dim-error").render())


def _status(screen) -> str:
    return str(screen.query_one("#sweep-status").render())


async def _type(pilot, screen, wid: str, text: str) -> None:
    screen.query_one(wid, Input).value = text
    await pilot.pause()


async def test_edit_validate_as_you_type_save_and_load_a_spec(runs_dir, tmp_path):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(110, 36)) as pilot:
        sw = await _sweep_screen(pilot, app)
        assert sw.model.base.model.arch == "resnet18" and sw.model.base.data.image_size == 16  # the form's settings
        assert "space: empty" in _status(sw)  # nothing searched yet: the same rule as the CLI
        # a log range from 0: refused as you type, with the CLI's words
        sw.query_one("#dim-key", Select).value = "optim.lr"
        await pilot.pause()
        sw.query_one("#dim-log", FlagSwitch).value = True
        await _type(pilot, sw, "#dim-low", "0")
        await _type(pilot, sw, "#dim-high", "0.1")
        assert "space.optim.lr: a log range needs a low end above 0 (got 0)" in _error(sw)
        await pilot.press("ctrl+a")  # refused: nothing added
        assert sw.model.dims == {}
        await _type(pilot, sw, "#dim-high", "50")
        await _type(pilot, sw, "#dim-low", "0.001")
        assert "the high end 50 is not allowed" in _error(sw)
        await _type(pilot, sw, "#dim-high", "0.1")
        assert _error(sw) == ""
        await pilot.press("ctrl+a")
        assert sw.model.dims == {"optim.lr": {"float": [0.001, 0.1], "log": True}}
        # a choice that cannot validate, then a good one
        sw.query_one("#dim-key", Select).value = "model.width"
        await pilot.pause()
        sw.query_one("#dim-kind", Select).value = "choice"
        await pilot.pause()
        await _type(pilot, sw, "#dim-choices", "0.125, 9")
        assert "space.model.width: the choice 9 is not allowed" in _error(sw)
        await _type(pilot, sw, "#dim-choices", "0.125, 0.25")
        await pilot.press("ctrl+a")
        table = sw.query_one("#sweep-dims", DataTable)
        assert table.row_count == 2 and "choice: 0.125, 0.25" in screen_text(app)
        await _type(pilot, sw, "#sw-trials", "0")
        assert "n_trials: Input should be greater than or equal to 1" in _status(sw)
        await _type(pilot, sw, "#sw-trials", "3")
        await _type(pilot, sw, "#sw-name", "tui-lr")
        assert "ready: ctrl+r starts the sweep" in _status(sw)
        # save: a plain CLI spec (base preset + set: for the form's changes)
        path = tmp_path / "tui-lr.yaml"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PathDialog), what="save dialog")
        app.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: path.is_file(), what="spec file")
        data = yaml.safe_load(path.read_text())
        assert data["base"] == "default" and data["set"]["model.arch"] == "resnet18" and data["n_trials"] == 3
        spec = load_spec(str(path))  # the CLI reads it back
        assert [d.key for d in spec.dims] == ["optim.lr", "model.width"] and spec.base_config["data"]["image_size"] == 16
        # load it into a fresh sweep screen
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SweepSetupScreen), what="back to the form")
        sw2 = await _sweep_screen(pilot, app, {"model.arch": "vgg11", "data.image_size": ""})
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PathDialog), what="load dialog")
        app.screen.query_one(Input).value = str(tmp_path / "missing.yaml")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PathDialog) and "does not exist" in str(app.screen.query_one("#path-error").render())  # kept open, with the reason
        app.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is sw2, what="spec loaded")
        assert sw2.model.dims == spec.to_dict()["space"] and sw2.query_one("#sw-name", Input).value == "tui-lr"
        assert sw2.model.base.model.arch == "resnet18"  # the spec's base, not the form's
        assert "ready" in _status(sw2)


@pytest.mark.slow
async def test_start_detached_follow_live_and_open_a_trials_dashboard(runs_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(110, 36)) as pilot:
        sw = await _sweep_screen(pilot, app)
        sw.query_one("#dim-key", Select).value = "optim.lr"
        await pilot.pause()
        sw.query_one("#dim-kind", Select).value = "choice"
        await pilot.pause()
        await _type(pilot, sw, "#dim-choices", "0.05, 0.01")
        await pilot.press("ctrl+a")
        sw.query_one("#sw-sampler", Select).value = "grid"
        await _type(pilot, sw, "#sw-trials", "2")
        await _type(pilot, sw, "#sw-name", "live")
        assert "ready" in _status(sw)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepViewScreen), what="sweep view")
        view = app.screen
        proc = app.processes["sweep:live"]
        assert os.getsid(proc.pid) != os.getsid(0)  # its own session: an SSH hang-up or closing the app does not stop it
        await wait_for(pilot, lambda: view.results is not None and view.results.counts().get("completed") == 2, LIMIT, "two completed trials")
        table = view.query_one("#sweep-trials", DataTable)
        assert table.row_count == 2
        assert {t.params["optim.lr"] for t in view.results.trials} == {0.05, 0.01}
        text = screen_text(app)
        assert "sweep live" in text and "completed" in text
        plot = view.query_one(SweepPlot)
        assert plot.mode == "history" and plot.points == 2
        await pilot.press("p")
        assert plot.mode == "slice:optim.lr" and plot.points == 2
        await wait_for(pilot, lambda: not pid_alive(proc.pid) or proc.poll() is not None, 60, "the sweep process to end")
        # enter: the trial's own dashboard (a trial is an ordinary run)
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")
        run: RunDir = app.screen.run
        assert run.read_summary()["name"].startswith("live-t") and run.read_summary()["status"] == "completed"


async def test_the_view_of_a_two_objective_sweep_shows_the_pareto_front(runs_dir, tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "shapes", "subset": 512, "val_split": 0.25, "image_size": 16, "augment": False},
        "model": {"arch": "resnet18", "width": 0.0625}, "train": {"epochs": 1, "batch_size": 128, "device": "cpu"},
    }))  # fmt: skip
    spec = tmp_path / "po.yaml"
    spec.write_text(yaml.safe_dump({"base": "base.yaml", "space": {"model.width": [0.0625, 0.125]}, "objective": ["val_acc", "params"], "sampler": "grid"}))
    assert main(["sweep", "run", str(spec), "--runs-dir", str(runs_dir)]) == 0
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(110, 36)) as pilot:
        from optai_tui.tui.commands import palette_items

        items = {title: callback for title, _, callback in palette_items(app)}
        items["Sweep: po"]()  # re-attach from the command palette
        await wait_for(pilot, lambda: isinstance(app.screen, SweepViewScreen) and app.screen.results is not None, 60, "sweep view")
        view = app.screen
        assert view.results.multi and "Pareto front" in screen_text(app)
        plot = view.query_one(SweepPlot)
        for _ in range(3):
            if plot.mode == "pareto":
                break
            await pilot.press("p")
        assert plot.mode == "pareto" and plot.points == 2
        assert "params" in screen_text(app)  # the second objective's column


def test_a_loaded_spec_keeps_what_the_screen_does_not_edit(tmp_path):
    """enqueue, retry_lost, the pruner's start-up trials: loaded from a file and saved back unchanged."""
    from optai_tui.sweep.spec import parse_spec
    from optai_tui.tui.sweep_form import SweepForm

    data = {
        "name": "k", "base": "default", "description": "keep me", "space": {"optim.lr": {"float": [0.001, 0.1], "log": True}},
        "pruner": {"name": "median", "warmup_epochs": 2, "startup_trials": 7}, "n_trials": 5, "retry_lost": 2,
        "enqueue": [{"optim.lr": 0.05}],
    }  # fmt: skip
    form = SweepForm.from_spec(parse_spec(data))
    again = parse_spec(yaml.safe_load(form.to_yaml()))
    assert again.to_dict() == parse_spec(data).to_dict()
    assert again.pruner.startup_trials == 7 and again.retry_lost == 2 and again.enqueue == [{"optim.lr": 0.05}]
