"""Presets from the setup screen: load fills the form, save writes YAML, diff, invalid files reported."""

from __future__ import annotations

import yaml
from textual.widgets import DataTable, Input, OptionList
from tui_helpers import fill, screen_text, wait_for

from optai_tui.presets import load_preset
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.preset_diff import PresetDiffScreen
from optai_tui.tui.screens.preset_picker import PresetPicker
from optai_tui.tui.screens.preset_save import SavePresetScreen
from optai_tui.tui.screens.setup import SetupScreen
from optai_tui.tui.widgets.config_form import ConfigForm


async def _pick(pilot, app, name: str) -> None:
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: isinstance(app.screen, PresetPicker), what="preset picker")
    options = app.screen.query_one(OptionList)
    index = next(i for i in range(options.option_count) if options.get_option_at_index(i).id == name)
    options.highlighted = index
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="back to the form")
    await pilot.pause()


async def test_load_a_shipped_preset_fills_the_form(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await _pick(pilot, app, "kuangliu-resnet18")
        form = app.screen.query_one(ConfigForm)
        raw = form.raw_values()
        assert raw["model.arch"] == "resnet18"
        assert raw["data.dataset"] == "cifar10"
        assert raw["train.epochs"] == "200"
        assert raw["optim.lr"] == "0.1"
        assert app.screen.loaded_preset[0] == "kuangliu-resnet18"
        assert "kuangliu-resnet18" in screen_text(app)


async def test_save_then_diff_against_the_saved_preset(runs_dir, presets_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = app.screen.query_one(ConfigForm)
        fill(form, {"optim.lr": "0.02", "train.epochs": "7", "model.arch": "vgg13", "name": "mine"})
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SavePresetScreen), what="save dialog")
        # a refused name is said in the dialog, which keeps what was typed
        app.screen.query_one("#preset-name", Input).value = "bad name!"
        app.screen.query_one("#preset-description", Input).focus()
        await pilot.press(*"quick test")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SavePresetScreen)
        assert "use letters, digits" in str(app.screen.query_one("#preset-save-error").render())
        assert app.screen.query_one("#preset-description", Input).value == "quick test"
        assert list(presets_dir.iterdir()) == []
        app.screen.query_one("#preset-name", Input).value = "my-recipe"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="back to the form")
        path = presets_dir / "my-recipe.yaml"
        assert path.is_file()
        data = yaml.safe_load(path.read_text())
        assert data["description"] == "quick test"
        assert data["optim"]["lr"] == 0.02 and data["train"]["epochs"] == 7 and data["model"]["arch"] == "vgg13"
        assert load_preset("my-recipe") == form.validate().config
        # the diff is against the preset just saved: change one thing and look
        fill(form, {"optim.lr": "0.5", "optim.nesterov": True})
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetDiffScreen), what="diff")
        table = app.screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows == [["optim.lr", "0.02", "0.5"], ["optim.nesterov", "off", "on"]]  # as the switches show it
        assert "2 settings differ" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="diff closed")


async def test_save_is_refused_while_the_form_is_invalid(runs_dir, presets_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = app.screen.query_one(ConfigForm)
        fill(form, {"train.batch_size": "many"})
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        assert app.focused is form.control("train.batch_size")
        assert list(presets_dir.iterdir()) == []


async def test_invalid_preset_is_reported_with_file_and_field_and_the_form_keeps_its_values(runs_dir, presets_dir):
    bad = presets_dir / "broken.yaml"
    bad.write_text("description: a typo\noptim:\n  lr: -1\ntrain:\n  epochs: 3\n")
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = app.screen.query_one(ConfigForm)
        fill(form, {"optim.lr": "0.07"})
        before = form.raw_values()
        await _pick(pilot, app, "broken")
        assert form.raw_values() == before
        error = app.screen.preset_error
        assert str(bad) in error and "optim.lr" in error
        await wait_for(pilot, lambda: any(str(bad) in n.message and "optim.lr" in n.message for n in app._notifications), 30, "the preset's error notified")
        assert app.screen.loaded_preset[0] != "broken"


async def test_a_preset_file_that_is_not_utf8_does_not_stop_the_app(runs_dir, presets_dir):
    (presets_dir / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = app.screen.query_one(ConfigForm)
        assert app.screen.loaded_preset[0] == "default"
        await _pick(pilot, app, "binary")
        assert "is not a UTF-8 text file" in app.screen.preset_error
        assert app.screen.loaded_preset[0] == "default" and form.validate().ok
