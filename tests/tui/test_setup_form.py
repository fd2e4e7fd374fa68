"""The setup form: generated from the schema, validated as you type, Start refused while invalid."""

from __future__ import annotations

from textual.widgets import Input, Select
from tui_helpers import fill, notified, screen_text, wait_for

from optai_tui.config import iter_fields
from optai_tui.models import list_models
from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.setup import SetupScreen
from optai_tui.tui.widgets.config_form import ConfigForm, FieldRow
from optai_tui.tui.widgets.cost_preview import CostPreview
from optai_tui.tui.widgets.flag_switch import FlagSwitch


def _form(app) -> ConfigForm:
    return app.screen.query_one(ConfigForm)


def _error(form: ConfigForm, key: str) -> str:
    row = form._rows[key]
    err = row.query_one(".field-error")
    return str(err.render()) if err.display else ""


async def test_every_schema_field_has_a_control(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        form = _form(app)
        keys = {f"{s}.{n}" if s else n for s, n, _ in iter_fields()}
        assert keys == set(form._rows)
        assert isinstance(form.control("optim.name"), Select)
        assert isinstance(form.control("optim.nesterov"), FlagSwitch)
        assert isinstance(form.control("optim.lr"), Input)
        arch = form.control("model.arch")
        assert {v for _, v in arch._options} == set(list_models())
        # grouped by family: all resnets before all densenets
        values = [v for _, v in arch._options]
        assert max(values.index(n) for n in list_models(family="resnet")) < min(
            values.index(n) for n in list_models(family="densenet")
        )
        assert form.result is not None and form.result.ok


async def test_field_error_appears_under_the_field_and_disappears(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = _form(app)
        form.focus_field("optim.lr")
        lr = form.control("optim.lr")
        lr.value = ""
        await pilot.press("1", "x")
        await pilot.pause()
        assert "must be a number" in _error(form, "optim.lr")
        assert form._rows["optim.lr"].has_class("-invalid")
        assert "must be a number" in screen_text(app)
        await pilot.press("backspace", "e", "-", "3")
        await pilot.pause()
        assert lr.value == "1e-3"
        assert _error(form, "optim.lr") == ""
        assert not form._rows["optim.lr"].has_class("-invalid")
        # out of bounds: the schema's limit, in words
        lr.value = "20"
        await pilot.pause()
        assert "greater than 0 and at most 10 (got 20.0)" in _error(form, "optim.lr")
        # the help of the focused field
        assert "Peak learning rate" in str(app.screen.query_one("#help-text").render())


async def test_cross_field_rule_shows_at_every_field_it_names(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = _form(app)
        fill(form, {"optim.momentum": "0", "optim.nesterov": True})
        await pilot.pause()
        assert "Nesterov needs momentum > 0" in _error(form, "optim.nesterov")
        assert "Nesterov needs momentum > 0" in _error(form, "optim.momentum")
        fill(form, {"optim.momentum": "0.9"})
        await pilot.pause()
        assert _error(form, "optim.nesterov") == _error(form, "optim.momentum") == ""
        fill(form, {"transfer.mode": "linear_probe"})
        await pilot.pause()
        assert "needs a backbone" in _error(form, "transfer.backbone")
        assert "needs a backbone" in _error(form, "transfer.mode")
        fill(form, {"transfer.mode": "scratch", "schedule.name": "step"})
        await pilot.pause()
        assert "at least one milestone" in _error(form, "schedule.milestones")
        assert "at least one milestone" in _error(form, "schedule.name")


async def test_machine_checks_precision_and_backbone_show_before_start(runs_dir):
    """What the trainer would refuse at start is shown at the fields: fp16 off CUDA, a backbone that is
    not there, a backbone trained with another architecture or width."""
    from tui_synthetic import make_run

    src = make_run(runs_dir, "20240101-000000-src")  # a resnet18 x0.125 run with a checkpoint
    (src.checkpoints_dir / "last.pt").write_bytes(b"weights")
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app.screen.devices is not None, what="device detection")
        form = _form(app)

        async def shows(key: str, text: str) -> None:  # the machine worker answers a moment later
            await wait_for(pilot, lambda: text in _error(form, key), what=f"{text!r} at {key}")

        fill(form, {"train.device": "cpu", "train.precision": "fp16"})
        await shows("train.precision", "fp16 needs a CUDA GPU")
        fill(form, {"train.device": "auto"})
        await shows("train.precision", "train.device auto is cpu here")
        fill(form, {"train.precision": "fp32", "transfer.mode": "linear_probe", "transfer.backbone": "no-such-run"})
        await shows("transfer.backbone", "'no-such-run' is not 'imagenet', a checkpoint file, or a run")
        fill(form, {"transfer.backbone": src.run_id, "model.arch": "vgg11", "model.width": "0.25"})
        await shows("model.arch", "is a resnet18 (width 0.125), but model.arch is vgg11")
        assert "is a resnet18" in _error(form, "transfer.backbone")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen) and list(runs_dir.iterdir()) == [src.path]
        fill(form, {"model.arch": "resnet18"})
        await shows("model.width", "width 0.125, but model.width is 0.25")
        fill(form, {"model.width": "0.125"})
        await wait_for(pilot, lambda: form.result.ok, what="the form valid")
        assert form.result.ok, form.result.problems


async def test_the_dataset_folder_is_checked_at_its_field_before_start(runs_dir, tmp_path):
    """The imagefolder folder is a machine check (not the schema's): shown at data.path all the same."""
    folder = tmp_path / "pets"
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = _form(app)
        fill(form, {"data.dataset": "imagefolder", "data.path": str(folder)})
        await pilot.pause()
        assert f"folder {str(folder)!r} does not exist" in _error(form, "data.path")
        (folder / "train" / "cat").mkdir(parents=True)
        (folder / "train" / "dog").mkdir()
        form.validate()
        await pilot.pause()
        # train/ alone: the form says what to set, where
        assert "(see data.val_split)" in _error(form, "data.path")
        assert "no val/ (or test/) folder" in _error(form, "data.val_split")
        assert "set data.val_split (e.g. 0.2)" in _error(form, "data.val_split")


async def test_the_form_says_what_a_run_will_do_with_a_train_only_photo_folder(runs_dir, tmp_path):
    """Mixed-size photos in train/ alone: the size they are decoded at, the classes and the held-out
    validation are shown before Start, and the cost preview uses them."""
    from PIL import Image

    folder = tmp_path / "bugs"
    for c, n in (("ants", 3), ("bees", 2)):
        (folder / "train" / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (300 + 40 * i, 200)).save(folder / "train" / c / f"{i}.jpg")
    Image.new("RGB", (64, 64)).convert("P").save(folder / "train" / "bees" / "x.gif")
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(120, 40)) as pilot:
        form = _form(app)
        fill(form, {"data.dataset": "imagefolder", "data.path": str(folder), "data.val_split": "0.2",
                    "model.arch": "resnet18", "model.width": "0.125"})
        await pilot.pause()
        assert form.result.ok, form.result.problems
        assert form.control("data.image_size").placeholder == "32 (resnet18's default)"
        status = str(app.screen.query_one("#form-status").render())
        for note in ("bugs: 2 classes, 6 img\n1 GIF\nval: 20% held out, stratified\nsize: 32px, centre-cropped",):
            assert note in status
        cost = app.screen.query_one(CostPreview)
        await wait_for(pilot, lambda: cost.last is not None and cost.last_key == cost._key, what="the cost preview")
        assert cost.last["image_size"] == 32 and cost.last["num_classes"] == 2
        fill(form, {"model.arch": "tv_resnet18", "model.width": "1"})
        await pilot.pause()
        assert form.control("data.image_size").placeholder == "224 (tv_resnet18's default)"
        fill(form, {"data.dataset": "shapes", "data.path": "", "data.val_split": "0"})
        await pilot.pause()
        assert form.control("data.image_size").placeholder == "dataset's own"


