"""Every screen and dialog of the app at 80x24: its footer shows the help key (f1) and every key it shows
is whole, none cut at the right edge or hidden under the command palette's key."""

from __future__ import annotations

from tui_helpers import screen_text, wait_for
from tui_synthetic import make_run

from optai_tui.tui.app import OptaiApp
from optai_tui.tui.screens.attach import AttachScreen
from optai_tui.tui.screens.class_report import ClassReportScreen
from optai_tui.tui.screens.compare import CompareScreen
from optai_tui.tui.screens.confirm import ConfirmScreen
from optai_tui.tui.screens.dashboard import DashboardScreen
from optai_tui.tui.screens.export_dialog import ExportDialog
from optai_tui.tui.screens.gpu_picker import GpuPicker
from optai_tui.tui.screens.help import HelpScreen
from optai_tui.tui.screens.path_dialog import PathDialog
from optai_tui.tui.screens.preset_diff import PresetDiffScreen
from optai_tui.tui.screens.preset_picker import PresetPicker
from optai_tui.tui.screens.preset_save import SavePresetScreen
from optai_tui.tui.screens.runs import RunsScreen
from optai_tui.tui.screens.setup import SetupScreen
from optai_tui.tui.screens.sweep_picker import SweepPicker
from optai_tui.tui.screens.sweep_setup import SweepSetupScreen
from optai_tui.tui.screens.sweep_view import SweepViewScreen
from optai_tui.tui.screens.tags_dialog import TagsNoteDialog

EVALUATION = {
    "epoch": 2,
    "images": 20,
    "split": "val",
    "accuracy": 0.5,
    "macro_f1": 0.5,
    "classes": ["circle", "square"],
    "confusion": [[5, 5], [5, 5]],
    "per_class": [
        {"class": "circle", "support": 10, "precision": 0.5, "recall": 0.5, "f1": 0.5},
        {"class": "square", "support": 10, "precision": 0.5, "recall": 0.5, "f1": 0.5},
    ],
}


def footer_keys(app) -> list[str]:
    """The keys the footer of the screen on top shows, as drawn when whole: ``f1 Help``."""
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey

    footers = list(app.screen.query(Footer))
    if not footers:
        return []
    return [f"{k.key_display} {k.description}".strip() for k in footers[0].query(FooterKey)]


async def check_footer(pilot, app, kind: type) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, kind), 30, kind.__name__)
    await wait_for(pilot, lambda: len(footer_keys(app)) >= 1, 10, f"{kind.__name__}: its own footer")
    await pilot.pause(0.2)
    keys = footer_keys(app)
    bottom = screen_text(app).rstrip("\n").splitlines()[-1]
    help_key = "esc Close" if kind is HelpScreen else "f1 Help"  # on the help, f1 (and esc) closes it
    assert help_key in keys, f"{kind.__name__}: the footer has no {help_key!r}: {keys}"
    for key in keys:
        assert key in bottom, f"{kind.__name__}: {key!r} is cut or hidden in the footer: {bottom!r}"
    # a dialog's own line of keys is inside the dialog, above the footer, not cut off under it
    text = screen_text(app)
    for line in app.screen.query(".dialog-keys, .keys"):
        plain = str(line.render()).strip()
        assert plain and plain in text, f"{kind.__name__}: its keys line {plain!r} is not on the screen"


async def back_to(pilot, app, kind: type) -> None:
    await pilot.press("escape")
    await wait_for(pilot, lambda: isinstance(app.screen, kind), 30, f"back to {kind.__name__}")


async def test_every_screen_shows_its_help_key_and_whole_keys_at_80x24(runs_dir):
    done = make_run(runs_dir, "20240101-000001-done", summary={"evaluation": EVALUATION})
    live = make_run(runs_dir, "20240101-000002-live", epochs=50, done=1, end=None)  # training elsewhere: followed
    app = OptaiApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await check_footer(pilot, app, AttachScreen)  # the runs training now, offered at start
        await back_to(pilot, app, SetupScreen)
        await check_footer(pilot, app, SetupScreen)
        for key, dialog in (("ctrl+o", PresetPicker), ("ctrl+s", SavePresetScreen), ("ctrl+t", PresetDiffScreen), ("f1", HelpScreen)):
            await pilot.press(key)
            await check_footer(pilot, app, dialog)
            await back_to(pilot, app, SetupScreen)
        app.push_screen(GpuPicker([], why_no_gpu="no GPU here"))
        await check_footer(pilot, app, GpuPicker)
        await back_to(pilot, app, SetupScreen)

        await pilot.press("ctrl+w")
        await check_footer(pilot, app, SweepSetupScreen)
        for key, dialog in (("ctrl+o", PathDialog), ("ctrl+g", SweepPicker)):
            await pilot.press(key)
            await check_footer(pilot, app, dialog)
            await back_to(pilot, app, SweepSetupScreen)
        await back_to(pilot, app, SetupScreen)
        app.open_sweep("nothing-yet")
        await check_footer(pilot, app, SweepViewScreen)
        await back_to(pilot, app, SetupScreen)

        app.open_dashboard(live.run_id)
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.epochs_done == 1, 30, "live dashboard")
        await check_footer(pilot, app, DashboardScreen)
        await pilot.press("s")  # stop now asks first
        await check_footer(pilot, app, ConfirmScreen)
        await back_to(pilot, app, DashboardScreen)
        await back_to(pilot, app, SetupScreen)
        app.open_dashboard(done.run_id)
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.model.summary is not None, 30, "finished dashboard")
        await check_footer(pilot, app, DashboardScreen)
        app.push_screen(ClassReportScreen(done.run_id, EVALUATION, 0.5, "circle", 0.5))
        await check_footer(pilot, app, ClassReportScreen)
        await back_to(pilot, app, DashboardScreen)
        await back_to(pilot, app, SetupScreen)

        await pilot.press("ctrl+l")
        await check_footer(pilot, app, RunsScreen)
        for key, dialog in (("d", ConfirmScreen), ("e", ExportDialog), ("t", TagsNoteDialog)):
            await pilot.press(key)
            await check_footer(pilot, app, dialog)
            await back_to(pilot, app, RunsScreen)
        await pilot.press("c")
        await check_footer(pilot, app, CompareScreen)
        await pilot.press("e")
        await check_footer(pilot, app, ExportDialog)
        await back_to(pilot, app, CompareScreen)