async def test_start_is_refused_with_focus_on_the_first_problem(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        form = _form(app)
        fill(form, {"train.epochs": "0", "optim.lr": "fast"})
        form.focus_field("name")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        assert app.focused is form.control("optim.lr")  # optim comes before train in the form
        assert list(runs_dir.iterdir()) == []
        await wait_for(pilot, lambda: notified(app, "cannot start"), 30, "the refusal's notification")
        assert "2 problems" in str(app.screen.query_one("#form-status").render())


async def test_device_panel_cost_preview_and_unavailable_device(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app.screen.devices is not None, what="device detection")
        await pilot.pause()
        panel = str(app.screen.query_one("#devices").render())
        assert "Test CPU" in panel and "no GPU: this torch build has no CUDA support" in panel
        assert "Test CPU" in screen_text(app)
        form = _form(app)
        assert {v for _, v in form.control("train.device")._options} == {"auto", "cpu"}
        fill(form, {"train.device": "cuda"})
        await pilot.pause()
        assert "not available on this machine" in _error(form, "train.device")
        fill(form, {"train.device": "cpu", "model.arch": "resnet18", "model.width": "0.5"})
        cost = app.screen.query_one(CostPreview)
        await wait_for(pilot, lambda: cost.last_key is not None and cost.last_key[:2] == ("resnet18", 0.5), what="cost preview")
        small = cost.last["params"]
        assert cost.last["macs"] > 0 and cost.last["memory_mb"] > 0
        assert "params" in str(cost.render()) and "MACs" in str(cost.render()) and "MiB @ batch" in str(cost.render())
        fill(form, {"model.width": "1"})
        await wait_for(pilot, lambda: cost.last_key[1] == 1.0, what="updated cost")
        assert cost.last["params"] > 3 * small


async def test_form_is_usable_at_80x24(runs_dir):
    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(80, 24)) as pilot:
        needles = ("dataset", "Start", "Presets", "Help", "ready")
        # a loaded machine may take a few frames to draw the footer and the verdict
        await wait_for(pilot, lambda: all(n in screen_text(app) for n in needles), 30, "the form, footer and verdict drawn")
        text = screen_text(app)
        for needle in needles:
            assert needle in text, needle
        # tab walks the fields; every row can scroll into view
        form = _form(app)
        form.focus_field("train.progress_every")
        await wait_for(pilot, lambda: "progress every" in screen_text(app), 30, "the focused row scrolled into view")
        assert isinstance(form._rows["train.progress_every"], FieldRow)
        # the side panel scrolls: its Start button can be brought into view at 80x24
        # (the cost preview and device panel above it fill in from a background thread and push it down, as a
        # user would see, so scroll again until it shows)
        button = app.screen.query_one("#start-button")
        side = app.screen.query_one("#side")

        def start_button_shown() -> bool:
            if "Start (ctrl+r)" in screen_text(app):
                return True
            side.scroll_to_widget(button, animate=False)
            return False

        await wait_for(pilot, start_button_shown, 30, "the Start button scrolled into view")


async def test_a_run_ending_while_the_setup_screen_is_torn_down_is_no_crash(runs_dir):
    """CI regression: a training process exited while the app was closing; the handler must not raise."""
    from optai_tui.tui.messages import ProcessExited

    app = OptaiApp(runs_dir, check_running=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        setup = app.setup_screen
        assert setup is not None and setup.query(CostPreview)
        await setup.query_one("#setup-body").remove()  # the widgets go first when a screen is torn down
        assert setup.is_mounted and not setup.query(CostPreview)
        app.post_message(ProcessExited("no-such-run", 130))
        await wait_for(pilot, lambda: notified(app, "no-such-run"), 30, "the notification naming the run")
